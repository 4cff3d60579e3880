"""Resources: where batches come from, and the MLflow, DVC and production stores.

Every path or URI is a field (settable with ``dg.EnvVar`` in deployment); left empty, it resolves at
run time to a folder under ``$RETRAINING_HOME`` (default ``<project>/var``), so nothing reads the
environment at import and the embedded defaults need no service.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from retraining_assets import settings
from retraining_assets.core.registry import ProductionStore
from retraining_assets.core.versioning import DvcStore

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run


class BatchSourceResource(dg.ConfigurableResource):
    """The folder where batch files arrive, and the schema they follow."""

    directory: str | None = Field(
        default=None,
        description="Folder of batch files; default $RETRAINING_BATCHES_DIR or data/batches.",
    )
    dataset: str | None = Field(
        default=None,
        description="Schema of the batches: 'flights' or 'synthetic'; default: the `dataset:` key"
        " of the project configuration file, else 'flights'.",
    )

    def path(self) -> Path:
        """The batch folder."""
        return Path(self.directory).resolve() if self.directory else settings.batches_dir()

    def dataset_schema(self) -> settings.DatasetSchema:
        """The schema of the batches.

        In order: the built-in schema named by the ``dataset`` field; the ``_schema.json`` that
        ``retraining build-batches`` writes beside batches built from a dataset configuration;
        the built-in name in the configuration file's ``dataset:``; else flights.
        """
        name = self.dataset
        if name is None:
            from retraining_assets.core.dataset_config import read_schema_file

            recorded = read_schema_file(self.path())
            if recorded is not None:
                return recorded
            value = settings.load_config().get("dataset") or "flights"
            if not isinstance(value, str) or value not in ("flights", "synthetic"):
                raise dg.Failure(
                    f"a dataset configuration is set ({settings.config_file()}) but "
                    f"{self.path()} has no _schema.json: build the batches with "
                    "`retraining build-batches`"
                )
            name = value
        if name == "flights":
            return settings.FLIGHTS_SCHEMA
        if name == "synthetic":
            from retraining_assets.core.synthetic import SYNTHETIC_SCHEMA

            return SYNTHETIC_SCHEMA
        raise dg.Failure(f"unknown dataset {name!r}: use 'flights' or 'synthetic'")


class DvcResource(dg.ConfigurableResource):
    """The DVC repository that versions datasets and models produced by the assets."""

    repo_dir: str | None = Field(default=None, description="DVC repository; default <home>/store.")
    remote_url: str | None = Field(
        default=None, description="Default DVC remote; default the local folder <home>/dvc-remote."
    )

    def store(self) -> DvcStore:
        """The (created if needed) DVC store."""
        home = settings.state_dir()
        repo = Path(self.repo_dir) if self.repo_dir else home / "store"
        remote = self.remote_url or str(home / "dvc-remote")
        return _ensured_dvc(str(repo.resolve()), remote)


_ENSURED: dict[tuple[str, str], DvcStore] = {}


def _ensured_dvc(repo: str, remote: str) -> DvcStore:
    key = (repo, remote)
    if key not in _ENSURED:
        _ENSURED[key] = DvcStore(Path(repo), remote).ensure()
    return _ENSURED[key]


class ProductionResource(dg.ConfigurableResource):
    """The production pointer, its history and the served model bytes."""

    root: str | None = Field(
        default=None, description="Folder of the store; default <home>/production."
    )

    def store(self) -> ProductionStore:
        """The production store."""
        return ProductionStore(
            Path(self.root) if self.root else settings.state_dir() / "production"
        )


_MLFLOW_INIT = threading.Lock()
_MLFLOW_READY: set[str] = set()


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking and model registry, SQLite under the project by default.

    Why not ``dagster_mlflow.mlflow_tracking``: it starts a run when the resource is built and
    reuses whatever run is active in the process, so in-process executions of several jobs log
    into one run, and a failed step can leave the run RUNNING. Here a run is opened and closed by
    the step that owns it, and later steps log to it by id.
    """

    tracking_uri: str | None = Field(
        default=None, description="Tracking URI; default sqlite:///<home>/mlflow/mlflow.db."
    )
    artifact_location: str | None = Field(
        default=None,
        description="Artifact root for a new experiment; default <home>/mlflow/artifacts.",
    )
    experiment_name: str = "retraining_assets"
    registered_model_name: str = "retraining_model"

    def uri(self) -> str:
        """The tracking (and registry) URI."""
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{settings.state_dir() / 'mlflow' / 'mlflow.db'}"

    def _artifacts(self) -> str:
        if self.artifact_location:
            return self.artifact_location
        return (settings.state_dir() / "mlflow" / "artifacts").as_uri()

    def _ready(self) -> str:
        """Create the store (schema migration takes seconds) once, with one writer at a time."""
        import mlflow

        uri = self.uri()
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        if uri in _MLFLOW_READY:
            return uri
        with _MLFLOW_INIT, _file_lock_for(uri):
            client = mlflow.MlflowClient(uri, registry_uri=uri)
            if client.get_experiment_by_name(self.experiment_name) is None:
                client.create_experiment(self.experiment_name, artifact_location=self._artifacts())
            _MLFLOW_READY.add(uri)
        return uri

    def client(self) -> MlflowClient:
        """A client bound to this store (created and migrated if needed)."""
        import mlflow

        uri = self._ready()
        return mlflow.MlflowClient(uri, registry_uri=uri)

    def experiment_id(self) -> str:
        """Id of the project's experiment."""
        experiment = self.client().get_experiment_by_name(self.experiment_name)
        assert experiment is not None
        return str(experiment.experiment_id)

    @contextlib.contextmanager
    def start_run(self, run_name: str, tags: dict[str, str]) -> Iterator[Run]:
        """Open a fresh run, yield it, and always close it (FAILED on error)."""
        import mlflow

        experiment_id = self.experiment_id()
        # A run left active in this process (an earlier crash) must not swallow this cycle.
        while mlflow.active_run() is not None:
            mlflow.end_run(status="KILLED")
        run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags)
        try:
            yield run
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
        mlflow.end_run(status="FINISHED")

    def run_url(self, run_id: str) -> str:
        """Where a run shows in the MLflow UI started by ``make mlflow-ui``."""
        return f"http://127.0.0.1:5000/#/experiments/{self.experiment_id()}/runs/{run_id}"

    def log_to_run(self, run_id: str, metrics: dict[str, float], tags: dict[str, Any]) -> None:
        """Add metrics and tags to an existing (possibly finished) run, in one store transaction.

        Missing (None or NaN) metrics are skipped.
        """
        import math
        import time

        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        self.client().log_batch(
            run_id,
            metrics=[
                Metric(key, float(value), now, 0)
                for key, value in metrics.items()
                if value is not None and not math.isnan(value)
            ],
            tags=[RunTag(key, str(value)) for key, value in tags.items()],
        )


@contextlib.contextmanager
def _file_lock_for(uri: str) -> Iterator[None]:
    """Serialize first creation of a SQLite store across processes (concurrent migrations race)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with (db.parent / f".{db.name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class TriggerPolicyResource(dg.ConfigurableResource):
    """Thresholds of the drift, performance and concept-drift triggers and the cooldowns.

    Defaults from ``settings.TriggerPolicy``, overridden by the ``triggers:`` section of the
    project configuration file (read when a sensor or asset needs it, never at import).
    """

    config_file: str | None = Field(
        default=None, description="YAML with a triggers: section; default $RETRAINING_CONFIG."
    )
    simulated_now: float | None = Field(
        default=None,
        description="Replay only: the simulated current time (epoch seconds) for cooldowns.",
    )

    def now(self) -> float:
        """The current time: wall clock, or the replay's simulated clock."""
        import time

        return self.simulated_now if self.simulated_now is not None else time.time()

    def policy(self) -> settings.TriggerPolicy:
        """The effective trigger policy."""
        return settings.load_trigger_policy(Path(self.config_file) if self.config_file else None)

    def monitoring_dir(self) -> Path:
        """Folder for per-batch monitoring artifacts (error streams, drift charts)."""
        return settings.state_dir() / "monitoring"
