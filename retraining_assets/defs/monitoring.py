"""Monitoring assets, one partition per batch.

Data drift against the production model's training data, and the production model's quality once
the batch's labels arrive. Each body reads its inputs, makes one core call
(``core/drift_assessment.py``, ``core/monitoring.py``, ``core/analysis.py``) and writes the typed
verdict beside the metadata people read; artifacts go to the monitoring store.
"""

import functools
import json
from typing import TYPE_CHECKING, Any

import dagster as dg

from retraining_assets.code_version import asset_code_version, module_source, source_hash
from retraining_assets.core.registry import ProductionRecord, ProductionStore, RegistryError
from retraining_assets.core.verdicts import (
    DriftVerdict,
    PerformanceVerdict,
    V,
    VerdictSchemaError,
    read_verdict,
    verdict_metadata,
)
from retraining_assets.defs.assets import raw_batches
from retraining_assets.defs.config import ChartConfig
from retraining_assets.defs.constants import OWNERS
from retraining_assets.defs.metadata import code_metadata, md_png
from retraining_assets.defs.partitions import batch_partitions
from retraining_assets.defs.resources import (
    BatchSourceResource,
    DvcResource,
    ProductionResource,
    TriggerPolicyResource,
)
from retraining_assets.defs.state import MonitoringStoreResource
from retraining_assets.monitoring_store import MonitoringDataError, MonitoringStore
from retraining_assets.schemas import DatasetSchema
from retraining_assets.storage import check_name

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from retraining_assets.core.drift import ReferenceProfile
    from retraining_assets.core.drift_assessment import DriftAssessment, MonitoredFeatures
    from retraining_assets.core.monitoring import PerformanceAssessment
    from retraining_assets.core.training import Scorer

GROUP = "monitoring"
_DEGRADATION_ALT = "AUC per batch with the onset of degradation"


def _training_data(dvc: DvcResource, record: ProductionRecord) -> "pd.DataFrame":
    """The dataset version ``record`` was trained on (its train and test splits)."""
    if not record.dataset_md5:
        raise dg.Failure(f"production v{record.version} records no training data md5")
    return dvc.read_dataset(record.dataset_md5)


def _reference_profile(
    context: dg.AssetExecutionContext,
    monitoring: MonitoringStore,
    dvc: DvcResource,
    features: "MonitoredFeatures",
    record: ProductionRecord,
    quantile: float | None = None,
) -> tuple["ReferenceProfile", dict[str, float], dict[str, dict[str, float]]]:
    """The drift reference of a production version, its PSI thresholds and correlations, cached.

    Built by one process at a time (``MonitoringStore.building``), so replayed policies serving
    the same booster side by side build it once.
    """
    lock = f"{record.model_md5}-{features.profile_key}-reference"
    with monitoring.building(lock):
        return _reference_profile_once(context, monitoring, dvc, features, record, quantile)


def _reference_profile_once(
    context: dg.AssetExecutionContext,
    monitoring: MonitoringStore,
    dvc: DvcResource,
    features: "MonitoredFeatures",
    record: ProductionRecord,
    quantile: float | None = None,
) -> tuple["ReferenceProfile", dict[str, float], dict[str, dict[str, float]]]:
    """The drift reference of a production version, its PSI thresholds and correlations, cached.

    Built once from the training split of the data the model was trained on, and kept under
    ``profiles/<model md5>-<feature-set key>.npz``; an unreadable cached copy is rebuilt. With a
    ``quantile`` (the ``matters`` rule), each feature's PSI threshold calibrated on the training
    batches (leave one out) and the features' |Spearman| in the training rows are kept beside it
    as JSON; otherwise both are empty.
    """
    from retraining_assets.core import drift_assessment as da

    # One profile per model and monitored feature set (drift_exclude may change).
    key = features.profile_key
    try:
        cached = monitoring.get_profile(record.model_md5, key)
    except MonitoringDataError as exc:
        context.log.warning("rebuilding the reference profile: %s", exc)
        cached = None
    thresholds: dict[str, float] | None = {}
    correlations: dict[str, dict[str, float]] | None = {}
    if quantile is not None:
        thresholds = monitoring.get_thresholds(record.model_md5, key, quantile)
        correlations = monitoring.get_correlations(record.model_md5, key)
    if cached is not None and thresholds is not None and correlations is not None:
        return cached, thresholds, correlations
    train = da.split_rows(_training_data(dvc, record), "train")
    if cached is None:
        cached = da.build_drift_reference(train, features)
        monitoring.put_profile(record.model_md5, key, cached)
    if thresholds is None and quantile is not None:
        thresholds = da.calibrate_reference_thresholds(train, features, quantile)
        monitoring.put_thresholds(record.model_md5, key, quantile, thresholds)
    if correlations is None:
        correlations = da.reference_correlations(train, features)
        monitoring.put_correlations(record.model_md5, key, correlations)
    return cached, thresholds or {}, correlations or {}


def _read_batch(
    batch_source: BatchSourceResource, schema: DatasetSchema, batch_id: str, columns: list[str]
) -> "pd.DataFrame":
    """The ``columns`` of one batch, parsed against the schema."""
    from retraining_assets.core import batches as batch_io

    raw = batch_io.read_raw(batch_source.store(), batch_id)
    return batch_io.parse_batch(raw.data, raw.key, schema, columns=columns)


def _period_start(
    batch_id: str, timestamps: "pd.Series | None", frequency: str
) -> "pd.Timestamp | None":
    """Start of the batch's period (from its dated id, else its earliest row); None if unknown."""
    from retraining_assets.core import batches as batch_io

    try:
        period = batch_io.batch_period(batch_id, timestamps, frequency)
    except batch_io.BatchError:
        return None
    return period[0] if period else None


def _materialized(
    context: dg.AssetExecutionContext, metadata: dict[str, Any]
) -> dg.MaterializeResult:
    """A materialization with ``metadata`` and the code that produced it."""
    return dg.MaterializeResult(metadata={**metadata, **code_metadata(context)})


def _verdict_md(record: Any) -> dict[str, Any]:
    """The typed verdict as the one JSON metadata entry that sensors and replay read."""
    return {k: dg.MetadataValue.json(v) for k, v in verdict_metadata(record).items()}


def _booster(store: ProductionStore, record: ProductionRecord, role: str) -> Any:
    """The booster of ``record`` from md5-verified bytes; a damaged model fails the run."""
    try:
        return store.booster(record)
    except RegistryError as exc:
        raise dg.Failure(description=f"{role} model v{record.version} unusable: {exc}") from None


@functools.cache
def _scoring_version() -> str:
    """Version of the code that scores rows: part of every shared scores key."""
    return source_hash(module_source(m) for m in ("score_cache", "training"))


def _scores(
    monitoring: MonitoringStore, scorer: "Scorer", frame: "pd.DataFrame", model_md5: str
) -> "np.ndarray":
    """``scorer.predict(frame)``; with a shared area, once per model and rows for all who share.

    A replay's policies that serve the same booster score each batch with it; the first leaves
    the scores in the shared area for the others (``core/score_cache.py``: keyed by the model's
    md5 and the exact encoded rows, so a hit is bit-identical). Without a shared area (normal
    runs) it is plain scoring.
    """
    if not monitoring.shares_scores:
        return scorer.predict(frame)
    from retraining_assets.core.score_cache import predict_cached

    return predict_cached(
        scorer,
        frame,
        model_md5=model_md5,
        code_version=_scoring_version(),
        get=lambda key: monitoring.get_shared_scores(model_md5, key),
        put=lambda key, data: monitoring.put_shared_scores(model_md5, key, data),
    )


def _no_reference_metadata(verdict: DriftVerdict) -> dict[str, Any]:
    """What ``batch_drift`` shows before any model was promoted."""
    return {"drift/verdict": verdict.status, "summary": verdict.summary, **_verdict_md(verdict)}


def _drift_metadata(assessment: "DriftAssessment", version: int) -> dict[str, Any]:
    """What ``batch_drift`` shows: the verdict, the rule's numbers and the per-feature table."""
    verdict, matters = assessment.verdict, assessment.matters
    rule_md: dict[str, Any] = {}
    if matters is not None:
        rule_md = {
            "drift/thresholds": dg.MetadataValue.json(
                {k: round(v, 4) for k, v in matters.thresholds.items()}
            ),
            "drift/not_monitored": ", ".join(matters.ignored) or "none",
        }
    return {
        **_verdict_md(verdict),
        "drift/verdict": verdict.status,
        "drift/score": dg.MetadataValue.float(verdict.score),
        "drift/rule": verdict.rule,
        **rule_md,
        "max_psi": dg.MetadataValue.float(verdict.max_psi),
        "max_psi_feature": verdict.max_psi_feature,
        "drifted_features": ", ".join(verdict.drifted_features) or "none",
        "n_drifted": dg.MetadataValue.int(len(verdict.drifted_features)),
        "summary": verdict.summary,
        "excluded_features": ", ".join(assessment.excluded) or "none",
        "psi": dg.MetadataValue.json(verdict.psi),
        "production_version": dg.MetadataValue.int(version),
        "rows": dg.MetadataValue.int(assessment.result.n_current),
        "features": dg.MetadataValue.md(assessment.table()),
    }


@dg.asset(
    code_version=asset_code_version("batch_drift"),
    partitions_def=batch_partitions,
    deps=[raw_batches],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"numpy", "scipy"},
)
def batch_drift(
    context: dg.AssetExecutionContext,
    config: ChartConfig,
    batch_source: BatchSourceResource,
    production: ProductionResource,
    dvc: DvcResource,
    triggers: TriggerPolicyResource,
    monitoring_store: MonitoringStoreResource,
) -> dg.MaterializeResult:
    """Data drift of one batch against the training data of the current production model.

    Per numeric feature PSI (deciles of the reference) and the two-sample KS test, per categorical
    feature chi-square and PSI over categories, and the missing-rate change; a dataset verdict by
    the configured rule. ``data_drift_sensor`` reads the verdict from this asset's metadata;
    ``config.chart`` adds a bar chart of the PSI per feature.
    """
    from retraining_assets.core import drift_assessment as da

    schema, policy = batch_source.dataset_schema(), triggers.policy()
    record = production.store().current()
    if record is None:
        return _materialized(context, _no_reference_metadata(da.NO_REFERENCE))
    features = da.monitored_features(schema, policy.drift_exclude)
    profile, thresholds, correlations = _reference_profile(
        context, monitoring_store.open(), dvc, features, record, da.reference_quantile(policy)
    )
    frame = _read_batch(batch_source, schema, context.partition_key, features.columns)
    booster = _booster(production.store(), record, "production")
    assessment = da.assess_drift(
        profile,
        frame,
        policy,
        features,
        importance=da.feature_importance(booster, exclude=features.excluded),
        thresholds=thresholds,
        production_version=record.version,
        correlations=correlations,
    )
    metadata = _drift_metadata(assessment, record.version)
    if config.chart:
        title = f"Drift of {context.partition_key} vs training data of v{record.version}"
        chart = md_png(assessment.chart(title, policy.psi_threshold), "drift per feature")
        metadata["chart"] = chart
    return _materialized(context, metadata)


def _shadow_metadata(
    store: ProductionStore,
    monitoring: MonitoringStore,
    record: ProductionRecord,
    batch_id: str,
    schema: DatasetSchema,
    rows: "pd.DataFrame",
    y: "np.ndarray",
    p: "np.ndarray",
) -> dict[str, Any]:
    """Score the challenger in the shadow on the same live rows as the champion, if there is one.

    Both models' scores and the labels go to the monitoring store (``shadow_sensor`` and the
    shadow decision read them); the challenger's AUC goes to the metadata.
    """
    from retraining_assets.core.monitoring import batch_performance as measure
    from retraining_assets.core.training import Scorer

    challenger = store.challenger()
    if challenger is None or challenger.version != record.version:
        return {}
    scorer = Scorer(_booster(store, challenger, "challenger"), schema)
    p_challenger = _scores(monitoring, scorer, rows, challenger.model_md5)
    monitoring.put_shadow(challenger.model_md5, batch_id, y=y, champion=p, challenger=p_challenger)
    return {
        "shadow/challenger_md5": challenger.model_md5,
        "shadow/challenger_auc": dg.MetadataValue.float(measure(y, p_challenger).auc),
    }


def _labelled_rows(
    context: dg.AssetExecutionContext,
    batch_source: BatchSourceResource,
    schema: DatasetSchema,
    batch_id: str,
) -> "pd.DataFrame | None":
    """The batch's labelled rows in time order, or ``None`` (logged) while there are none."""
    from retraining_assets.core import batches as batch_io
    from retraining_assets.core.monitoring import labelled_rows

    try:
        frame = batch_io.read_labelled(batch_source.store(), batch_id, schema)
    except batch_io.BatchError as exc:
        raise dg.Failure(description=f"labels of batch {batch_id} unusable: {exc}") from exc
    if frame is None:
        context.log.info("labels for batch %s have not arrived: nothing to measure yet", batch_id)
        return None
    rows = labelled_rows(frame, schema)
    if rows.empty:
        context.log.info("batch %s has no labelled rows yet", batch_id)
        return None
    return rows


def _performance_metadata(
    assessment: "PerformanceAssessment",
    errors_key: str,
    scores_key: str,
    monitoring: MonitoringStore,
    version: int,
) -> dict[str, Any]:
    """What ``batch_performance`` shows: the metrics, the verdict and where the errors are."""
    perf, verdict = assessment.performance, assessment.stored_at(errors_key, scores_key)
    at_promotion = verdict.auc_at_promotion
    return {
        **_verdict_md(verdict),
        "auc": dg.MetadataValue.float(perf.auc),
        "log_loss": dg.MetadataValue.float(perf.log_loss),
        "brier": dg.MetadataValue.float(perf.brier),
        "positive_rate": dg.MetadataValue.float(perf.positive_rate),
        "mean_prediction": dg.MetadataValue.float(perf.mean_prediction),
        "calibration_error": dg.MetadataValue.float(perf.calibration_error),
        "rows": dg.MetadataValue.int(perf.n_rows),
        "production_version": dg.MetadataValue.int(version),
        "production_auc_at_promotion": dg.MetadataValue.float(
            at_promotion if at_promotion is not None else float("nan")
        ),
        "performance/verdict": verdict.status,
        "performance/reason": verdict.reason,
        # The sensor reads the stream through the monitoring store by this key; the location is
        # for people (a folder path or an s3 URL).
        "errors_key": errors_key,
        "errors_location": monitoring.location_of(errors_key),
        # Labels and raw scores: batch_estimated_performance refits its calibration on them.
        "scores_key": scores_key,
        "metrics": dg.MetadataValue.json(json.loads(json.dumps(perf.as_dict()))),
    }


@dg.asset(
    code_version=asset_code_version("batch_performance"),
    partitions_def=batch_partitions,
    deps=[raw_batches],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"lightgbm", "pandas"},
    output_required=False,
)
def batch_performance(
    context: dg.AssetExecutionContext,
    batch_source: BatchSourceResource,
    production: ProductionResource,
    triggers: TriggerPolicyResource,
    monitoring_store: MonitoringStoreResource,
):
    """The production model's quality on one batch once its labels are known.

    Labels come with the batch or later in ``feedback/<batch_id>.parquet``. Reports AUC, log loss,
    positive rate, mean prediction and calibration error, and stores the per-row squared error
    (the error stream of ``concept_drift_sensor``) in the monitoring store under the key in
    ``errors_key``, and the labels with the raw scores under ``scores_key`` (on which
    ``batch_estimated_performance`` refits its calibration for later batches); with a challenger
    in the shadow, both models' scores too. Not materialized while labels are missing.
    """
    from retraining_assets.core.monitoring import assess_performance
    from retraining_assets.core.performance_estimation import LabelledScores
    from retraining_assets.core.training import Scorer

    schema, frequency = batch_source.resolved()
    batch_id = check_name(context.partition_key, "batch id")
    monitoring, store = monitoring_store.open(), production.store()
    record = store.current()
    if record is None:
        context.log.info("no production model yet: nothing to measure")
        return
    rows = _labelled_rows(context, batch_source, schema, batch_id)
    if rows is None:
        return
    y = rows[schema.target].to_numpy(dtype="float64")
    scorer = Scorer(_booster(store, record, "production"), schema)
    p = _scores(monitoring, scorer, rows, record.model_md5)
    at_promotion, version = record.metrics.get("auc"), record.version
    assessment = assess_performance(
        y, p, triggers.policy(), auc_at_promotion=at_promotion, production_version=version
    )
    shadow_md = _shadow_metadata(store, monitoring, record, batch_id, schema, rows, y, p)
    errors_key = monitoring.put_errors(batch_id, record.version, assessment.errors)
    start = _period_start(batch_id, rows[schema.timestamp], frequency)
    labelled = LabelledScores(y=y, scores=p, batch_id=batch_id, period_start=start)
    scores_key = monitoring.put_labelled_scores(record.version, labelled)
    metadata = _performance_metadata(assessment, errors_key, scores_key, monitoring, version)
    yield _materialized(context, {**metadata, **shadow_md})


def _all_materializations(instance: dg.DagsterInstance, key: dg.AssetKey) -> list:
    """Every materialization record of ``key``, oldest first, page by page."""
    records: list[Any] = []
    cursor: str | None = None
    while True:
        page = instance.fetch_materializations(key, limit=1000, cursor=cursor, ascending=True)
        records.extend(page.records)
        if not page.has_more:
            return records
        cursor = page.cursor


def _partition_verdicts(
    instance: dg.DagsterInstance, key: dg.AssetKey, cls: type[V], *, skip_foreign: bool = False
) -> list[tuple[str, V]]:
    """``(partition, verdict)`` of every partitioned materialization of ``key`` with a verdict.

    Oldest first. A verdict of another schema fails loudly, or with ``skip_foreign`` is left out
    (a chart can do without it; the sensor says why).
    """
    found: list[tuple[str, V]] = []
    for record in _all_materializations(instance, key):
        mat = record.asset_materialization
        if mat is None or not mat.partition:
            continue
        try:
            verdict = read_verdict({k: v.value for k, v in mat.metadata.items()}, cls)
        except VerdictSchemaError:
            if not skip_foreign:
                raise
            continue
        if verdict is not None:
            found.append((mat.partition, verdict))
    return found


@dg.asset(
    code_version=asset_code_version("degradation_analysis"),
    deps=[batch_drift, batch_performance],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"numpy", "pandas"},
)
def degradation_analysis(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """When did the production model start to degrade, and which features drifted around then?

    Takes the production model's AUC on every labelled batch (``batch_performance``) and the
    per-feature PSI history (``batch_drift``), finds change points in the AUC series of each
    served model (PELT with a robust penalty, plus a noise check), and reports the onset period,
    the size of the drop, the features whose drift started within two periods of it, and a plot.
    """
    from retraining_assets.core.analysis import (
        analyze_degradation,
        degradation_inputs,
        render_degradation,
    )

    history, drift = degradation_inputs(
        _partition_verdicts(context.instance, batch_performance.key, PerformanceVerdict),
        _partition_verdicts(context.instance, batch_drift.key, DriftVerdict),
    )
    if len(history) < 4:
        summary = f"only {len(history)} labelled batches: too few to analyse"
        return _materialized(context, {"summary": summary})
    report = analyze_degradation(history, drift)
    title = "Production AUC per batch: onset of degradation"
    plot = md_png(render_degradation(history, report, title=title), _DEGRADATION_ALT)
    return _materialized(
        context,
        {
            "summary": report.summary(),
            "found": report.found,
            "onset_period": report.onset_period or "none",
            "drop": dg.MetadataValue.float(float(report.drop) if report.drop is not None else 0.0),
            "drifting_features": ", ".join(f[0] for f in report.drifting_features) or "none",
            "periods": dg.MetadataValue.int(len(history)),
            "plot": plot,
            "report": dg.MetadataValue.json(report.to_dict()),
        },
    )
