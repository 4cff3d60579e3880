"""The whole loop on the service stack, with no folder shared between processes.

The code server, the daemon, the webserver and every run worker run as separate processes, each in
its own empty working directory with its own ``RETRAINING_HOME``, ``HOME`` and ``DAGSTER_HOME``
(run workers through :class:`IsolatedProcessRunLauncher`), as pods would. What they share is what a
deployment shares: Postgres (Dagster instance, MLflow store) and an S3 bucket (batches, state, DVC
remote, MLflow artifacts). A stray local path therefore fails here instead of silently working.

A user drops a drifted batch into the bucket; with no human action the new-batch sensor starts
monitoring, the drift sensor starts a retraining, and the gate promotes; then `retraining rollback`
and `retraining show-lineage`, run from yet another empty folder, see the same production history.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from retraining_assets.core import synthetic
from retraining_assets.settings import project_root
from retraining_assets_tests.conftest import free_port

pytestmark = [pytest.mark.stack, pytest.mark.e2e, pytest.mark.slow]

TIMEOUT_S = 600
BIN = Path(sys.executable).parent
REQUIRED_ENV = ("DAGSTER_PG_HOST", "AWS_ENDPOINT_URL", "RETRAINING_MLFLOW_TRACKING_URI")


class Stack:
    """Names of this test's own databases and bucket prefix on the shared stack."""

    def __init__(self, tmp: Path) -> None:
        for name in REQUIRED_ENV:
            if not os.environ.get(name):
                pytest.skip(f"{name} is not set: run under `make test-stack`")
        self.tmp = tmp
        self.tag = uuid.uuid4().hex[:8]
        self.bucket = os.environ.get("RETRAINING_S3_BUCKET", "retraining")
        self.prefix = f"e2e-{self.tag}"
        self.dagster_db = f"dagster_{self.tag}"
        self.mlflow_db = f"mlflow_{self.tag}"
        self.config_text = "dataset: synthetic\ntriggers:\n  cooldown_hours: 0\n"

    def create_databases(self) -> None:
        import psycopg2

        conn = psycopg2.connect(
            host=os.environ["DAGSTER_PG_HOST"],
            port=os.environ.get("DAGSTER_PG_PORT", "5432"),
            user=os.environ["DAGSTER_PG_USER"],
            password=os.environ["DAGSTER_PG_PASSWORD"],
            dbname=os.environ.get("DAGSTER_PG_DB", "dagster"),
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {self.dagster_db}")
            cur.execute(f"CREATE DATABASE {self.mlflow_db}")
        conn.close()

    def env(self, name: str) -> tuple[dict[str, str], Path]:
        """Environment and empty working directory of one process (``name``)."""
        private = self.tmp / name
        cwd, home = private / "cwd", private / "home"
        cwd.mkdir(parents=True)
        (home / "dagster").mkdir(parents=True)
        (home / "retraining").mkdir()
        config = home / "retraining.yaml"
        config.write_text(self.config_text)
        instance_yaml = yaml.safe_load(
            (project_root() / "deploy" / "stack" / "dagster.yaml").read_text()
        )
        instance_yaml["run_launcher"] = {
            "module": "retraining_assets_tests.stack.isolated_launcher",
            "class": "IsolatedProcessRunLauncher",
            "config": {"base_dir": str(self.tmp / "run-workers")},
        }
        (home / "dagster" / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml))
        pg_uri = (
            os.environ["RETRAINING_MLFLOW_TRACKING_URI"].rsplit("/", 1)[0] + f"/{self.mlflow_db}"
        )
        s3 = f"s3://{self.bucket}/{self.prefix}"
        env = {
            **os.environ,
            "PYTHONPATH": str(project_root()),
            "PYTHONUNBUFFERED": "1",
            "HOME": str(home),
            "PWD": str(cwd),
            "DAGSTER_HOME": str(home / "dagster"),
            "DAGSTER_PG_DB": self.dagster_db,
            "RETRAINING_HOME": str(home / "retraining"),
            "RETRAINING_CONFIG": str(config),
            "RETRAINING_STATE_URL": f"{s3}/state",
            "RETRAINING_BATCHES_DIR": f"{s3}/batches",
            "RETRAINING_DVC_REMOTE": f"{s3}/dvc",
            "RETRAINING_MLFLOW_ARTIFACTS": f"{s3}/mlflow",
            "MLFLOW_TRACKING_URI": pg_uri,
            "RETRAINING_MLFLOW_TRACKING_URI": pg_uri,
        }
        return env, cwd


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    stack = Stack(tmp_path)
    stack.create_databases()
    (tmp_path / "run-workers").mkdir()
    return stack


@pytest.fixture
def services(stack: Stack) -> Iterator[dict[str, object]]:
    """Code server, daemon and webserver, each in its own empty folder."""
    procs: list[subprocess.Popen[bytes]] = []
    grpc_port, web_port = free_port(), free_port()

    def start(name: str, command: list[str]) -> tuple[dict[str, str], Path]:
        env, cwd = stack.env(name)
        workspace = {
            "load_from": [
                {
                    "grpc_server": {
                        "host": "127.0.0.1",
                        "port": grpc_port,
                        "location_name": "retraining_assets",
                    }
                }
            ]
        }
        (cwd / "workspace.yaml").write_text(yaml.safe_dump(workspace))
        log = (stack.tmp / f"{name}.log").open("wb")
        procs.append(
            subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        return env, cwd

    start(
        "code-server",
        [
            str(BIN / "dagster"),
            "code-server",
            "start",
            "-m",
            "retraining_assets.definitions",
            "-h",
            "127.0.0.1",
            "-p",
            str(grpc_port),
        ],
    )
    _wait_port(grpc_port, stack.tmp / "code-server.log")
    daemon_env, daemon_cwd = start(
        "daemon", [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"]
    )
    start(
        "webserver",
        [
            str(BIN / "dagster-webserver"),
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(web_port),
        ],
    )
    _wait_port(web_port, stack.tmp / "webserver.log")
    try:
        yield {"web_port": web_port, "daemon_env": daemon_env, "daemon_cwd": daemon_cwd}
    finally:
        for proc in procs:
            with _suppress():
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


def _wait_port(port: int, log: Path, timeout: float = 120) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"nothing listens on {port} after {timeout}s; see {log}")


def _cli(stack: Stack, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env, cwd = stack.env(name)
    return subprocess.run(
        [str(BIN / "retraining"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _put_batch(stack: Stack, batch_id: str, frame) -> None:
    from retraining_assets.storage import open_store

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    store = open_store(f"s3://{stack.bucket}/{stack.prefix}/batches")
    store.put(f"{batch_id}.parquet", buffer.getvalue())


def _wait_runs(instance: dg.DagsterInstance, job: str, count: int, tags=None) -> list:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=job, tags=tags or {}))
        finished = [r for r in runs if r.is_finished]
        if len(finished) >= count:
            return finished
        time.sleep(3)
    raise AssertionError(f"fewer than {count} finished {job} runs after {TIMEOUT_S}s")


def test_drift_to_promotion_with_no_shared_folder(stack: Stack, services: dict) -> None:
    from dagster_graphql import DagsterGraphQLClient

    started = time.monotonic()
    client = DagsterGraphQLClient("127.0.0.1", port_number=int(services["web_port"]))  # type: ignore[arg-type]
    history = synthetic.make_history(5, 600, seed=31)
    for batch_id, frame in sorted(history.items()):
        _put_batch(stack, batch_id, frame)

    env = services["daemon_env"]
    cwd = services["daemon_cwd"]

    def dagster(*args: str) -> None:
        subprocess.run(
            [str(BIN / "dagster"), *args, "-w", "workspace.yaml"],
            cwd=cwd,
            env=env,  # type: ignore[arg-type]
            check=True,
            capture_output=True,
            timeout=120,
        )

    instance_home = Path(env["DAGSTER_HOME"])  # type: ignore[index]
    saved = {k: os.environ.get(k) for k in ("DAGSTER_HOME", "DAGSTER_PG_DB")}
    os.environ["DAGSTER_HOME"] = str(instance_home)
    os.environ["DAGSTER_PG_DB"] = stack.dagster_db
    try:
        with dg.DagsterInstance.get() as instance:
            dagster("sensor", "start", "new_batch_sensor")
            monitoring = _wait_runs(instance, "monitoring_job", len(history))
            assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in monitoring)

            client.submit_job_execution(
                "retraining_job",
                run_config={"ops": {"training_dataset": {"config": {"window_batches": 4}}}},
            )
            seed_run = _wait_runs(instance, "retraining_job", 1)[0]
            assert seed_run.status == dg.DagsterRunStatus.SUCCESS, seed_run.run_id
            lineage = _cli(stack, "cli-lineage-1", "show-lineage")
            assert lineage.returncode == 0, lineage.stderr
            assert "v1" in lineage.stdout

            dagster("sensor", "start", "data_drift_sensor")
            batch_id = "2024-02-05"
            frame = synthetic.make_batch(
                600,
                synthetic.pd.Timestamp(batch_id),
                seed=32,
                drift=synthetic.DriftSpec(covariate_shift=2.0),
                first_row_id=1_000_000,
            )
            _put_batch(stack, batch_id, frame)
            drift_runs = _wait_runs(
                instance, "retraining_job", 1, tags={"retraining/trigger": "data_drift"}
            )
            run = drift_runs[0]
            assert run.status == dg.DagsterRunStatus.SUCCESS, run.run_id
            assert run.tags["retraining/cause_batch"] == batch_id
            workers = sorted((stack.tmp / "run-workers").iterdir())
            # Seed monitoring, seed retraining, the new batch's monitoring, the drift retraining.
            assert len(workers) >= len(history) + 3
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    rollback = _cli(stack, "cli-rollback", "rollback", "--reason", "e2e")
    assert rollback.returncode == 0, rollback.stderr
    lineage = _cli(stack, "cli-lineage-2", "show-lineage")
    assert lineage.returncode == 0, lineage.stderr
    assert "rollback" in lineage.stdout
    print(f"isolated stack e2e: {time.monotonic() - started:.0f}s")
    shutil.rmtree(stack.tmp / "run-workers", ignore_errors=True)
