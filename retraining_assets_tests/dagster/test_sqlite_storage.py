"""The project's SQLite storage: one slot per claim, kept connections, new run databases."""

from __future__ import annotations

import multiprocessing
import os
import queue
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from sqlalchemy.pool import QueuePool

from retraining_assets.defs.sqlite_storage import (
    OPEN_RUN_SHARDS,
    ClaimSafeSqliteEventLogStorage,
    PooledSqliteRunStorage,
    SqliteStorage,
    _Engines,
)
from retraining_assets.settings import project_root

STORAGE_CLASS = {"module": "retraining_assets.defs.sqlite_storage", "class": "SqliteStorage"}

ROUNDS = 25


def _claimer(
    storage_class: type[SqliteEventLogStorage],
    base_dir: str,
    index: int,
    barrier: multiprocessing.synchronize.Barrier,
    results: multiprocessing.Queue,
) -> None:
    """One run worker: in each round, claim the slot together with the other, then free it."""
    storage = storage_class(base_dir)
    for round_ in range(ROUNDS):
        barrier.wait()
        status = storage.claim_concurrency_slot("retraining", f"run{index}", f"step{round_}")
        results.put((round_, status.is_claimed))
        barrier.wait()
        storage.free_concurrency_slots_for_run(f"run{index}")
        barrier.wait()


def _double_claims(storage_class: type[SqliteEventLogStorage], base_dir: Path) -> tuple[int, int]:
    """Two processes claim a one-slot pool at the same instant, ROUNDS times: (twice, never)."""
    storage_class(str(base_dir)).set_concurrency_slots("retraining", 1)
    context = multiprocessing.get_context("fork")  # the imports are done once, in this process
    barrier, results = context.Barrier(2), context.Queue()
    workers = [
        context.Process(target=_claimer, args=(storage_class, str(base_dir), i, barrier, results))
        for i in range(2)
    ]
    for worker in workers:
        worker.start()
    granted = Counter(
        r for r, claimed in (results.get(timeout=60) for _ in range(2 * ROUNDS)) if claimed
    )
    for worker in workers:
        worker.join(timeout=60)
    return sum(1 for n in granted.values() if n > 1), ROUNDS - len(granted)


@pytest.mark.slow
def test_simultaneous_claims_get_one_slot(tmp_path: Path) -> None:
    """Ours: every round exactly one process holds the slot."""
    assert _double_claims(ClaimSafeSqliteEventLogStorage, tmp_path) == (0, 0)


@pytest.mark.slow
def test_dagster_own_claim_still_races(tmp_path: Path) -> None:
    """Canary of the same harness on Dagster's class (it granted 54-60 of 100 rounds twice).

    When this fails after a Dagster upgrade, Dagster fixed its claim and SqliteStorage can go.
    The race needs both processes between their SELECT and UPDATE at once, which the scheduler
    sometimes never allows in 25 rounds (2 of ~60 runs of this file): up to three harnesses.
    """
    twice = 0
    for attempt in range(3):
        twice, _ = _double_claims(SqliteEventLogStorage, tmp_path / str(attempt))
        if twice:
            break
    assert twice > 0


def test_embedded_instance_uses_the_safe_storage(tmp_path: Path, monkeypatch) -> None:
    """var/dagster/dagster.yaml selects it; runs, events and schedules stay in DAGSTER_HOME."""
    (tmp_path / "dagster.yaml").write_text(
        (project_root() / "var" / "dagster" / "dagster.yaml").read_text()
    )
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.event_log_storage, ClaimSafeSqliteEventLogStorage)
        assert isinstance(instance.run_storage, PooledSqliteRunStorage)
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    assert (tmp_path / "history" / "runs.db").exists()
    assert (tmp_path / "history" / "runs" / "index.db").exists()
    assert os.path.isdir(tmp_path / "schedules")


def test_claim_of_a_taken_slot_is_blocked_and_changes_nothing(tmp_path: Path) -> None:
    """A claim on a pool whose only slot is held leaves the holder in place."""
    storage = SqliteStorage.from_local(str(tmp_path)).event_log_storage
    storage.set_concurrency_slots("retraining", 1)
    assert storage.claim_concurrency_slot("retraining", "a", "s").is_claimed
    assert not storage.claim_concurrency_slot("retraining", "b", "s").is_claimed
    holders = storage.get_concurrency_info("retraining").claimed_slots
    assert [(h.run_id, h.step_key) for h in holders] == [("a", "s")]
    storage.free_concurrency_slots_for_run("a")
    assert storage.claim_concurrency_slot("retraining", "b", "s").is_claimed


def _log_entry(run_id: str, message: str) -> EventLogEntry:
    return EventLogEntry(
        error_info=None, level="INFO", user_message=message, run_id=run_id, timestamp=time.time()
    )


def test_kept_connections_are_seen_by_other_readers(tmp_path: Path) -> None:
    """A run on the pooled storage, read through Dagster's own storage while ours is still open.

    Committed rows sit in the WAL (no checkpoint on every close any more): another connection
    reads them all the same, and closing ours folds the WAL back into the files.
    """

    @dg.asset
    def one() -> int:
        return 1

    @dg.asset
    def two(one: int) -> int:
        return one + 1

    overrides = {"storage": {"custom": {**STORAGE_CLASS, "config": {"base_dir": str(tmp_path)}}}}
    with dg.instance_for_test(overrides=overrides, temp_dir=str(tmp_path)) as instance:
        assert isinstance(instance.run_storage, PooledSqliteRunStorage)
        result = dg.materialize([one, two], instance=instance)
        ours = [e.dagster_event_type for e in instance.all_logs(result.run_id)]
        stock = DagsterSqliteStorage.from_local(str(tmp_path))
        [run] = stock.run_storage.get_runs(dg.RunsFilter(run_ids=[result.run_id]))
        assert run.status == dg.DagsterRunStatus.SUCCESS
        theirs = stock.event_log_storage.get_logs_for_run(result.run_id)
        assert [e.dagster_event_type for e in theirs] == ours
        assert stock.event_log_storage.get_latest_materialization_events([dg.AssetKey("two")])
    assert not list(tmp_path.rglob("*.db-wal")), "every WAL checkpointed when the instance closed"


def test_a_write_to_a_run_shard_reaches_the_ui_watcher(tmp_path: Path) -> None:
    """Dagster's watcher (the UI's live run log) sees events written through kept connections.

    It watches the run's .db file, which a checkpoint no longer rewrites after each event: a
    write sets the file's modification time; a read does not (the watcher reads on each change).
    """
    ours = ClaimSafeSqliteEventLogStorage(str(tmp_path))
    ours.store_event(_log_entry("r1", "first"))
    shard = Path(ours.path_for_shard("r1"))
    before = shard.stat().st_mtime_ns
    time.sleep(0.01)
    assert [e.user_message for e in ours.get_logs_for_run("r1")] == ["first"]
    assert shard.stat().st_mtime_ns == before, "a read leaves the file alone"

    watcher = SqliteEventLogStorage(str(tmp_path))
    seen: queue.Queue[str] = queue.Queue()
    watcher.watch("r1", None, lambda entry, _cursor: seen.put(entry.user_message))
    try:
        time.sleep(0.2)  # the observer thread starts watching
        ours.store_event(_log_entry("r1", "second"))
        messages = [seen.get(timeout=10)]
        while messages[-1] != "second":
            messages.append(seen.get(timeout=10))
    finally:
        watcher.dispose()
        ours.dispose()
    assert messages[-1] == "second"


def test_open_run_shards_are_bounded_and_closed(tmp_path: Path) -> None:
    """Past OPEN_RUN_SHARDS run databases the least recent is closed; dispose closes them all."""
    ours = ClaimSafeSqliteEventLogStorage(str(tmp_path))
    for i in range(OPEN_RUN_SHARDS + 3):
        ours.store_event(_log_entry(f"run{i}", "x"))
    open_shards = {Path(k.removeprefix("sqlite:///")).stem for k in ours._engines._engines}
    assert open_shards == {"index"} | {f"run{i}" for i in range(3, OPEN_RUN_SHARDS + 3)}
    assert not (tmp_path / "run0.db-wal").exists(), "an evicted shard is closed"
    ours.dispose()
    assert not list(tmp_path.glob("*.db-wal"))
    reread = SqliteEventLogStorage(str(tmp_path))
    assert all(len(reread.get_logs_for_run(f"run{i}")) == 1 for i in range(OPEN_RUN_SHARDS + 3))


def test_engines_are_not_shared_with_a_forked_child(tmp_path: Path, monkeypatch) -> None:
    """An engine cache reached in another process starts afresh, leaving the parent's open."""
    engines = _Engines(1)
    url = f"sqlite:///{tmp_path / 'a.db'}"
    parent = engines.get(url)
    with parent.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x)")
        conn.commit()
    pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: pid + 1)
    child = engines.get(url)
    assert child is not parent
    assert isinstance(parent.pool, QueuePool) and parent.pool.checkedin() == 1, "left open"
    with child.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engines.dispose()
    monkeypatch.setattr(os, "getpid", lambda: pid)
    parent.dispose()


def _shard_schema(path: str) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]], str]:
    """A run shard's tables and indexes, its alembic revision and its journal mode."""
    connection = sqlite3.connect(path)
    try:
        schema = sorted(connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
        revision = list(connection.execute("SELECT version_num FROM alembic_version"))
        journal = connection.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        connection.close()
    return schema, revision, journal


def test_a_new_run_shard_is_made_as_dagster_makes_it(tmp_path: Path) -> None:
    """Same tables, indexes and alembic head as Dagster's class makes, in WAL mode."""
    made = {}
    for name, cls in (("dagster", SqliteEventLogStorage), ("ours", ClaimSafeSqliteEventLogStorage)):
        storage = cls(str(tmp_path / name))
        with storage.run_connection("run-1"):
            pass
        made[name] = _shard_schema(storage.path_for_shard("run-1"))
        storage.dispose()
    assert made["ours"] == made["dagster"]
    assert made["ours"][1] and made["ours"][2] == "wal"


def test_an_existing_run_shard_is_not_stamped_again(tmp_path: Path) -> None:
    """A shard another process made (here at an older revision) is opened as it is."""
    SqliteEventLogStorage(str(tmp_path)).store_event(_log_entry("run-1", "hello"))
    path = str(tmp_path / "run-1.db")
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("UPDATE alembic_version SET version_num = 'older'")
    connection.close()
    storage = ClaimSafeSqliteEventLogStorage(str(tmp_path))
    storage.store_event(_log_entry("run-1", "hello"))
    assert _shard_schema(path)[1] == [("older",)]
    assert len(storage.get_logs_for_run("run-1")) == 2
    storage.dispose()


def _open_shard(base_dir: str, run_id: str, barrier: Any, errors: multiprocessing.Queue) -> None:
    """One process: open a new run's database at the same instant as the other, write to it."""
    storage = ClaimSafeSqliteEventLogStorage(base_dir)
    barrier.wait()
    try:
        storage.store_event(_log_entry(run_id, str(os.getpid())))
    except Exception as exc:  # reported to the parent: any error fails the test
        errors.put(repr(exc))
    storage.dispose()


def test_two_processes_make_one_run_shard_at_once(tmp_path: Path) -> None:
    """Both write their event; the database is made once, with the head revision."""
    ClaimSafeSqliteEventLogStorage(str(tmp_path)).dispose()  # the index, made before the race
    stock = SqliteEventLogStorage(str(tmp_path / "stock"))
    stock.store_event(_log_entry("made-by-dagster", "hello"))
    head = _shard_schema(stock.path_for_shard("made-by-dagster"))[1]
    context = multiprocessing.get_context("fork")
    errors = context.Queue()
    for round_ in range(5):
        run_id = f"race-{round_}"
        barrier = context.Barrier(2)
        workers = [
            context.Process(target=_open_shard, args=(str(tmp_path), run_id, barrier, errors))
            for _ in range(2)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
            assert worker.exitcode == 0
        assert errors.empty(), errors.get()
        storage = SqliteEventLogStorage(str(tmp_path))
        assert len(storage.get_logs_for_run(run_id)) == 2
        assert _shard_schema(str(tmp_path / f"{run_id}.db"))[1] == head
