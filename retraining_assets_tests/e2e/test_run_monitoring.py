"""A killed run never blocks automation: run monitoring fails it and the next retraining runs.

A real ``dagster-daemon`` (run queue with the one-retraining-at-a-time limit, run monitoring) on
the project's instance settings, with a test-only poll interval. Two crashes:

1. the run worker is SIGKILLed mid-retraining;
2. the daemon, its code server and the run worker are SIGKILLed mid-run (a crashed host or
   container), then the daemon is started again.

Each time the dead run must be marked FAILED and the retraining queued behind it must start and
succeed. The measured delays are printed (``pytest -s``), not asserted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
import yaml

from retraining_assets.defs.launcher import process_alive, worker_pid
from retraining_assets.settings import project_root
from retraining_assets_tests.dagster.helpers import ingest, write_batches

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WAIT_S = 420.0
RUN_CONFIG = {
    "ops": {
        "training_dataset": {"config": {"window_batches": 3}},
        "evaluation_report": {"config": {"latency_calls": 50}},
    }
}


def _write_instance_yaml(home: Path) -> None:
    """The project's dagster.yaml, with monitoring and the queue polled every second.

    The start timeout stays the project's (120 s): no run here is killed before it starts, and a
    run worker's cold start on a loaded machine (``make test`` runs two test workers) must not
    count as a dead run.
    """
    config = yaml.safe_load((project_root() / "var" / "dagster" / "dagster.yaml").read_text())
    config["run_monitoring"].update(poll_interval_seconds=1)
    config["run_coordinator"].setdefault("config", {})["dequeue_interval_seconds"] = 1
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


class Daemon:
    """``dagster-daemon run`` on the project's definitions, in its own process group."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        handle = self.log.open("a")
        self.proc = subprocess.Popen(
            [_bin("dagster-daemon"), "run", "-m", "retraining_assets.definitions"],
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()

    def crash(self) -> None:
        """SIGKILL the daemon and every process below it (code server, run workers)."""
        import psutil

        assert self.proc is not None
        tree = psutil.Process(self.proc.pid).children(recursive=True)
        for proc in [psutil.Process(self.proc.pid), *tree]:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        self.proc.wait(timeout=30)
        psutil.wait_procs(tree, timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def _launch(env: dict[str, str], n: int) -> None:
    """Queue one retraining run the way a user or script would (``dagster job launch``)."""
    subprocess.run(
        [
            _bin("dagster"),
            "job",
            "launch",
            "-j",
            "retraining_job",
            "-m",
            "retraining_assets.definitions",
            "--config-json",
            json.dumps(RUN_CONFIG),
            "--tags",
            json.dumps({"test/n": str(n)}),
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=180,
    )


def _run(instance: dg.DagsterInstance, n: int) -> dg.DagsterRun | None:
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"test/n": str(n)}))
    return runs[0] if runs else None


def _wait(what: str, predicate: Callable[[], bool], log: Path) -> float:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {WAIT_S:.0f}s; see {log}"
        time.sleep(0.25)
    return time.monotonic()


def _mid_chain(instance: dg.DagsterInstance, n: int) -> bool:
    run = _run(instance, n)
    if run is None or run.status != dg.DagsterRunStatus.STARTED:
        return False
    done = instance.fetch_materializations(dg.AssetKey("training_dataset"), limit=5).records
    return any(r.run_id == run.run_id for r in done)


def _status(instance: dg.DagsterInstance, n: int) -> dg.DagsterRunStatus | None:
    run = _run(instance, n)
    return run.status if run else None


def _recovers(instance, killed: int, queued: int, killed_at: float, log: Path) -> dict[str, float]:
    """Wait for the killed run to be FAILED and the queued one to start and succeed."""
    failed = _wait(
        f"run {killed} marked failed",
        lambda: _status(instance, killed) == dg.DagsterRunStatus.FAILURE,
        log,
    )
    started = _wait(
        f"run {queued} started",
        lambda: (
            _status(instance, queued)
            in (
                dg.DagsterRunStatus.STARTED,
                dg.DagsterRunStatus.SUCCESS,
                dg.DagsterRunStatus.FAILURE,
            )
        ),
        log,
    )
    finished = _wait(
        f"run {queued} finished",
        lambda: (
            _status(instance, queued) in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)
        ),
        log,
    )
    assert _status(instance, queued) == dg.DagsterRunStatus.SUCCESS, log
    return {
        "kill->failed_s": round(failed - killed_at, 1),
        "kill->next_started_s": round(started - killed_at, 1),
        "kill->next_succeeded_s": round(finished - killed_at, 1),
    }


def test_killed_worker_or_daemon_never_blocks_the_next_retraining(
    project, tmp_path, monkeypatch
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    _write_instance_yaml(home)
    config = project.home / "retraining.yaml"
    config.write_text("dataset: synthetic\n")
    monkeypatch.setenv("RETRAINING_CONFIG", str(config))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "daemon.log"

    batch_ids = write_batches(project, n_batches=5, rows=600, seed=41)
    daemon = Daemon(env, log)
    with dg.DagsterInstance.get() as instance:
        assert all(ingest(instance, batch_ids).values())
        try:
            # 1. Worker killed mid-retraining, run 2 queued behind it (both queued before the
            # daemon starts: launching through the CLI takes longer than a run here).
            _launch(env, 1)
            _launch(env, 2)
            daemon.start()
            _wait("run 1 mid-retraining", lambda: _mid_chain(instance, 1), log)
            assert _status(instance, 2) == dg.DagsterRunStatus.QUEUED
            pid = worker_pid(instance, _run(instance, 1).run_id)  # type: ignore[union-attr]
            assert pid is not None and process_alive(pid)
            os.kill(pid, signal.SIGKILL)
            worker = _recovers(instance, 1, 2, time.monotonic(), log)
            daemon.stop()

            # 2. Daemon, code server and worker killed mid-run; the daemon is started again.
            _launch(env, 3)
            _launch(env, 4)
            daemon.start()
            _wait("run 3 mid-retraining", lambda: _mid_chain(instance, 3), log)
            assert _status(instance, 4) == dg.DagsterRunStatus.QUEUED
            pid = worker_pid(instance, _run(instance, 3).run_id)  # type: ignore[union-attr]
            assert pid is not None
            daemon.crash()
            killed_at = time.monotonic()
            assert not process_alive(pid)
            assert _status(instance, 3) == dg.DagsterRunStatus.STARTED  # nobody left to say
            daemon.start()
            crash = _recovers(instance, 3, 4, killed_at, log)
        finally:
            daemon.stop()
        failures = {
            n: instance.get_run_by_id(_run(instance, n).run_id).status  # type: ignore[union-attr]
            for n in (1, 3)
        }
    assert failures == {1: dg.DagsterRunStatus.FAILURE, 3: dg.DagsterRunStatus.FAILURE}
    print(f"\nworker SIGKILL: {worker}\ndaemon+worker SIGKILL, daemon restarted: {crash}")
