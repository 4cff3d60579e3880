"""End to end with a real daemon: a drifted batch file leads, with no human action, to monitoring,
a drift verdict, a retraining run and the gate's decision."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from retraining_assets.core import synthetic
from retraining_assets.settings import project_root
from retraining_assets_tests.dagster.helpers import (
    ingest,
    latest_metadata,
    production_versions,
    run_chain,
    write_batches,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TIMEOUT_S = 480


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _dagster(*args: str, env: dict[str, str]) -> None:
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        [str(bin_dir / "dagster"), *args, "-m", "retraining_assets.definitions"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_drifted_batch_file_triggers_retraining_by_itself(project, tmp_path, monkeypatch) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(project_root() / "var" / "dagster" / "dagster.yaml", home / "dagster.yaml")
    config = project.home / "retraining.yaml"
    # The production model below was trained a moment ago: no cooldown in this test.
    config.write_text("dataset: synthetic\ntriggers:\n  cooldown_hours: 0\n")
    monkeypatch.setenv("RETRAINING_CONFIG", str(config))
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    # A production model trained on stable history, in the same instance the daemon will use.
    batch_ids = write_batches(project, n_batches=5, rows=600, seed=31)
    with dg.DagsterInstance.get() as instance:
        assert all(ingest(instance, batch_ids).values())
        assert run_chain(instance, window=4).success
    before = production_versions()

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "dagster_dev.log").open("w")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster"),
            "dev",
            "-m",
            "retraining_assets.definitions",
            "-h",
            "127.0.0.1",
            "-p",
            str(_free_port()),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _dagster("sensor", "start", "new_batch_sensor", env=env)
        _dagster("sensor", "start", "data_drift_sensor", env=env)

        # A user drops a drifted batch into the incoming folder. Nothing else is done by hand.
        batch_id = "2024-02-05"
        frame = synthetic.make_batch(
            600,
            synthetic.pd.Timestamp(batch_id),
            seed=32,
            drift=synthetic.DriftSpec(covariate_shift=2.0),
            first_row_id=1_000_000,  # ids stay unique across the training window
        )
        frame.to_parquet(project.batches / f"{batch_id}.parquet", index=False)

        deadline = time.monotonic() + TIMEOUT_S
        run = None
        with dg.DagsterInstance.get() as instance:
            while time.monotonic() < deadline:
                runs = instance.get_runs(
                    filters=dg.RunsFilter(
                        job_name="retraining_job", tags={"retraining/trigger": "data_drift"}
                    )
                )
                if runs and runs[0].is_finished:
                    run = runs[0]
                    break
                time.sleep(0.5)  # a cheap query; a 3 s poll added 1.5 s on average
            assert run is not None, (
                f"no drift-triggered retraining within {TIMEOUT_S}s; see {log.name}"
            )
            assert run.status == dg.DagsterRunStatus.SUCCESS
            assert run.tags["retraining/cause_batch"] == batch_id
            assert "x0" in run.tags["retraining/drifted_features"]
            drift = latest_metadata(instance, "batch_drift", batch_id)
            assert drift["drift/verdict"] == "drift"
            monitoring = instance.get_runs(filters=dg.RunsFilter(job_name="monitoring_job"))
            assert [r.status for r in monitoring] == [dg.DagsterRunStatus.SUCCESS]
            report = latest_metadata(instance, "evaluation_report")
            assert report["verdict"] in ("promote", "reject")
            assert report["mlflow/run_id"]
        if report["verdict"] == "promote":
            assert production_versions() != before
        else:
            assert production_versions() == before
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
