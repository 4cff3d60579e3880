"""The production registry: immutable version objects, compare-and-set, verified model bytes.

Every behaviour is checked on both backends of the state store: a local folder and an S3 endpoint
(moto's server on loopback).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from retraining_assets.core.registry import (
    ProductionRecord,
    ProductionStore,
    PromotionConflict,
    RegistryError,
    reconcile_champion_alias,
    version_key,
)
from retraining_assets.storage import ObjectStore, S3Store, open_store


def _model(text: str) -> bytes:
    return f"tree\nversion=v4\n{text}\npandas_categorical:null\n".encode()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture(params=["local", "s3"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], ObjectStore]:
    """Opens the ``production`` area of one fresh state store, local or on loopback S3.

    Each call is a new handle (a new S3 client), as another process would have.
    """
    if request.param == "local":
        return lambda: open_store(_state_url("local", tmp_path)).child("production")
    endpoint = request.getfixturevalue("s3_env")
    s3 = open_store(_state_url("s3", tmp_path), endpoint_url=endpoint)
    assert isinstance(s3, S3Store)
    s3.client.create_bucket(Bucket=s3.bucket)
    return lambda: open_store(_state_url("s3", tmp_path)).child("production")


def _state_url(kind: str, tmp_path: Path) -> str:
    """The state URL of one test: a folder, or a bucket named after the test's folder."""
    if kind == "local":
        return str(tmp_path / "state")
    return f"s3://b{abs(hash(str(tmp_path))) % 10**9}/state"


@pytest.fixture
def store(opener: Callable[[], ObjectStore]) -> ProductionStore:
    return ProductionStore(opener())


def test_empty_store_has_no_current_and_no_history(store: ProductionStore, tmp_path) -> None:
    assert store.current() is None
    assert store.history() == []
    assert store.challenger() is None
    assert store.store.list() == []  # reading creates nothing
    assert not (tmp_path / "state").exists()


def test_first_promote_creates_one_version_object_and_the_model(store: ProductionStore) -> None:
    data = _model("first")
    record = store.promote(
        data,
        expected_current=None,
        reason="beats baseline",
        mlflow_run_id="run-1",
        dataset_md5="d" * 32,
        metrics={"auc": 0.81},
        changed_by="dagster-run-1",
    )
    md5 = _md5(data)
    assert record.version == 1 and record.action == "promote"
    assert record.reason == "beats baseline" and record.model_md5 == md5
    assert record.model_file == f"models/{md5}.txt"
    assert record.mlflow_run_id == "run-1" and record.metrics == {"auc": 0.81}
    assert datetime.fromisoformat(record.created_at).utcoffset() is not None
    assert store.store.list() == [f"models/{md5}.txt", "versions/000001.json"]
    assert json.loads(store.store.get("versions/000001.json")) == json.loads(record.to_json())
    assert store.store.get(f"models/{md5}.txt") == data
    assert store.current() == record
    assert store.history() == [record]
    assert store.model_bytes(record) == data


def test_versions_accumulate_and_never_change(
    store: ProductionStore, opener: Callable[[], ObjectStore]
) -> None:
    first = store.promote(_model("first"), expected_current=None, reason="first")
    v1_object = store.store.get(version_key(1))
    second = store.promote(_model("second"), expected_current=1, reason="better")
    assert second.version == 2
    assert store.current() == second
    assert store.history() == [first, second]
    assert store.store.get(version_key(1)) == v1_object  # immutable
    # The first version's bytes stay available (for a rollback).
    assert store.model_bytes(first) == _model("first")
    third = store.promote(_model("third"), expected_current=2, reason="again", action="other")
    assert third.version == 3 and third.action == "other"
    assert [r.version for r in store.history()] == [1, 2, 3]
    # Another reader (another process) sees the same versions.
    assert ProductionStore(opener()).history() == [first, second, third]


def test_same_bytes_twice_reuse_the_content_addressed_object(store: ProductionStore) -> None:
    first = store.promote(_model("same"), expected_current=None, reason="first")
    second = store.promote(_model("same"), expected_current=1, reason="same bytes again")
    assert second.version == 2 and second.model_file == first.model_file
    assert store.store.list("models") == [first.model_file]


def test_local_model_object_is_not_rewritten(tmp_path: Path) -> None:
    store = ProductionStore(tmp_path / "production")
    first = store.promote(_model("same"), expected_current=None, reason="first")
    path = store.root / first.model_file
    stat = path.stat()
    store.promote(_model("same"), expected_current=1, reason="again")
    assert path.stat().st_ino == stat.st_ino and path.stat().st_mtime_ns == stat.st_mtime_ns


def test_unknown_record_field_is_refused_before_anything_is_written(
    store: ProductionStore,
) -> None:
    first = store.promote(_model("first"), expected_current=None, reason="first")
    keys = store.store.list()
    with pytest.raises(TypeError):
        store.promote(_model("second"), expected_current=1, reason="r", not_a_field=1)
    assert store.current() == first and store.store.list() == keys


def test_stale_expected_version_is_a_conflict_and_changes_nothing(
    store: ProductionStore,
) -> None:
    store.promote(_model("a"), expected_current=None, reason="first", changed_by="run-a")
    store.promote(_model("b"), expected_current=1, reason="second", changed_by="run-b")
    keys = store.store.list()
    with pytest.raises(PromotionConflict) as info:
        store.promote(_model("c"), expected_current=1, reason="judged against v1")
    assert str(info.value).startswith(
        "production moved to v2 (run run-b) while this run evaluated against v1"
    )
    assert "re-evaluate" in str(info.value)
    assert info.value.expected == 1 and info.value.actual == 2
    with pytest.raises(PromotionConflict, match="evaluated against no production model"):
        store.promote(_model("c"), expected_current=None, reason="first ever?")
    with pytest.raises(PromotionConflict, match="moved to v2"):
        store.promote(_model("c"), expected_current=7, reason="from the future")
    assert store.store.list() == keys  # not even the model bytes were written


@pytest.mark.parametrize("expected", [0, -1])
def test_invalid_expected_version_is_refused(store: ProductionStore, expected: int) -> None:
    with pytest.raises(RegistryError, match="versions are whole numbers from 1"):
        store.promote(_model("a"), expected_current=expected, reason="r")


def _race(opener: Callable[[], ObjectStore], expected: int | None, n: int) -> tuple[list, list]:
    """``n`` promoters, each with its own store handle, released at once."""
    barrier = threading.Barrier(n)
    wins: list[ProductionRecord] = []
    conflicts: list[PromotionConflict] = []

    def promoter(i: int) -> None:
        mine = ProductionStore(opener())
        barrier.wait()
        try:
            wins.append(
                mine.promote(
                    _model(f"racer {i}"),
                    expected_current=expected,
                    reason=f"racer {i}",
                    changed_by=f"run-{i}",
                )
            )
        except PromotionConflict as exc:
            conflicts.append(exc)

    threads = [threading.Thread(target=promoter, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return wins, conflicts


def test_lost_race_exactly_one_promoter_wins(
    store: ProductionStore, opener: Callable[[], ObjectStore]
) -> None:
    """Six runs judged against the same champion promote at once: one wins, five conflict."""
    wins, conflicts = _race(opener, None, 6)  # the very first promotion
    assert len(wins) == 1 and len(conflicts) == 5
    winner = wins[0]
    for exc in conflicts:
        assert f"production moved to v1 (run {winner.changed_by})" in str(exc)
    wins, conflicts = _race(opener, 1, 6)
    assert len(wins) == 1 and len(conflicts) == 5
    assert all("moved to v2" in str(exc) and "against v1" in str(exc) for exc in conflicts)
    history = ProductionStore(opener()).history()
    assert [r.version for r in history] == [1, 2]  # no gap, no duplicate
    assert history == [winner, wins[0]]
    assert store.model_bytes(history[-1]) == _model(history[-1].reason)


def test_retrying_promoters_build_a_history_without_gaps(
    store: ProductionStore, opener: Callable[[], ObjectStore]
) -> None:
    """Promoters that re-read and retry after a conflict: every model lands exactly once."""
    n, rounds = 4, 3
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def promoter(i: int) -> None:
        mine = ProductionStore(opener())
        barrier.wait()
        try:
            for r in range(rounds):
                while True:
                    current = mine.current()
                    try:
                        mine.promote(
                            _model(f"{i}-{r}"),
                            expected_current=current.version if current else None,
                            reason=f"{i}-{r}",
                        )
                        break
                    except PromotionConflict:
                        continue
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=promoter, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    history = store.history()
    assert [r.version for r in history] == list(range(1, n * rounds + 1))
    assert sorted(r.reason for r in history) == sorted(
        f"{i}-{r}" for i in range(n) for r in range(rounds)
    )


def test_model_bytes_are_verified_on_every_read(store: ProductionStore) -> None:
    record = store.promote(_model("a"), expected_current=None, reason="r")
    store.store.put(record.model_file, _model("edited by hand"))
    with pytest.raises(RegistryError, match=r"model bytes of v1 are missing or changed: .*md5"):
        store.model_bytes(record)
    with pytest.raises(RegistryError, match="missing or changed"):
        store.model_text(record)
    with pytest.raises(RegistryError, match="missing or changed"):
        store.booster(record)
    store.store.delete(record.model_file)
    with pytest.raises(RegistryError, match=r"missing or changed: .* does not exist"):
        store.model_bytes(record)


def _lightgbm_model_text() -> str:
    import lightgbm as lgb
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    params = {"objective": "binary", "num_threads": 1, "verbose": -1, "num_leaves": 4}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=3)
    return str(booster.model_to_string())


def test_booster_loads_verified_bytes_and_refuses_corrupt_ones(store: ProductionStore) -> None:
    """A corrupt champion is a clear error before LightGBM parses it (it once aborted)."""
    import numpy as np

    text = _lightgbm_model_text()
    record = store.promote(text.encode(), expected_current=None, reason="r")
    x = np.ones((2, 3))
    booster = store.booster(record)
    assert booster.num_trees() == 3
    assert store.model_text(record) == text
    truncated = text.encode()[: len(text) // 2] + b"\x00garbage"
    store.store.put(record.model_file, truncated)
    with pytest.raises(RegistryError, match="missing or changed"):
        store.booster(record)
    store.store.put(record.model_file, text.encode())  # repaired: usable again
    assert np.allclose(store.booster(record).predict(x), booster.predict(x))


def test_promoting_repairs_a_damaged_model_object(store: ProductionStore) -> None:
    data = _model("a")
    store.store.put(f"models/{_md5(data)}.txt", b"damaged")
    record = store.promote(data, expected_current=None, reason="r")
    assert store.model_bytes(record) == data


@pytest.mark.parametrize(
    "damage", [b'{"version": 2, "model_md5": "ab', b"", b"\xff\xfe", b"[]", b'{"version": 2}']
)
def test_corrupt_newest_version_is_a_clear_error_naming_it(
    store: ProductionStore, damage: bytes
) -> None:
    first = store.promote(_model("a"), expected_current=None, reason="r")
    store.store.create(version_key(2), damage)
    with pytest.raises(RegistryError, match=r"production/versions/000002\.json") as info:
        store.current()
    assert not isinstance(info.value, json.JSONDecodeError)
    assert "\n" not in str(info.value)
    with pytest.raises(RegistryError, match="000002"):
        store.history()
    assert store.record(1) == first  # older versions still readable (for lineage)
    with pytest.raises(RegistryError, match="000002"):
        store.promote(_model("b"), expected_current=1, reason="r")


def test_version_object_under_the_wrong_name_is_refused(store: ProductionStore) -> None:
    store.promote(_model("a"), expected_current=None, reason="r")
    store.store.create(version_key(2), store.store.get(version_key(1)))
    with pytest.raises(RegistryError, match="holds version 1, not 2"):
        store.current()


def test_rollback_restores_previous_bytes_as_a_new_version(store: ProductionStore) -> None:
    v1 = store.promote(_model("A"), expected_current=None, reason="first", dataset_md5="d1")
    v2 = store.promote(_model("B"), expected_current=1, reason="better")
    assert store.current() == v2
    rolled = store.rollback(reason="B misbehaves in production", changed_by="cli")
    assert rolled.version == 3 and rolled.action == "rollback" and rolled.changed_by == "cli"
    assert rolled.model_md5 == v1.model_md5 and rolled.dataset_md5 == "d1"
    assert rolled.extra["restores_version"] == 1 and rolled.extra["rolled_back_from"] == 2
    assert store.current() == rolled
    assert store.model_bytes(rolled) == _model("A")
    assert [r.action for r in store.history()] == ["promote", "promote", "rollback"]
    again = store.rollback(to_version=2, reason="back to B")
    assert again.version == 4 and store.model_bytes(again) == _model("B")


def test_rollback_errors_are_clear_and_change_nothing(store: ProductionStore) -> None:
    with pytest.raises(RegistryError, match="nothing is in production"):
        store.rollback(reason="x")
    store.promote(_model("A"), expected_current=None, reason="first")
    with pytest.raises(RegistryError, match="first version"):
        store.rollback(reason="x")
    store.promote(_model("B"), expected_current=1, reason="second")
    store.promote(_model("A"), expected_current=2, reason="A again")
    keys = store.store.list()
    for bad in (0, -1):
        with pytest.raises(RegistryError, match=f"invalid production version {bad}"):
            store.rollback(to_version=bad, reason="x")
    with pytest.raises(RegistryError, match=r"no production version 9; known versions: 1\.\.3"):
        store.rollback(to_version=9, reason="x")
    with pytest.raises(RegistryError, match="v3 is already serving"):
        store.rollback(to_version=3, reason="x")
    with pytest.raises(RegistryError, match="same model bytes as the serving v3"):
        store.rollback(to_version=1, reason="x")
    with pytest.raises(PromotionConflict, match=r"moved to v3 .*while this rollback read v2"):
        store.rollback(to_version=2, reason="x", expected_current=2)
    assert store.store.list() == keys


def test_rollback_refuses_a_target_whose_bytes_changed(store: ProductionStore) -> None:
    v1 = store.promote(_model("A"), expected_current=None, reason="first")
    store.promote(_model("B"), expected_current=1, reason="second")
    store.store.put(v1.model_file, b"tampered")
    keys = store.store.list()
    with pytest.raises(RegistryError, match="model bytes of v1 are missing or changed"):
        store.rollback(reason="x")
    assert store.store.list() == keys and store.current().version == 2  # type: ignore[union-attr]


def test_challenger_is_held_apart_from_production(store: ProductionStore) -> None:
    v1 = store.promote(_model("A"), expected_current=None, reason="first")
    versions = store.store.list("versions")
    challenger = store.set_challenger(_model("B"), expected_current=1, reason="passed gate")
    assert store.challenger() == challenger
    assert challenger.version == v1.version and challenger.action == "challenger"
    assert store.store.list("versions") == versions and store.current() == v1
    assert store.model_bytes(challenger) == _model("B")
    store.store.put(challenger.model_file, b"edited")
    with pytest.raises(RegistryError, match="model bytes of the challenger are missing or changed"):
        store.model_bytes(challenger)
    store.clear_challenger()
    assert store.challenger() is None
    with pytest.raises(PromotionConflict):
        store.set_challenger(_model("C"), expected_current=2, reason="stale")
    store.store.put("challenger.json", b'{"version": 1, "mod')
    with pytest.raises(RegistryError, match=r"challenger\.json cannot be parsed"):
        store.challenger()


# -- the earlier layout ---------------------------------------------------------------------------


def _legacy_record(version: int, data: bytes, action: str = "promote") -> dict:
    """A record as the folder-based registry wrote it (no ``changed_by`` field)."""
    md5 = _md5(data)
    return {
        "action": action,
        "created_at": f"2026-01-0{version}T00:00:00+00:00",
        "dataset_md5": "d" * 32,
        "extra": {"strategy": "rolling"},
        "metrics": {"auc": 0.7 + version / 100},
        "mlflow_model_uri": f"models:/m-{version}",
        "mlflow_run_id": f"run-{version}",
        "model_file": f"models/{md5}.txt",
        "model_md5": md5,
        "reason": f"reason {version}",
        "registered_version": str(version),
        "version": version,
    }


def _write_legacy(root: Path, records: list[dict], pointer: dict, tail: str = "") -> None:
    (root / "models").mkdir(parents=True)
    for version in range(1, 4):
        data = _model(f"legacy {version}")
        (root / "models" / f"{_md5(data)}.txt").write_bytes(data)
    (root / ".lock").write_text("")
    lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    (root / "history.jsonl").write_text(lines + tail)
    (root / "current.json").write_text(json.dumps(pointer, sort_keys=True) + "\n")


def test_legacy_folder_is_imported_once_with_a_torn_last_line(tmp_path: Path) -> None:
    root = tmp_path / "production"
    records = [_legacy_record(v, _model(f"legacy {v}")) for v in (1, 2)]
    _write_legacy(root, records, records[1], tail='{"version": 3, "mod')
    old_history = (root / "history.jsonl").read_bytes()
    store = ProductionStore(root)
    current = store.current()
    assert current is not None and current.version == 2
    assert current == ProductionRecord.from_dict(records[1])
    assert [r.version for r in store.history()] == [1, 2]
    assert store.model_bytes(store.record(1)) == _model("legacy 1")
    assert sorted(p.name for p in (root / "versions").iterdir()) == [
        "000001.json",
        "000002.json",
    ]
    assert not (root / "current.json").exists() and not (root / "history.jsonl").exists()
    assert (root / "legacy" / "history.jsonl").read_bytes() == old_history
    # Promotion continues the imported numbering; a new reader does not import again.
    v3 = store.promote(_model("new"), expected_current=2, reason="after upgrade")
    assert v3.version == 3
    assert [r.version for r in ProductionStore(root).history()] == [1, 2, 3]


def test_legacy_history_past_the_pointer_never_served(tmp_path: Path) -> None:
    """Killed between the history line and the pointer: that version is left out."""
    root = tmp_path / "production"
    records = [_legacy_record(v, _model(f"legacy {v}")) for v in (1, 2)]
    _write_legacy(root, records, records[0])
    store = ProductionStore(root)
    assert [r.version for r in store.history()] == [1]
    assert store.current() == ProductionRecord.from_dict(records[0])
    # The next rollback is not a no-op on a phantom version: there is nothing before v1.
    with pytest.raises(RegistryError, match="first version"):
        store.rollback(reason="x")


def test_interrupted_legacy_import_is_finished_by_the_next_reader(tmp_path: Path) -> None:
    root = tmp_path / "production"
    records = [_legacy_record(v, _model(f"legacy {v}")) for v in (1, 2, 3)]
    _write_legacy(root, records, records[2])
    # A crash right after the first create: the old files and versions/000001.json exist.
    (root / "versions").mkdir()
    v1 = ProductionRecord.from_dict(records[0])
    (root / "versions" / "000001.json").write_text(v1.to_json() + "\n")
    store = ProductionStore(root)
    assert [r.version for r in store.history()] == [1, 2, 3]


def test_corrupt_legacy_pointer_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "production"
    records = [_legacy_record(1, _model("legacy 1"))]
    _write_legacy(root, records, records[0])
    (root / "current.json").write_text('{"version": 1, "mo')
    with pytest.raises(RegistryError, match=r"current\.json cannot be parsed"):
        ProductionStore(root).current()


# -- MLflow alias reconciliation ------------------------------------------------------------------


@pytest.fixture
def mlflow_client(tmp_path: Path, mlflow_template: Path):
    from mlflow import MlflowClient

    db = tmp_path / "mlflow.db"
    shutil.copyfile(mlflow_template, db)
    client = MlflowClient(f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")
    client.create_registered_model("m")
    for _ in range(2):
        client.create_model_version("m", source=(tmp_path / "artifacts").as_uri())
    return client


def test_reconcile_repairs_an_alias_left_behind_by_a_killed_promotion(
    tmp_path: Path, mlflow_client
) -> None:
    store = ProductionStore(tmp_path / "production")
    assert reconcile_champion_alias(store, mlflow_client, "m") is None  # nothing serves yet
    store.promote(_model("a"), expected_current=None, reason="r", registered_version="1")
    # Alias never set (killed right after the version object was created): repaired.
    message = reconcile_champion_alias(store, mlflow_client, "m")
    assert message is not None and "(unset)" in message and "production v1" in message
    assert mlflow_client.get_model_version_by_alias("m", "champion").version == 1
    assert reconcile_champion_alias(store, mlflow_client, "m") is None  # consistent: no-op
    # Killed between the v2 object and moving the alias: the alias still names v1's model.
    store.promote(_model("b"), expected_current=1, reason="r", registered_version="2")
    message = reconcile_champion_alias(store, mlflow_client, "m")
    assert message is not None and "pointed at m v1" in message and "serves m v2" in message
    assert mlflow_client.get_model_version_by_alias("m", "champion").version == 2
    assert reconcile_champion_alias(store, mlflow_client, "m") is None


def test_temporary_local_aliases(store: ProductionStore, tmp_path: Path) -> None:
    """``root`` and ``model_path`` (kept for monitoring until it moves) work locally only."""
    record = store.promote(_model("a"), expected_current=None, reason="r")
    if store.location.startswith("s3://"):
        with pytest.raises(RegistryError, match="not a local folder"):
            _ = store.root
        with pytest.raises(RegistryError, match=r"use ProductionStore\.booster"):
            store.model_path(record)
        return
    assert store.root == tmp_path / "state" / "production"
    assert store.model_path(record).read_bytes() == _model("a")
    store.model_path(record).write_bytes(b"edited")
    with pytest.raises(RegistryError, match="missing or changed"):
        store.model_path(record)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rollback", "--to", "0"], "0: production versions are numbered from 1"),
        (["rollback", "--to", "-2"], "-2: production versions are numbered from 1"),
        (["rollback", "--to", "two"], "'two' is not a version number"),
        (["show-lineage", "0"], "0: production versions are numbered from 1"),
    ],
)
def test_cli_refuses_version_numbers_below_one(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from retraining_assets.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_check_reports_a_damaged_registry_in_one_line(store: ProductionStore) -> None:
    store.check()  # empty is fine
    store.promote(_model("a"), expected_current=None, reason="r")
    store.check()
    store.store.create(version_key(2), b"{")
    with pytest.raises(RegistryError, match="000002") as info:
        store.check()
    assert "\n" not in str(info.value)


def test_doctor_describes_the_production_registry(
    store: ProductionStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``retraining doctor`` checks the registry through the resource, on both backends."""
    from retraining_assets.defs.resources import ProductionResource
    from retraining_assets.doctor import resource_line

    url = _state_url("s3" if store.location.startswith("s3://") else "local", tmp_path)
    monkeypatch.setenv("RETRAINING_STATE_URL", url)
    line = resource_line("production", ProductionResource())
    assert line.ok, line
    assert f"{url}/production" in line.backend
    store.store.create(version_key(1), b"torn")
    line = resource_line("production", ProductionResource())
    assert not line.ok and "000001.json cannot be parsed" in line.detail
