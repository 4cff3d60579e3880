"""Sensors and the schedule, evaluated with real instances (build_sensor_context)."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import dagster as dg
import numpy as np
import pytest

from retraining_assets.core import synthetic
from retraining_assets.core.verdicts import DriftVerdict, PerformanceVerdict, verdict_metadata
from retraining_assets.definitions import defs
from retraining_assets.defs.resources import BatchSourceResource, ProductionResource
from retraining_assets_tests.dagster.helpers import (
    RESOURCES,
    ingest,
    latest_metadata,
    monitor,
    run_chain,
    write_batches,
    write_frame,
)


def sensor(name: str) -> dg.SensorDefinition:
    return defs.resolve_sensor_def(name)


def tick(instance: dg.DagsterInstance, name: str, cursor: str | None = None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=RESOURCES, definitions=defs
    )
    return sensor(name).evaluate_tick(context)


def call(instance: dg.DagsterInstance, name: str, cursor: str | None = None):
    """Invoke the sensor function itself: its raw SensorResult, before Dagster resolves the
    run requests (which needs the partitions that the same result adds)."""
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=RESOURCES, definitions=defs
    )
    result = sensor(name)(context)
    if isinstance(result, dg.SkipReason):
        return dg.SensorResult(skip_reason=result, cursor=cursor)
    return result


def report_drift(instance, batch: str, verdict: str, max_psi: float, version: int = 1) -> None:
    record = DriftVerdict(
        status=verdict,
        rule="any_psi",
        score=max_psi,
        threshold=0.2,
        max_psi=max_psi,
        max_psi_feature="x0",
        drifted_features=("x0", "x1") if verdict == "drift" else (),
        summary=f"max PSI {max_psi:.2f}",
        production_version=version,
    )
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key="batch_drift",
            partition=batch,
            metadata={"drift/verdict": verdict, **verdict_metadata(record)},
        )
    )


def report_performance(instance, batch: str, auc: float, degraded: bool, version: int = 1):
    record = PerformanceVerdict(
        status="degraded" if degraded else "ok",
        reason=f"AUC {auc:.4f} vs floor 0.60",
        auc=auc,
        production_version=version,
    )
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key="batch_performance",
            partition=batch,
            metadata={"auc": auc, **verdict_metadata(record)},
        )
    )


def add_retraining_run(instance: dg.DagsterInstance) -> None:
    instance.add_run(
        dg.DagsterRun(
            job_name="retraining_job", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.SUCCESS
        )
    )


@pytest.fixture
def instance(project):
    with dg.instance_for_test() as inst:
        yield inst


# --- data drift -----------------------------------------------------------------------------


def test_data_drift_sensor_fires_on_drift_with_cause(instance) -> None:
    report_drift(instance, "2024-01-01", "no_drift", 0.05)
    report_drift(instance, "2024-01-08", "drift", 0.41)
    result = tick(instance, "data_drift_sensor")
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.run_key == "data_drift:2024-01-08:v1"
    assert request.tags["retraining/trigger"] == "data_drift"
    assert request.tags["retraining/drifted_features"] == "x0, x1"
    assert request.tags["retraining/cause_batch"] == "2024-01-08"


def test_data_drift_sensor_skips_with_the_numbers(instance) -> None:
    report_drift(instance, "2024-01-01", "no_drift", 0.05)
    report_drift(instance, "2024-01-08", "no_drift", 0.08)
    result = tick(instance, "data_drift_sensor")
    assert not result.run_requests
    assert "no drift in 2 new batch(es): max PSI 0.080 < 0.20 (x0 in 2024-01-08)" in (
        result.skip_message or ""
    )


def test_one_run_per_cause_across_ticks(instance) -> None:
    report_drift(instance, "2024-01-08", "drift", 0.41)
    first = tick(instance, "data_drift_sensor")
    again = tick(instance, "data_drift_sensor", cursor=first.cursor)
    assert not again.run_requests and "no new drift" in (again.skip_message or "")
    # Even a lost cursor cannot start a second run for the same cause: same run key.
    replay = tick(instance, "data_drift_sensor", cursor=None)
    assert replay.run_requests[0].run_key == first.run_requests[0].run_key
    # A new production version makes the same batch's drift a new cause.
    report_drift(instance, "2024-01-08", "drift", 0.41, version=2)
    later = tick(instance, "data_drift_sensor", cursor=first.cursor)
    assert later.run_requests[0].run_key == "data_drift:2024-01-08:v2"


def test_cooldown_is_respected_and_configurable(instance, project, monkeypatch) -> None:
    add_retraining_run(instance)
    report_drift(instance, "2024-01-08", "drift", 0.41)
    held = tick(instance, "data_drift_sensor")
    assert not held.run_requests
    assert "cooldown: last retraining 0.0 h ago < 24 h" in (held.skip_message or "")
    config = project.home / "retraining.yaml"
    config.write_text("triggers:\n  cooldown_hours: 0\n")
    monkeypatch.setenv("RETRAINING_CONFIG", str(config))
    assert len(tick(instance, "data_drift_sensor").run_requests) == 1


def test_unknown_trigger_setting_is_a_clear_error(instance, project, monkeypatch) -> None:
    config = project.home / "retraining.yaml"
    config.write_text("triggers:\n  psi_treshold: 0.3\n")
    monkeypatch.setenv("RETRAINING_CONFIG", str(config))
    report_drift(instance, "2024-01-08", "drift", 0.41)
    with pytest.raises(Exception, match="psi_treshold"):
        tick(instance, "data_drift_sensor")


@pytest.mark.parametrize(
    "sensor_name, change, message",
    [
        ("data_drift_sensor", {"schema_version": 99}, "schema_version 99; this code reads 1"),
        ("data_drift_sensor", {"drop": "status"}, "missing fields ['status']"),
        ("performance_drift_sensor", {"rename": ("auc", "roc_auc")}, "unknown fields ['roc_auc']"),
    ],
)
def test_sensors_refuse_a_verdict_of_another_schema(instance, sensor_name, change, message) -> None:
    """Renaming or dropping a verdict field, or bumping its version, fails the tick loudly."""
    if sensor_name == "data_drift_sensor":
        key, record = "batch_drift", DriftVerdict(status="drift", production_version=1)
    else:
        key, record = "batch_performance", PerformanceVerdict(status="ok", reason="", auc=0.8)
    stored = dict(verdict_metadata(record)["verdict"])
    if "schema_version" in change:
        stored["schema_version"] = change["schema_version"]
    if "drop" in change:
        stored.pop(change["drop"])
    if "rename" in change:
        old, new = change["rename"]
        stored[new] = stored.pop(old)
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=key, partition="2024-01-08", metadata={"verdict": stored})
    )
    with pytest.raises(Exception, match=re.escape(message)):
        tick(instance, sensor_name)


# --- performance ----------------------------------------------------------------------------


def test_performance_sensor_fires_and_skips(instance) -> None:
    report_performance(instance, "2024-01-01", 0.81, degraded=False)
    quiet = tick(instance, "performance_drift_sensor")
    assert not quiet.run_requests and "0.8100" in (quiet.skip_message or "")
    report_performance(instance, "2024-01-08", 0.55, degraded=True)
    fired = tick(instance, "performance_drift_sensor", cursor=quiet.cursor)
    assert fired.run_requests[0].run_key == "performance:2024-01-08:v1"
    assert fired.run_requests[0].tags["retraining/trigger"] == "performance_drift"


# --- schedule -------------------------------------------------------------------------------


def test_weekly_schedule_fires_and_skips_in_cooldown(instance) -> None:
    schedule = defs.resolve_schedule_def("weekly_retraining_schedule")
    assert schedule.cron_schedule == "0 3 * * 1"
    assert schedule.execution_timezone == "UTC"
    when = dt.datetime.now(dt.UTC)
    # Contexts with resources enter the instance: closing them restores Dagster's current
    # state storage, which would otherwise point later tests at this test's deleted instance.
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when, resources=RESOURCES
    ) as context:
        data = schedule.evaluate_tick(context)
    assert data.run_requests and data.run_requests[0].tags["retraining/trigger"] == "weekly"
    add_retraining_run(instance)
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when, resources=RESOURCES
    ) as context:
        skipped = schedule.evaluate_tick(context)
    assert not skipped.run_requests
    assert "cooldown 72 h" in (skipped.skip_message or "")


# --- new batches and feedback ---------------------------------------------------------------


def test_new_batch_sensor_adds_partitions_and_requests_monitoring(instance, project) -> None:
    ids = write_batches(project, n_batches=3, rows=60)
    first = call(instance, "new_batch_sensor")
    assert {r.partition_key for r in first.run_requests} == set(ids)
    assert {r.job_name for r in first.run_requests} == {"monitoring_job"}
    assert first.dynamic_partitions_requests[0].partition_keys == ids  # type: ignore[index]
    instance.add_dynamic_partitions("batches", ids)
    quiet = call(instance, "new_batch_sensor", cursor=first.cursor)
    assert not quiet.run_requests and "no new batch among 3 files" in (
        quiet.skip_reason.skip_message if quiet.skip_reason else ""
    )

    # Labels arrive later as a feedback file: the batch's quality is measured.
    frame = synthetic.make_batch(60, synthetic.pd.Timestamp("2024-02-01"), seed=9)
    unlabelled = frame.drop(columns=["label"])
    write_frame(project, "2024-02-01", unlabelled)
    instance.add_dynamic_partitions("batches", ["2024-02-01"])
    feedback_dir = project.batches / "feedback"
    feedback_dir.mkdir()
    frame[["row_id", "label"]].to_parquet(feedback_dir / "2024-02-01.parquet", index=False)
    fed = call(instance, "new_batch_sensor", cursor=quiet.cursor)
    assert [(r.job_name, r.partition_key) for r in fed.run_requests] == [
        ("performance_job", "2024-02-01")
    ]
    assert not call(instance, "new_batch_sensor", cursor=fed.cursor).run_requests


# --- real models: performance and concept drift ---------------------------------------------


@pytest.mark.slow
def test_degraded_labelled_batches_fire_performance_but_stationary_ones_do_not(
    instance, project
) -> None:
    ids = write_batches(project, n_batches=5, rows=800, seed=11)
    ingest(instance, ids)
    assert run_chain(instance, window=4).success
    clean = synthetic.make_history(2, 800, seed=12, start="2024-03-04")
    flipped = synthetic.make_history(
        1,
        800,
        seed=13,
        start="2024-03-18",
        drift_from=0,
        drift=synthetic.DriftSpec(concept_flip=1.0),
    )
    for batch_id, frame in {**clean, **flipped}.items():
        write_frame(project, batch_id, frame)
    monitor(instance, sorted(clean))
    quiet = tick(instance, "performance_drift_sensor")
    assert not quiet.run_requests, quiet.skip_message
    monitor(instance, sorted(flipped))
    fired = tick(instance, "performance_drift_sensor", cursor=quiet.cursor)
    assert fired.run_requests, fired.skip_message
    md = latest_metadata(instance, "batch_performance", sorted(flipped)[0])
    assert md["performance/verdict"] == "degraded" and md["auc"] < 0.6


@pytest.mark.slow
def test_concept_drift_sensor_fires_on_changed_relationship_with_stable_features(
    instance, project
) -> None:
    ids = write_batches(project, n_batches=5, rows=800, seed=21)
    ingest(instance, ids)
    assert run_chain(instance, window=4).success
    stable = synthetic.make_history(3, 800, seed=22, start="2024-03-04")
    for batch_id, frame in stable.items():
        write_frame(project, batch_id, frame)
    monitor(instance, sorted(stable))
    quiet = tick(instance, "concept_drift_sensor")
    assert not quiet.run_requests, quiet.skip_message
    assert "no change in the error stream of v1" in (quiet.skip_message or "")

    changed = synthetic.make_history(
        3,
        800,
        seed=23,
        start="2024-03-25",
        drift_from=0,
        drift=synthetic.DriftSpec(concept_flip=0.6),
    )
    for batch_id, frame in changed.items():
        write_frame(project, batch_id, frame)
    monitor(instance, sorted(changed))
    # The features did not drift: the data-drift sensor stays quiet ...
    drift = tick(instance, "data_drift_sensor")
    assert not drift.run_requests, drift.skip_message
    # ... but the error stream changed: concept drift.
    fired = tick(instance, "concept_drift_sensor", cursor=quiet.cursor)
    assert fired.run_requests, fired.skip_message
    request = fired.run_requests[0]
    assert request.tags["retraining/trigger"] == "concept_drift"
    assert request.run_key.startswith("concept:2024-0")
    state = json.loads(fired.cursor or "{}")
    assert state["version"] == 1 and state["rows"] == 6 * 800
    assert ProductionResource().store().current().version == 1  # type: ignore[union-attr]
    assert BatchSourceResource(dataset="synthetic").dataset_schema().target == "label"


def test_degradation_analysis_finds_the_onset_in_the_recorded_history(instance) -> None:
    from retraining_assets.defs.monitoring import degradation_analysis

    rng = np.random.default_rng(3)
    periods = [(dt.date(2024, 1, 1) + dt.timedelta(weeks=i)).isoformat() for i in range(30)]
    for i, period in enumerate(periods):
        auc = (0.80 if i < 18 else 0.72) + rng.normal(0, 0.01)
        perf = PerformanceVerdict(
            status="ok", reason="", auc=auc, log_loss=0.5, rows=500, production_version=1
        )
        drift = DriftVerdict(status="no_drift", psi={"x0": 0.5 if i >= 17 else 0.02, "x1": 0.03})
        for key, record in (("batch_performance", perf), ("batch_drift", drift)):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key=key, partition=period, metadata=verdict_metadata(record)
                )
            )
    result = dg.materialize([degradation_analysis], instance=instance, resources=RESOURCES)
    assert result.success
    md = latest_metadata(instance, "degradation_analysis")
    assert md["found"] is True
    assert md["onset_period"] in periods[17:20]
    assert md["drifting_features"] == "x0"
    assert md["drop"] == pytest.approx(0.08, abs=0.02)
