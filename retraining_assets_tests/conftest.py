"""Shared fixtures: an isolated project state (Dagster, MLflow store, DVC repo, batches)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Keep LightGBM/OpenMP and BLAS from spinning threads on both cores in tests.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

#: Every environment variable through which a user configures the project. The tests never see
#: the user's values (a ``RETRAINING_CONFIG`` with another cron or PSI threshold made tests fail):
#: :func:`_isolate_from_user_settings` removes them for every test, and a test that needs one
#: sets it with ``monkeypatch``. ``unit/test_settings.py`` fails if the package reads one that is
#: missing here.
USER_SETTINGS_ENV = (
    "RETRAINING_ALERT_WEBHOOK",
    "RETRAINING_BATCHES_DIR",
    "RETRAINING_CONFIG",
    "RETRAINING_DAGSTER_UI_URL",
    "RETRAINING_DASK_SCHEDULER",
    "RETRAINING_DVC_REMOTE",
    "RETRAINING_HOME",
    "RETRAINING_MLFLOW_ARTIFACTS",
    "RETRAINING_MLFLOW_TRACKING_URI",
    "RETRAINING_MLFLOW_UI_URL",
    "RETRAINING_SCHEMA",
    "RETRAINING_STATE_URL",
)
#: The configuration file the tests see unless they set their own: empty, so every setting has
#: its default (unset, ``RETRAINING_CONFIG`` would fall back to a ``retraining.yaml`` the user may
#: keep in the checkout).
EMPTY_CONFIG = os.devnull
# The code location reads the configuration file and the schema file when it loads (the
# schedule's cron and cadence), and test modules import it while they are collected, before any
# fixture runs. The other variables are read only when a test runs, and the stack tests take
# them from the shell (stack/conftest.py), so they are left for the fixture below.
os.environ["RETRAINING_CONFIG"] = EMPTY_CONFIG
os.environ.pop("RETRAINING_SCHEMA", None)


@pytest.fixture(autouse=True)
def _isolate_from_user_settings(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run every test with the project's defaults, whatever the user's shell sets.

    Tests marked ``stack`` are the exception: they run against the services whose addresses
    ``make test-stack`` puts in the environment.
    """
    if request.node.get_closest_marker("stack") is not None:
        return
    for name in USER_SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RETRAINING_CONFIG", EMPTY_CONFIG)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible HTTP endpoint (moto's standalone server) on loopback.

    Sets no credentials: use :func:`s3_env` for a test that talks to it.
    """
    from moto.s3.responses import S3Response
    from moto.server import ThreadedMotoServer

    # S3 decides a conditional PutObject (``If-None-Match: *``) atomically; moto's threaded
    # server checks that the key is absent, then writes, with no lock between the two, so two
    # racing creates could both succeed (seen once in CI, in the six-promoter race of
    # test_registry). One PutObject at a time makes the fake keep the real service's promise.
    put_object, one_at_a_time = S3Response.put_object, threading.Lock()

    def atomic_put_object(self: S3Response) -> object:
        with one_at_a_time:
            return put_object(self)

    S3Response.put_object = atomic_put_object  # type: ignore[method-assign]
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        S3Response.put_object = put_object  # type: ignore[method-assign]


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 (and anything built on it) at the loopback S3 endpoint; return its URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return s3_endpoint


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty MLflow SQLite store, created once per session (migration takes ~10 s).

    Under pytest-xdist (``make test`` runs ``-n 2``) the workers of one run share it: it is built
    in the run's common temporary folder by whichever worker asks first, under a file lock, and
    renamed into place when complete, so another worker waits for it or copies the finished file,
    never a half-migrated one. Without xdist that folder would be shared by every pytest run of
    the user, so the store goes to this session's own folder.
    """
    from mlflow import MlflowClient

    from retraining_assets.fileio import atomic_path, file_lock

    if not os.environ.get("PYTEST_XDIST_WORKER"):  # set in each xdist worker (gw0, gw1...)
        db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
        MlflowClient(f"sqlite:///{db}").search_experiments()
        return db
    shared = tmp_path_factory.getbasetemp().parent / "mlflow-template"
    db = shared / "mlflow.db"
    with file_lock(shared / ".lock"):
        if not db.exists():
            # SQLite writes journal files beside the database: migrate in a private folder, then
            # install the finished file under its name in one rename.
            building = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
            MlflowClient(f"sqlite:///{building}").search_experiments()
            with atomic_path(db) as tmp:
                shutil.copyfile(building, tmp)
    return db


@dataclass
class Project:
    """Paths of one isolated project state."""

    home: Path
    batches: Path

    @property
    def production(self) -> Path:
        return self.home / "production"


@pytest.fixture
def project(
    tmp_path: Path, mlflow_template: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    """Point the project's state and batch folder at a fresh temporary directory."""
    home = tmp_path / "var"
    (home / "mlflow").mkdir(parents=True)
    shutil.copyfile(mlflow_template, home / "mlflow" / "mlflow.db")
    batches = tmp_path / "batches"
    batches.mkdir()
    monkeypatch.setenv("RETRAINING_HOME", str(home))
    monkeypatch.setenv("RETRAINING_BATCHES_DIR", str(batches))
    # The state store defaults to the home folder; a URL from the shell would share state.
    monkeypatch.delenv("RETRAINING_STATE_URL", raising=False)
    yield Project(home=home, batches=batches)
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture
def suite_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Row counts of every run of the GE suite (``validation.validate_frame``), which still runs."""
    from retraining_assets.core import validation

    runs: list[int] = []
    real = validation.validate_frame

    def counted(frame, schema, **rules):
        runs.append(len(frame))
        return real(frame, schema, **rules)

    monkeypatch.setattr(validation, "validate_frame", counted)
    return runs


@pytest.fixture
def await_lock_waiter() -> Callable[[Path], None]:
    """A function returning once some thread or process waits for the ``flock`` on a file.

    Read from ``/proc/locks``, which lists each blocked request as a ``->`` line with the file's
    inode; so a single-flight test knows the second caller reached the lock while the first
    held it. Skips the test where there is no ``/proc/locks``.
    """
    locks = Path("/proc/locks")
    if not locks.exists():
        pytest.skip("needs /proc/locks (Linux)")

    def wait(lock_file: Path) -> None:
        inode = str(lock_file.stat().st_ino)
        for _ in range(400):  # a waiter shows within milliseconds; 4 s means none came
            for line in locks.read_text().splitlines():
                fields = line.split()
                if len(fields) > 3 and fields[1] == "->" and fields[-3].endswith(":" + inode):
                    return
            time.sleep(0.01)
        raise AssertionError(f"nobody waited for the lock on {lock_file}")

    return wait
