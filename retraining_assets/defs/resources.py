"""Resources: where batches come from, and the MLflow, DVC and production stores.

Every path or URI is a field (settable with ``dg.EnvVar`` in deployment); left empty, it resolves at
run time to a folder under ``$RETRAINING_HOME`` (default ``<project>/var``), so nothing reads the
environment at import and the embedded defaults need no service.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from retraining_assets import settings
from retraining_assets.core.registry import ProductionStore
from retraining_assets.core.versioning import DvcStore, TrackedFile
from retraining_assets.defs.state import StateStoreResource
from retraining_assets.fileio import file_lock
from retraining_assets.libraries import preload
from retraining_assets.storage import ObjectStore, open_store

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Run


class BatchSourceResource(dg.ConfigurableResource):
    """Where batch files arrive (a folder or an ``s3://`` prefix), and the schema they follow."""

    directory: str | None = Field(
        default=None,
        description="Folder (or s3://bucket/prefix) of batch files; default "
        "$RETRAINING_BATCHES_DIR or data/batches.",
    )
    dataset: str | None = Field(
        default=None,
        description="Schema of the batches: 'flights' or 'synthetic'; default: the `dataset:` key"
        " of the project configuration file, else 'flights'.",
    )
    schema_file: str | None = Field(
        default=None,
        description="Resolved schema JSON written by `retraining build-batches`; default "
        "$RETRAINING_SCHEMA, else <config file stem>.schema.json beside the file holding the "
        "dataset configuration. Never read from the batch folder.",
    )

    def path(self) -> Path:
        """The batch folder (local sources)."""
        return Path(self.directory).resolve() if self.directory else settings.batches_dir()

    def store(self) -> ObjectStore:
        """The batch source as an object store: the folder, or an S3 prefix.

        ``directory`` wins; else ``$RETRAINING_BATCHES_DIR``, which may also be an ``s3://`` prefix
        (a deployment sets it once for the daemon and every run worker).
        """
        configured = self.directory or os.environ.get(settings.BATCHES_ENV, "")
        if configured.startswith("s3://"):
            return open_store(configured)
        return open_store(self.path())

    def dataset_schema(self) -> settings.DatasetSchema:
        """The schema of the batches (see :meth:`resolved`)."""
        return self.resolved()[0]

    def frequency(self) -> str:
        """How often a batch arrives (daily, weekly, monthly): the length of a batch's period."""
        return self.resolved()[1]

    def resolved(self) -> tuple[settings.DatasetSchema, str]:
        """The schema of the batches and their frequency.

        In order: the built-in schema named by the ``dataset`` field; the schema file named by
        ``schema_file`` or ``$RETRAINING_SCHEMA``; the built-in name in the configuration
        file's ``dataset:``; for a dataset configuration there, the schema file that
        ``retraining build-batches`` wrote beside it; else flights. The batch folder is never
        consulted: a file dropped among the batches cannot change the rules.
        """
        from retraining_assets.core import dataset as dc

        name = self.dataset
        if name is None:
            explicit = self.schema_file or os.environ.get(SCHEMA_ENV)
            if explicit:
                try:
                    return dc.load_schema_file(Path(explicit))
                except dc.DatasetConfigError as exc:
                    raise dg.Failure(str(exc)) from None
            config_path = settings.config_file()
            value = settings.load_config().get("dataset") or "flights"
            if isinstance(value, str) and value in ("flights", "synthetic"):
                name = value
            else:
                try:
                    config = dc.dataset_config_from_section(
                        value, base_dir=config_path.parent, origin=str(config_path)
                    )
                    return dc.load_schema_file(dc.schema_file_for(config))
                except dc.DatasetConfigError as exc:
                    legacy = self.path() / dc.LEGACY_SCHEMA_FILE
                    hint = (
                        f" ({legacy} is ignored: schemas live with the configuration, never "
                        "among the batches)"
                        if legacy.exists()
                        else ""
                    )
                    raise dg.Failure(f"{exc}{hint}") from None
        if name == "flights":
            return settings.FLIGHTS_SCHEMA, "weekly"
        if name == "synthetic":
            from retraining_assets.core.synthetic import SYNTHETIC_SCHEMA

            return SYNTHETIC_SCHEMA, "weekly"
        raise dg.Failure(f"unknown dataset {name!r}: use 'flights' or 'synthetic'")


#: Environment variable naming the resolved schema file (overrides the configuration's).
SCHEMA_ENV = "RETRAINING_SCHEMA"


class DvcResource(dg.ConfigurableResource):
    """The DVC repository that versions datasets and models produced by the assets.

    The remote may be a folder or an ``s3://bucket/prefix`` URL (``dvc-s3``); for S3 the endpoint
    is ``endpoint_url``, else ``$AWS_ENDPOINT_URL`` (unset: AWS), and credentials come from the
    usual ``AWS_*`` variables, never from a file.
    """

    repo_dir: str | None = Field(default=None, description="DVC repository; default <home>/store.")
    remote_url: str | None = Field(
        default=None,
        description="Default DVC remote (folder or s3://...); default $RETRAINING_DVC_REMOTE,"
        " else the local folder <home>/dvc-remote.",
    )
    endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint of an s3:// remote; default $AWS_ENDPOINT_URL, else AWS.",
    )
    push: bool = Field(
        default=True,
        description="Push each tracked artifact to the remote as it is added. Off (`retraining"
        " replay`, whose throw-away remote nobody reads): artifacts stay in the DVC cache only,"
        " with the same md5s.",
    )

    def remote(self) -> str:
        """The default remote's URL or folder."""
        return (
            self.remote_url
            or os.environ.get("RETRAINING_DVC_REMOTE")
            or str(settings.state_dir() / "dvc-remote")
        )

    def remote_options(self) -> dict[str, str]:
        """``dvc remote modify`` settings of the remote (the endpoint of an S3 remote)."""
        from retraining_assets.services import s3_endpoint

        endpoint = s3_endpoint(self.endpoint_url)
        return {"endpointurl": endpoint} if self.remote().startswith("s3://") and endpoint else {}

    def store(self) -> DvcStore:
        """The (created if needed) DVC store."""
        home = settings.state_dir()
        repo = Path(self.repo_dir) if self.repo_dir else home / "store"
        return _ensured_dvc(str(repo.resolve()), self.remote(), self.remote_options())

    def dataset_file(self, md5: str) -> Path:
        """The file of dataset version ``md5`` in the DVC cache, fetched from the remote if needed.

        The exact version, not the workspace file (which a later run may have replaced).
        """
        store = self.store()
        source = store.cache_path(md5)
        if not source.exists():
            source = store.restore(md5, store.repo_dir / "restored" / f"{md5}.parquet")
        return source

    def read_dataset(self, md5: str) -> pd.DataFrame:
        """Read dataset version ``md5`` (see :meth:`dataset_file`)."""
        import pandas as pd

        return pd.read_parquet(self.dataset_file(md5))

    def track(self, path: Path) -> TrackedFile:
        """``dvc add`` a file of the repository, and push it unless ``push`` is off."""
        return self.store().track(path, push=self.push)

    def write_tracked(self, frame: pd.DataFrame, name: str) -> tuple[Path, str]:
        """Write ``frame`` as parquet to ``name`` in the repository and track it (see ``track``).

        Returns:
            The file and its DVC md5 (the data version).
        """
        from retraining_assets.core.batches import write_parquet_atomic

        path = write_parquet_atomic(frame, self.store().repo_dir / name)
        return path, self.track(path).md5

    def describe(self) -> str:
        """The repository folder and the remote (with its endpoint for S3)."""
        home = settings.state_dir()
        repo = Path(self.repo_dir) if self.repo_dir else home / "store"
        endpoint = self.remote_options().get("endpointurl")
        remote = f"{self.remote()} at {endpoint}" if endpoint else self.remote()
        return f"repo {repo.resolve()}, remote {remote}"

    def check(self) -> None:
        """Reach the remote: an S3 bucket answers, a folder remote is writable or creatable.

        Raises:
            retraining_assets.services.ServiceUnreachable: one line naming what did not answer.
        """
        from retraining_assets.services import ServiceUnreachable, check_s3

        remote = self.remote()
        if remote.startswith("s3://"):
            check_s3(remote, self.remote_options().get("endpointurl"))
        elif "://" not in remote:
            probe = Path(remote)
            while not probe.exists():
                probe = probe.parent
            if not os.access(probe, os.W_OK):
                raise ServiceUnreachable(f"DVC remote folder {remote} is not writable")


_ENSURED: dict[tuple[str, str, tuple[tuple[str, str], ...]], DvcStore] = {}


def _ensured_dvc(repo: str, remote: str, options: dict[str, str]) -> DvcStore:
    key = (repo, remote, tuple(sorted(options.items())))
    if key not in _ENSURED:
        _ENSURED[key] = DvcStore(Path(repo), remote, options).ensure()
    return _ENSURED[key]


class ProductionResource(dg.ConfigurableResource):
    """The production registry: versions, model bytes and challenger, in the state store.

    By default the ``production`` area of the state store (``$RETRAINING_STATE_URL``, else
    ``$RETRAINING_HOME``), so a local folder ``<home>/production`` or an S3 prefix
    ``s3://bucket/prefix/production``.
    """

    root: str | None = Field(
        default=None,
        description="Folder or s3://bucket/prefix of the production store; default the"
        " 'production' area of the state store ($RETRAINING_STATE_URL, else <home>/production).",
    )
    endpoint_url: str | None = Field(
        default=None, description="S3 endpoint (MinIO, local server); default $AWS_ENDPOINT_URL."
    )

    def store(self) -> ProductionStore:
        """The production store (nothing is read or created until it is used)."""
        if self.root:
            return ProductionStore(open_store(self.root, endpoint_url=self.endpoint_url))
        state = StateStoreResource(endpoint_url=self.endpoint_url)
        return ProductionStore(state.store("production"))


_MLFLOW_INIT = threading.Lock()
_MLFLOW_READY: set[tuple[str, str]] = set()


DEFAULT_MLFLOW_UI = settings.DEFAULT_MLFLOW_UI
DEFAULT_DAGSTER_UI = settings.DEFAULT_DAGSTER_UI


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking and model registry, SQLite under the project by default.

    On the stack (``scripts/stack``) the tracking URI is a ``postgresql://`` URL and artifacts go to
    ``s3://...``; MLflow's S3 client then reads the endpoint from ``MLFLOW_S3_ENDPOINT_URL`` and the
    credentials from the usual ``AWS_*`` variables. An unreachable store fails with one line naming
    its endpoint (password masked).

    Why not ``dagster_mlflow.mlflow_tracking``: it starts a run when the resource is built and
    reuses whatever run is active in the process, so in-process executions of several jobs log
    into one run, and a failed step can leave the run RUNNING. Here a run is opened and closed by
    the step that owns it, and later steps log to it by id.
    """

    tracking_uri: str | None = Field(
        default=None,
        description="Tracking URI (sqlite:/// or postgresql+psycopg2://); default"
        " $RETRAINING_MLFLOW_TRACKING_URI, else sqlite:///<home>/mlflow/mlflow.db.",
    )
    artifact_location: str | None = Field(
        default=None,
        description="Artifact root for a new experiment (a folder or s3://bucket/prefix); default"
        " $RETRAINING_MLFLOW_ARTIFACTS, else <home>/mlflow/artifacts.",
    )
    ui_url: str | None = Field(
        default=None,
        description=f"Base URL of the MLflow UI for run links; default $RETRAINING_MLFLOW_UI_URL,"
        f" else {DEFAULT_MLFLOW_UI}.",
    )
    dagster_ui_url: str | None = Field(
        default=None,
        description="Base URL of the Dagster UI, for the link from each MLflow run back to its"
        f" Dagster run (tag dagster/run_url); default $RETRAINING_DAGSTER_UI_URL, else"
        f" {DEFAULT_DAGSTER_UI}.",
    )
    experiment_name: str = "retraining_assets"
    registered_model_name: str = "retraining_model"
    model_flavor: bool = Field(
        default=True,
        description="Log each candidate as an MLflow LightGBM model (MLmodel, environment,"
        " signature; loadable with mlflow.lightgbm / pyfunc) and register that. Off (`retraining"
        " replay`, which never loads a model from MLflow): the model's LightGBM text file is"
        " logged as a plain run artifact and registered; same runs, parameters, metrics and"
        " version numbers.",
    )

    def uri(self) -> str:
        """The tracking (and registry) URI.

        Not ``$MLFLOW_TRACKING_URI``: ``mlflow.set_tracking_uri`` writes that variable into the
        process environment, so it would carry one store's URI into the next resource.
        """
        configured = self.tracking_uri or os.environ.get("RETRAINING_MLFLOW_TRACKING_URI")
        if configured:
            return configured
        return f"sqlite:///{settings.state_dir() / 'mlflow' / 'mlflow.db'}"

    def artifacts(self) -> str:
        """The artifact root given to the experiment when it is created."""
        configured = self.artifact_location or os.environ.get("RETRAINING_MLFLOW_ARTIFACTS")
        if configured:
            return configured
        return (settings.state_dir() / "mlflow" / "artifacts").as_uri()

    def _default_layout(self) -> bool:
        """Whether both the tracking store and the artifacts are the state folder's defaults."""
        return not (
            self.tracking_uri
            or os.environ.get("RETRAINING_MLFLOW_TRACKING_URI")
            or self.artifact_location
            or os.environ.get("RETRAINING_MLFLOW_ARTIFACTS")
        )

    def describe(self) -> str:
        """Where the store lives, safe to print (password masked)."""
        from retraining_assets.services import mask_url

        return f"tracking {mask_url(self.uri())}, artifacts {self.artifacts()}"

    def _fail(self, exc: BaseException) -> dg.Failure | None:
        """A one-line ``dg.Failure`` when ``exc`` means the tracking store or S3 did not answer."""
        from retraining_assets.services import mask_url, s3_endpoint, unreachable_message

        s3 = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or s3_endpoint() or "AWS S3"
        message = unreachable_message(
            exc,
            f"MLflow store {mask_url(self.uri())}",
            s3_what=f"MLflow artifacts {self.artifacts()} at {s3}",
        )
        return dg.Failure(description=message) if message else None

    def _ready(self) -> str:
        """Create the store (schema migration takes seconds) once, with one writer at a time."""
        preload("mlflow")
        import mlflow

        from retraining_assets.services import ServiceUnreachable, check_postgres, is_postgres

        uri = self.uri()
        if is_postgres(uri):
            # MLflow retries a refused connection for minutes: probe first, fail in seconds.
            try:
                check_postgres(uri)
            except ServiceUnreachable as exc:
                raise dg.Failure(description=f"MLflow tracking store: {exc}") from None
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        if (uri, self.experiment_name) in _MLFLOW_READY:
            return uri
        with _MLFLOW_INIT, _file_lock_for(uri):
            if self._default_layout():
                # A copied or moved state folder: its store still names the old folder's
                # artifact root, so new runs would write there (and old artifacts resolve there).
                relocate_artifact_root(
                    Path(uri.removeprefix("sqlite:///")), self.experiment_name, self.artifacts()
                )
            client = mlflow.MlflowClient(uri, registry_uri=uri)
            if client.get_experiment_by_name(self.experiment_name) is None:
                try:
                    client.create_experiment(
                        self.experiment_name, artifact_location=self.artifacts()
                    )
                except Exception:
                    # Another process (a run worker on another host) created it first.
                    if client.get_experiment_by_name(self.experiment_name) is None:
                        raise
            _MLFLOW_READY.add((uri, self.experiment_name))
        return uri

    def client(self) -> MlflowClient:
        """A client bound to this store (created and migrated if needed)."""
        preload("mlflow")
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
        """Open a fresh run, yield it, and always close it (FAILED on error).

        Raises:
            dagster.Failure: one line naming the endpoint when the tracking store or the S3
                artifact store does not answer (the run is marked FAILED when the store can be
                reached at all).
        """
        preload("mlflow")
        import mlflow

        experiment_id = self.experiment_id()
        # A run left active in this process (an earlier crash) must not swallow this cycle.
        while mlflow.active_run() is not None:
            mlflow.end_run(status="KILLED")
        run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags)
        try:
            yield run
        except BaseException as exc:
            with contextlib.suppress(Exception):
                mlflow.end_run(status="FAILED")
            failure = self._fail(exc) if isinstance(exc, Exception) else None
            if failure is not None:
                raise failure from None
            raise
        mlflow.end_run(status="FINISHED")

    def run_url(self, run_id: str) -> str:
        """Where a run shows in the MLflow UI (``ui_url``; default that of ``make mlflow-ui``)."""
        base = self.ui_url or os.environ.get("RETRAINING_MLFLOW_UI_URL") or DEFAULT_MLFLOW_UI
        return f"{base.rstrip('/')}/#/experiments/{self.experiment_id()}/runs/{run_id}"

    def dagster_run_url(self, run_id: str) -> str:
        """Where a Dagster run shows in its UI (``dagster_ui_url``; default ``make dev``)."""
        base = (
            self.dagster_ui_url or os.environ.get("RETRAINING_DAGSTER_UI_URL") or DEFAULT_DAGSTER_UI
        )
        return f"{base.rstrip('/')}/runs/{run_id}"

    def check(self) -> None:
        """Reach the tracking store and, for an S3 artifact root, its bucket (creating nothing).

        A SQLite store only needs a writable folder; a server store must answer a query.

        Raises:
            retraining_assets.services.ServiceUnreachable: one line naming what did not answer.
        """
        preload("mlflow")
        import mlflow

        from retraining_assets.services import ServiceUnreachable, check_postgres, check_s3
        from retraining_assets.services import is_postgres as on_postgres

        uri = self.uri()
        if uri.startswith("sqlite:///"):
            folder = Path(uri.removeprefix("sqlite:///")).parent
            while not folder.exists():
                folder = folder.parent
            if not os.access(folder, os.W_OK):
                raise ServiceUnreachable(f"MLflow store {uri}: {folder} is not writable")
        else:
            if on_postgres(uri):
                check_postgres(uri)
            try:
                mlflow.MlflowClient(uri, registry_uri=uri).search_experiments(max_results=1)
            except Exception as exc:
                failure = self._fail(exc)
                raise ServiceUnreachable(
                    failure.description if failure else f"MLflow store {uri}: {exc}"
                ) from exc
        if self.artifacts().startswith("s3://"):
            check_s3(self.artifacts(), os.environ.get("MLFLOW_S3_ENDPOINT_URL"))

    def log_to_run(self, run_id: str, metrics: dict[str, float], tags: dict[str, Any]) -> None:
        """Add metrics and tags to an existing (possibly finished) run, in one store transaction.

        Missing (None or NaN) metrics are skipped.
        """
        import math
        import time

        preload("mlflow")
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

    def log_trained_model(
        self,
        run_name: str,
        tags: dict[str, str],
        params: list[dict[str, Any]],
        metrics: dict[str, float],
        booster: Any,
        example: Any,
        pip_requirements: list[str],
        model_file: Path | None = None,
    ) -> tuple[str, str, str]:
        """One run with a LightGBM model, registered as a new version of the registered model.

        Args:
            run_name: the run's name.
            tags: the run's tags.
            params: groups of run parameters (one parameter namespace: keys must not repeat).
            metrics: the run's metrics.
            booster: the trained LightGBM booster.
            example: input rows from which the model's signature is inferred.
            pip_requirements: stated, not inferred (inference loads the model in a subprocess,
                seconds per cycle).
            model_file: the booster's saved text file; with ``model_flavor`` off it is what is
                logged and registered (required then).

        Returns:
            The run id, the logged model's URI and its registered version.
        """
        preload("mlflow")
        import mlflow
        from mlflow.models import infer_signature

        if not self.model_flavor and model_file is None:
            raise ValueError("model_flavor off: the model's text file (model_file) is needed")
        with self.start_run(run_name=run_name, tags=tags) as run:
            run_id = run.info.run_id
            # One store transaction for every parameter and metric (not one per group).
            self._log_batch(run_id, params, metrics)
            if not self.model_flavor:
                assert model_file is not None
                self.client().log_artifact(run_id, str(model_file), artifact_path="model")
                version = self._register_version(f"{run.info.artifact_uri}/model", run_id)
                return run_id, f"runs:/{run_id}/model", version
            signature = infer_signature(example, booster.predict(example, num_threads=1))
            info = mlflow.lightgbm.log_model(
                booster,
                name="model",
                signature=signature,
                registered_model_name=self.registered_model_name,
                pip_requirements=pip_requirements,
            )
        return run_id, info.model_uri, str(info.registered_model_version)

    def _log_batch(
        self, run_id: str, params: list[dict[str, Any]], metrics: dict[str, float]
    ) -> None:
        """Parameters (groups in order) and metrics, logged as ``mlflow.log_params`` would."""
        import time

        preload("mlflow")
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        self.client().log_batch(
            run_id,
            metrics=[Metric(key, value, now, 0, run_id=run_id) for key, value in metrics.items()],
            params=[Param(key, str(value)) for group in params for key, value in group.items()],
        )

    def _register_version(self, source: str, run_id: str) -> str:
        """A new version of the registered model (created first if absent) from ``source``."""
        preload("mlflow")
        from mlflow.exceptions import MlflowException

        client = self.client()
        try:
            client.create_registered_model(self.registered_model_name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        created = client.create_model_version(self.registered_model_name, source, run_id=run_id)
        return str(created.version)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str) -> None:
        """Upload the file ``path`` into ``artifact_path`` of an existing run."""
        self.client().log_artifact(run_id, str(path), artifact_path=artifact_path)

    def log_model_card(self, run_id: str, markdown: str, card: dict[str, Any]) -> None:
        """The model card of a promoted model on its run, as markdown and as JSON."""
        client = self.client()
        client.log_text(run_id, markdown, "model_card/model_card.md")
        client.log_dict(run_id, card, "model_card/model_card.json")

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point the alias ``alias`` of registered model ``name`` at ``version``."""
        self.client().set_registered_model_alias(name, alias, version)

    def remove_challenger_alias(self) -> bool:
        """Delete the ``challenger`` alias; ``False`` if that failed (it may be gone already)."""
        try:
            self.client().delete_registered_model_alias(self.registered_model_name, "challenger")
        except Exception:  # the alias may already be gone; not worth failing the decision
            return False
        return True

    def tag_model_version(
        self, name: str, version: str, outcome: str, reasons: tuple[str, ...] = ()
    ) -> None:
        """Tag a registered model version with the gate's outcome (and a rejection's reasons).

        Every candidate stays registered (shadow mode needs its version for the ``challenger``
        alias, and a rejected one stays comparable), so the version says what became of it.
        """
        client = self.client()
        client.set_model_version_tag(name, version, "gate", outcome)
        if reasons:
            client.update_model_version(
                name, version, description=f"Rejected by the gate: {'; '.join(reasons)}"
            )


#: Columns of MLflow's SQL store that hold artifact locations (MLflow 3.x schema).
_ARTIFACT_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
)


def relocate_artifact_root(db: Path, experiment_name: str, root: str) -> str | None:
    """Re-point a state folder's MLflow store at its own artifact folder after a copy or move.

    MLflow keeps absolute artifact locations in its store (the experiment's root, and each run's,
    logged model's and model version's location under it). In the default layout the root is
    ``<state>/mlflow/artifacts``; when the store is opened from another state folder (``var/``
    copied or moved) and names a different ``.../mlflow/artifacts`` folder, every location under
    that old root is rewritten to the same path under ``root``, in one transaction, so new runs
    write into this folder and old runs' artifacts (copied along) are read from it. Any other
    root (S3, a configured folder not named ``mlflow/artifacts``) is left alone.

    Args:
        db: The SQLite file of the MLflow store (nothing happens if it does not exist yet).
        experiment_name: The project's experiment.
        root: This state folder's artifact root (a ``file://`` URI).

    Returns:
        The old root that was replaced, or ``None`` if nothing had to change.
    """
    import sqlite3

    if not db.exists():
        return None
    with contextlib.closing(sqlite3.connect(db, timeout=60)) as con:
        try:
            row = con.execute(
                "SELECT artifact_location FROM experiments WHERE name = ?", (experiment_name,)
            ).fetchone()
        except sqlite3.OperationalError:  # not migrated yet: MLflow creates it next
            return None
        old = str(row[0]).rstrip("/") if row and row[0] else None
        new = root.rstrip("/")
        if (
            old is None
            or old == new
            or not old.startswith("file://")
            or not new.startswith("file://")
            or not old.endswith("/mlflow/artifacts")
        ):
            return None
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        with con:  # one transaction: every location moves, or none
            for table, column in _ARTIFACT_COLUMNS:
                if table not in tables:
                    continue
                con.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?)"
                    f" WHERE {column} = ? OR substr({column}, 1, ?) = ?",
                    (new, len(old) + 1, old, len(old) + 1, old + "/"),
                )
    return old


@contextlib.contextmanager
def _file_lock_for(uri: str) -> Iterator[None]:
    """Serialize first creation of a SQLite store across processes (concurrent migrations race)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri.removeprefix("sqlite:///"))
    with file_lock(db.parent / f".{db.name}.lock"):
        yield


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
