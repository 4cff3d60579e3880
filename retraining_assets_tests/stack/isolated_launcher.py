"""A run launcher that gives every run worker its own empty folder, as a pod or container would.

Dagster's ``K8sRunLauncher`` and ``DockerRunLauncher`` start each run as ``dagster api
execute_run`` in a fresh pod or container: nothing on the launching host's disk is visible to it.
The default launcher instead starts run workers beside the code server, in its working directory,
with its environment, which would hide any state that silently travels through a local folder.
This launcher starts the same command as a local process, but in a new empty working directory with
its own ``RETRAINING_HOME`` and ``HOME``, so a stray local path fails a test instead of working.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.launcher.base import (
    CheckRunHealthResult,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
)
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClass, ConfigurableClassData

PID_TAG = "isolated/pid"
DIR_TAG = "isolated/dir"


class IsolatedProcessRunLauncher(RunLauncher, ConfigurableClass):
    """Start each run as ``dagster api execute_run`` in its own empty folder and home."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._inst_data = inst_data
        self.base_dir = Path(base_dir)
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        """Config the instance built this launcher from."""
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        """``base_dir``: where each run's private folder is made."""
        return {"base_dir": dg.Field(dg.StringSource)}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: dict[str, Any]
    ) -> IsolatedProcessRunLauncher:
        """Build from ``dagster.yaml``."""
        return cls(inst_data=inst_data, **config_value)

    def launch_run(self, context: LaunchRunContext) -> None:
        """Start the run worker in ``<base_dir>/<run id>-<random>/{cwd,home}``."""
        run = context.dagster_run
        origin = context.job_code_origin
        assert origin is not None
        private = self.base_dir / f"{run.run_id}-{uuid.uuid4().hex[:6]}"
        cwd, home = private / "cwd", private / "home"
        cwd.mkdir(parents=True)
        home.mkdir()
        args = ExecuteRunArgs(
            job_origin=origin,
            run_id=run.run_id,
            instance_ref=self._instance.get_ref(),
            set_exit_code_on_failure=True,
        )
        env = {
            **os.environ,
            "RETRAINING_HOME": str(home / "retraining"),
            "HOME": str(home),
            "PWD": str(cwd),
        }
        command = [sys.executable, "-m", "dagster", *args.get_command_args()[1:]]
        log = (private / "worker.log").open("wb")
        child = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        self._children[run.run_id] = child
        self._instance.add_run_tags(run.run_id, {PID_TAG: str(child.pid), DIR_TAG: str(private)})

    def _child(self, run_id: str) -> subprocess.Popen[bytes] | None:
        return self._children.get(run_id)

    def terminate(self, run_id: str) -> bool:
        """Stop the run's worker process."""
        child = self._child(run_id)
        if child is None or child.poll() is not None:
            return False
        child.terminate()
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        """Run monitoring can ask whether a worker is still alive."""
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        """Alive, exited cleanly, or gone (killed, crashed, or started by another daemon)."""
        child = self._child(run.run_id)
        if child is not None:
            code = child.poll()
            if code is None:
                return CheckRunHealthResult(WorkerStatus.RUNNING)
            if code == 0:
                return CheckRunHealthResult(WorkerStatus.SUCCESS)
            return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker exited with {code}")
        pid = run.tags.get(PID_TAG)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "no worker pid recorded")
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker {pid} is gone")
        return CheckRunHealthResult(WorkerStatus.RUNNING)
