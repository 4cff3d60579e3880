"""Run monitoring settings and the launcher's worker health check, on real runs and processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.launcher import WorkerStatus

from retraining_assets.defs.launcher import LocalRunLauncher, process_alive, worker_pid
from retraining_assets.settings import project_root


def _instance_config() -> dict:
    return yaml.safe_load((project_root() / "var" / "dagster" / "dagster.yaml").read_text())


def test_instance_monitors_runs_with_the_pid_health_check(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))  # the storage's base_dir: {env: DAGSTER_HOME}
    config = _instance_config()
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    # DefaultRunLauncher-style workers cannot be resumed: a dead run is failed instead.
    assert monitoring["max_resume_run_attempts"] == 0
    assert monitoring["poll_interval_seconds"] <= 15
    assert 0 < monitoring["start_timeout_seconds"] <= 300
    assert monitoring["max_runtime_seconds"] > 0
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_launcher, LocalRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health
        assert instance.run_monitoring_enabled


def test_new_dagster_home_gets_the_project_settings(tmp_path, monkeypatch) -> None:
    from retraining_assets.cli import _dagster_home

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    home = _dagster_home()
    assert yaml.safe_load((home / "dagster.yaml").read_text()) == _instance_config()


@dg.op
def _noop() -> None:
    pass


@dg.job
def _tiny() -> None:
    _noop()


CHILD = textwrap.dedent(
    """
    import sys
    import dagster as dg

    @dg.op
    def noop() -> None:
        pass

    @dg.job
    def tiny() -> None:
        noop()

    with dg.DagsterInstance.from_config(sys.argv[1]) as instance:
        tiny.execute_in_process(instance=instance, tags={"child": "yes"})
    """
)


def test_health_follows_the_recorded_worker_process(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))  # here and in the child process
    config = _instance_config()
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, LocalRunLauncher)

        # A run executed in this (living) process.
        here = _tiny.execute_in_process(instance=instance)
        run = instance.get_run_by_id(here.run_id)
        assert run is not None
        assert worker_pid(instance, here.run_id) == os.getpid()
        assert launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING

        # A run executed in a process that is gone now.
        subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], check=True, timeout=120)
        (child,) = instance.get_runs(filters=dg.RunsFilter(tags={"child": "yes"}))
        pid = worker_pid(instance, child.run_id)
        assert pid is not None and pid != os.getpid()
        assert not process_alive(pid)
        health = launcher.check_run_worker_health(child)
        assert health.status == WorkerStatus.FAILED
        assert str(pid) in (health.msg or "")


def test_process_alive_sees_a_killed_process_and_its_zombie() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert process_alive(proc.pid)
        proc.kill()
        # Not reaped yet: a zombie, which is dead for our purpose.
        import time

        deadline = time.monotonic() + 30
        while process_alive(proc.pid):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    assert not process_alive(proc.pid)
