"""Label-free early warning: the production model's AUC estimated on each batch before labels.

``batch_estimated_performance`` scores every new batch with the production model and estimates
its AUC from the calibrated scores (CBPE, ``core/performance_estimation.py``); the calibration is
fitted once per production model on its held-out test split and kept in the monitoring store as
plain numbers. ``estimated_performance_sensor`` can start a retraining when the estimate falls
below a share of the reference AUC, weeks before the labels would tell.

This module does not import the jobs (``monitoring_job`` includes the asset defined here); the
sensor names its job and reads the cooldown helpers at tick time.
"""

import json
from typing import Any

import dagster as dg

from retraining_assets.code_version import asset_code_version
from retraining_assets.defs.assets import OWNERS, _read_dataset_md5, batch_partitions, md_png
from retraining_assets.defs.assets import raw_batches as raw_batches_asset
from retraining_assets.defs.monitoring import _booster
from retraining_assets.defs.resources import (
    BatchSourceResource,
    DvcResource,
    ProductionResource,
    TriggerPolicyResource,
)
from retraining_assets.defs.state import MonitoringStoreResource
from retraining_assets.monitoring_store import MonitoringDataError
from retraining_assets.settings import SPLIT_COLUMN

GROUP = "monitoring"
#: Run-key prefix and trigger tag value of the retrainings this sensor starts.
TRIGGER = "estimated_performance"
#: Batches shown in the chart of the estimate over time.
_HISTORY = 52


def _calibrator(context, monitoring, dvc: DvcResource, booster, record, schema) -> tuple[Any, str]:
    """The production model's score calibrator, fitted once on its test split and cached.

    Returns:
        The calibrator and its key in the monitoring store.
    """
    from retraining_assets.core.performance_estimation import fit_calibrator
    from retraining_assets.core.training import Scorer

    key = monitoring.calibrator_key(record.model_md5)
    try:
        cached = monitoring.get_calibrator(record.model_md5)
    except MonitoringDataError as exc:
        context.log.warning("refitting the score calibrator: %s", exc)
        cached = None
    if cached is not None:
        return cached, key
    if not record.dataset_md5:
        raise dg.Failure(f"production v{record.version} records no training data md5")
    frame = _read_dataset_md5(dvc, record.dataset_md5)
    # The test split was never trained on: its scores are calibrated honestly.
    test = frame[frame[SPLIT_COLUMN] == "test"] if SPLIT_COLUMN in frame else frame
    test = test[test[schema.target].notna()]
    scores = Scorer(booster, schema).predict(test)
    try:
        calibrator = fit_calibrator(test[schema.target].to_numpy(dtype="float64"), scores)
    except ValueError as exc:
        raise dg.Failure(f"cannot calibrate production v{record.version}: {exc}") from None
    monitoring.put_calibrator(record.model_md5, calibrator)
    return calibrator, key


def _history(instance: dg.DagsterInstance, version: int) -> dict[str, tuple[float, float | None]]:
    """Estimated and realised AUC per batch measured with production ``version`` (newest wins)."""
    from retraining_assets.defs.monitoring import _all_materializations, batch_performance

    estimated: dict[str, float] = {}
    for record in _all_materializations(instance, batch_estimated_performance.key):
        mat = record.asset_materialization
        if mat is None or not mat.partition:
            continue
        md = {k: v.value for k, v in mat.metadata.items()}
        if md.get("production_version") == version and "estimated/auc" in md:
            estimated[mat.partition] = float(md["estimated/auc"])
    realised: dict[str, float] = {}
    for record in _all_materializations(instance, batch_performance.key):
        mat = record.asset_materialization
        if mat is None or not mat.partition or mat.partition not in estimated:
            continue
        md = {k: v.value for k, v in mat.metadata.items()}
        if md.get("production_version") == version and "auc" in md:
            realised[mat.partition] = float(md["auc"])
    return {p: (estimated[p], realised.get(p)) for p in sorted(estimated)[-_HISTORY:]}


@dg.asset(
    code_version=asset_code_version("batch_estimated_performance"),
    partitions_def=batch_partitions,
    deps=[raw_batches_asset],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"lightgbm", "numpy"},
)
def batch_estimated_performance(
    context: dg.AssetExecutionContext,
    batch_source: BatchSourceResource,
    production: ProductionResource,
    dvc: DvcResource,
    triggers: TriggerPolicyResource,
    monitoring_store: MonitoringStoreResource,
) -> dg.MaterializeResult:
    """The production model's AUC on one batch, estimated without labels (CBPE).

    Scores the batch with the production model, calibrates the scores with an isotonic map
    fitted on the model's held-out test split (stored once per model as ``calibrators/<model
    md5>.npz`` in the monitoring store), and takes the expected ROC AUC if each row's label were
    a coin flip with its calibrated probability. Sees covariate shift that hurts the model (more
    rows where it is unsure); cannot see a change of P(y | x), which only labels reveal.
    ``estimated_performance_sensor`` reads ``estimated/verdict``; the chart shows the estimate
    over time beside the realised AUC of batches whose labels arrived.
    """
    from retraining_assets.core import batches as batch_io
    from retraining_assets.core.performance_estimation import (
        estimate_performance,
        estimated_performance_degraded,
        plot_estimated_history,
    )
    from retraining_assets.core.training import Scorer

    schema = batch_source.dataset_schema()
    policy = triggers.policy()
    store = production.store()
    record = store.current()
    if record is None:
        return dg.MaterializeResult(
            metadata={"estimated/verdict": "no_reference", "summary": "no production model yet"}
        )
    booster = _booster(store, record, "production")
    calibrator, calibrator_key = _calibrator(
        context, monitoring_store.open(), dvc, booster, record, schema
    )
    raw = batch_io.read_raw(batch_source.store(), context.partition_key)
    frame = batch_io.parse_batch(raw.data, raw.key, schema, columns=list(schema.features))
    scores = Scorer(booster, schema).predict(frame)
    estimate = estimate_performance(calibrator, scores)
    degraded, why = estimated_performance_degraded(
        estimate,
        relative_floor=policy.estimated_relative_auc_floor,
        min_rows=policy.estimated_min_rows,
    )
    floor = policy.estimated_relative_auc_floor * estimate.reference_auc
    history = _history(context.instance, record.version)
    history[context.partition_key] = (estimate.estimated_auc, None)
    periods = sorted(history)[-_HISTORY:]
    chart = plot_estimated_history(
        periods,
        [history[p][0] for p in periods],
        [history[p][1] for p in periods],
        reference_auc=estimate.reference_auc,
        floor=floor,
        title=f"Estimated AUC of production v{record.version} per batch (no labels)",
    )
    return dg.MaterializeResult(
        metadata={
            "estimated/auc": dg.MetadataValue.float(estimate.estimated_auc),
            "estimated/reference_auc": dg.MetadataValue.float(estimate.reference_auc),
            "estimated/relative_auc": dg.MetadataValue.float(estimate.relative_auc),
            "estimated/floor": dg.MetadataValue.float(floor),
            "estimated/verdict": "degraded" if degraded else "ok",
            "estimated/reason": why,
            "expected_positive_rate": dg.MetadataValue.float(estimate.expected_positive_rate),
            "reference_positive_rate": dg.MetadataValue.float(estimate.reference_positive_rate),
            "rows": dg.MetadataValue.int(estimate.n_rows),
            "production_version": dg.MetadataValue.int(record.version),
            "calibrator_key": calibrator_key,
            "summary": why,
            "estimate": dg.MetadataValue.json(json.loads(json.dumps(estimate.as_dict()))),
            "chart": md_png(chart, "estimated AUC per batch"),
        }
    )


@dg.sensor(
    job_name="retraining_job",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def estimated_performance_sensor(
    context: dg.SensorEvaluationContext,
    triggers: TriggerPolicyResource,
) -> dg.SensorResult | dg.SkipReason:
    """Retrain before labels arrive when a batch's estimated AUC falls below its floor.

    Reads the verdicts of ``batch_estimated_performance`` after its cursor (a storage id); the
    floor is ``estimated_relative_auc_floor`` x the production model's reference AUC (trigger
    policy). Respects the soft-trigger cooldown; the run key names the batch and the production
    version, so one cause gives one run.
    """
    from retraining_assets.defs.sensors import TRIGGER_TAG, hours_since_last_retraining

    policy = triggers.policy()
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=batch_estimated_performance.key,
            after_storage_id=int(context.cursor) if context.cursor else None,
        ),
        limit=200,
        ascending=True,
    ).records
    events: list[tuple[int, str, dict[str, Any]]] = [
        (
            r.storage_id,
            r.asset_materialization.partition or "",
            {k: v.value for k, v in r.asset_materialization.metadata.items()},
        )
        for r in records
        if r.asset_materialization is not None
    ]
    if not events:
        return dg.SkipReason("no new estimated-performance measurements")
    cursor = str(events[-1][0])
    measured = [(p, md) for _, p, md in events if md.get("estimated/verdict") in ("ok", "degraded")]
    degraded = [(p, md) for p, md in measured if md["estimated/verdict"] == "degraded"]
    if not degraded:
        if not measured:
            return dg.SensorResult(skip_reason="no production model to estimate yet", cursor=cursor)
        partition, md = min(measured, key=lambda e: float(e[1].get("estimated/auc", 1.0)))
        return dg.SensorResult(
            skip_reason=(
                f"estimated quality holds on {len(measured)} new batch(es): lowest "
                f"{md.get('estimated/reason')} ({partition})"
            ),
            cursor=cursor,
        )
    partition, md = degraded[-1]
    age = hours_since_last_retraining(context.instance, now=triggers.now())
    if age is not None and age < policy.cooldown_hours:
        return dg.SensorResult(
            skip_reason=(
                f"estimated degradation on {partition} but cooldown: last retraining "
                f"{age:.1f} h ago < {policy.cooldown_hours:g} h"
            ),
            cursor=cursor,
        )
    version = md.get("production_version")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"{TRIGGER}:{partition}:v{version}",
                tags={
                    TRIGGER_TAG: TRIGGER,
                    "retraining/cause_batch": partition,
                    "retraining/cause": str(md.get("estimated/reason"))[:200],
                },
            )
        ],
        cursor=cursor,
    )
