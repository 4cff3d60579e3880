"""The project's executor: Dagster's in-process executor that first frees slots held by dead runs.

Every step of the retraining chain is in the pool ``retraining`` (one step at a time in the whole
instance). A run whose worker was killed (``kill -9``, OOM, a reboot) keeps its pool slot until
something marks it failed and frees the slot. With the daemon running, run monitoring does that
(``run_monitoring`` in ``dagster.yaml``). Without it (``dagster job execute``, ``retraining demo``,
a user's cron), nothing did: the next retraining waited for the slot forever, silently.

:func:`release_dead_local_runs` closes that gap, and :data:`local_in_process_executor` runs it at
the start of every run, before any step claims a slot. It only ever touches runs that hold or wait
for a pool slot and whose worker is provably gone: the worker recorded its host and pid when it
started (an engine event, :func:`worker_message`), the host is this one, and no process with that
pid exists any more. Runs on other hosts are left to run monitoring, which has the platform's
view of them.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Iterator

import dagster as dg
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode
from dagster._core.execution.step_dependency_config import StepDependencyConfig
from dagster._core.executor.base import Executor
from dagster._core.storage.dagster_run import FINISHED_STATUSES, RunsFilter

from retraining_assets.defs.launcher import process_alive

_WORKER = re.compile(r"^Run worker on host (\S+), pid (\d+)$")


def worker_message(host: str, pid: int) -> str:
    """The engine-event message that records a run worker's host and pid."""
    return f"Run worker on host {host}, pid {pid}"


def recorded_worker(instance: dg.DagsterInstance, run_id: str) -> tuple[str, int] | None:
    """The (host, pid) the run's worker recorded, or ``None`` if it recorded none."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        match = _WORKER.match(entry.message or "")
        if match:
            return match.group(1), int(match.group(2))
    return None


def release_dead_local_runs(
    instance: dg.DagsterInstance, *, exclude: str | None = None, grace_seconds: float = 10.0
) -> list[str]:
    """Fail runs whose local worker is gone and free the pool slots they hold; their messages.

    Considered are only the runs that hold or wait for a pool slot (Dagster's own list), except
    ``exclude`` (the calling run). A run still in progress is failed and its slots freed when its
    recorded worker ran on this host and that process no longer exists. A run already finished
    (failed by run monitoring, say, while no daemon was left to free its slots) has its slots
    freed ``grace_seconds`` after it ended, as the daemon would.

    Args:
        instance: The Dagster instance.
        exclude: A run id never to touch (the caller's own run).
        grace_seconds: How long after a finished run's end its slots are left alone.

    Returns:
        One human-readable line per run whose slots were freed.
    """
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    run_ids = storage.get_concurrency_run_ids() - {exclude}
    if not run_ids:
        return []
    host = socket.gethostname()
    released = []
    for record in instance.get_run_records(RunsFilter(run_ids=sorted(run_ids))):
        run = record.dagster_run
        if run.status in FINISHED_STATUSES:
            if record.end_time is not None and record.end_time + grace_seconds < time.time():
                storage.free_concurrency_slots_for_run(run.run_id)
                released.append(f"run {run.run_id} ({run.status.value}) held a pool slot: freed")
            continue
        worker = recorded_worker(instance, run.run_id)
        if worker is None or worker[0] != host or process_alive(worker[1]):
            continue
        message = (
            f"run worker (host {worker[0]}, pid {worker[1]}) is gone: killed or crashed; "
            "marked failed and its pool slots freed by a later run"
        )
        instance.report_run_failed(run, message)
        storage.free_concurrency_slots_for_run(run.run_id)
        released.append(f"run {run.run_id} ({run.status.value}): {message}")
    return released


class _ReleasingExecutor(Executor):
    """Wraps the in-process executor: record the worker, release dead runs, then execute."""

    def __init__(self, inner: Executor) -> None:
        self._inner = inner

    @property
    def retries(self) -> RetryMode:
        """The wrapped executor's retry mode."""
        return self._inner.retries

    @property
    def step_dependency_config(self) -> StepDependencyConfig:
        """The wrapped executor's step dependency settings."""
        return self._inner.step_dependency_config

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        """Record this worker, free the slots of dead runs, then run the plan in this process."""
        yield DagsterEvent.engine_event(
            plan_context,
            worker_message(socket.gethostname(), os.getpid()),
            event_specific_data=EngineEventData.in_process(os.getpid()),
        )
        grace = plan_context.instance.run_monitoring_settings.get(
            "free_slots_after_run_end_seconds"
        )
        for line in release_dead_local_runs(
            plan_context.instance,
            exclude=plan_context.dagster_run.run_id,
            grace_seconds=float(grace or 10),
        ):
            plan_context.log.warning(line)
        yield from self._inner.execute(plan_context, execution_plan)


def _create(init_context: dg.InitExecutorContext) -> Executor:
    """Dagster's in-process executor, wrapped."""
    inner = dg.in_process_executor.executor_creation_fn(init_context)  # type: ignore[misc]
    return _ReleasingExecutor(inner)


local_in_process_executor = dg.ExecutorDefinition(
    name="in_process",
    config_schema=dg.in_process_executor.config_schema.as_field(),
    executor_creation_fn=_create,
    description=(
        "Dagster's in-process executor; first frees the pool slots of runs whose local worker "
        "is gone, so a killed run never blocks later retrainings when no daemon runs."
    ),
)
