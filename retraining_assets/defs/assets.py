"""The retraining chain as software-defined assets.

Each body unpacks inputs, calls the core, and attaches metadata; the logic lives in
``retraining_assets.core``.
"""

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from retraining_assets.code_version import asset_code_version, code_commit, config_defaults
from retraining_assets.core.artifacts import DatasetRef, EvaluationReport, ModelRef
from retraining_assets.core.model_card import build_model_card, render_model_card
from retraining_assets.core.promotion import (
    Candidate,
    ChangeKind,
    ChangeResult,
    Decision,
    GatePolicy,
    GateResult,
    Lineage,
    ProductionChange,
    judge_candidate,
)
from retraining_assets.core.registry import (
    ProductionRecord,
    ProductionStore,
    md5_hex,
)
from retraining_assets.defs.alerts import AlertResource
from retraining_assets.defs.config import (
    CandidateModelConfig,
    GateConfig,
    RawBatchesConfig,
    TrainingDatasetConfig,
    ValidatedDatasetConfig,
)
from retraining_assets.defs.constants import GATE_TAG, OWNERS, RETRAINING_POOL, VALIDATION_GROUPS
from retraining_assets.defs.dask_resource import DaskResource, train_on_dask
from retraining_assets.defs.metadata import code_metadata, md_image, md_list
from retraining_assets.defs.partitions import BATCH_PARTITIONS, batch_partitions
from retraining_assets.defs.production import (
    apply_change,
    production_metadata,
    reconcile_alias,
    refused_as_failure,
)
from retraining_assets.defs.resources import (
    BatchSourceResource,
    DvcResource,
    MlflowResource,
    ProductionResource,
)
from retraining_assets.settings import BATCH_COLUMN, SPLIT_COLUMN, WEIGHT_COLUMN, DatasetSchema
from retraining_assets.storage import ObjectStore

if TYPE_CHECKING:
    from retraining_assets.core.dataset_build import BuiltDataset, ValidatedBatch
    from retraining_assets.core.training import TrainedModel
    from retraining_assets.core.validation import BatchCheck, ValidationResult

GROUP = "retraining"


@dg.asset(
    code_version=asset_code_version("raw_batches"),
    partitions_def=batch_partitions,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"pandas", "parquet"},
)
def raw_batches(
    context: dg.AssetExecutionContext, config: RawBatchesConfig, batch_source: BatchSourceResource
) -> dg.MaterializeResult:
    """One incoming batch file, checked against the dataset's Great Expectations suite.

    A batch that cannot be read or fails validation is not materialized and is moved aside into
    ``_quarantine/`` of the batch folder with a JSON reason file (md5, time, failed
    expectations): it never enters a training window and is never read again, until a new file
    is put back under its name (``new_batch_sensor`` then validates it again). Timestamps must
    lie in the batch's own period. A batch may arrive without its target column (labels are
    delayed): it is then checked without label expectations, and its labels are joined later
    from ``feedback/<batch_id>.parquet``. The md5 recorded here is the only version of the
    file that training will read.
    """
    schema, frequency = batch_source.resolved()
    store = batch_source.store()
    verdict = _checked_batch(
        store,
        context.partition_key,
        schema,
        frequency,
        cache=config.validation_cache,
        code_version=code_metadata(context)["code/version"],
    )
    assert verdict.frame is not None and verdict.md5 is not None
    return dg.MaterializeResult(
        metadata=_batch_metadata(context, store, verdict, schema),
        data_version=dg.DataVersion(verdict.md5),
    )


def _checked_batch(
    store: ObjectStore,
    batch_id: str,
    schema: DatasetSchema,
    frequency: str,
    *,
    cache: str | None = None,
    code_version: str = "",
) -> "BatchCheck":
    """The batch read and validated; a missing, misnamed or invalid one fails the run.

    An invalid batch is quarantined first, with the reason beside it. ``cache``: folder of
    passing suite results (see ``check_batch``).
    """
    from retraining_assets.core import batches as batch_io
    from retraining_assets.core.validation import check_batch

    try:
        verdict = check_batch(
            store, batch_id, schema, frequency=frequency, cache=cache, code_version=code_version
        )
    except batch_io.BatchNotFound as exc:
        gone = [r for r in batch_io.quarantined(store) if r.get("batch_id") == batch_id]
        where = f"; quarantined earlier as {gone[-1].get('quarantined_as')}" if gone else ""
        raise dg.Failure(description=f"batch {batch_id} rejected: {exc}{where}") from None
    except batch_io.InvalidBatchId as exc:
        raise dg.Failure(description=f"batch {batch_id!r} rejected: {exc}") from None
    if not verdict.ok:
        moved = batch_io.quarantine(store, verdict.key, verdict.reason())
        failures = len(verdict.result.failures()) if verdict.result else 0
        raise dg.Failure(
            description=f"batch {batch_id} rejected and quarantined as {moved}: "
            f"{verdict.message()}",
            metadata={
                "file": verdict.key,
                "quarantined_as": moved,
                "md5": verdict.md5 or "unreadable",
                "failed_expectations": failures,
            },
        )
    return verdict


def _batch_metadata(
    context: dg.AssetExecutionContext,
    store: ObjectStore,
    verdict: "BatchCheck",
    schema: DatasetSchema,
) -> dict[str, Any]:
    """What ``raw_batches`` records: the file, its md5 (the version training reads), period."""
    frame = verdict.frame
    assert frame is not None
    ts = frame[schema.timestamp]
    period = verdict.period
    return {
        "path": dg.MetadataValue.path(f"{store.location}/{verdict.key}"),
        "file": verdict.key,
        "dvc/md5": verdict.md5,
        **code_metadata(context),
        "rows": dg.MetadataValue.int(len(frame)),
        "start": str(ts.min()),
        "end": str(ts.max()),
        "period_start": str(period[0]) if period else str(ts.min()),
        "labelled": verdict.labelled,
        **(
            {"positive_rate": dg.MetadataValue.float(float(frame[schema.target].mean()))}
            if verdict.labelled
            else {}
        ),
    }


@dg.asset(
    code_version=asset_code_version("training_dataset", config_defaults(TrainingDatasetConfig)),
    pool=RETRAINING_POOL,
    deps=[raw_batches],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"pandas", "dvc"},
)
def training_dataset(
    context: dg.AssetExecutionContext,
    config: TrainingDatasetConfig,
    batch_source: BatchSourceResource,
    dvc: DvcResource,
    production: ProductionResource,
) -> dg.Output[DatasetRef]:
    """Rows of the labelled batches chosen by the training-data strategy, split by time.

    The test split is always the most recent batch(es), by each batch's period (never by file
    name). The training split depends on ``strategy``: ``rolling`` the ``window_batches`` before
    the test split, ``full`` all history, ``weighted`` all history with weights halving every
    ``half_life_days``, ``incremental`` only the batches newer than the production model's
    training data (the model then continues the production booster). Only batches that passed
    ``raw_batches`` validation are read, and only if their bytes still have the md5 recorded
    then; only labelled ones count (labels in the batch file or in its feedback file). A batch
    that is refused (changed since validation, unreadable, an unusable feedback file, which is
    quarantined, or rows that repeat another batch) is left out with its reason, and the window
    is chosen again without it: one bad file never blocks retraining on the others. The parquet
    file is tracked by DVC; its md5 is the data version.
    """
    from retraining_assets.core import batches as batch_io
    from retraining_assets.core.dataset_build import WindowError, WindowRequest, build_training_set

    schema = batch_source.dataset_schema()
    source = batch_source.store()
    files = batch_io.list_batches(source)
    validated, failed = _validated_batches(context, files)
    current = production.store().current()
    request = WindowRequest(
        strategy=config.strategy,
        as_of=config.as_of_batch or None,
        window_batches=config.window_batches,
        test_batches=config.test_batches,
        half_life_days=config.half_life_days,
        trained_through=Lineage.from_extra(current.extra).last_train_batch() if current else None,
    )
    warn = partial(context.log.warning, "batch %s left out of training: %s")
    try:
        built = build_training_set(source, schema, files, validated, failed, request, warn)
    except WindowError as exc:
        raise dg.Failure(description=str(exc)) from exc
    path, md5 = dvc.write_tracked(built.dataset, "artifacts/training_dataset.parquet")
    ref = _dataset_ref(built, path, md5, current)
    return dg.Output(
        ref,
        data_version=dg.DataVersion(md5),
        metadata=_dataset_metadata(context, built, ref, schema.target),
    )


def _dataset_ref(
    built: "BuiltDataset", path: Path, md5: str, current: ProductionRecord | None
) -> DatasetRef:
    """The reference the downstream steps read the dataset version by."""
    dataset, plan = built.dataset, built.plan
    n_test = int((dataset[SPLIT_COLUMN] == "test").sum())
    return DatasetRef(
        md5=md5,
        path=str(path),
        n_rows=len(dataset),
        n_train=len(dataset) - n_test,
        n_test=n_test,
        train_batches=plan.window.train_batches,
        test_batches=plan.window.test_batches,
        strategy=plan.strategy,
        half_life_days=plan.half_life_days,
        init_from_version=current.version if plan.continues_model and current else None,
    )


def _dataset_metadata(
    context: dg.AssetExecutionContext, built: "BuiltDataset", ref: DatasetRef, target: str
) -> dict[str, Any]:
    """What ``training_dataset`` shows: DVC identity, sizes, window and the batches left out."""
    return {
        "dvc/md5": ref.md5,
        "dvc/path": dg.MetadataValue.path(ref.path),
        **code_metadata(context),
        "rows": dg.MetadataValue.int(ref.n_rows),
        "train_rows": dg.MetadataValue.int(ref.n_train),
        "test_rows": dg.MetadataValue.int(ref.n_test),
        "train_batches": ", ".join(ref.train_batches),
        "test_batches": ", ".join(ref.test_batches),
        "strategy": ref.strategy,
        **(
            {"continues_production_version": dg.MetadataValue.int(ref.init_from_version)}
            if ref.init_from_version is not None
            else {}
        ),
        "excluded_rejected_batches": ", ".join(sorted(built.rejected)) or "none",
        "excluded_refused_batches": dg.MetadataValue.md(
            "\n".join(f"- {b}: {why}" for b, why in sorted(built.refused.items())) or "none"
        ),
        "excluded_unlabelled_batches": ", ".join(sorted(built.unlabelled)) or "none",
        "positive_rate": dg.MetadataValue.float(float(built.dataset[target].mean())),
    }


def _validated_batches(
    context: dg.AssetExecutionContext, batch_ids: list[str]
) -> tuple[dict[str, "ValidatedBatch"], set[str]]:
    """Listed batches that passed ``raw_batches`` last time, and known ones that failed.

    Returns:
        The passed batches with the md5 of their validated bytes, and every known batch whose
        latest attempt failed (quarantined files are no longer listed but still counted).
    """
    from retraining_assets.core.dataset_build import ValidatedBatch

    known = sorted(context.instance.get_dynamic_partitions(BATCH_PARTITIONS))
    if not known:
        return {}, set()
    status = context.instance.get_status_by_partition(raw_batches.key, known, batch_partitions)
    failed = {k for k, v in (status or {}).items() if v == dg.AssetPartitionStatus.FAILED}
    listed = set(batch_ids)
    status = {k: v for k, v in (status or {}).items() if k in listed}
    passed = sorted(
        k for k, v in (status or {}).items() if v == dg.AssetPartitionStatus.MATERIALIZED
    )
    out: dict[str, ValidatedBatch] = {}
    cursor = None
    while passed and len(out) < len(passed):
        page = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=raw_batches.key, asset_partitions=passed),
            limit=1000,
            cursor=cursor,
        )
        for record in page.records:  # newest first: the first seen per partition is current
            mat = record.asset_materialization
            if mat is None or mat.partition is None or mat.partition in out:
                continue
            md = {k: v.value for k, v in mat.metadata.items()}
            if "dvc/md5" not in md:
                continue
            start = md.get("period_start") or md.get("start")
            out[mat.partition] = ValidatedBatch(
                md5=str(md["dvc/md5"]),
                labelled=bool(md.get("labelled", True)),
                start=str(start) if start is not None else None,
                order=record.storage_id,
            )
        if not page.has_more:
            break
        cursor = page.cursor
    return out, failed


@dg.asset(
    code_version=asset_code_version("validated_dataset"),
    pool=RETRAINING_POOL,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"pandas", "dvc"},
    check_specs=[
        dg.AssetCheckSpec(
            name=f"ge_{group}",
            asset="validated_dataset",
            blocking=True,
            description=f"Great Expectations suite, '{group}' expectations.",
        )
        for group in VALIDATION_GROUPS
    ],
)
def validated_dataset(
    context: dg.AssetExecutionContext,
    config: ValidatedDatasetConfig,
    training_dataset: DatasetRef,
    batch_source: BatchSourceResource,
    dvc: DvcResource,
):
    """The training dataset after it passed the Great Expectations suite (same bytes, same md5).

    Each group of expectations is reported as a blocking asset check. If any fails, the asset is
    not materialized and the run stops here: nothing downstream trains on unvalidated data.
    """
    from retraining_assets.core.validation import validate_frame
    from retraining_assets.core.validation_cache import validate_cached, validation_key

    schema = batch_source.dataset_schema()
    # Read only when the suite runs or names the bad batches: a cached pass needs no rows.
    frame = cache(partial(dvc.read_dataset, training_dataset.md5))
    extra = (SPLIT_COLUMN, BATCH_COLUMN, WEIGHT_COLUMN)
    result = validate_cached(
        config.validation_cache,
        validation_key(
            dataset_md5=training_dataset.md5,
            schema=schema,
            options={"extra_columns": extra},
            code_version=code_metadata(context)["code/version"],
        ),
        lambda: validate_frame(frame(), schema, extra_columns=extra),
    )
    checks = _validation_checks(result)
    if not result.success:
        # No materialization: the failed results are recorded (against no new materialization)
        # and the run stops here.
        yield from checks
        raise _validation_failure(training_dataset.md5, frame(), schema, result)
    ref = DatasetRef(**{**training_dataset.__dict__, "validated": True})
    # The output first, then the check results: Dagster ties a check result to the latest
    # materialization of its asset when the result is recorded, so results yielded before the
    # output were shown against the previous run's materialization.
    yield dg.Output(
        ref,
        data_version=dg.DataVersion(ref.md5),
        metadata={
            "dvc/md5": ref.md5,
            **code_metadata(context),
            "rows": dg.MetadataValue.int(ref.n_rows),
            "expectations": dg.MetadataValue.int(len(result.outcomes)),
            "validation_seconds": dg.MetadataValue.float(round(result.duration_s, 3)),
        },
    )
    yield from checks


def _validation_failure(
    md5: str, frame: Any, schema: DatasetSchema, result: "ValidationResult"
) -> dg.Failure:
    """The failure that stops the run, naming the batches that fail the suite on their own."""
    culprits = _failing_batches(frame, schema) if BATCH_COLUMN in frame else []
    return dg.Failure(
        description=f"training dataset {md5} failed validation"
        + (f" (bad batches: {', '.join(culprits)})" if culprits else "")
        + f": {result.summary()}",
        metadata={"bad_batches": ", ".join(culprits) or "unknown"},
    )


def _validation_checks(result: "ValidationResult") -> list[dg.AssetCheckResult]:
    """One blocking check result per group of expectations, with the failed ones listed."""
    groups = result.by_group()
    return [
        dg.AssetCheckResult(
            check_name=f"ge_{group}",
            asset_key="validated_dataset",
            passed=not failed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "expectations": len(outcomes),
                "failed": len(failed),
                "details": dg.MetadataValue.md(
                    "\n".join(f"- `{o.column}`: {o.observed}" for o in failed) or "all passed"
                ),
            },
        )
        for group in VALIDATION_GROUPS
        for outcomes in [groups.get(group, [])]
        for failed in [[o for o in outcomes if not o.success]]
    ]


def _failing_batches(frame, schema) -> list[str]:
    """Which batches of a dataset fail the suite on their own (only run after a failure)."""
    from dataclasses import replace

    from retraining_assets.core.validation import validate_frame

    # A single batch may legitimately hold fewer rows than a whole dataset needs.
    per_batch = replace(schema, min_rows=1)
    return [
        str(batch_id)
        for batch_id, part in frame.groupby(BATCH_COLUMN, sort=True)
        if not validate_frame(part, per_batch, extra_columns=(SPLIT_COLUMN, BATCH_COLUMN)).success
    ]


def _model_requirements() -> list[str]:
    """What the logged model needs to be served: LightGBM, pandas, numpy at today's versions."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("lightgbm", "pandas", "numpy")]


@dg.asset(
    code_version=asset_code_version("candidate_model", config_defaults(CandidateModelConfig)),
    pool=RETRAINING_POOL,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"lightgbm", "mlflow", "dvc"},
)
def candidate_model(
    context: dg.AssetExecutionContext,
    config: CandidateModelConfig,
    validated_dataset: DatasetRef,
    batch_source: BatchSourceResource,
    dvc: DvcResource,
    mlflow: MlflowResource,
    production: ProductionResource,
    dask: DaskResource,
) -> dg.Output[ModelRef]:
    """A LightGBM model trained on the validated training split, logged and registered in MLflow.

    Saved in LightGBM's text format, tracked by DVC (md5 = data version). The MLflow run of this
    cycle records the dataset's DVC md5, the hyper-parameters, the trainer, training time and
    metrics; the evaluation and promotion steps add to the same run. ``trainer: dask`` trains the
    same model with ``lightgbm.dask`` on the ``dask`` resource's cluster.
    """
    if not validated_dataset.validated:
        raise dg.Failure(description="refusing to train on a dataset that was not validated")
    code_version = code_metadata(context)["code/version"]
    trained, example = _train(
        config, validated_dataset, code_version, batch_source, dvc, production, dask
    )
    store = dvc.store()
    model_path = trained.save(store.repo_dir / "artifacts" / "candidate_model.txt")
    tracked = dvc.track(model_path)
    run_id, model_uri, registered_version = mlflow.log_trained_model(
        run_name=f"cycle-{context.run_id[:8]}",
        tags=_run_tags(context, mlflow, validated_dataset, tracked.md5),
        params=_run_params(config, validated_dataset, trained),
        metrics=_run_metrics(trained),
        booster=trained.booster,
        example=example,
        pip_requirements=_model_requirements(),
        model_file=model_path,
    )
    ref = ModelRef(
        md5=tracked.md5,
        path=str(model_path),
        dataset_md5=validated_dataset.md5,
        mlflow_run_id=run_id,
        mlflow_model_uri=model_uri,
        registered_name=mlflow.registered_model_name,
        registered_version=registered_version,
        **_training_fields(config, validated_dataset, trained),
    )
    metadata = _model_metadata(context, ref, mlflow, trained.valid_auc)
    return dg.Output(ref, data_version=dg.DataVersion(tracked.md5), metadata=metadata)


def _training_fields(
    config: CandidateModelConfig, dataset: DatasetRef, trained: "TrainedModel"
) -> dict[str, Any]:
    """The fields of a model's reference that say how, and on which data, it was trained."""
    return {
        "params": {**config.train_params().as_dict(), "trainer": config.trainer},
        "best_iteration": trained.best_iteration,
        "train_seconds": trained.train_seconds,
        "strategy": dataset.strategy,
        "train_batches": dataset.train_batches,
        "test_batches": dataset.test_batches,
        "init_from_version": dataset.init_from_version,
    }


def _run_metrics(trained: "TrainedModel") -> dict[str, float]:
    """The MLflow run's metrics: training time, best iteration, validation AUC if measured."""
    return {
        "training_seconds": trained.train_seconds,
        "best_iteration": trained.best_iteration,
        **({"valid_auc": trained.valid_auc} if trained.valid_auc is not None else {}),
    }


def _run_tags(
    context: dg.AssetExecutionContext, mlflow: MlflowResource, dataset: DatasetRef, model_md5: str
) -> dict[str, str]:
    """The MLflow run's tags: the Dagster run (with a link back), data and model versions, code."""
    return {
        "dagster/run_id": context.run_id,
        "dvc/dataset_md5": dataset.md5,
        "dvc/model_md5": model_md5,
        "dagster/run_url": mlflow.dagster_run_url(context.run_id),
        "code/version": code_metadata(context)["code/version"],
        "code/commit": code_commit(),
    }


def _train(
    config: CandidateModelConfig,
    dataset: DatasetRef,
    code_version: str,
    batch_source: BatchSourceResource,
    dvc: DvcResource,
    production: ProductionResource,
    dask: DaskResource,
) -> tuple["TrainedModel", Any]:
    """Train the candidate on the dataset's training split, here or on the dask cluster.

    A local training is looked up in ``config.training_cache`` first (never a continued model's:
    its result depends on the booster it continues).

    Returns:
        The trained model and five input rows (the logged model's signature example).
    """
    from retraining_assets.core.training import train_candidate, training_example
    from retraining_assets.core.training_cache import train_cached, training_key

    schema = batch_source.dataset_schema()
    params = config.train_params()
    init_model = None
    if dataset.init_from_version is not None:
        # Incremental: continue the booster that was serving when the dataset was built.
        prod_store = production.store()
        init_model = prod_store.booster(prod_store.record(dataset.init_from_version))
    if config.trainer == "dask":
        return train_on_dask(dask, dvc.dataset_file(dataset.md5), schema, params, init_model)
    frame = dvc.read_dataset(dataset.md5)
    trained = train_cached(
        config.training_cache if init_model is None else None,
        training_key(
            dataset_md5=dataset.md5,
            params=params.as_dict(),
            strategy=dataset.strategy,
            code_version=code_version,
            extra={"half_life_days": dataset.half_life_days},
        ),
        params,
        lambda: train_candidate(frame, schema, params, init_model=init_model),
    )
    return trained, training_example(frame, schema)


def _run_params(
    config: CandidateModelConfig, dataset: DatasetRef, trained: "TrainedModel"
) -> list[dict[str, Any]]:
    """The MLflow run's parameters: how the model was trained, then on which data."""
    return [
        {
            **config.train_params().as_dict(),
            "strategy": dataset.strategy,
            "half_life_days": dataset.half_life_days,
            "init_from_version": dataset.init_from_version,
            "init_trees": trained.extra.get("init_trees", 0),
            "trainer": config.trainer,
        },
        {
            "data_version": dataset.md5,
            "train_batches": ",".join(dataset.train_batches),
            "test_batches": ",".join(dataset.test_batches),
            "n_train": trained.n_train,
            "n_valid": trained.n_valid,
        },
    ]


def _model_metadata(
    context: dg.AssetExecutionContext,
    ref: ModelRef,
    mlflow: MlflowResource,
    valid_auc: float | None,
) -> dict[str, Any]:
    """What ``candidate_model`` shows: DVC and MLflow identities, training time and score."""
    return {
        "dvc/md5": ref.md5,
        "dvc/dataset_md5": ref.dataset_md5,
        "mlflow/run_id": ref.mlflow_run_id,
        "mlflow/model_uri": ref.mlflow_model_uri,
        "mlflow/registered_version": f"{ref.registered_name} v{ref.registered_version}",
        "mlflow/run_url": dg.MetadataValue.url(mlflow.run_url(ref.mlflow_run_id)),
        "training_seconds": dg.MetadataValue.float(round(ref.train_seconds, 3)),
        "best_iteration": dg.MetadataValue.int(ref.best_iteration),
        "valid_auc": dg.MetadataValue.float(valid_auc or float("nan")),
        "trainer": ref.params["trainer"],
        **code_metadata(context),
    }


@dg.asset(
    code_version=asset_code_version("evaluation_report", config_defaults(GateConfig)),
    pool=RETRAINING_POOL,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"lightgbm", "mlflow"},
    check_specs=[
        dg.AssetCheckSpec(
            name="gate_passed",
            asset="evaluation_report",
            description="The gate promotes the candidate. A rejection is a warning, not a failed"
            " run: production is untouched, and the reasons are in the check's metadata.",
        )
    ],
)
def evaluation_report(
    context: dg.AssetExecutionContext,
    config: GateConfig,
    validated_dataset: DatasetRef,
    candidate_model: ModelRef,
    batch_source: BatchSourceResource,
    dvc: DvcResource,
    production: ProductionResource,
    mlflow: MlflowResource,
):
    """Candidate vs current production model on the same held-out test set, with the gate verdict.

    Reports AUC, log loss and p95 single-row latency for both, the paired DeLong test of their AUC
    difference (CI and p-value), the test-set size and positives, a ROC plot (unless
    ``roc_plot`` is off), and whether the gate
    (``GateConfig``) promotes the candidate, with a reason per rule. Below
    ``min_test_positives`` it refuses to decide.
    """
    from retraining_assets.core.training import load_model

    current, champion = _champion(production)
    store = dvc.store()
    gate = judge_candidate(
        dvc.read_dataset(validated_dataset.md5),
        batch_source.dataset_schema(),
        load_model(store.cache_path(candidate_model.md5)),
        champion,
        # GateConfig holds every GatePolicy field, under the same name.
        policy=GatePolicy(**{f: getattr(config, f) for f in GatePolicy.__dataclass_fields__}),
        latency_calls=config.latency_calls,
        identical_to_champion=current is not None and current.model_md5 == candidate_model.md5,
        plot_path=(
            store.repo_dir / "reports" / f"roc_{candidate_model.md5[:12]}.png"
            if config.roc_plot
            else None
        ),
        test_batches=validated_dataset.test_batches,
        mode=config.mode,
        shadow_batches=config.shadow_batches,
        champion_latency=config.champion_latency,
    )
    _record_verdict(context, mlflow, gate, candidate_model.mlflow_run_id)
    metadata = _evaluation_metadata(context, gate, candidate_model.mlflow_run_id, current)
    yield dg.Output(gate.report, metadata=metadata)
    yield _gate_check(gate.decision)


def _gate_check(decision: Decision) -> dg.AssetCheckResult:
    """``gate_passed``: a warning when the gate rejects, with its reasons."""
    return dg.AssetCheckResult(
        check_name="gate_passed",
        asset_key="evaluation_report",
        passed=decision.promote,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"verdict": decision.verdict, "reasons": md_list(decision.reasons)},
    )


def _record_verdict(
    context: dg.AssetExecutionContext, mlflow: MlflowResource, gate: GateResult, run_id: str
) -> None:
    """The gate's scores, verdict and ROC plot on the candidate's MLflow run; a run tag."""
    decision = gate.decision
    gate_tags = {"gate/verdict": decision.verdict, "gate/reasons": " | ".join(decision.reasons)}
    mlflow.log_to_run(run_id, gate.run_metrics(), gate_tags)
    if gate.plot is not None:
        mlflow.log_artifact(run_id, gate.plot, artifact_path="evaluation")
    # The verdict on the run itself (filterable in the runs list), not only in its event log.
    context.instance.add_run_tags(context.run_id, {GATE_TAG: decision.verdict})
    if not decision.promote:
        context.log.warning("GATE REJECTED the candidate: %s", "; ".join(decision.reasons))


def _champion(
    production: ProductionResource,
) -> tuple[ProductionRecord | None, tuple[ProductionRecord, Any] | None]:
    """The serving version and its booster (``None`` before the first promotion).

    The champion's bytes are verified against their md5: an edited or corrupt model is a clear
    failure, never scored by the gate.
    """
    store = production.store()
    with refused_as_failure("cannot load the production model"):
        current = store.current()
        return current, ((current, store.booster(current)) if current is not None else None)


def _evaluation_metadata(
    context: dg.AssetExecutionContext,
    gate: GateResult,
    run_id: str,
    current: ProductionRecord | None,
) -> dict[str, Any]:
    """What ``evaluation_report`` shows: both models' scores, DeLong, verdict, ROC, report."""
    cand, prod, delong = gate.candidate, gate.production, gate.delong
    nan = float("nan")
    delong_md: dict[str, Any] = {}
    if delong:
        delong_md = {
            "delong/difference": dg.MetadataValue.float(delong.difference),
            "delong/ci_low": dg.MetadataValue.float(delong.ci_low),
            "delong/ci_high": dg.MetadataValue.float(delong.ci_high),
            "delong/p_value": dg.MetadataValue.float(delong.p_value),
            "delong/summary": delong.summary(),
        }
    return {
        "auc": dg.MetadataValue.float(cand.metrics.auc),
        "production_auc": dg.MetadataValue.float(prod.metrics.auc if prod else nan),
        "baseline_auc": dg.MetadataValue.float(gate.baseline.auc),
        "log_loss": dg.MetadataValue.float(cand.metrics.log_loss),
        "production_log_loss": dg.MetadataValue.float(prod.metrics.log_loss if prod else nan),
        "p95_latency_ms": dg.MetadataValue.float(cand.latency.p95_ms),
        "test_rows": dg.MetadataValue.int(cand.metrics.n_rows),
        "test_positives": dg.MetadataValue.int(cand.metrics.n_positive),
        **delong_md,
        "verdict": gate.decision.verdict,
        "compared_against": (
            f"production v{current.version}" if current else "constant baseline (first model)"
        ),
        "reasons": md_list(gate.decision.reasons),
        **({"roc": md_image(gate.plot, "ROC")} if gate.plot is not None else {}),
        "mlflow/run_id": run_id,
        **code_metadata(context),
        "report": dg.MetadataValue.json(json.loads(json.dumps(gate.report.__dict__, default=str))),
    }


@dg.asset(
    code_version=asset_code_version("production_model"),
    pool=RETRAINING_POOL,
    # Weekly cycles: no new model promoted for 8 days warns, for 15 days (two cycles rejected or
    # not run) fails. Evaluated by Dagster's freshness daemon (``freshness: enabled`` in
    # dagster.yaml); rejections (observations) do not refresh it, promotions do.
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=timedelta(days=15), warn_window=timedelta(days=8)
    ),
    group_name=GROUP,
    owners=OWNERS,
    kinds={"lightgbm", "mlflow", "dvc"},
    output_required=False,
)
def production_model(
    context: dg.AssetExecutionContext,
    evaluation_report: EvaluationReport,
    candidate_model: ModelRef,
    dvc: DvcResource,
    production: ProductionResource,
    mlflow: MlflowResource,
    alerts: AlertResource,
):
    """The model that serves: changed only when the gate in ``evaluation_report`` says promote.

    Promotion stores the candidate's exact bytes in the production store and creates the next
    version object, a compare-and-set against the version the gate judged against (if another
    run changed production meanwhile, this run fails and production keeps the other's change),
    then moves the MLflow alias ``champion`` (repaired at the start of the next run if this one
    dies first). A rejected candidate produces no materialization (production is untouched) and
    an observation with the gate's reasons. In shadow mode a passing candidate becomes the
    challenger instead (MLflow alias ``challenger``), decided later on live batches.
    """
    reconcile_alias(production, mlflow, context.log)
    store = production.store()
    with refused_as_failure():
        current = store.current()
    report = evaluation_report
    if not report.promote:
        yield from _rejected(context, report, candidate_model, current, mlflow, alerts)
        return
    shadow = report.mode == "shadow" and current is not None
    candidate = _candidate(context, dvc, candidate_model, report, shadow)
    started = time.perf_counter()
    kind: ChangeKind = "challenger" if shadow else "promote"
    reason = "; ".join(report.reasons)
    change = ProductionChange(kind, reason, context.run_id, report.production_version, candidate)
    result = apply_change(store, change, mlflow, "challenger not set" if shadow else "not promoted")
    if shadow and current is not None:
        yield _challenger_set(mlflow, candidate_model, report, result.record, current)
    else:
        yield _promoted(context, store, mlflow, candidate_model, report, result, started)


def _rejected(
    context: dg.AssetExecutionContext,
    report: EvaluationReport,
    model: ModelRef,
    current: ProductionRecord | None,
    mlflow: MlflowResource,
    alerts: AlertResource,
) -> Iterator[dg.AssetObservation]:
    """Production untouched: an observation with the gate's reasons, MLflow tags, an alert."""
    context.log.info("gate rejected the candidate: %s", "; ".join(report.reasons))
    yield dg.AssetObservation(
        asset_key=context.asset_key,
        metadata={
            "verdict": "reject",
            "reasons": md_list(report.reasons),
            "rejected_mlflow/run_id": model.mlflow_run_id,
            "serving_version": dg.MetadataValue.int(current.version) if current else "none",
        },
    )
    mlflow.log_to_run(model.mlflow_run_id, {}, {"promotion": "rejected"})
    alerts.gate_rejected(context, report.reasons, model.mlflow_run_id)
    mlflow.tag_model_version(
        model.registered_name, model.registered_version, "rejected", report.reasons
    )


def _candidate(
    context: dg.AssetExecutionContext,
    dvc: DvcResource,
    model: ModelRef,
    report: EvaluationReport,
    challenger: bool,
) -> Candidate:
    """The candidate's exact bytes (checked against their md5) with its identity and lineage.

    A ``challenger``'s lineage also holds the number of live batches it is shadowed on.
    """
    model_bytes = dvc.store().cache_path(model.md5).read_bytes()
    if md5_hex(model_bytes) != model.md5:
        raise dg.Failure(
            description=f"candidate model bytes in the DVC cache do not match md5 "
            f"{model.md5}: refusing to promote them"
        )
    lineage = Lineage(
        dagster_run_id=context.run_id,
        params=model.params,
        strategy=model.strategy,
        train_batches=tuple(model.train_batches),
        test_batches=tuple(model.test_batches),
        init_from_version=model.init_from_version,
        code_versions=_chain_code_versions(context),
        code_commit=code_commit(),
        shadow_batches=report.shadow_batches if challenger else None,
    )
    return Candidate(
        model_bytes=model_bytes,
        mlflow_run_id=model.mlflow_run_id,
        mlflow_model_uri=model.mlflow_model_uri,
        registered_version=model.registered_version,
        dataset_md5=model.dataset_md5,
        metrics={"auc": report.candidate["metrics"]["auc"]},
        lineage=lineage,
    )


def _challenger_set(
    mlflow: MlflowResource,
    model: ModelRef,
    report: EvaluationReport,
    challenger: ProductionRecord,
    current: ProductionRecord,
) -> dg.AssetObservation:
    """Shadow mode: the candidate is the challenger (MLflow alias), production untouched."""
    mlflow.set_alias(model.registered_name, "challenger", model.registered_version)
    mlflow.log_to_run(model.mlflow_run_id, {}, {"promotion": "challenger"})
    mlflow.tag_model_version(model.registered_name, model.registered_version, "challenger")
    return dg.AssetObservation(
        asset_key="production_model",
        metadata={
            "verdict": "challenger",
            "challenger/md5": challenger.model_md5,
            "challenger/mlflow_run_id": model.mlflow_run_id,
            "shadow_batches": dg.MetadataValue.int(report.shadow_batches),
            "serving_version": dg.MetadataValue.int(current.version),
            "reasons": md_list(report.reasons),
        },
    )


def _promoted(
    context: dg.AssetExecutionContext,
    store: ProductionStore,
    mlflow: MlflowResource,
    model: ModelRef,
    report: EvaluationReport,
    result: ChangeResult,
    started: float,
) -> dg.Output[ProductionRecord]:
    """The new production version: MLflow tags and model card, lineage as metadata.

    ``promotion_seconds`` runs from ``started`` (before the version object is written) to the
    card on the MLflow run.
    """
    record = result.record
    mlflow.tag_model_version(
        model.registered_name, model.registered_version, f"production v{record.version}"
    )
    card = _model_card(context, model, report, record)
    card_md = render_model_card(card)
    mlflow.log_model_card(model.mlflow_run_id, card_md, card)
    mlflow.log_to_run(model.mlflow_run_id, {}, {"promotion": f"production v{record.version}"})
    metadata = {
        **production_metadata(store, record, mlflow),
        "mlflow/champion_alias": result.champion_alias,
        **code_metadata(context),
        "model_card": dg.MetadataValue.md(card_md),
        "model_card/json": dg.MetadataValue.json(card),
        "promotion_seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 3)),
    }
    return dg.Output(record, data_version=dg.DataVersion(record.model_md5), metadata=metadata)


def _model_card(
    context: dg.AssetExecutionContext,
    model: ModelRef,
    report: EvaluationReport,
    record: ProductionRecord,
) -> dict[str, Any]:
    """The model card of a promoted version: data, parameters, gate scores, trigger, code."""
    return build_model_card(
        version=record.version,
        model_md5=record.model_md5,
        dataset_md5=model.dataset_md5,
        strategy=model.strategy,
        train_batches=model.train_batches,
        test_batches=model.test_batches,
        params=model.params,
        candidate_metrics=_flat_metrics(report.candidate),
        production_metrics=_flat_metrics(report.production) if report.production else None,
        production_version=report.production_version,
        delong=report.delong,
        reasons=report.reasons,
        trigger={k: v for k, v in context.run.tags.items() if k.startswith("retraining/")},
        code_versions=dict(Lineage.from_extra(record.extra).code_versions),
        code_commit=code_commit(),
        mlflow_run_id=model.mlflow_run_id,
        dagster_run_id=context.run_id,
    )


def _flat_metrics(evaluation: dict[str, Any]) -> dict[str, Any]:
    """Test metrics and p95 latency of one model of an evaluation report, in one flat dict."""
    return {**evaluation["metrics"], "p95_latency_ms": evaluation["latency"]["p95_ms"]}


def _chain_code_versions(context: dg.AssetExecutionContext) -> dict[str, str]:
    """The code version of each asset of the chain that produced this model."""
    chain = (
        raw_batches,
        training_dataset,
        validated_dataset,
        candidate_model,
        evaluation_report,
        production_model,
    )
    return {a.key.to_user_string(): a.code_versions_by_key[a.key] or "none" for a in chain}
