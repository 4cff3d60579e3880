"""A run launcher that lets Dagster's run monitoring see a dead run worker on this machine.

Dagster's ``DefaultRunLauncher`` starts each run worker as a local process but cannot tell run
monitoring whether that process still lives, and cannot resume a run. A worker killed together
with its code server (OOM, a crashed or restarted daemon, ``kill -9`` of a process group) or a
run executed directly (``dagster job execute``, ``execute_in_process``) and killed therefore
stayed STARTED for good, holding the one-retraining-at-a-time slot so every later retraining
queued forever.

:class:`LocalRunLauncher` launches exactly like the default one and adds the health check: the
worker's pid is the one Dagster itself records in the run's event log when the worker starts
("Started process for run (pid: N)", or "Executing steps in process (pid: N)" for a run executed
in the calling process); if no process with that pid exists any more (or only its zombie), the
worker is reported FAILED and run monitoring marks the run failed (``max_resume_run_attempts: 0``
in ``dagster.yaml``: nothing to resume with this launcher).

It assumes the run workers share the machine with the daemon, which is what the embedded default
is (``var/dagster/dagster.yaml``). Deployments with workers elsewhere use their platform's
launcher (K8s, Docker), which has its own health check.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

_WORKER_PID = re.compile(r"^(Started process for run|Executing steps in process) \(pid: (\d+)\)")


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid Dagster recorded for the run's worker process, or ``None`` before it started.

    Args:
        instance: The instance holding the run's event log.
        run_id: The run.
    """
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        match = _WORKER_PID.match(entry.message or "")
        if match:
            return int(match.group(2))
    return None


def process_alive(pid: int) -> bool:
    """Whether a (non-zombie) process with ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    stat = Path(f"/proc/{pid}/stat")
    try:
        # Field 3 after the parenthesised command name is the state; Z is a zombie (dead,
        # waiting for its parent to read the exit code).
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no procfs (not Linux): trust os.kill
    return state not in ("Z", "X")


class LocalRunLauncher(dg.DefaultRunLauncher):
    """``DefaultRunLauncher`` plus a worker health check by pid, for run monitoring."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        """Run monitoring may ask this launcher whether a run's worker lives."""
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        """RUNNING while the worker's process exists, FAILED once it is gone."""
        pid = worker_pid(self._instance, run.run_id)
        if pid is None:
            # Run monitoring fails a run on anything but RUNNING: a worker that has not logged
            # its pid yet is starting, not dead (max_runtime_seconds still bounds it).
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no worker pid recorded yet")
        if process_alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"worker pid {pid} is alive")
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"run worker (pid {pid}) is gone: killed or crashed"
        )
