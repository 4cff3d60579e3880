"""Label-free early warning: the estimated-AUC asset on a real model, and its sensor."""

from __future__ import annotations

import io
import uuid

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from retraining_assets.core import synthetic
from retraining_assets.core.verdicts import (
    EstimatedPerformanceVerdict,
    PerformanceVerdict,
    verdict_metadata,
)
from retraining_assets.definitions import defs
from retraining_assets.defs.assets import raw_batches
from retraining_assets.defs.estimated import batch_estimated_performance
from retraining_assets.defs.monitoring import batch_performance
from retraining_assets.defs.state import MonitoringStoreResource
from retraining_assets.settings import DEFAULT_TRIGGERS
from retraining_assets_tests.dagster.helpers import (
    RESOURCES,
    ingest,
    latest_metadata,
    production_store,
    run_chain,
    write_batches,
    write_frame,
)

SENSOR = "estimated_performance_sensor"


def tick(instance: dg.DagsterInstance, cursor: str | None = None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=RESOURCES, definitions=defs
    )
    return defs.resolve_sensor_def(SENSOR).evaluate_tick(context)


def report(instance, batch: str, estimated: float, degraded: bool, version: int = 1) -> None:
    record = EstimatedPerformanceVerdict(
        status="degraded" if degraded else "ok",
        reason=f"estimated AUC {estimated:.4f} {'<' if degraded else '>='} 0.95 x 0.8200",
        estimated_auc=estimated,
        reference_auc=0.82,
        rows=800,
        production_version=version,
    )
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key="batch_estimated_performance",
            partition=batch,
            metadata=verdict_metadata(record),
        )
    )


@pytest.fixture
def instance(project):
    with dg.instance_for_test() as inst:
        yield inst


def test_sensor_fires_once_per_cause_and_skips_with_the_numbers(instance) -> None:
    assert tick(instance).skip_message == "no new estimated-performance measurements"
    report(instance, "2024-01-01", 0.81, degraded=False)
    report(instance, "2024-01-08", 0.80, degraded=False)
    quiet = tick(instance)
    assert not quiet.run_requests
    assert "estimated quality holds on 2 new batch(es): lowest estimated AUC 0.8000" in (
        quiet.skip_message or ""
    )
    assert "(2024-01-08)" in (quiet.skip_message or "")
    report(instance, "2024-01-15", 0.70, degraded=True)
    fired = tick(instance, cursor=quiet.cursor)
    request = fired.run_requests[0]
    assert request.run_key == "estimated_performance:2024-01-15:v1"
    assert request.tags["retraining/trigger"] == "estimated_performance"
    assert request.tags["retraining/cause_batch"] == "2024-01-15"
    assert "0.7000 < 0.95" in request.tags["retraining/cause"]
    assert not tick(instance, cursor=fired.cursor).run_requests
    # A lost cursor cannot start a second run for the same cause: same run key.
    assert tick(instance).run_requests[0].run_key == request.run_key


def test_sensor_respects_the_cooldown(instance, project, monkeypatch) -> None:
    instance.add_run(
        dg.DagsterRun(
            job_name="retraining_job", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.SUCCESS
        )
    )
    report(instance, "2024-01-15", 0.70, degraded=True)
    held = tick(instance)
    assert not held.run_requests
    assert "estimated degradation on 2024-01-15 but cooldown: last retraining 0.0 h ago < 24 h" in (
        held.skip_message or ""
    )
    config = project.home / "retraining.yaml"
    config.write_text("triggers:\n  cooldown_hours: 0\n")
    monkeypatch.setenv("RETRAINING_CONFIG", str(config))
    assert len(tick(instance).run_requests) == 1


def narrowed(start: str, seed: int) -> pd.DataFrame:
    """A covariate shift that hurts: only rows with x0 near 0, the model's strongest feature.

    Selecting rows by their features keeps P(y | x) (the labels stay right) while the model is
    left with less to separate them by, so its AUC falls.
    """
    frame = synthetic.make_batch(6000, pd.Timestamp(start), seed=seed)
    return frame[frame["x0"].abs() < 0.3].reset_index(drop=True)


@pytest.mark.slow
def test_estimated_auc_on_a_real_model_warns_on_a_harmful_shift(instance, project) -> None:
    ids = write_batches(project, n_batches=5, rows=800, seed=31)
    ingest(instance, ids)
    assert run_chain(instance, window=4).success
    # Charts are drawn by default (a replay turns them off: ``roc_plot``, ``chart``).
    roc = latest_metadata(instance, "evaluation_report")["roc"]
    assert roc.startswith("![ROC](data:image/png;base64,")
    clean = synthetic.make_history(1, 1500, seed=32, start="2024-03-04")
    batches = {**clean, "2024-03-11": narrowed("2024-03-11", 33)}
    for batch_id, frame in batches.items():
        write_frame(project, batch_id, frame)
    instance.add_dynamic_partitions("batches", sorted(batches))
    for batch_id in sorted(batches):
        result = dg.materialize(
            [raw_batches, batch_estimated_performance, batch_performance],
            instance=instance,
            partition_key=batch_id,
            resources=RESOURCES,
        )
        assert result.success
    ok = latest_metadata(instance, "batch_estimated_performance", "2024-03-04")
    shifted = latest_metadata(instance, "batch_estimated_performance", "2024-03-11")
    realised_ok = latest_metadata(instance, "batch_performance", "2024-03-04")["auc"]
    realised_shifted = latest_metadata(instance, "batch_performance", "2024-03-11")["auc"]
    assert ok["estimated/verdict"] == "ok", ok["estimated/reason"]
    # Each batch's labels were measured in its own run: the first batch after the test week is
    # calibrated on the test split alone (never its own labels), the second also on the first.
    assert ok["estimated/calibration_batches"] == 0
    assert shifted["estimated/calibration_batches"] == 1
    assert shifted["verdict"]["calibration_batches"] == ["2024-03-04"]
    assert latest_metadata(instance, "batch_performance", "2024-03-04")["scores_key"] == (
        "scores/2024-03-04.v1.npz"
    )
    assert abs(ok["estimated/auc"] - realised_ok) < 0.05
    assert realised_shifted < 0.9 * realised_ok
    assert abs(shifted["estimated/auc"] - realised_shifted) < 0.06
    assert shifted["estimated/verdict"] == "degraded", shifted["estimated/reason"]
    typed = EstimatedPerformanceVerdict(
        **{k: v for k, v in shifted["verdict"].items() if k != "kind"}
    )
    assert typed.degraded and typed.estimated_auc == shifted["estimated/auc"]
    # The floor shown and recorded is the effective one: the higher of the relative and the
    # absolute floor (here the relative one: the model is good).
    policy = DEFAULT_TRIGGERS
    effective = max(
        policy.estimated_relative_auc_floor * shifted["estimated/reference_auc"],
        policy.estimated_auc_floor,
    )
    assert shifted["estimated/floor"] == pytest.approx(effective) == typed.floor
    assert shifted["chart"].startswith("![estimated AUC per batch](data:image/png;base64,")
    # The calibrator is plain numbers in the monitoring store, keyed by the model's md5.
    record = production_store().current()
    assert record is not None
    assert shifted["calibrator_key"] == f"calibrators/{record.model_md5}.npz"
    data = MonitoringStoreResource().open().store.get(shifted["calibrator_key"])
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        assert set(archive.files) == {"format", "thresholds", "probabilities", "reference"}
    fired = tick(instance)
    assert fired.run_requests[0].run_key == "estimated_performance:2024-03-11:v1"
    # Turned off (as a replay does): the same verdicts and metadata, without the chart.
    from retraining_assets.defs.monitoring import batch_drift

    charted = [batch_drift, batch_estimated_performance]
    seen = {}
    for chart in (True, False):
        assert dg.materialize(
            charted,
            instance=instance,
            partition_key="2024-03-11",
            resources=RESOURCES,
            run_config={"ops": {a.op.name: {"config": {"chart": chart}} for a in charted}},
        ).success
        seen[chart] = {
            a.op.name: latest_metadata(instance, a.op.name, "2024-03-11") for a in charted
        }
    for name, drawn in seen[True].items():
        assert drawn["chart"].startswith("!["), name
        assert seen[False][name] == {k: v for k, v in drawn.items() if k != "chart"}


@pytest.mark.slow
def test_calibration_refits_on_earlier_labelled_batches_of_the_same_version_only(
    instance, project
) -> None:
    """The refit uses the labels of batches before the estimated one, measured with its model.

    The labels of every served batch are in the store before any estimate, so the estimated
    batch's own labels and a later batch's are there too: neither may be used (no leakage). A
    newer production version does not calibrate on what the older one measured.
    """
    from retraining_assets.core.performance_estimation import (
        LabelledScores,
        estimate_performance,
        fit_calibrator,
        recalibrate,
    )
    from retraining_assets.core.training import Scorer, TrainParams, train_model

    schema = synthetic.SYNTHETIC_SCHEMA
    history = synthetic.make_history(6, 600, seed=41)
    ids = sorted(history)
    params = TrainParams(num_threads=1, num_boost_round=20)
    booster = train_model(pd.concat([history[b] for b in ids[:2]]), schema, params).booster
    model = booster.model_to_string().encode()
    store = production_store()
    record = store.promote(model, expected_current=None, reason="test")
    scorer = Scorer(booster, schema)

    def scored(batch_id: str | None) -> LabelledScores:
        frame = history[batch_id or ids[2]]
        return LabelledScores(
            y=frame[schema.target].to_numpy(dtype="float64"),
            scores=scorer.predict(frame),
            batch_id=batch_id or "",
            period_start=pd.Timestamp(batch_id) if batch_id else None,
        )

    # The test split's calibration, as if fitted on the chain's data (no DVC needed here).
    reference = scored(None)
    base = fit_calibrator(*reference.arrays())
    monitoring = MonitoringStoreResource().open()
    monitoring.put_calibrator(record.model_md5, base)
    monitoring.put_reference_scores(record.model_md5, reference)
    served = ids[3:]
    instance.add_dynamic_partitions("batches", served)
    for batch_id in served:
        write_frame(project, batch_id, history[batch_id])
        # What batch_performance leaves once the labels arrived: scores in the store, a verdict.
        verdict = PerformanceVerdict(
            status="ok",
            reason="",
            auc=0.8,
            production_version=1,
            scores_key=monitoring.put_labelled_scores(1, scored(batch_id)),
        )
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key="batch_performance",
                partition=batch_id,
                metadata=verdict_metadata(verdict),
            )
        )

    def estimate(batch_id: str) -> tuple[dict, float, float]:
        assert dg.materialize(
            [batch_estimated_performance],
            instance=instance,
            partition_key=batch_id,
            resources=RESOURCES,
        ).success
        scores = scorer.predict(history[batch_id])
        refit = recalibrate(base, reference, [scored(served[0])]).calibrator
        return (
            latest_metadata(instance, "batch_estimated_performance", batch_id),
            estimate_performance(base, scores).estimated_auc,
            estimate_performance(refit, scores).estimated_auc,
        )

    second, alone, refitted = estimate(served[1])
    assert second["estimated/calibration_batches"] == 1
    assert second["estimated/calibration_rows"] == len(history[served[0]])
    assert second["verdict"]["calibration_batches"] == [served[0]]
    assert second["estimated/auc"] == pytest.approx(refitted, abs=1e-12)
    assert abs(refitted - alone) > 1e-6
    assert second["estimated/reference_auc"] == pytest.approx(base.reference_auc)
    # Production v2 (the same bytes, so the same cached calibrator): v1's labels do not count.
    store.promote(model, expected_current=1, reason="test")
    third, alone, _ = estimate(served[2])
    assert third["production_version"] == 2
    assert third["estimated/calibration_batches"] == third["estimated/calibration_rows"] == 0
    assert third["verdict"]["calibration_batches"] == []
    assert third["estimated/auc"] == pytest.approx(alone, abs=1e-12)
