"""One retraining cycle through Dagster vs a bare script doing the same work, side by side.

Contenders, each in a fresh subprocess that runs two cycles on fresh state (a temporary
``RETRAINING_HOME`` with a copy of a pre-migrated MLflow SQLite store made once before timing, and a
fresh ``instance_for_test`` with the storage that ``var/dagster/dagster.yaml`` configures):

- ``dagster``: the real ``retraining_job`` with ``execute_in_process`` (GE validation, MLflow run,
  model logging and registration, DVC tracking, evaluation, ROC plot, promotion);
- ``script``: the same training weeks (``--windows``, default 8 and 51) + 1 test week of flights
  batches read with pandas, the same LightGBM training (``TrainParams()`` = the job's defaults,
  unit weights like the job's rolling window) and the same evaluation (AUC + 500 timed single-row
  predictions through ``Scorer``), and nothing else: no orchestration, GE, MLflow, DVC or plot;
- ``noop``: the same 5-asset chain with empty bodies through Dagster: what orchestration alone
  costs. ``floor = (script + noop) / script`` is the best ratio a Dagster cycle could reach;
- with ``--stock-storage``, ``dagster_stock``: the same job on Dagster's own SQLite storage (what
  an instance without the project's ``dagster.yaml`` uses), to compare the storages side by side.

``cold`` = the imports of the entry module plus the first cycle in the process (what a run launched
in a new process pays); ``warm`` = the second cycle in the same process (imports done). Contenders
alternate (dagster, script, dagster, ...), medians and ratios are printed; the whole comparison runs
twice, with a bytecode cache (``PYTHONPYCACHEPREFIX``, as an installed venv with ``.pyc`` files
behaves) and as this environment is configured (``PYTHONDONTWRITEBYTECODE=1`` and no ``.pyc`` in
the venv: every import compiles from source).

Then: the Dagster cycle by step (STEP_START / STEP_SUCCESS timestamps of the run's events), by
component inside steps (wall time of wrapped project, MLflow, DVC and GE functions during the warm
cycle), the import time of each heavy library in a fresh process, and a cProfile of one cold and one
warm Dagster cycle (top entries by cumulative time).

    .venv/bin/python benchmarks/cycle_vs_script.py [--repeats 3] [--skip-profile] [--windows 8,51]
        [--stock-storage]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BATCHES = ROOT / "data" / "batches"
PYCACHE = Path(tempfile.gettempdir()) / "retraining-bench-pycache"
#: Training weeks of the cycle; the parent passes ``--windows`` to its children through this.
WINDOW_ENV = "CYCLE_BENCH_WINDOW"
WINDOW_BATCHES = int(os.environ.get(WINDOW_ENV, "8"))
LATENCY_CALLS = 500
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def as_of_batch() -> str:
    """The test week: the latest full week, the batch before the last one.

    The last batch holds 2 days; its candidate fails the log-loss gate, so nothing would be
    promoted and the promotion step would not run.
    """
    return sorted(p.stem for p in BATCHES.glob("*.parquet"))[-2]


STEPS = (
    "training_dataset",
    "validated_dataset",
    "candidate_model",
    "evaluation_report",
    "production_model",
)
HEAVY_IMPORTS = (
    "great_expectations",
    "mlflow",
    "mlflow.lightgbm",
    "dvc.repo",
    "lightgbm",
    "matplotlib.pyplot",
    "scipy.stats",
    "pandas",
)

#: Functions timed during the warm Dagster cycle: (label, module, attribute path). Labels indented
#: with two spaces run inside an unindented one and are not added again to a step's total.
COMPONENTS: tuple[tuple[str, str, str], ...] = (
    ("has_labels (parquet footers)", "retraining_assets.core.batches", "has_labels"),
    ("read_labelled_batch", "retraining_assets.core.batches", "read_labelled_batch"),
    ("collect_dataset", "retraining_assets.core.batches", "collect_dataset"),
    ("apply_weights", "retraining_assets.core.strategies", "apply_weights"),
    ("write_parquet_atomic", "retraining_assets.core.batches", "write_parquet_atomic"),
    ("DvcStore.ensure (dvc init + config)", "retraining_assets.core.versioning", "DvcStore.ensure"),
    (
        "_validated_batches (instance records)",
        "retraining_assets.defs.assets",
        "_validated_batches",
    ),
    (
        "  instance.get_status_by_partition",
        "dagster._core.instance",
        "DagsterInstance.get_status_by_partition",
    ),
    (
        "  instance.fetch_materializations",
        "dagster._core.instance",
        "DagsterInstance.fetch_materializations",
    ),
    ("build_training_set", "retraining_assets.core.dataset_build", "build_training_set"),
    (
        "  read_validated_batch (md5 + parquet)",
        "retraining_assets.core.batches",
        "read_validated_batch",
    ),
    ("  overlapping_batches", "retraining_assets.core.batches", "overlapping_batches"),
    ("DvcStore.track (dvc add + push)", "retraining_assets.core.versioning", "DvcStore.track"),
    ("  dvc Repo() open", "dvc.repo", "Repo.__init__"),
    ("  dvc add", "dvc.repo", "Repo.add"),
    ("  dvc push", "dvc.repo", "Repo.push"),
    (
        "DvcResource.read_dataset (parquet from DVC cache)",
        "retraining_assets.defs.resources",
        "DvcResource.read_dataset",
    ),
    ("validate_frame (GE)", "retraining_assets.core.validation", "validate_frame"),
    ("  GE _get_context", "retraining_assets.core.validation", "_get_context"),
    ("  GE build_suite", "retraining_assets.core.validation", "build_suite"),
    ("  GE _run_suite (datasource + validate)", "retraining_assets.core.validation", "_run_suite"),
    ("train_model (LightGBM)", "retraining_assets.core.training", "train_model"),
    ("  lightgbm.train", "lightgbm", "train"),
    (
        "MlflowResource.experiment_id",
        "retraining_assets.defs.resources",
        "MlflowResource.experiment_id",
    ),
    ("mlflow.start_run", "mlflow", "start_run"),
    ("mlflow.end_run", "mlflow", "end_run"),
    ("mlflow.log_params", "mlflow", "log_params"),
    ("mlflow.log_metrics", "mlflow", "log_metrics"),
    ("mlflow infer_signature", "mlflow.models", "infer_signature"),
    ("mlflow.lightgbm.log_model", "mlflow.lightgbm", "log_model"),
    ("  infer_pip_requirements (subprocess)", "mlflow.models", "infer_pip_requirements"),
    ("  register model version", "mlflow.tracking._model_registry.fluent", "_register_model"),
    ("load_model (LightGBM text)", "retraining_assets.core.training", "load_model"),
    ("evaluate_model (AUC + latency)", "retraining_assets.core.evaluation", "evaluate_model"),
    ("  measure_latency (500 calls)", "retraining_assets.core.evaluation", "measure_latency"),
    ("plot_roc (matplotlib)", "retraining_assets.core.evaluation", "plot_roc"),
    ("MlflowResource.log_to_run", "retraining_assets.defs.resources", "MlflowResource.log_to_run"),
    ("MlflowClient.log_artifact (ROC png)", "mlflow", "MlflowClient.log_artifact"),
    ("ProductionStore.promote", "retraining_assets.core.registry", "ProductionStore.promote"),
    ("move_champion_alias", "retraining_assets.defs.production", "move_champion_alias"),
    ("production_metadata", "retraining_assets.defs.production", "production_metadata"),
)


# --- child processes --------------------------------------------------------------------------


def _instance(stock: bool = False):
    """A fresh ``instance_for_test``: with the storage of ``var/dagster/dagster.yaml``.

    ``stock``: Dagster's default SQLite storage instead. The yaml's ``base_dir`` is
    ``{env: DAGSTER_HOME}``, which ``instance_for_test`` points at its temporary folder.
    """
    import dagster as dg
    import yaml

    if stock:
        return dg.instance_for_test()
    config = yaml.safe_load((ROOT / "var" / "dagster" / "dagster.yaml").read_text())
    return dg.instance_for_test(overrides={"storage": config["storage"]})


def _fresh_home(template: Path) -> Path:
    home = Path(tempfile.mkdtemp(prefix="cycle-bench-")) / "var"
    (home / "mlflow").mkdir(parents=True)
    shutil.copyfile(template, home / "mlflow" / "mlflow.db")
    os.environ["RETRAINING_HOME"] = str(home)
    return home


def _install_timers(timings: dict[str, list[tuple[float, float]]]) -> None:
    """Wrap every function of :data:`COMPONENTS` to record (start epoch, seconds) per call."""
    import importlib

    for label, module_name, attr in COMPONENTS:
        module = importlib.import_module(module_name)
        owner: Any = module
        *path, name = attr.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = getattr(owner, name)

        def wrapper(*args, __original=original, __label=label, **kwargs):
            wall = time.time()
            started = time.perf_counter()
            try:
                return __original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                timings.setdefault(__label, []).append((wall, elapsed))

        functools.update_wrapper(wrapper, original)
        setattr(owner, name, wrapper)


def _step_times(instance, run_id: str) -> dict[str, Any]:
    """Seconds per step (STEP_START to STEP_SUCCESS/FAILURE), the run's gaps, step intervals."""
    starts: dict[str, float] = {}
    out: dict[str, Any] = {"intervals": {}}
    run_start = run_end = last_end = None
    gaps = 0.0
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type.name
        if kind == "RUN_START":
            run_start = last_end = entry.timestamp
        elif kind in ("RUN_SUCCESS", "RUN_FAILURE"):
            run_end = entry.timestamp
        elif kind == "STEP_START":
            starts[event.step_key] = entry.timestamp
            if last_end is not None:
                gaps += entry.timestamp - last_end
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in starts:
            out[event.step_key] = entry.timestamp - starts[event.step_key]
            out["intervals"][event.step_key] = (starts[event.step_key], entry.timestamp)
            last_end = entry.timestamp
    if run_start is not None and run_end is not None:
        out["run (RUN_START..RUN_SUCCESS)"] = run_end - run_start
        out["between steps"] = gaps + (run_end - (last_end or run_end))
    return out


def _by_step(
    timings: dict[str, list[tuple[float, float]]], intervals: dict[str, tuple[float, float]]
) -> dict[str, dict[str, list[float]]]:
    """[seconds, calls] per step and label, each call put in the step whose interval holds it."""
    out: dict[str, dict[str, list[float]]] = {}
    for label, calls in timings.items():
        for wall, seconds in calls:
            step = next(
                (k for k, (a, b) in intervals.items() if a - 0.01 <= wall <= b + 0.01), "outside"
            )
            entry = out.setdefault(step, {}).setdefault(label, [0.0, 0])
            entry[0] += seconds
            entry[1] += 1
    return out


def _run_config() -> dict[str, Any]:
    config = {"as_of_batch": as_of_batch(), "window_batches": WINDOW_BATCHES, "test_batches": 1}
    return {
        "ops": {
            "training_dataset": {"config": config},
            "evaluation_report": {"config": {"latency_calls": LATENCY_CALLS}},
        },
        **QUIET,
    }


def _record_ingested(instance: Any) -> None:
    """Record every batch as validated by ``raw_batches``, as a deployment's ingestion has.

    ``training_dataset`` reads only batches whose ``raw_batches`` materialization recorded their
    md5. The per-batch GE check is ingestion work, not part of a retraining cycle (and would warm
    the imports before the cold cycle), so the materializations are reported without a run, with
    the metadata ``raw_batches`` records (file md5, period start, labelled). Untimed setup.
    """
    import hashlib

    import dagster as dg

    from retraining_assets.defs.partitions import BATCH_PARTITIONS

    ids = sorted(p.stem for p in BATCHES.glob("*.parquet"))
    instance.add_dynamic_partitions(BATCH_PARTITIONS, ids)
    for batch_id in ids:
        md5 = hashlib.md5((BATCHES / f"{batch_id}.parquet").read_bytes()).hexdigest()
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key="raw_batches",
                partition=batch_id,
                metadata={"dvc/md5": md5, "period_start": batch_id, "labelled": True},
            )
        )


def _two_cycles(import_s: float, cycles: list[dict[str, Any]]) -> dict[str, Any]:
    """A child's result: ``cold`` = imports + 1st cycle, ``warm`` = 2nd cycle."""
    return {
        "import": import_s,
        "cold": import_s + cycles[0]["cycle"],
        "warm": cycles[1]["cycle"],
        "cycles": cycles,
    }


def child_dagster(template: Path, stock: bool = False) -> dict[str, Any]:
    """Import the definitions, then run ``retraining_job`` twice (cold, warm) on fresh state.

    ``stock``: on Dagster's default SQLite storage instead of the project's.
    """
    started = time.perf_counter()
    import dagster  # noqa: F401  (timed with the imports)

    from retraining_assets.definitions import defs

    import_s = time.perf_counter() - started
    job = defs.resolve_job_def("retraining_job")
    cycles: list[dict[str, Any]] = []
    timings: dict[str, list[tuple[float, float]]] = {}
    for i in range(2):
        if i == 1:
            _install_timers(timings)
        home = _fresh_home(template)
        t0 = time.perf_counter()
        with _instance(stock) as instance:
            _record_ingested(instance)
            setup_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            result = job.execute_in_process(instance=instance, run_config=_run_config())
            cycle_s = time.perf_counter() - t1
            report = result.output_for_node("evaluation_report")
            cycles.append(
                {
                    "cycle": cycle_s,
                    "instance_setup": setup_s,
                    "steps": _step_times(instance, result.run_id),
                    "auc": report.candidate["metrics"]["auc"],
                    "p95_ms": report.candidate["latency"]["p95_ms"],
                    "promoted": report.promote,
                }
            )
        shutil.rmtree(home.parent, ignore_errors=True)
    return {
        **_two_cycles(import_s, cycles),
        "components": {k: sum(d for _, d in v) for k, v in timings.items()},
        "component_calls": {k: len(v) for k, v in timings.items()},
        "by_step": _by_step(timings, cycles[1]["steps"]["intervals"]),
    }


def multiprocess_job():
    """``retraining_job`` with Dagster's multiprocess executor (loaded by path in each step)."""
    import dagster as dg

    from retraining_assets.definitions import defs
    from retraining_assets.defs.jobs import RETRAINING_ASSETS

    job = dg.define_asset_job(
        "retraining_job_multiprocess",
        selection=dg.AssetSelection.assets(*RETRAINING_ASSETS),
        executor_def=dg.multiprocess_executor,
    )
    return dg.Definitions(
        assets=list(defs.assets or []), resources=defs.resources, jobs=[job]
    ).resolve_job_def("retraining_job_multiprocess")


def child_multiprocess(template: Path) -> dict[str, Any]:
    """Import Dagster and the definitions, then run the job twice with the multiprocess executor.

    Each step runs in a fresh process (spawned, as Dagster does) that loads the code location and
    the step's heavy libraries: the parent is warm on the second cycle, its steps never are.
    """
    started = time.perf_counter()
    import dagster as dg

    import retraining_assets.definitions  # noqa: F401

    import_s = time.perf_counter() - started
    cycles = []
    for _ in range(2):
        home = _fresh_home(template)
        with _instance() as instance:
            _record_ingested(instance)
            t0 = time.perf_counter()
            result = dg.execute_job(
                dg.reconstructable(multiprocess_job), instance=instance, run_config=_run_config()
            )
            cycles.append({"cycle": time.perf_counter() - t0, "success": result.success})
        shutil.rmtree(home.parent, ignore_errors=True)
    return _two_cycles(import_s, cycles)


def child_noop() -> dict[str, Any]:
    """Dagster's own cost: the same 5-asset chain with empty bodies, run twice like the job.

    Same executor (in process), same kind of instance (the project's storage), the default IO
    manager pickling each output: what any cycle through Dagster pays before doing work.
    ``script + noop`` is the best a Dagster cycle could do with GE, MLflow and DVC costing
    nothing.
    """
    started = time.perf_counter()
    import dagster as dg

    import_s = time.perf_counter() - started

    # The job's chain, written out: each asset takes the one before it as an input.
    @dg.asset
    def training_dataset() -> dict[str, int]:
        return {"rows": 0}

    @dg.asset
    def validated_dataset(training_dataset: dict[str, int]) -> dict[str, int]:
        return training_dataset

    @dg.asset
    def candidate_model(validated_dataset: dict[str, int]) -> dict[str, int]:
        return validated_dataset

    @dg.asset
    def evaluation_report(candidate_model: dict[str, int]) -> dict[str, int]:
        return candidate_model

    @dg.asset
    def production_model(evaluation_report: dict[str, int]) -> dict[str, int]:
        return evaluation_report

    chain = [
        training_dataset,
        validated_dataset,
        candidate_model,
        evaluation_report,
        production_model,
    ]
    job = dg.Definitions(
        assets=chain, jobs=[dg.define_asset_job("noop", executor_def=dg.in_process_executor)]
    ).resolve_job_def("noop")
    cycles = []
    for _ in range(2):
        with _instance() as instance:
            t0 = time.perf_counter()
            job.execute_in_process(instance=instance, run_config=QUIET)
            cycles.append({"cycle": time.perf_counter() - t0})
    return _two_cycles(import_s, cycles)


def _script_cycle() -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from retraining_assets.core.batches import list_batches, select_window
    from retraining_assets.core.evaluation import evaluate_model
    from retraining_assets.core.training import TrainParams, train_model
    from retraining_assets.settings import FLIGHTS_SCHEMA as schema

    t0 = time.perf_counter()
    window = select_window(list_batches(BATCHES), as_of_batch(), WINDOW_BATCHES, 1)
    order = [schema.timestamp, schema.id_column]

    def load(ids) -> pd.DataFrame:
        frames = [pd.read_parquet(BATCHES / f"{b}.parquet") for b in ids]
        return pd.concat(frames, ignore_index=True).sort_values(order, ignore_index=True)

    train, test = load(window.train_batches), load(window.test_batches)
    t1 = time.perf_counter()
    trained = train_model(train, schema, TrainParams(), weights=np.ones(len(train)))
    t2 = time.perf_counter()
    evaluation, _ = evaluate_model(
        "candidate", trained.booster, test, schema, latency_calls=LATENCY_CALLS
    )
    t3 = time.perf_counter()
    return {
        "steps": {"load": t1 - t0, "train": t2 - t1, "evaluate": t3 - t2},
        "auc": evaluation.metrics.auc,
        "p95_ms": evaluation.latency.p95_ms,
    }


def child_script() -> dict[str, Any]:
    """Import what the script needs, then run the bare cycle twice (cold, warm)."""
    started = time.perf_counter()
    import lightgbm  # noqa: F401
    import pandas  # noqa: F401
    import scipy.stats  # noqa: F401

    import retraining_assets.core.evaluation
    import retraining_assets.core.training  # noqa: F401

    import_s = time.perf_counter() - started
    cycles = []
    for _ in range(2):
        t0 = time.perf_counter()
        out = _script_cycle()
        cycles.append({"cycle": time.perf_counter() - t0, **out})
    return _two_cycles(import_s, cycles)


def _ingest_records() -> dict[str, Any]:
    """What a script's own ingestion would have recorded per batch: md5, period, labelled.

    The same records ``_record_ingested`` gives the Dagster instance. Untimed setup.
    """
    import hashlib

    from retraining_assets.core.dataset_build import ValidatedBatch

    ids = sorted(p.stem for p in BATCHES.glob("*.parquet"))
    return {
        batch_id: ValidatedBatch(
            md5=hashlib.md5((BATCHES / f"{batch_id}.parquet").read_bytes()).hexdigest(),
            labelled=True,
            start=batch_id,
            order=order,
        )
        for order, batch_id in enumerate(ids)
    }


def _same_work_cycle(run_name: str, ingested: dict[str, Any]) -> dict[str, Any]:
    """One retraining cycle without Dagster: the job's work, through the same project functions.

    Build the rolling window with ``build_training_set`` from the batches ``ingested`` recorded
    (each read only if its bytes still have the recorded md5; copies of a batch left out), as
    ``training_dataset`` does; write it and ``dvc add`` + push it (``DvcStore.track``), read it
    back from the DVC cache, validate it with the same Great Expectations suite
    (``validate_frame``), train LightGBM with the job's default ``TrainParams``, save and track
    the model, log params, metrics and the model to MLflow and register it (as
    ``candidate_model``), evaluate candidate and production on the test split (AUC, log loss, p95
    latency, baseline, DeLong when there is a champion), decide with ``decide_promotion`` under
    the default gate, plot the ROC and log it with the verdict and its reasons, then promote
    through ``ProductionStore.promote`` (compare-and-set), check and move the ``champion`` alias,
    tag the registered version with the outcome and log the model card (markdown and JSON) to
    the run, as ``production_model`` does. No Dagster import; the state lives in
    ``$RETRAINING_HOME`` laid out as the resources lay it out.
    """
    import math
    from importlib.metadata import version

    import mlflow
    import pandas as pd
    from mlflow.entities import Metric, RunTag
    from mlflow.models import infer_signature

    from retraining_assets import settings
    from retraining_assets.core import batches as batch_io
    from retraining_assets.core.dataset_build import WindowRequest, build_training_set
    from retraining_assets.core.evaluation import baseline_metrics, evaluate_model, plot_roc
    from retraining_assets.core.model_card import build_model_card, render_model_card
    from retraining_assets.core.promotion import GatePolicy, ModelScore, decide_promotion
    from retraining_assets.core.registry import ProductionStore, md5_hex
    from retraining_assets.core.training import TrainParams, load_model, prepare_features
    from retraining_assets.core.training import train_model as train
    from retraining_assets.core.validation import validate_frame
    from retraining_assets.core.versioning import DvcStore
    from retraining_assets.settings import FLIGHTS_SCHEMA as schema
    from retraining_assets.storage import open_store

    split, weight, batch_col = settings.SPLIT_COLUMN, settings.WEIGHT_COLUMN, settings.BATCH_COLUMN
    home = settings.state_dir()
    steps: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        steps[name] = now - mark
        mark = now

    # training_dataset: the window of batches recorded at ingestion, each read only if its bytes
    # still have the recorded md5, copies of another batch left out (build_training_set, as the
    # asset builds it).
    dvc = DvcStore(home / "store", str(home / "dvc-remote")).ensure()
    production = ProductionStore(open_store(home).child("production"))
    source = open_store(BATCHES)
    built = build_training_set(
        source,
        schema,
        batch_io.list_batches(source),
        ingested,
        set(),
        WindowRequest(
            strategy="rolling",
            as_of=as_of_batch(),
            window_batches=WINDOW_BATCHES,
            test_batches=1,
            half_life_days=settings.DEFAULT_POLICY.half_life_days,
        ),
    )
    plan, dataset = built.plan, built.dataset
    path = batch_io.write_parquet_atomic(
        dataset, dvc.repo_dir / "artifacts" / "training_dataset.parquet"
    )
    data_md5 = dvc.track(path).md5
    lap("training_dataset")
    # validated_dataset
    frame = pd.read_parquet(dvc.cache_path(data_md5))
    result = validate_frame(frame, schema, extra_columns=(split, batch_col, weight))
    if not result.success:
        raise RuntimeError(result.summary())
    lap("validated_dataset")
    # candidate_model
    frame = pd.read_parquet(dvc.cache_path(data_md5))
    train_rows = frame[frame[split] == "train"]
    params = TrainParams()
    trained = train(train_rows, schema, params, weights=train_rows[weight].to_numpy())
    example = prepare_features(train_rows.head(5), schema)
    model_md5 = dvc.track(trained.save(dvc.repo_dir / "artifacts" / "candidate_model.txt")).md5
    uri = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("retraining_assets")
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(
            "retraining_assets", artifact_location=(home / "mlflow" / "artifacts").as_uri()
        )
    )
    tags = {"script/run": run_name, "dvc/dataset_md5": data_md5, "dvc/model_md5": model_md5}
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
        mlflow.log_params({**params.as_dict(), "strategy": plan.strategy, "trainer": "local"})
        mlflow.log_params(
            {
                "data_version": data_md5,
                "train_batches": ",".join(plan.window.train_batches),
                "test_batches": ",".join(plan.window.test_batches),
                "n_train": trained.n_train,
                "n_valid": trained.n_valid,
            }
        )
        mlflow.log_metrics(
            {"training_seconds": trained.train_seconds, "best_iteration": trained.best_iteration}
        )
        info = mlflow.lightgbm.log_model(
            trained.booster,
            name="model",
            signature=infer_signature(example, trained.booster.predict(example, num_threads=1)),
            registered_model_name="retraining_model",
            pip_requirements=[f"{p}=={version(p)}" for p in ("lightgbm", "pandas", "numpy")],
        )
        run_id = run.info.run_id
    lap("candidate_model")
    # evaluation_report
    frame = pd.read_parquet(dvc.cache_path(data_md5))
    train_rows, test = frame[frame[split] == "train"], frame[frame[split] == "test"]
    candidate = load_model(dvc.cache_path(model_md5))
    cand_eval, cand_proba = evaluate_model(
        "candidate", candidate, test, schema, latency_calls=LATENCY_CALLS
    )
    y_test = test[schema.target].to_numpy()
    base = baseline_metrics(train_rows[schema.target].to_numpy(), y_test)
    curves = {"candidate": (y_test, cand_proba)}
    current = production.current()
    prod_eval = delong = None
    if current is not None:
        from retraining_assets.core.delong import delong_test

        prod_eval, prod_proba = evaluate_model(
            "production", production.booster(current), test, schema, latency_calls=LATENCY_CALLS
        )
        curves["production"] = (y_test, prod_proba)
        delong = delong_test(y_test, cand_proba, prod_proba)
    decision = decide_promotion(
        ModelScore(cand_eval.metrics.auc, cand_eval.metrics.log_loss, cand_eval.latency.p95_ms),
        ModelScore(prod_eval.metrics.auc, prod_eval.metrics.log_loss, prod_eval.latency.p95_ms)
        if prod_eval
        else None,
        ModelScore(auc=base.auc, log_loss=base.log_loss, p95_latency_ms=0.0),
        GatePolicy(),
        identical_to_champion=current is not None and current.model_md5 == model_md5,
        test_counts=(int(y_test.sum()), int(len(y_test) - y_test.sum())),
    )
    plot = plot_roc(curves, dvc.repo_dir / "reports" / f"roc_{model_md5[:12]}.png", title="ROC")
    metrics = {"test_auc": cand_eval.metrics.auc, "p95_latency_ms": cand_eval.latency.p95_ms}
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if not math.isnan(v)],
        tags=[
            RunTag("gate/verdict", decision.verdict),
            RunTag("gate/reasons", " | ".join(decision.reasons)),
        ],
    )
    client.log_artifact(run_id, str(plot), artifact_path="evaluation")
    lap("evaluation_report")
    # production_model: the champion alias checked against production first (repaired if a
    # run died between the two), as ``reconcile_alias`` does.
    if current is not None:
        alias = client.get_model_version_by_alias("retraining_model", "champion")
        if alias.version != current.registered_version:
            client.set_registered_model_alias(
                "retraining_model", "champion", current.registered_version
            )
    if decision.promote:
        model_bytes = dvc.cache_path(model_md5).read_bytes()
        assert md5_hex(model_bytes) == model_md5
        record = production.promote(
            model_bytes,
            expected_current=current.version if current else None,
            reason="; ".join(decision.reasons),
            mlflow_run_id=run_id,
            mlflow_model_uri=info.model_uri,
            registered_version=str(info.registered_model_version),
            dataset_md5=data_md5,
            metrics={"auc": cand_eval.metrics.auc},
            extra={"train_batches": list(plan.window.train_batches)},
            changed_by=run_name,
        )
        client.set_registered_model_alias("retraining_model", "champion", record.registered_version)
        outcome = f"production v{record.version}"
        client.set_model_version_tag(
            "retraining_model", str(info.registered_model_version), "gate", outcome
        )

        def flat(evaluation: Any) -> dict[str, Any]:
            metrics = evaluation.as_dict()
            return {**metrics["metrics"], "p95_latency_ms": metrics["latency"]["p95_ms"]}

        card = build_model_card(
            version=record.version,
            model_md5=model_md5,
            dataset_md5=data_md5,
            strategy=plan.strategy,
            train_batches=plan.window.train_batches,
            test_batches=plan.window.test_batches,
            params=params.as_dict(),
            candidate_metrics=flat(cand_eval),
            production_metrics=flat(prod_eval) if prod_eval else None,
            production_version=current.version if current else None,
            delong=delong.as_dict() if delong else None,
            reasons=decision.reasons,
            trigger={"retraining/trigger": "manual"},
            code_versions={},
            code_commit="script",
            mlflow_run_id=run_id,
            dagster_run_id="none",
        )
        client.log_text(run_id, render_model_card(card), "model_card/model_card.md")
        client.log_dict(run_id, card, "model_card/model_card.json")
        client.log_batch(run_id, tags=[RunTag("promotion", outcome)])
    lap("production_model")
    return {
        "steps": steps,
        "auc": cand_eval.metrics.auc,
        "p95_ms": cand_eval.latency.p95_ms,
        "promoted": decision.promote,
    }


def child_same_work(template: Path) -> dict[str, Any]:
    """Import what the same-work script needs, then run it twice (cold, warm) on fresh state.

    Same state handling as the Dagster child: a fresh ``RETRAINING_HOME`` with the pre-migrated
    MLflow store per cycle, so both cycles promote a first model.
    """
    started = time.perf_counter()
    import pandas  # noqa: F401

    from retraining_assets.libraries import preload

    # As the project's own functions import them (``preload``: collector paused, heap frozen),
    # so that both contenders' processes carry the same collector work.
    preload("great_expectations", "lightgbm", "mlflow.lightgbm")
    import retraining_assets.core.evaluation
    import retraining_assets.core.registry
    import retraining_assets.core.training
    import retraining_assets.core.validation
    import retraining_assets.core.versioning  # noqa: F401

    import_s = time.perf_counter() - started
    ingested = _ingest_records()
    cycles = []
    for i in range(2):
        home = _fresh_home(template)
        t0 = time.perf_counter()
        out = _same_work_cycle(f"script-{i}", ingested)
        cycles.append({"cycle": time.perf_counter() - t0, **out})
        shutil.rmtree(home.parent, ignore_errors=True)
    return _two_cycles(import_s, cycles)


def child_profile(template: Path, out_dir: Path) -> dict[str, Any]:
    """Profile one cold and one warm Dagster cycle; stats files go to ``out_dir``.

    The cold profile holds the imports and the first ``execute_in_process``; creating the
    temporary Dagster instance is left out of both (a deployment has its instance already).
    """
    import cProfile

    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    import dagster  # noqa: F401  (profiled with the imports)

    from retraining_assets.definitions import defs

    job = defs.resolve_job_def("retraining_job")
    profiler.disable()
    imports_s = time.perf_counter() - started
    walls = []
    for i in range(2):
        home = _fresh_home(template)
        with _instance() as instance:
            _record_ingested(instance)
            t0 = time.perf_counter()
            profiler.enable()
            job.execute_in_process(instance=instance, run_config=_run_config())
            profiler.disable()
            walls.append(time.perf_counter() - t0 + (imports_s if i == 0 else 0.0))
            profiler.dump_stats(str(out_dir / f"{'cold' if i == 0 else 'warm'}.prof"))
            profiler = cProfile.Profile()
        shutil.rmtree(home.parent, ignore_errors=True)
    return {"cold": walls[0], "warm": walls[1]}


def child_imports(module: str) -> dict[str, Any]:
    """Seconds to import ``module`` after dagster and pandas (shared by everything)."""
    import dagster  # noqa: F401

    if module != "pandas":
        import pandas  # noqa: F401
    started = time.perf_counter()
    __import__(module)
    return {"seconds": time.perf_counter() - started}


def child_template(path: Path) -> dict[str, Any]:
    """Create and migrate an empty MLflow SQLite store at ``path``."""
    from mlflow import MlflowClient

    started = time.perf_counter()
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return {"seconds": time.perf_counter() - started}


# --- parent -----------------------------------------------------------------------------------


def _env(pyc: bool) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GX_ANALYTICS_ENABLED": "false"}
    env["RETRAINING_BATCHES_DIR"] = str(BATCHES)
    if pyc:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def _run(*args: str, pyc: bool) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        env=_env(pyc),
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"child {args} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def _collector_clock() -> dict[str, float]:
    """Seconds this process spends in the cyclic garbage collector, and its full collections.

    ``gc.callbacks`` reports the start and the end of every collection; the dict returned is
    filled as the process runs (``seconds``, ``full``: generation-2 collections).
    """
    import gc

    clock = {"seconds": 0.0, "full": 0}
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        clock["seconds"] += time.perf_counter() - started[0]
        clock["full"] += int(info["generation"] == 2)

    gc.callbacks.append(callback)
    return clock


def _median(values) -> float:
    return statistics.median(list(values))


def _compare(
    template: Path, repeats: int, pyc: bool, stock: bool = False
) -> dict[str, list[dict[str, Any]]]:
    label = "bytecode cache (.pyc)" if pyc else "no bytecode cache (as configured here)"
    window = os.environ.get(WINDOW_ENV, "8")
    runs: dict[str, list[dict[str, Any]]] = {
        "dagster": [],
        "same_work": [],
        "script": [],
        "noop": [],
    }
    if stock:
        runs["dagster_stock"] = []
    for _ in range(repeats):
        for name in runs:  # alternate: dagster, same_work, script, noop, dagster, ...
            with_state = name in ("dagster", "same_work", "dagster_stock")
            args = (name, str(template)) if with_state else (name,)
            result, wall = _run(*args, pyc=pyc)
            runs[name].append({**result, "process": wall})
    print()
    print(
        f"== one cycle, {window} training weeks + 1 test week, {label}:"
        f" {repeats} alternating runs per contender, medians (s)"
    )
    print(
        f"{'':28} {'dagster':>9} {'same-work':>9} {'ratio':>7}"
        f" {'script':>9} {'ratio':>7} {'noop':>7} {'floor':>7}"
    )
    for key, text in (
        ("import", "imports of the entry module"),
        ("cold", "cold: imports + 1st cycle"),
        ("warm", "warm: 2nd cycle in process"),
        ("process", "whole process (2 cycles)"),
    ):
        dag, same, scr, noop = (
            _median(r[key] for r in runs[n]) for n in ("dagster", "same_work", "script", "noop")
        )
        floor = (scr + noop) / scr if key in ("cold", "warm") else float("nan")
        print(
            f"{text:28} {dag:9.2f} {same:9.2f} {dag / same:7.2f}"
            f" {scr:9.2f} {dag / scr:7.2f} {noop:7.2f} {floor:7.2f}"
        )
    for key, text in (("seconds", "  of it in the gc collector"), ("full", "  full collections")):
        dag, same, scr, noop = (
            _median(r["collector"][key] for r in runs[n])
            for n in ("dagster", "same_work", "script", "noop")
        )
        print(f"{text:28} {dag:9.2f} {same:9.2f} {'':7} {scr:9.2f} {'':7} {noop:7.2f}")
    if stock:
        print(f"{'on Dagster own storage:':28} {'dagster':>9} {'same-work':>9} {'ratio':>7}")
        for key, text in (("cold", "  cold"), ("warm", "  warm")):
            dag, same = (_median(r[key] for r in runs[n]) for n in ("dagster_stock", "same_work"))
            print(f"{text:28} {dag:9.2f} {same:9.2f} {dag / same:7.2f}")
    for key in ("cold", "warm"):
        for other in ("same_work", "script", *(("dagster_stock",) if stock else ())):
            pairs = zip(runs["dagster"], runs[other], strict=True)
            ratios = [d[key] / o[key] for d, o in pairs]
            print(
                f"  {key} dagster / {other} per alternating pair: "
                + ", ".join(f"{r:.2f}" for r in ratios)
            )
    aucs = {
        name: sorted({round(c["auc"], 6) for r in rs for c in r["cycles"]})
        for name, rs in runs.items()
        if name != "noop"
    }
    same = all(value == aucs["script"] for value in aucs.values())
    promoted = {
        n: sorted({c["promoted"] for r in runs[n] for c in r["cycles"]})
        for n in ("dagster", "same_work")
    }
    print(
        f"  test AUC {aucs} (same model: {same}); promoted: dagster {promoted['dagster']},"
        f" same-work {promoted['same_work']}"
    )
    print(
        "  noop = the same 5-asset job with empty bodies (Dagster alone); floor = (script + noop)"
        " / script, the ratio if GE, MLflow and DVC cost nothing"
    )
    print(
        "  same-work = the job's work as a plain script (GE, MLflow + registry, DVC, train,"
        " evaluate, promote)"
    )
    print("  targets: dagster / same-work <= 1.2 warm (issue 15); dagster / script <= 1.5")
    return runs


def _compare_executors(template: Path, repeats: int) -> None:
    """The job's in-process executor against Dagster's multiprocess executor, alternating."""
    runs: dict[str, list[dict[str, Any]]] = {"dagster": [], "multiprocess": []}
    for _ in range(repeats):
        for name in runs:
            result, _ = _run(name, str(template), pyc=True)
            runs[name].append(result)
    print()
    print(
        f"== executor, {os.environ.get(WINDOW_ENV, '8')} training weeks, with .pyc:"
        f" {repeats} alternating runs, medians (s)"
    )
    print(f"{'':28} {'in_process':>11} {'multiprocess':>13} {'ratio':>7}")
    for key, text in (("cold", "cold: imports + 1st cycle"), ("warm", "2nd cycle in process")):
        inproc = _median(r[key] for r in runs["dagster"])
        multi = _median(r[key] for r in runs["multiprocess"])
        print(f"{text:28} {inproc:11.2f} {multi:13.2f} {multi / inproc:7.2f}")
    ok = all(c["success"] for r in runs["multiprocess"] for c in r["cycles"])
    print(f"  multiprocess runs succeeded: {ok}; its steps start cold on every cycle")


def _print_steps(runs: dict[str, list[dict[str, Any]]]) -> None:
    print()
    print("== Dagster cycle by step (event timestamps), medians over runs (s)")
    print(f"{'step':32} {'cold':>8} {'warm':>8} {'cold-warm':>10}")
    keys = [*STEPS, "between steps", "run (RUN_START..RUN_SUCCESS)"]
    for key in keys:
        cold = _median(r["cycles"][0]["steps"].get(key, 0.0) for r in runs["dagster"])
        warm = _median(r["cycles"][1]["steps"].get(key, 0.0) for r in runs["dagster"])
        print(f"{key:32} {cold:8.2f} {warm:8.2f} {cold - warm:10.2f}")
    for key, text in (
        ("cycle", "execute_in_process wall"),
        ("instance_setup", "instance_for_test"),
    ):
        cold = _median(r["cycles"][0][key] for r in runs["dagster"])
        warm = _median(r["cycles"][1][key] for r in runs["dagster"])
        print(f"{text:32} {cold:8.2f} {warm:8.2f} {cold - warm:10.2f}")
    print()
    print("== bare script by part (s), warm cycle medians")
    for key in ("load", "train", "evaluate"):
        value = _median(r["cycles"][1]["steps"][key] for r in runs["script"])
        print(f"{key:32} {value:8.2f}")
    print()
    print("== Dagster warm cycle by component (wrapped functions, wall s; indented = inside above)")
    print(f"{'step / component':48} {'median s':>9} {'calls':>6}")
    for step in (*STEPS, "outside"):
        step_s = _median(r["cycles"][1]["steps"].get(step, 0.0) for r in runs["dagster"])
        tops = []
        lines = []
        for label, _, _ in COMPONENTS:
            entries = [r["by_step"].get(step, {}).get(label) for r in runs["dagster"]]
            if all(e is None for e in entries):
                continue
            values = [e[0] if e else 0.0 for e in entries]
            calls = max(int(e[1]) for e in entries if e)
            lines.append(f"  {label:46} {_median(values):9.3f} {calls:6d}")
            if not label.startswith("  "):
                tops.append(values)
        if not lines:
            continue
        if step == "outside":
            print("outside any step")
        else:
            print(f"{step:48} {step_s:9.3f}")
        print("\n".join(lines))
        if step != "outside":
            covered = [sum(col) for col in zip(*tops, strict=True)] if tops else [0.0]
            rest = [
                r["cycles"][1]["steps"].get(step, 0.0) - c
                for r, c in zip(runs["dagster"], covered, strict=True)
            ]
            print(f"  {'rest of the step (Dagster, asset code)':46} {_median(rest):9.3f}")
    print("  (calls and seconds: those that started inside the step's interval)")


def _print_imports(repeats: int) -> None:
    print()
    print("== import time of each heavy library in a fresh process, after dagster + pandas (s)")
    print(f"{'module':22} {'with .pyc':>10} {'no .pyc':>9}")
    results: dict[tuple[str, bool], list[float]] = {}
    for _ in range(repeats):
        for module in HEAVY_IMPORTS:
            for pyc in (True, False):
                out, _ = _run("imports", module, pyc=pyc)
                results.setdefault((module, pyc), []).append(out["seconds"])
    for module in HEAVY_IMPORTS:
        print(
            f"{module:22} {_median(results[(module, True)]):10.2f}"
            f" {_median(results[(module, False)]):9.2f}"
        )
    print("  (each row alone in its own process; pandas: after dagster only, which lacks it)")


def _print_profile(path: Path, title: str, limit: int) -> None:
    import pstats

    stats = pstats.Stats(str(path))
    entries = stats.stats  # type: ignore[attr-defined]
    total = max(value[3] for value in entries.values())
    rows = sorted(entries.items(), key=lambda kv: -kv[1][3])

    def name(func: tuple[str, int, str]) -> str:
        filename, line, fn = func
        for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
            if marker in filename:
                filename = filename.split(marker)[-1]
                break
        return f"{filename}:{line}({fn})" if line else fn

    skip = (
        "(<module>)",
        "dagster/_core/executor",
        "dagster/_core/execution",
        "dagster/_core/definitions/job_definition",
        "dagster/_utils/__init__",
        "<frozen importlib",
        "contextlib.py",
        "builtins.next",
        "builtins.exec",
        "builtins.__import__",
        "cycle_vs_script.py",
        "mlflow/telemetry/track.py",
        "decorator_utils",
    )
    print()
    print(f"== cProfile, {title} Dagster cycle ({total:.1f} s profiled): top by cumulative time,")
    print(
        "   Dagster execution plumbing, importlib and wrappers left out, call chains of equal time"
    )
    print("   collapsed to the outermost (entries nest: cumulative times overlap)")
    print(f"   {'cumulative s':>12} {'self s':>8} {'calls':>7}  function")
    printed: list[float] = []
    for func, (_, ncalls, tottime, cumtime, _) in rows:
        label = name(func)
        if any(s in label for s in skip):
            continue
        if any(abs(c - cumtime) <= 0.01 * c + 0.005 for c in printed):
            continue  # a call chain with the same time: keep the outermost
        print(f"   {cumtime:12.2f} {tottime:8.2f} {ncalls:7d}  {label}")
        printed.append(cumtime)
        if len(printed) >= limit:
            break
    print("   top by self time:")
    for func, (_, ncalls, tottime, cumtime, _) in sorted(entries.items(), key=lambda kv: -kv[1][2])[
        :10
    ]:
        print(f"   {cumtime:12.2f} {tottime:8.2f} {ncalls:7d}  {name(func)}")
    imports = [v for f, v in entries.items() if f[2] == "_find_and_load"]
    if imports:
        print(
            f"   importlib _find_and_load, cumulative: {imports[0][3]:.2f} s; top-level packages:"
        )
        packages = sorted(
            (
                (value[3], name(func))
                for func, value in entries.items()
                if func[2] == "<module>"
                and func[0].endswith("/__init__.py")
                and func[0].split("site-packages/")[-1].count("/") == 1
            ),
            reverse=True,
        )
        for cumtime, label in packages[:10]:
            print(f"   {cumtime:12.2f}  import {label.split('/')[0]}")


def main() -> None:
    """Run the comparison and print the tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument("--skip-no-pyc", action="store_true", help="only the .pyc comparison")
    parser.add_argument(
        "--executors", action="store_true", help="also time the multiprocess executor"
    )
    parser.add_argument(
        "--windows",
        default="8,51",
        help="training weeks per comparison, comma-separated (51 = all history before the test)",
    )
    parser.add_argument(
        "--stock-storage",
        action="store_true",
        help="also run the job on Dagster's own SQLite storage (contender dagster_stock)",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, *rest = args.child
        collector = _collector_clock()
        if mode == "dagster":
            result = child_dagster(Path(rest[0]))
        elif mode == "dagster_stock":
            result = child_dagster(Path(rest[0]), stock=True)
        elif mode == "script":
            result = child_script()
        elif mode == "same_work":
            result = child_same_work(Path(rest[0]))
        elif mode == "noop":
            result = child_noop()
        elif mode == "multiprocess":
            result = child_multiprocess(Path(rest[0]))
        elif mode == "profile":
            result = child_profile(Path(rest[0]), Path(rest[1]))
        elif mode == "imports":
            result = child_imports(rest[0])
        else:
            result = child_template(Path(rest[0]))
        result["collector"] = collector
        print(json.dumps(result, default=float))
        return
    if not any(BATCHES.glob("*.parquet")):
        sys.exit(f"no batches in {BATCHES}: run `.venv/bin/retraining prepare-data` first")

    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "mlflow-template.db"
        made, _ = _run("template", str(template), pyc=True)
        print(f"pre-migrated MLflow store made once ({made['seconds']:.1f} s), copied per cycle")
        # Untimed warm-up: fills the bytecode cache and the OS file cache for both contenders.
        _run("dagster", str(template), pyc=True)
        _run("script", pyc=True)
        windows = [int(w) for w in args.windows.split(",")]
        for window in windows:
            os.environ[WINDOW_ENV] = str(window)
            runs = _compare(template, args.repeats, pyc=True, stock=args.stock_storage)
            _print_steps(runs)
        os.environ[WINDOW_ENV] = str(windows[0])
        if args.executors:
            _compare_executors(template, args.repeats)
        if not args.skip_no_pyc:
            nopyc = _compare(template, args.repeats, pyc=False)
            _print_steps(nopyc)
            _print_imports(args.repeats)
        if not args.skip_profile:
            out_dir = Path(tmp) / "profiles"
            out_dir.mkdir()
            walls, _ = _run("profile", str(template), str(out_dir), pyc=True)
            print()
            print(
                f"profiled (with .pyc): cold {walls['cold']:.1f} s (imports + cycle),"
                f" warm {walls['warm']:.1f} s; cProfile adds overhead to Python-heavy code"
            )
            _print_profile(out_dir / "cold.prof", "cold (imports + 1st cycle)", 30)
            _print_profile(out_dir / "warm.prof", "warm (2nd cycle)", 30)


if __name__ == "__main__":
    main()
