"""One retraining at a time for every launch path: the chain's steps share a Dagster pool."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
import pytest

from retraining_assets.defs.constants import RETRAINING_POOL
from retraining_assets.defs.jobs import RETRAINING_ASSETS
from retraining_assets_tests.dagster.helpers import ingest, write_batches

pytestmark = pytest.mark.slow

POOLED_STEPS = {a.key.to_user_string() for a in RETRAINING_ASSETS}
# What var/dagster/dagster.yaml sets (test_definitions pins that file); nothing else limits runs.
INSTANCE_YAML = (
    "telemetry:\n  enabled: false\n"
    "storage:\n  custom:\n    module: retraining_assets.defs.sqlite_storage\n"
    "    class: SqliteStorage\n    config:\n      base_dir: {env: DAGSTER_HOME}\n"
    "concurrency:\n  pools:\n    default_limit: 1\n"
)


def _step_intervals(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """(start, end) timestamps of each pooled step of a run."""
    start: dict[str, float] = {}
    end: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key not in POOLED_STEPS:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            start[event.step_key] = entry.timestamp
        elif event.event_type in (
            dg.DagsterEventType.STEP_SUCCESS,
            dg.DagsterEventType.STEP_FAILURE,
        ):
            end[event.step_key] = entry.timestamp
    return {k: (start[k], end[k]) for k in start}


def test_two_launches_at_once_one_waits(project, tmp_path, monkeypatch) -> None:
    """Two chains launched together (as two UI clicks, no run tag): pooled steps never overlap."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # the storage's base_dir is {env: DAGSTER_HOME}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    batch_ids = write_batches(project, n_batches=6, rows=600)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert all(ingest(instance, batch_ids).values())

    procs = {
        role: subprocess.Popen(
            [sys.executable, "-m", "retraining_assets_tests.dagster.chain_process", role, w],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for role, w in (("a", "4"), ("b", "3"))
    }
    outputs = {role: proc.communicate(timeout=900)[0] for role, proc in procs.items()}

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = {
            role: instance.get_run_records(filters=dg.RunsFilter(tags={"test/role": role}))
            for role in procs
        }
        assert all(len(r) == 1 for r in runs.values()), outputs
        intervals = {
            role: _step_intervals(instance, r[0].dagster_run.run_id) for role, r in runs.items()
        }
        lifetimes = {
            role: (r[0].start_time or 0.0, r[0].end_time or 0.0) for role, r in runs.items()
        }
        # Nothing left holding the pool.
        assert not instance.event_log_storage.get_concurrency_info(RETRAINING_POOL).claimed_slots

    # Both ran their pooled steps...
    for role, steps in intervals.items():
        assert "training_dataset" in steps, outputs[role]
    # ...at the same time as runs (launched together: each started before the other ended)...
    (a0, a1), (b0, b1) = lifetimes["a"], lifetimes["b"]
    assert a0 < b1 and b0 < a1, lifetimes
    # ...but never two pooled steps at once: one waited for the other's slot.
    for sa, (s0, s1) in intervals["a"].items():
        for sb, (t0, t1) in intervals["b"].items():
            assert s1 <= t0 or t1 <= s0, (sa, (s0, s1), sb, (t0, t1))
    for out in outputs.values():
        # A run may lose the promotion race (compare-and-set), never crash on the pool.
        assert "success=True" in out or "production" in out, out
