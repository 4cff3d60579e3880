"""Label-free early warning: the production model's AUC estimated on each batch before labels.

``batch_estimated_performance`` scores every new batch with the production model and estimates
its AUC from the calibrated scores (CBPE, ``core/performance_estimation.py``); the calibration is
fitted once per production model on its held-out test split and kept in the monitoring store as
plain numbers, then refitted for each batch on the test split plus every batch of the same
production version whose labels ``batch_performance`` measured, all of them before the estimated
batch (``core.performance_estimation.calibration_batches``: never its own labels, never a later
batch's). ``estimated_performance_sensor`` can start a retraining when the estimate falls below a
share of the reference AUC or below an absolute floor, weeks before the labels would tell.

The asset writes a typed ``EstimatedPerformanceVerdict`` (``core/verdicts.py``); the sensor is
the same verdict-sensor shape as ``performance_drift_sensor`` around
``core.triggers.decide_estimated_performance``. ``monitoring_job`` selects the asset by key, so
the jobs module does not import this one.
"""

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import dagster as dg

from retraining_assets.code_version import asset_code_version
from retraining_assets.core.registry import ProductionRecord
from retraining_assets.core.triggers import decide_estimated_performance
from retraining_assets.core.verdicts import EstimatedPerformanceVerdict, PerformanceVerdict
from retraining_assets.defs.assets import raw_batches as raw_batches_asset
from retraining_assets.defs.config import ChartConfig
from retraining_assets.defs.constants import OWNERS
from retraining_assets.defs.metadata import md_png
from retraining_assets.defs.monitoring import (
    _booster,
    _materialized,
    _partition_verdicts,
    _period_start,
    _read_batch,
    _scores,
    _training_data,
    _verdict_md,
    batch_performance,
)
from retraining_assets.defs.partitions import batch_partitions
from retraining_assets.defs.resources import (
    BatchSourceResource,
    DvcResource,
    ProductionResource,
    TriggerPolicyResource,
)
from retraining_assets.defs.sensors import _verdict_sensor
from retraining_assets.defs.state import MonitoringStoreResource
from retraining_assets.monitoring_store import MonitoringDataError, MonitoringStore
from retraining_assets.schemas import DatasetSchema
from retraining_assets.storage import KeyNotFound

if TYPE_CHECKING:
    import pandas as pd

    from retraining_assets.core.performance_estimation import (
        Calibration,
        EstimatedAssessment,
        LabelledScores,
        ScoreCalibrator,
    )

GROUP = "monitoring"
_T = TypeVar("_T")


def _stored(
    context: dg.AssetExecutionContext, read: Callable[[], _T | None], instead: str
) -> _T | None:
    """What ``read`` finds in the monitoring store; ``None`` (logged) if it is unreadable there.

    Args:
        context: For the warning.
        read: Reads one stored item (``None`` when absent).
        instead: What the caller does instead, for the warning.
    """
    try:
        return read()
    except MonitoringDataError as exc:
        context.log.warning("%s: %s", instead, exc)
        return None


def _calibrator(
    context: dg.AssetExecutionContext,
    monitoring: MonitoringStore,
    dvc: DvcResource,
    booster: Any,
    record: ProductionRecord,
    schema: DatasetSchema,
) -> tuple["ScoreCalibrator", str]:
    """The production model's score calibrator, fitted once on its test split and cached.

    Fitted by one process at a time (``MonitoringStore.building``), so replayed policies serving
    the same booster side by side fit it once.
    """
    with monitoring.building(f"{record.model_md5}-calibrator"):
        return _calibrator_once(context, monitoring, dvc, booster, record, schema)


def _calibrator_once(
    context: dg.AssetExecutionContext,
    monitoring: MonitoringStore,
    dvc: DvcResource,
    booster: Any,
    record: ProductionRecord,
    schema: DatasetSchema,
) -> tuple["ScoreCalibrator", str]:
    """The production model's score calibrator, fitted once on its test split and cached.

    The test split's labels and scores are kept beside it (the refit with labelled batches
    starts from them).

    Returns:
        The calibrator and its key in the monitoring store.
    """
    from retraining_assets.core.performance_estimation import fit_calibrator

    key = monitoring.calibrator_key(record.model_md5)
    cached = _stored(
        context, lambda: monitoring.get_calibrator(record.model_md5), "refitting the calibrator"
    )
    if cached is not None:
        return cached, key
    reference = _reference_scores(context, monitoring, dvc, booster, record, schema)
    try:
        calibrator = fit_calibrator(*reference.arrays())
    except ValueError as exc:
        raise dg.Failure(f"cannot calibrate production v{record.version}: {exc}") from None
    monitoring.put_calibrator(record.model_md5, calibrator)
    return calibrator, key


def _reference_scores(
    context: dg.AssetExecutionContext,
    monitoring: MonitoringStore,
    dvc: DvcResource,
    booster: Any,
    record: ProductionRecord,
    schema: DatasetSchema,
) -> "LabelledScores":
    """The test split's labels and the model's scores, computed once from the DVC data, cached."""
    from retraining_assets.core.performance_estimation import test_split_scores

    cached = _stored(
        context,
        lambda: monitoring.get_reference_scores(record.model_md5),
        "scoring the test split again",
    )
    if cached is not None:
        return cached
    reference = test_split_scores(booster, schema, _training_data(dvc, record))
    monitoring.put_reference_scores(record.model_md5, reference)
    return reference


def _labelled_batches(
    context: dg.AssetExecutionContext,
    monitoring: MonitoringStore,
    realised: Sequence[tuple[str, PerformanceVerdict]],
    version: int,
) -> list["LabelledScores"]:
    """Labels and scores of every batch ``batch_performance`` measured with production ``version``.

    An unreadable or missing record is left out (logged): the estimate does without it.
    """
    from retraining_assets.core.performance_estimation import labelled_scores_keys

    found: list[LabelledScores] = []
    for batch_id, key in labelled_scores_keys(realised, version).items():
        try:
            labelled = monitoring.labelled_scores_at(key)
        except (KeyNotFound, MonitoringDataError) as exc:
            context.log.warning("not calibrating on batch %s: %s", batch_id, exc)
            continue
        if labelled.batch_id != batch_id:
            context.log.warning(
                "not calibrating on batch %s: %s holds batch %r", batch_id, key, labelled.batch_id
            )
            continue
        found.append(labelled)
    return found


def _calibration(
    context: dg.AssetExecutionContext,
    monitoring: MonitoringStore,
    dvc: DvcResource,
    booster: Any,
    record: ProductionRecord,
    schema: DatasetSchema,
    realised: Sequence[tuple[str, PerformanceVerdict]],
    period_start: "pd.Timestamp | None",
) -> tuple["Calibration", str]:
    """The calibration of this batch's estimate: the test split's, refitted with earlier labels.

    Returns:
        The calibration and the key of the test-split calibrator.
    """
    from retraining_assets.core.performance_estimation import calibration_batches, recalibrate

    base, key = _calibrator(context, monitoring, dvc, booster, record, schema)
    candidates = _labelled_batches(context, monitoring, realised, record.version)
    usable = calibration_batches(period_start, candidates)
    if not usable:
        return recalibrate(base, None, []), key
    reference = _reference_scores(context, monitoring, dvc, booster, record, schema)
    try:
        return recalibrate(base, reference, usable), key
    except ValueError as exc:
        raise dg.Failure(f"cannot recalibrate production v{record.version}: {exc}") from None


def _history(
    instance: dg.DagsterInstance,
    realised: Sequence[tuple[str, PerformanceVerdict]],
    version: int,
) -> dict[str, tuple[float, float | None]]:
    """Estimated and realised AUC per batch measured with production ``version`` (newest wins).

    A verdict written by other code is left out of the chart (the sensor says why).
    """
    from retraining_assets.core.performance_estimation import estimate_history

    return estimate_history(
        _partition_verdicts(
            instance,
            batch_estimated_performance.key,
            EstimatedPerformanceVerdict,
            skip_foreign=True,
        ),
        realised,
        version,
    )


def _no_estimate_metadata() -> dict[str, Any]:
    """What ``batch_estimated_performance`` shows before any model was promoted."""
    verdict = EstimatedPerformanceVerdict(status="no_reference", reason="no production model yet")
    return {**_verdict_md(verdict), "estimated/verdict": verdict.status, "summary": verdict.reason}


def _estimated_metadata(
    assessment: "EstimatedAssessment", calibration: "Calibration", version: int
) -> dict[str, Any]:
    """What ``batch_estimated_performance`` shows: the estimate, its (effective) floor, verdict."""
    estimate, verdict = assessment.estimate, assessment.verdict
    return {
        **_verdict_md(verdict),
        "estimated/auc": dg.MetadataValue.float(estimate.estimated_auc),
        "estimated/reference_auc": dg.MetadataValue.float(estimate.reference_auc),
        "estimated/relative_auc": dg.MetadataValue.float(estimate.relative_auc),
        "estimated/floor": dg.MetadataValue.float(assessment.floor),
        "estimated/verdict": verdict.status,
        "estimated/reason": verdict.reason,
        "expected_positive_rate": dg.MetadataValue.float(estimate.expected_positive_rate),
        "reference_positive_rate": dg.MetadataValue.float(estimate.reference_positive_rate),
        "rows": dg.MetadataValue.int(estimate.n_rows),
        "production_version": dg.MetadataValue.int(version),
        "calibrator_key": verdict.calibrator_key,
        # How much labelled data beyond the test split the calibration was refitted on.
        "estimated/calibration_batches": dg.MetadataValue.int(len(calibration.batches)),
        "estimated/calibration_rows": dg.MetadataValue.int(calibration.labelled_rows),
        "estimated/calibration": calibration.describe(),
        "summary": verdict.reason,
        "estimate": dg.MetadataValue.json(json.loads(json.dumps(estimate.as_dict()))),
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
    config: ChartConfig,
    batch_source: BatchSourceResource,
    production: ProductionResource,
    dvc: DvcResource,
    triggers: TriggerPolicyResource,
    monitoring_store: MonitoringStoreResource,
) -> dg.MaterializeResult:
    """The production model's AUC on one batch, estimated without labels (CBPE).

    Scores the batch with the production model, calibrates the scores with an isotonic map
    fitted on the model's held-out test split (stored once per model as ``calibrators/<model
    md5>.npz`` in the monitoring store) and refitted on the test split plus every batch of the
    same production version whose labels arrived (``batch_performance``), all before this one
    (never its own labels, never a later batch's; ``estimated/calibration_batches`` and
    ``estimated/calibration_rows`` say how many), and takes the expected ROC AUC if each row's
    label were a coin flip with its calibrated probability. Degraded below the higher of
    ``estimated_relative_auc_floor`` x the test split's AUC and ``estimated_auc_floor``
    (``estimated/floor``). Sees covariate shift that hurts the
    model (more rows where it is unsure); cannot see a change of P(y | x), which only labels
    reveal. ``estimated_performance_sensor`` reads ``estimated/verdict``; the chart shows the
    estimate over time beside the realised AUC of batches whose labels arrived (unless
    ``config.chart`` is off).
    """
    from retraining_assets.core.performance_estimation import assess_estimated_performance
    from retraining_assets.core.training import Scorer

    (schema, frequency), store = batch_source.resolved(), production.store()
    record = store.current()
    if record is None:
        return _materialized(context, _no_estimate_metadata())
    booster, monitoring = _booster(store, record, "production"), monitoring_store.open()
    batch_id = context.partition_key
    frame = _read_batch(batch_source, schema, batch_id, list(schema.features))
    scores = _scores(monitoring, Scorer(booster, schema), frame, record.model_md5)
    realised = _partition_verdicts(
        context.instance, batch_performance.key, PerformanceVerdict, skip_foreign=True
    )
    start = _batch_start(batch_source, schema, frequency, batch_id)
    calibration, key = _calibration(
        context, monitoring, dvc, booster, record, schema, realised, start
    )
    assessment = assess_estimated_performance(
        calibration.calibrator,
        scores,
        triggers.policy(),
        production_version=record.version,
        calibrator_key=key,
        calibration_batches=calibration.batches,
    )
    metadata = _estimated_metadata(assessment, calibration, record.version)
    if config.chart:
        history = _history(context.instance, realised, record.version)
        title = f"Estimated AUC of production v{record.version} per batch (no labels)"
        chart = assessment.chart(history, batch_id, title=title)
        metadata["chart"] = md_png(chart, "estimated AUC per batch")
    return _materialized(context, metadata)


def _batch_start(
    batch_source: BatchSourceResource, schema: DatasetSchema, frequency: str, batch_id: str
) -> "pd.Timestamp | None":
    """Start of the estimated batch's period: from a dated id, else from its rows' timestamps.

    ``None`` (no refit: the test-split calibration alone) when neither tells it.
    """
    from retraining_assets.core.batches import BatchError

    start = _period_start(batch_id, None, frequency)
    if start is not None:
        return start
    try:
        stamps = _read_batch(batch_source, schema, batch_id, [schema.timestamp])
    except BatchError:
        return None
    return _period_start(batch_id, stamps[schema.timestamp], frequency)


estimated_performance_sensor = _verdict_sensor(
    "estimated_performance_sensor",
    batch_estimated_performance.key,
    EstimatedPerformanceVerdict,
    decide_estimated_performance,
    "Retrain before labels arrive when a batch's AUC estimated from calibrated scores "
    "(batch_estimated_performance, CBPE) falls below its floor: the higher of "
    "estimated_relative_auc_floor x the production model's reference AUC and "
    "estimated_auc_floor; respects the soft-trigger cooldown.",
)
