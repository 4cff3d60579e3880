"""Label-free early warning: the production model's AUC estimated on each batch before labels.

``batch_estimated_performance`` scores every new batch with the production model and estimates
its AUC from the calibrated scores (CBPE, ``core/performance_estimation.py``); the calibration is
fitted once per production model on its held-out test split and kept in the monitoring store as
plain numbers. ``estimated_performance_sensor`` can start a retraining when the estimate falls
below a share of the reference AUC, weeks before the labels would tell.

The asset writes a typed ``EstimatedPerformanceVerdict`` (``core/verdicts.py``); the sensor is
the same verdict-sensor shape as ``performance_drift_sensor`` around
``core.triggers.decide_estimated_performance``. ``monitoring_job`` selects the asset by key, so
the jobs module does not import this one.
"""

import json
import math
from typing import Any

import dagster as dg

from retraining_assets.code_version import asset_code_version
from retraining_assets.core.triggers import decide_estimated_performance
from retraining_assets.core.verdicts import (
    EstimatedPerformanceVerdict,
    PerformanceVerdict,
    VerdictSchemaError,
    read_verdict,
    verdict_metadata,
)
from retraining_assets.defs.assets import raw_batches as raw_batches_asset
from retraining_assets.defs.constants import OWNERS
from retraining_assets.defs.metadata import md_png
from retraining_assets.defs.monitoring import _all_materializations, _booster, batch_performance
from retraining_assets.defs.partitions import batch_partitions
from retraining_assets.defs.resources import (
    BatchSourceResource,
    DvcResource,
    ProductionResource,
    TriggerPolicyResource,
)
from retraining_assets.defs.sensors import _verdict_sensor
from retraining_assets.defs.state import MonitoringStoreResource
from retraining_assets.monitoring_store import MonitoringDataError
from retraining_assets.settings import SPLIT_COLUMN

GROUP = "monitoring"
#: Batches shown in the chart of the estimate over time.
_HISTORY = 52


def _verdict_md(record: EstimatedPerformanceVerdict) -> dict[str, Any]:
    """The typed verdict as the one JSON metadata entry that the sensor and replay read."""
    return {k: dg.MetadataValue.json(v) for k, v in verdict_metadata(record).items()}


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
    frame = dvc.read_dataset(record.dataset_md5)
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

    def verdicts(key: dg.AssetKey, cls: Any) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for record in _all_materializations(instance, key):
            mat = record.asset_materialization
            if mat is None or not mat.partition:
                continue
            try:
                verdict = read_verdict({k: v.value for k, v in mat.metadata.items()}, cls)
            except VerdictSchemaError:
                continue  # written by other code: the chart leaves it out, the sensor says why
            if verdict is not None and verdict.production_version == version:
                found[mat.partition] = verdict
        return found

    estimated = {
        p: v.estimated_auc
        for p, v in verdicts(batch_estimated_performance.key, EstimatedPerformanceVerdict).items()
        if v.measured
    }
    realised = verdicts(batch_performance.key, PerformanceVerdict)
    return {
        p: (estimated[p], realised[p].auc if p in realised else None)
        for p in sorted(estimated)[-_HISTORY:]
    }


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
        verdict = EstimatedPerformanceVerdict(
            status="no_reference", reason="no production model yet"
        )
        return dg.MaterializeResult(
            metadata={
                **_verdict_md(verdict),
                "estimated/verdict": verdict.status,
                "summary": verdict.reason,
            }
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
    measured = estimate.n_rows >= policy.estimated_min_rows and not math.isnan(
        estimate.estimated_auc
    )
    verdict = EstimatedPerformanceVerdict(
        status="degraded" if degraded else ("ok" if measured else "no_verdict"),
        reason=why,
        estimated_auc=estimate.estimated_auc,
        reference_auc=estimate.reference_auc,
        floor=floor,
        expected_positive_rate=estimate.expected_positive_rate,
        rows=estimate.n_rows,
        production_version=record.version,
        calibrator_key=calibrator_key,
    )
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
            **_verdict_md(verdict),
            "estimated/auc": dg.MetadataValue.float(estimate.estimated_auc),
            "estimated/reference_auc": dg.MetadataValue.float(estimate.reference_auc),
            "estimated/relative_auc": dg.MetadataValue.float(estimate.relative_auc),
            "estimated/floor": dg.MetadataValue.float(floor),
            "estimated/verdict": verdict.status,
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


estimated_performance_sensor = _verdict_sensor(
    "estimated_performance_sensor",
    batch_estimated_performance.key,
    EstimatedPerformanceVerdict,
    decide_estimated_performance,
    "Retrain before labels arrive when a batch's AUC estimated from calibrated scores "
    "(batch_estimated_performance, CBPE) falls below estimated_relative_auc_floor x the "
    "production model's reference AUC; respects the soft-trigger cooldown.",
)
