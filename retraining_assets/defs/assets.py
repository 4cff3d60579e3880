"""The retraining chain as software-defined assets.

Each body unpacks inputs, calls the core, and attaches metadata; the logic lives in
``retraining_assets.core``.
"""

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import dagster as dg

from retraining_assets.code_version import asset_code_version, code_commit, config_defaults
from retraining_assets.core.artifacts import DatasetRef, EvaluationReport, ModelRef
from retraining_assets.core.model_card import build_model_card, render_model_card
from retraining_assets.core.promotion import Candidate, ChangeResult, Lineage, ProductionChange
from retraining_assets.core.registry import (
    ProductionRecord,
    ProductionStore,
    RegistryError,
    md5_hex,
)
from retraining_assets.defs.alerts import AlertResource
from retraining_assets.defs.config import (
    CandidateModelConfig,
    GateConfig,
    TrainingDatasetConfig,
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
from retraining_assets.settings import BATCH_COLUMN, SPLIT_COLUMN, WEIGHT_COLUMN
from retraining_assets.storage import StoreError

GROUP = "retraining"


@dg.asset(
    code_version=asset_code_version("raw_batches"),
    partitions_def=batch_partitions,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"pandas", "parquet"},
)
def raw_batches(
    context: dg.AssetExecutionContext, batch_source: BatchSourceResource
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
    from retraining_assets.core import batches as batch_io
    from retraining_assets.core.validation import check_batch

    schema, frequency = batch_source.resolved()
    store = batch_source.store()
    batch_id = context.partition_key
    try:
        verdict = check_batch(store, batch_id, schema, frequency=frequency)
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
    assert verdict.frame is not None and verdict.md5 is not None
    frame = verdict.frame
    ts = frame[schema.timestamp]
    period = verdict.period
    return dg.MaterializeResult(
        metadata={
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
        },
        data_version=dg.DataVersion(verdict.md5),
    )


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
    import pyarrow as pa

    from retraining_assets.core import batches as batch_io
    from retraining_assets.core.strategies import apply_weights, plan_training

    # Arrow's default (mimalloc) pool keeps freed pages: reading and writing the window then costs
    # ~2x the frame in resident memory. The system allocator gives them back (benchmarks/
    # dataset_memory.py: 4.7x -> 2.9x the frame for an 8-week window).
    pa.set_memory_pool(pa.system_memory_pool())
    schema = batch_source.dataset_schema()
    source = batch_source.store()
    files = batch_io.list_batches(source)
    validated, failed = _validated_batches(context, files)
    feedback = batch_io.scan_batches(source, batch_io.FEEDBACK_DIR)
    # A linked feedback file counts as arrived: reading refuses it, which quarantines it.
    with_feedback = {*feedback.ids, *feedback.links}
    # Not validated: rejected (and quarantined, so no longer listed) or not ingested yet.
    rejected = failed | {b for b in files if b not in validated}
    unlabelled = {b for b in validated if not validated[b].labelled and b not in with_feedback}
    available = [b for b in files if b in validated and b not in unlabelled]
    times = {b: validated[b].start for b in available}
    current = production.store().current()
    trained = (current.extra.get("train_batches") or [None])[-1] if current else None
    refused: dict[str, str] = {}
    frames: dict[str, Any] = {}
    while True:
        try:
            plan = plan_training(
                available,
                config.strategy,
                as_of=config.as_of_batch or None,
                window_batches=config.window_batches,
                test_batches=config.test_batches,
                trained_through=trained,
                half_life_days=config.half_life_days,
                times=times,
            )
        except ValueError as exc:  # BatchError and StrategyError: both say what is missing
            left_out = "; ".join(f"{b}: {why}" for b, why in sorted(refused.items()))
            raise dg.Failure(
                description=f"cannot build a training window: {exc}"
                + (f" (refused: {left_out})" if left_out else "")
            ) from exc
        window = plan.window
        newly = _read_window(context, source, window.all_batches, validated, schema, frames)
        if not newly:
            newly = batch_io.overlapping_batches(
                frames,
                sorted(window.all_batches, key=lambda b: validated[b].order),
                schema,
            )
        if not newly:
            break
        for batch_id, why in newly.items():
            context.log.warning("batch %s left out of training: %s", batch_id, why)
            frames.pop(batch_id, None)
        refused.update(newly)
        available = [b for b in available if b not in newly]
    frames = {b: frames[b] for b in window.all_batches}
    dataset = apply_weights(batch_io.collect_dataset(frames, window, schema), plan, schema)
    del frames  # the dataset holds the rows now; keep one copy through the write and DVC
    store = dvc.store()
    path = batch_io.write_parquet_atomic(
        dataset, store.repo_dir / "artifacts" / "training_dataset.parquet"
    )
    tracked = store.track(path)
    n_test = int((dataset[SPLIT_COLUMN] == "test").sum())
    ref = DatasetRef(
        md5=tracked.md5,
        path=str(path),
        n_rows=len(dataset),
        n_train=len(dataset) - n_test,
        n_test=n_test,
        train_batches=window.train_batches,
        test_batches=window.test_batches,
        strategy=plan.strategy,
        half_life_days=plan.half_life_days,
        init_from_version=current.version if plan.continues_model and current else None,
    )
    return dg.Output(
        ref,
        data_version=dg.DataVersion(tracked.md5),
        metadata={
            "dvc/md5": tracked.md5,
            "dvc/path": dg.MetadataValue.path(str(path)),
            **code_metadata(context),
            "rows": dg.MetadataValue.int(ref.n_rows),
            "train_rows": dg.MetadataValue.int(ref.n_train),
            "test_rows": dg.MetadataValue.int(ref.n_test),
            "train_batches": ", ".join(window.train_batches),
            "test_batches": ", ".join(window.test_batches),
            "strategy": plan.strategy,
            **(
                {"continues_production_version": dg.MetadataValue.int(ref.init_from_version)}
                if ref.init_from_version is not None
                else {}
            ),
            "excluded_rejected_batches": ", ".join(sorted(rejected)) or "none",
            "excluded_refused_batches": dg.MetadataValue.md(
                "\n".join(f"- {b}: {why}" for b, why in sorted(refused.items())) or "none"
            ),
            "excluded_unlabelled_batches": ", ".join(sorted(unlabelled)) or "none",
            "positive_rate": dg.MetadataValue.float(float(dataset[schema.target].mean())),
        },
    )


@dataclass(frozen=True)
class _Validated:
    """What ``raw_batches`` recorded about a batch that passed validation."""

    md5: str
    labelled: bool
    start: str | None
    order: int


def _validated_batches(
    context: dg.AssetExecutionContext, batch_ids: list[str]
) -> tuple[dict[str, _Validated], set[str]]:
    """Listed batches that passed ``raw_batches`` last time, and known ones that failed.

    Returns:
        The passed batches with the md5 of their validated bytes, and every known batch whose
        latest attempt failed (quarantined files are no longer listed but still counted).
    """
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
    out: dict[str, _Validated] = {}
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
            out[mat.partition] = _Validated(
                md5=str(md["dvc/md5"]),
                labelled=bool(md.get("labelled", True)),
                start=str(start) if start is not None else None,
                order=record.storage_id,
            )
        if not page.has_more:
            break
        cursor = page.cursor
    return out, failed


def _read_window(
    context: dg.AssetExecutionContext,
    store: Any,
    batch_ids: tuple[str, ...],
    validated: dict[str, _Validated],
    schema: Any,
    frames: dict[str, Any],
) -> dict[str, str]:
    """Read the window's batches not read yet into ``frames``; return the refused ones and why.

    An unusable feedback file is quarantined (with its reason) so it is not read again.
    """
    from retraining_assets.core import batches as batch_io

    refused: dict[str, str] = {}
    for batch_id in batch_ids:
        if batch_id in frames:
            continue
        try:
            frames[batch_id] = batch_io.read_validated_batch(
                store, batch_id, validated[batch_id].md5, schema, columns=schema.columns
            )
        except batch_io.FeedbackError as exc:
            key = batch_io.feedback_key(batch_id)
            try:
                moved = batch_io.quarantine(
                    store, key, {"batch_id": batch_id, "reason": str(exc), "kind": "feedback"}
                )
                refused[batch_id] = f"feedback {key} quarantined as {moved}: {exc}"
            except (OSError, ValueError) as move_error:
                refused[batch_id] = f"feedback {key} unusable ({exc}); not moved: {move_error}"
        except batch_io.BatchError as exc:
            refused[batch_id] = str(exc)
    return refused


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
    training_dataset: DatasetRef,
    batch_source: BatchSourceResource,
    dvc: DvcResource,
):
    """The training dataset after it passed the Great Expectations suite (same bytes, same md5).

    Each group of expectations is reported as a blocking asset check. If any fails, the asset is
    not materialized and the run stops here: nothing downstream trains on unvalidated data.
    """
    from retraining_assets.core.validation import validate_frame

    schema = batch_source.dataset_schema()
    frame = dvc.read_dataset(training_dataset.md5)
    result = validate_frame(
        frame, schema, extra_columns=(SPLIT_COLUMN, BATCH_COLUMN, WEIGHT_COLUMN)
    )
    groups = result.by_group()
    checks = [
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
    if not result.success:
        # No materialization: the failed results are recorded (against no new materialization)
        # and the run stops here.
        yield from checks
        culprits = _failing_batches(frame, schema) if BATCH_COLUMN in frame else []
        raise dg.Failure(
            description=f"training dataset {training_dataset.md5} failed validation"
            + (f" (bad batches: {', '.join(culprits)})" if culprits else "")
            + f": {result.summary()}",
            metadata={"bad_batches": ", ".join(culprits) or "unknown"},
        )
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
    import mlflow as mlflow_lib
    from mlflow.models import infer_signature

    from retraining_assets.core.training import prepare_features, train_model
    from retraining_assets.core.training_cache import train_cached, training_key

    if not validated_dataset.validated:
        raise dg.Failure(description="refusing to train on a dataset that was not validated")
    schema = batch_source.dataset_schema()
    params = config.train_params()
    init_model = None
    if validated_dataset.init_from_version is not None:
        # Incremental: continue the booster that was serving when the dataset was built.
        prod_store = production.store()
        init_model = prod_store.booster(prod_store.record(validated_dataset.init_from_version))
    if config.trainer == "dask":
        source = dvc.dataset_file(validated_dataset.md5)
        trained, example = train_on_dask(dask, source, schema, params, init_model)
    else:
        from retraining_assets.core.batches import split_rows

        frame = dvc.read_dataset(validated_dataset.md5)
        train = split_rows(frame, "train")
        weights = train[WEIGHT_COLUMN].to_numpy() if WEIGHT_COLUMN in train else None
        trained = train_cached(
            config.training_cache if init_model is None else None,
            training_key(
                dataset_md5=validated_dataset.md5,
                params=params.as_dict(),
                strategy=validated_dataset.strategy,
                code_version=code_metadata(context)["code/version"],
                extra={"half_life_days": validated_dataset.half_life_days},
            ),
            params,
            lambda: train_model(train, schema, params, weights=weights, init_model=init_model),
        )
        example = prepare_features(train.head(5), schema)
    store = dvc.store()
    model_path = trained.save(store.repo_dir / "artifacts" / "candidate_model.txt")
    tracked = store.track(model_path)

    tags = {
        "dagster/run_id": context.run_id,
        "dvc/dataset_md5": validated_dataset.md5,
        "dvc/model_md5": tracked.md5,
        "dagster/run_url": mlflow.dagster_run_url(context.run_id),
        "code/version": code_metadata(context)["code/version"],
        "code/commit": code_commit(),
    }
    with mlflow.start_run(run_name=f"cycle-{context.run_id[:8]}", tags=tags) as run:
        mlflow_lib.log_params(
            {
                **params.as_dict(),
                "strategy": validated_dataset.strategy,
                "half_life_days": validated_dataset.half_life_days,
                "init_from_version": validated_dataset.init_from_version,
                "init_trees": trained.extra.get("init_trees", 0),
                "trainer": config.trainer,
            }
        )
        mlflow_lib.log_params(
            {
                "data_version": validated_dataset.md5,
                "train_batches": ",".join(validated_dataset.train_batches),
                "test_batches": ",".join(validated_dataset.test_batches),
                "n_train": trained.n_train,
                "n_valid": trained.n_valid,
            }
        )
        mlflow_lib.log_metrics(
            {
                "training_seconds": trained.train_seconds,
                "best_iteration": trained.best_iteration,
                **({"valid_auc": trained.valid_auc} if trained.valid_auc is not None else {}),
            }
        )
        signature = infer_signature(example, trained.booster.predict(example, num_threads=1))
        info = mlflow_lib.lightgbm.log_model(
            trained.booster,
            name="model",
            signature=signature,
            registered_model_name=mlflow.registered_model_name,
            # Stated, not inferred: inference loads the model in a subprocess (seconds per cycle).
            pip_requirements=_model_requirements(),
        )
        run_id = run.info.run_id
    ref = ModelRef(
        md5=tracked.md5,
        path=str(model_path),
        dataset_md5=validated_dataset.md5,
        mlflow_run_id=run_id,
        mlflow_model_uri=info.model_uri,
        registered_name=mlflow.registered_model_name,
        registered_version=str(info.registered_model_version),
        params={**params.as_dict(), "trainer": config.trainer},
        best_iteration=trained.best_iteration,
        train_seconds=trained.train_seconds,
        strategy=validated_dataset.strategy,
        train_batches=validated_dataset.train_batches,
        test_batches=validated_dataset.test_batches,
        init_from_version=validated_dataset.init_from_version,
    )
    return dg.Output(
        ref,
        data_version=dg.DataVersion(tracked.md5),
        metadata={
            "dvc/md5": tracked.md5,
            "dvc/dataset_md5": validated_dataset.md5,
            "mlflow/run_id": run_id,
            "mlflow/model_uri": info.model_uri,
            "mlflow/registered_version": f"{ref.registered_name} v{ref.registered_version}",
            "mlflow/run_url": dg.MetadataValue.url(mlflow.run_url(run_id)),
            "training_seconds": dg.MetadataValue.float(round(trained.train_seconds, 3)),
            "best_iteration": dg.MetadataValue.int(trained.best_iteration),
            "valid_auc": dg.MetadataValue.float(trained.valid_auc or float("nan")),
            "trainer": config.trainer,
            **code_metadata(context),
        },
    )


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
    difference (CI and p-value), the test-set size and positives, a ROC plot, and whether the gate
    (``GateConfig``) promotes the candidate, with a reason per rule. Below
    ``min_test_positives`` it refuses to decide.
    """
    from retraining_assets.core.evaluation import (
        baseline_metrics,
        evaluate_model,
        plot_roc,
    )
    from retraining_assets.core.promotion import GatePolicy, ModelScore, decide_promotion
    from retraining_assets.core.training import load_model

    schema = batch_source.dataset_schema()
    frame = dvc.read_dataset(validated_dataset.md5)
    train = frame[frame[SPLIT_COLUMN] == "train"]
    test = frame[frame[SPLIT_COLUMN] == "test"]
    store = dvc.store()
    candidate_booster = load_model(store.cache_path(candidate_model.md5))
    cand_eval, cand_proba = evaluate_model(
        "candidate", candidate_booster, test, schema, latency_calls=config.latency_calls
    )
    y_test = test[schema.target].to_numpy()
    base = baseline_metrics(train[schema.target].to_numpy(), y_test)
    curves = {"candidate": (y_test, cand_proba)}

    prod_store = production.store()
    try:
        # The champion's bytes are verified against its md5: an edited or corrupt model is a
        # clear failure, never scored by the gate.
        current = prod_store.current()
        prod_booster = prod_store.booster(current) if current is not None else None
    except (RegistryError, StoreError) as exc:
        raise dg.Failure(description=f"cannot load the production model: {exc}") from None
    prod_eval = None
    delong = None
    if current is not None and prod_booster is not None:
        prod_eval, prod_proba = evaluate_model(
            f"production v{current.version}",
            prod_booster,
            test,
            schema,
            latency_calls=config.latency_calls,
        )
        curves[f"production v{current.version}"] = (y_test, prod_proba)
        if 0 < y_test.sum() < len(y_test) - 1 and y_test.sum() > 1:
            from retraining_assets.core.delong import delong_test

            # Paired: both models scored the same rows, so their AUCs are correlated.
            delong = delong_test(y_test, cand_proba, prod_proba)

    def score(evaluation) -> ModelScore:
        return ModelScore(
            auc=evaluation.metrics.auc,
            log_loss=evaluation.metrics.log_loss,
            p95_latency_ms=evaluation.latency.p95_ms,
        )

    decision = decide_promotion(
        score(cand_eval),
        score(prod_eval) if prod_eval else None,
        ModelScore(auc=base.auc, log_loss=base.log_loss, p95_latency_ms=0.0),
        GatePolicy(
            min_relative_auc=config.min_relative_auc,
            max_p95_latency_ms=config.max_p95_latency_ms,
            min_baseline_auc_margin=config.min_baseline_auc_margin,
            min_test_positives=config.min_test_positives,
        ),
        identical_to_champion=current is not None and current.model_md5 == candidate_model.md5,
        test_counts=(int(y_test.sum()), int(len(y_test) - y_test.sum())),
    )
    plot = plot_roc(
        curves,
        store.repo_dir / "reports" / f"roc_{candidate_model.md5[:12]}.png",
        title=f"ROC on test batches {', '.join(validated_dataset.test_batches)}",
    )
    report = EvaluationReport(
        candidate=cand_eval.as_dict(),
        production=prod_eval.as_dict() if prod_eval else None,
        baseline=base.as_dict(),
        production_version=current.version if current else None,
        promote=decision.promote,
        against=decision.against,
        reasons=decision.reasons,
        test_batches=validated_dataset.test_batches,
        roc_plot=str(plot),
        mode=config.mode,
        shadow_batches=config.shadow_batches if config.mode == "shadow" else 0,
        delong=delong.as_dict() if delong else None,
    )
    metrics = {
        "test_auc": cand_eval.metrics.auc,
        "test_log_loss": cand_eval.metrics.log_loss,
        "test_brier": cand_eval.metrics.brier,
        "p95_latency_ms": cand_eval.latency.p95_ms,
        "baseline_auc": base.auc,
        "gate_promote": float(decision.promote),
    }
    if prod_eval:
        metrics["production_auc"] = prod_eval.metrics.auc
        metrics["production_log_loss"] = prod_eval.metrics.log_loss
    delong_md: dict[str, Any] = {}
    if delong:
        metrics.update(
            {
                "delong_p_value": delong.p_value,
                "auc_difference": delong.difference,
                "auc_difference_ci_low": delong.ci_low,
                "auc_difference_ci_high": delong.ci_high,
            }
        )
        delong_md = {
            "delong/difference": dg.MetadataValue.float(delong.difference),
            "delong/ci_low": dg.MetadataValue.float(delong.ci_low),
            "delong/ci_high": dg.MetadataValue.float(delong.ci_high),
            "delong/p_value": dg.MetadataValue.float(delong.p_value),
            "delong/summary": delong.summary(),
        }
    mlflow.log_to_run(
        candidate_model.mlflow_run_id,
        metrics,
        {"gate/verdict": decision.verdict, "gate/reasons": " | ".join(decision.reasons)},
    )
    import mlflow as mlflow_lib

    mlflow_lib.MlflowClient(mlflow.uri()).log_artifact(
        candidate_model.mlflow_run_id, str(plot), artifact_path="evaluation"
    )
    # The verdict on the run itself (filterable in the runs list), not only in its event log.
    context.instance.add_run_tags(context.run_id, {GATE_TAG: decision.verdict})
    if not decision.promote:
        context.log.warning("GATE REJECTED the candidate: %s", "; ".join(decision.reasons))
    nan = float("nan")
    yield dg.Output(
        report,
        metadata={
            "auc": dg.MetadataValue.float(cand_eval.metrics.auc),
            "production_auc": dg.MetadataValue.float(prod_eval.metrics.auc if prod_eval else nan),
            "baseline_auc": dg.MetadataValue.float(base.auc),
            "log_loss": dg.MetadataValue.float(cand_eval.metrics.log_loss),
            "production_log_loss": dg.MetadataValue.float(
                prod_eval.metrics.log_loss if prod_eval else nan
            ),
            "p95_latency_ms": dg.MetadataValue.float(cand_eval.latency.p95_ms),
            "test_rows": dg.MetadataValue.int(cand_eval.metrics.n_rows),
            "test_positives": dg.MetadataValue.int(cand_eval.metrics.n_positive),
            **delong_md,
            "verdict": decision.verdict,
            "compared_against": (
                f"production v{current.version}" if current else "constant baseline (first model)"
            ),
            "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons)),
            "roc": md_image(plot, "ROC"),
            "mlflow/run_id": candidate_model.mlflow_run_id,
            **code_metadata(context),
            "report": dg.MetadataValue.json(json.loads(json.dumps(report.__dict__, default=str))),
        },
    )
    yield dg.AssetCheckResult(
        check_name="gate_passed",
        asset_key="evaluation_report",
        passed=decision.promote,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "verdict": decision.verdict,
            "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons)),
        },
    )


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
    candidate = _candidate(context, dvc, candidate_model, report)
    started = time.perf_counter()
    change = ProductionChange(
        "challenger" if shadow else "promote",
        "; ".join(report.reasons),
        changed_by=context.run_id,
        expected_current=report.production_version,
        candidate=candidate,
    )
    result = apply_change(store, change, mlflow, "challenger not set" if shadow else "not promoted")
    if shadow and current is not None:
        yield _challenger_set(mlflow, candidate_model, report, result.record, current)
        return
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
    context: dg.AssetExecutionContext, dvc: DvcResource, model: ModelRef, report: EvaluationReport
) -> Candidate:
    """The candidate's exact bytes (checked against their md5) with its identity and lineage."""
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
        shadow_batches=report.shadow_batches if report.mode == "shadow" else None,
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
    lineage = Lineage.from_extra(record.extra)
    mlflow.tag_model_version(
        model.registered_name, model.registered_version, f"production v{record.version}"
    )
    card = build_model_card(
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
        code_versions=dict(lineage.code_versions),
        code_commit=code_commit(),
        mlflow_run_id=model.mlflow_run_id,
        dagster_run_id=context.run_id,
    )
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
