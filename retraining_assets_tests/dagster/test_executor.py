"""A run whose worker died frees its pool slot at the next run's start, with no daemon running."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import pytest

from retraining_assets.defs.executor import (
    local_in_process_executor,
    release_dead_local_runs,
    worker_message,
)

POOL = "retraining"
INSTANCE_YAML = "telemetry:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: 1\n"


@dg.op(pool=POOL)
def _pooled() -> int:
    return 1


@dg.job(executor_def=local_in_process_executor)
def _pooled_job() -> None:
    _pooled()


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def instance(tmp_path: Path):
    (tmp_path / "dagster.yaml").write_text(INSTANCE_YAML)
    with dg.DagsterInstance.from_config(str(tmp_path)) as inst:
        yield inst


def _holding_run(instance: dg.DagsterInstance, host: str, pid: int) -> dg.DagsterRun:
    """A STARTED run of the pooled job that recorded a worker and holds the pool's one slot."""
    run = instance.create_run_for_job(_pooled_job)
    instance.report_dagster_event(
        dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.RUN_START.value,
            job_name=run.job_name,
            message="started",
        ),
        run.run_id,
    )
    instance.report_engine_event(worker_message(host, pid), run)
    instance.event_log_storage.initialize_concurrency_limit_to_default(POOL)
    claim = instance.event_log_storage.claim_concurrency_slot(POOL, run.run_id, "_pooled")
    assert claim.is_claimed
    return run


def _slot_holders(instance: dg.DagsterInstance) -> set[str]:
    return {s.run_id for s in instance.event_log_storage.get_concurrency_info(POOL).claimed_slots}


def test_dead_local_worker_is_failed_and_its_slot_freed(instance) -> None:
    run = _holding_run(instance, socket.gethostname(), _dead_pid())
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
    released = release_dead_local_runs(instance)
    assert len(released) == 1 and run.run_id in released[0] and "gone" in released[0]
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert _slot_holders(instance) == set()


@pytest.mark.parametrize("whose", ["alive", "other host"])
def test_live_or_remote_worker_keeps_its_slot(instance, whose: str) -> None:
    host, pid = (
        (socket.gethostname(), os.getpid()) if whose == "alive" else ("elsewhere", _dead_pid())
    )
    run = _holding_run(instance, host, pid)
    assert release_dead_local_runs(instance) == []
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
    assert _slot_holders(instance) == {run.run_id}


def test_next_run_of_the_job_goes_through_a_dead_runs_slot(instance) -> None:
    """The executor itself releases the slot: the next run does not wait forever."""
    dead = _holding_run(instance, socket.gethostname(), _dead_pid())
    outcome: dict[str, bool] = {}

    def execute() -> None:
        result = dg.execute_job(dg.reconstructable(_pooled_job), instance=instance)
        outcome["success"] = result.success

    thread = threading.Thread(target=execute, daemon=True)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the next run still waits for the dead run's pool slot"
    assert outcome == {"success": True}
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    warnings = [
        e.message
        for r in instance.get_runs()
        if r.run_id != dead.run_id
        for e in instance.all_logs(r.run_id)
        if dead.run_id in (e.message or "")
    ]
    assert warnings, "the releasing run says which run it released"
