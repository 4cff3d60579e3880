"""Monitoring assets, one partition per batch.

Data drift against the production model's training data, and the production model's quality once
the batch's labels arrive.
"""

import json
from typing import Any

import dagster as dg

from retraining_assets.code_version import asset_code_version
from retraining_assets.core.registry import ProductionRecord, ProductionStore, RegistryError
from retraining_assets.core.verdicts import (
    DriftVerdict,
    PerformanceVerdict,
    read_verdict,
    verdict_metadata,
)
from retraining_assets.defs.assets import raw_batches
from retraining_assets.defs.constants import OWNERS
from retraining_assets.defs.metadata import md_png
from retraining_assets.defs.partitions import batch_partitions
from retraining_assets.defs.resources import (
    BatchSourceResource,
    DvcResource,
    ProductionResource,
    TriggerPolicyResource,
)
from retraining_assets.defs.state import MonitoringStoreResource
from retraining_assets.monitoring_store import MonitoringDataError, MonitoringStore
from retraining_assets.settings import BATCH_COLUMN, SPLIT_COLUMN
from retraining_assets.storage import check_name

GROUP = "monitoring"


def _reference_profile(
    context: dg.AssetExecutionContext,
    monitoring: MonitoringStore,
    dvc: DvcResource,
    numeric: list[str],
    categorical: list[str],
    record,
    quantile: float | None = None,
):
    """The drift reference of a production version and its calibrated PSI thresholds, cached.

    Built once from the training split of the data the model was trained on, and kept under
    ``profiles/<model md5>-<feature-set key>.npz``; an unreadable cached copy is rebuilt. With a
    ``quantile`` (the ``matters`` rule), each feature's PSI threshold calibrated on the training
    batches (leave one out) is kept beside it as JSON; otherwise the thresholds are empty.
    """
    import hashlib

    from retraining_assets.core.drift import build_reference
    from retraining_assets.core.drift_matters import calibrate_thresholds

    # One profile per model and monitored feature set (drift_exclude may change).
    key = hashlib.sha1(",".join([*numeric, "|", *categorical]).encode()).hexdigest()[:8]
    try:
        cached = monitoring.get_profile(record.model_md5, key)
    except MonitoringDataError as exc:
        context.log.warning("rebuilding the reference profile: %s", exc)
        cached = None
    thresholds = (
        monitoring.get_thresholds(record.model_md5, key, quantile) if quantile is not None else {}
    )
    if cached is not None and thresholds is not None:
        return cached, thresholds
    if not record.dataset_md5:
        raise dg.Failure(f"production v{record.version} records no training data md5")
    frame = dvc.read_dataset(record.dataset_md5)
    train = frame[frame[SPLIT_COLUMN] == "train"] if SPLIT_COLUMN in frame else frame
    if cached is None:
        cached = build_reference(train, numeric, categorical)
        monitoring.put_profile(record.model_md5, key, cached)
    if thresholds is None and quantile is not None:
        # The reference's own period-to-period PSI (leave one training batch out).
        thresholds = (
            calibrate_thresholds(train, numeric, categorical, BATCH_COLUMN, quantile=quantile)
            if BATCH_COLUMN in train
            else {}
        )
        monitoring.put_thresholds(record.model_md5, key, quantile, thresholds)
    return cached, thresholds or {}


def _verdict_md(record: DriftVerdict | PerformanceVerdict) -> dict[str, Any]:
    """The typed verdict as the one JSON metadata entry that sensors and replay read."""
    return {k: dg.MetadataValue.json(v) for k, v in verdict_metadata(record).items()}


def _booster(store: ProductionStore, record: ProductionRecord, role: str) -> Any:
    """The booster of ``record`` from md5-verified bytes; a damaged model fails the run."""
    try:
        return store.booster(record)
    except RegistryError as exc:
        raise dg.Failure(description=f"{role} model v{record.version} unusable: {exc}") from None


def _feature_importance(booster, features: list[str]) -> dict[str, float]:
    gains = booster.feature_importance(importance_type="gain")
    total = float(sum(gains)) or 1.0
    return {name: float(g) / total for name, g in zip(booster.feature_name(), gains, strict=True)}


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
    batch_source: BatchSourceResource,
    production: ProductionResource,
    dvc: DvcResource,
    triggers: TriggerPolicyResource,
    monitoring_store: MonitoringStoreResource,
) -> dg.MaterializeResult:
    """Data drift of one batch against the training data of the current production model.

    Per numeric feature PSI (deciles of the reference) and the two-sample KS test, per categorical
    feature chi-square and PSI over categories, and the missing-rate change; a dataset verdict by
    the configured rule. ``data_drift_sensor`` reads the verdict from this asset's metadata.
    """
    from retraining_assets.core import batches as batch_io
    from retraining_assets.core.drift import DriftPolicy, compute_drift
    from retraining_assets.core.drift_matters import drift_that_matters
    from retraining_assets.core.monitoring import plot_drift

    schema = batch_source.dataset_schema()
    policy = triggers.policy()
    record = production.store().current()
    if record is None:
        return dg.MaterializeResult(
            metadata={
                "drift/verdict": "no_reference",
                "summary": "no production model yet",
                **_verdict_md(
                    DriftVerdict(status="no_reference", summary="no production model yet")
                ),
            }
        )
    excluded = set(policy.drift_exclude)
    numeric = [f for f in schema.numeric_features if f not in excluded]
    categorical = [f for f in schema.categorical_features if f not in excluded]
    matters = policy.drift_rule == "matters"
    profile, thresholds = _reference_profile(
        context,
        monitoring_store.open(),
        dvc,
        numeric,
        categorical,
        record,
        quantile=policy.drift_quantile if matters else None,
    )
    raw = batch_io.read_raw(batch_source.store(), context.partition_key)
    frame = batch_io.parse_batch(raw.data, raw.key, schema, columns=[*numeric, *categorical])
    booster = _booster(production.store(), record, "production")
    importance = {
        k: v for k, v in _feature_importance(booster, schema.features).items() if k not in excluded
    }
    result = compute_drift(
        profile,
        frame,
        DriftPolicy(
            psi_threshold=policy.psi_threshold,
            ks_alpha=policy.ks_alpha,
            ks_min_d=policy.ks_min_d,
            correction=policy.correction,
            # "matters" decides below from the per-feature PSI; any_psi fills them in.
            rule="any_psi" if matters else policy.drift_rule,
            share_threshold=policy.share_threshold,
        ),
        importance=importance,
    )
    rule_md: dict[str, Any] = {}
    if matters:
        decided = drift_that_matters(
            result,
            thresholds,
            importance,
            psi_floor=policy.psi_threshold,
            margin=policy.drift_margin,
            share_threshold=policy.drift_importance_share,
            exclude_calendar=policy.drift_exclude_calendar,
        )
        rule_md = {
            "drift/thresholds": dg.MetadataValue.json(
                {k: round(v, 4) for k, v in decided.thresholds.items()}
            ),
            "drift/not_monitored": ", ".join(decided.ignored) or "none",
        }
        drifted, score, threshold = decided.drifted, decided.score, decided.threshold
        drifted_features = decided.features
        summary = (
            f"{'drift' if drifted else 'no drift'} that matters: importance share "
            f"{score:.2f} {'>=' if score >= threshold else '<'} {threshold:.2f} over features "
            f"past their calibrated PSI thresholds ({', '.join(drifted_features) or 'none'})"
            + (f"; forced by {', '.join(result.forced_by)}" if result.forced_by else "")
        )
    else:
        drifted, score, threshold = result.drifted, result.score, result.threshold
        drifted_features, summary = result.drifted_features(), result.summary()
    chart = plot_drift(
        result,
        title=f"Drift of {context.partition_key} vs training data of v{record.version}",
        psi_threshold=policy.psi_threshold,
    )

    def fmt(value: float | None, spec: str) -> str:
        return "" if value is None else format(value, spec)

    def psi_of(feature) -> float:
        # None: the column is missing from the batch entirely (drifted, with a reason).
        return float("inf") if feature.psi is None else feature.psi

    top = max(result.features, key=psi_of)
    verdict = DriftVerdict(
        status="drift" if drifted else "no_drift",
        rule=policy.drift_rule,
        score=float(score),
        threshold=float(threshold),
        max_psi=psi_of(top),
        max_psi_feature=top.name,
        drifted_features=tuple(drifted_features),
        psi={f.name: (None if f.psi is None else round(float(f.psi), 6)) for f in result.features},
        production_version=record.version,
        rows=result.n_current,
        summary=summary,
    )
    table = "| feature | PSI | KS D | p (adj.) | drifted |\n|---|---|---|---|---|\n" + "\n".join(
        f"| {f.name} | {fmt(f.psi, '.3f')} | {fmt(f.ks_d, '.3f')} | "
        f"{fmt(f.p_value_adjusted, '.2g')} | {'; '.join(f.reasons) if f.drifted else ''} |"
        for f in sorted(result.features, key=lambda f: -psi_of(f))
    )
    return dg.MaterializeResult(
        metadata={
            **_verdict_md(verdict),
            "drift/verdict": verdict.status,
            "drift/score": dg.MetadataValue.float(verdict.score),
            "drift/rule": verdict.rule,
            **rule_md,
            "max_psi": dg.MetadataValue.float(psi_of(top)),
            "max_psi_feature": top.name,
            "drifted_features": ", ".join(verdict.drifted_features) or "none",
            "n_drifted": dg.MetadataValue.int(len(verdict.drifted_features)),
            "summary": verdict.summary,
            "excluded_features": ", ".join(sorted(excluded)) or "none",
            "psi": dg.MetadataValue.json(verdict.psi),
            "production_version": dg.MetadataValue.int(record.version),
            "rows": dg.MetadataValue.int(result.n_current),
            "features": dg.MetadataValue.md(table),
            "chart": md_png(chart, "drift per feature"),
        }
    )


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
    ``errors_key``; with a challenger in the shadow, both models' scores too. Not materialized
    while labels are missing.
    """
    from retraining_assets.core import batches as batch_io
    from retraining_assets.core.monitoring import batch_performance as measure
    from retraining_assets.core.monitoring import performance_degraded, row_errors
    from retraining_assets.core.training import Scorer

    schema = batch_source.dataset_schema()
    batch_id = check_name(context.partition_key, "batch id")
    monitoring = monitoring_store.open()
    store = production.store()
    record = store.current()
    if record is None:
        context.log.info("no production model yet: nothing to measure")
        return
    try:
        frame = batch_io.read_labelled(batch_source.store(), batch_id, schema)
    except batch_io.BatchError as exc:
        raise dg.Failure(description=f"labels of batch {batch_id} unusable: {exc}") from exc
    if frame is None:
        context.log.info("labels for batch %s have not arrived: nothing to measure yet", batch_id)
        return
    labelled = frame[frame[schema.target].notna()]
    if labelled.empty:
        context.log.info("batch %s has no labelled rows yet", batch_id)
        return
    order = labelled.sort_values(schema.timestamp, kind="stable")
    y = order[schema.target].to_numpy(dtype="float64")
    p = Scorer(_booster(store, record, "production"), schema).predict(order)
    perf = measure(y, p)
    policy = triggers.policy()
    at_promotion = record.metrics.get("auc")
    degraded, why = performance_degraded(
        perf.auc,
        at_promotion,
        auc_floor=policy.auc_floor,
        relative_floor=policy.relative_auc_floor,
    )
    if perf.n_rows < policy.min_labelled_rows:
        degraded, why = False, f"only {perf.n_rows} labelled rows < {policy.min_labelled_rows}"
    shadow_md: dict = {}
    challenger = store.challenger()
    if challenger is not None and challenger.version == record.version:
        # Shadow evaluation: the challenger scores the same live rows as the champion.
        p_challenger = Scorer(_booster(store, challenger, "challenger"), schema).predict(order)
        monitoring.put_shadow(
            challenger.model_md5, batch_id, y=y, champion=p, challenger=p_challenger
        )
        shadow_md = {
            "shadow/challenger_md5": challenger.model_md5,
            "shadow/challenger_auc": dg.MetadataValue.float(measure(y, p_challenger).auc),
        }
    errors_key = monitoring.put_errors(batch_id, record.version, row_errors(y, p))
    verdict = PerformanceVerdict(
        status="degraded" if degraded else "ok",
        reason=why,
        auc=float(perf.auc),
        log_loss=float(perf.log_loss),
        rows=perf.n_rows,
        production_version=record.version,
        auc_at_promotion=None if at_promotion is None else float(at_promotion),
        errors_key=errors_key,
    )
    yield dg.MaterializeResult(
        metadata={
            **_verdict_md(verdict),
            "auc": dg.MetadataValue.float(perf.auc),
            "log_loss": dg.MetadataValue.float(perf.log_loss),
            "brier": dg.MetadataValue.float(perf.brier),
            "positive_rate": dg.MetadataValue.float(perf.positive_rate),
            "mean_prediction": dg.MetadataValue.float(perf.mean_prediction),
            "calibration_error": dg.MetadataValue.float(perf.calibration_error),
            "rows": dg.MetadataValue.int(perf.n_rows),
            "production_version": dg.MetadataValue.int(record.version),
            "production_auc_at_promotion": dg.MetadataValue.float(
                at_promotion if at_promotion is not None else float("nan")
            ),
            "performance/verdict": verdict.status,
            "performance/reason": verdict.reason,
            # The sensor reads the stream through the monitoring store by this key; the
            # location is for people (a folder path or an s3 URL).
            "errors_key": errors_key,
            "errors_location": monitoring.location_of(errors_key),
            "metrics": dg.MetadataValue.json(json.loads(json.dumps(perf.as_dict()))),
            **shadow_md,
        }
    )


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
        PeriodPerformance,
        analyze_degradation,
        render_degradation,
    )

    performance: dict[str, PeriodPerformance] = {}
    drift: dict[str, dict[str, float]] = {}
    for key, sink in ((batch_performance.key, "perf"), (batch_drift.key, "drift")):
        for record in _all_materializations(context.instance, key):
            mat = record.asset_materialization
            if mat is None or not mat.partition:
                continue
            md = {k: v.value for k, v in mat.metadata.items()}
            if sink == "perf":
                perf = read_verdict(md, PerformanceVerdict)
                if perf is not None and perf.production_version is not None:
                    performance[mat.partition] = PeriodPerformance(
                        period=mat.partition,
                        auc=perf.auc,
                        n_rows=perf.rows,
                        log_loss=perf.log_loss,
                        model_version=perf.production_version,
                    )
            else:
                measured = read_verdict(md, DriftVerdict)
                if measured is not None and measured.measured:
                    drift[mat.partition] = {
                        k: float(v) for k, v in measured.psi.items() if v is not None
                    }
    history = [performance[p] for p in sorted(performance)]
    if len(history) < 4:
        return dg.MaterializeResult(
            metadata={"summary": f"only {len(history)} labelled batches: too few to analyse"}
        )
    report = analyze_degradation(history, drift)
    plot = render_degradation(
        history,
        report,
        title="Production AUC per batch: onset of degradation",
    )
    return dg.MaterializeResult(
        metadata={
            "summary": report.summary(),
            "found": report.found,
            "onset_period": report.onset_period or "none",
            "drop": dg.MetadataValue.float(float(report.drop) if report.drop is not None else 0.0),
            "drifting_features": ", ".join(f[0] for f in report.drifting_features) or "none",
            "periods": dg.MetadataValue.int(len(history)),
            "plot": md_png(plot, "AUC per batch with the onset of degradation"),
            "report": dg.MetadataValue.json(report.to_dict()),
        }
    )
