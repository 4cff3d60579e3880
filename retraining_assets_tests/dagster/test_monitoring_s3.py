"""Monitoring with its state on an S3 endpoint: what the run writes, the sensors read from there.

The state URL points at a bucket on the loopback S3 server; the run's monitoring artifacts must
land in the bucket and nowhere under ``RETRAINING_HOME``, and ``concept_drift_sensor``,
``shadow_sensor`` and the shadow decision must work from the bucket alone.
"""

from __future__ import annotations

import json

import dagster as dg
import pytest

from retraining_assets.core import synthetic
from retraining_assets.definitions import defs
from retraining_assets.defs.resources import ProductionResource
from retraining_assets.defs.state import MonitoringStoreResource
from retraining_assets.monitoring_store import MonitoringStore
from retraining_assets.storage import KeyNotFound, S3Store, open_store
from retraining_assets_tests.dagster.helpers import (
    RESOURCES,
    ingest,
    latest_metadata,
    monitor,
    run_chain,
    write_batches,
    write_frame,
)

pytestmark = pytest.mark.slow

WEAK = {"num_boost_round": 2, "num_leaves": 2, "learning_rate": 0.05, "early_stopping_rounds": 1}


def _tick(instance: dg.DagsterInstance, name: str, cursor: str | None = None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=RESOURCES, definitions=defs
    )
    return defs.resolve_sensor_def(name).evaluate_tick(context)


def _decision_reason(instance: dg.DagsterInstance) -> str:
    """The reason of the shadow decision: a retirement observation or a promotion."""
    key = dg.AssetKey("production_model")
    observed = instance.fetch_observations(key, limit=1).records
    if observed and observed[0].asset_observation is not None:
        reason = observed[0].asset_observation.metadata.get("reason")
        if reason is not None and "shadow on" in str(reason.value):
            return str(reason.value)
    return str(latest_metadata(instance, "production_model")["reason"])


def test_sensors_read_what_monitoring_wrote_to_s3(project, s3_env, monkeypatch) -> None:
    bucket = "monitoring-state"
    root = open_store(f"s3://{bucket}/state")
    assert isinstance(root, S3Store)
    root.client.create_bucket(Bucket=bucket)
    monkeypatch.setenv("RETRAINING_STATE_URL", f"s3://{bucket}/state")
    monitoring = MonitoringStoreResource().open()
    assert monitoring.location == f"s3://{bucket}/state/monitoring at {s3_env}"

    with dg.instance_for_test() as instance:
        # A champion, then a challenger that enters the shadow beside it.
        ingest(instance, write_batches(project, n_batches=5, rows=700, seed=45))
        assert run_chain(instance).success
        shadow = {"mode": "shadow", "shadow_batches": 2, "min_relative_auc": 0.5}
        assert run_chain(instance, model=WEAK, gate=shadow).success
        skip = _tick(instance, "shadow_sensor").skip_message or ""
        assert "scored on 0 of 2 live batches" in skip

        # Live labelled batches: two as trained, two whose labels no longer follow the features.
        stable = synthetic.make_history(2, 700, seed=46, start="2024-03-04")
        flipped = synthetic.make_history(
            2,
            700,
            seed=47,
            start="2024-03-18",
            drift_from=0,
            drift=synthetic.DriftSpec(concept_flip=1.0),
        )
        live = {**stable, **flipped}
        for i, (batch_id, frame) in enumerate(sorted(live.items())):
            write_frame(project, batch_id, frame.assign(row_id=frame["row_id"] + 10**6 * (i + 1)))
        monitor(instance, sorted(live))

        # Everything the run left for the sensors is in the bucket, and nothing on local disk.
        keys = monitoring.store.list()
        md = latest_metadata(instance, "batch_performance", sorted(live)[-1])
        challenger = md["shadow/challenger_md5"]
        assert md["errors_key"] == f"errors/{sorted(live)[-1]}.v1.npy"
        assert md["errors_location"].startswith(f"s3://{bucket}/state/monitoring/errors/")
        assert [k for k in keys if k.startswith("errors/")] == [
            MonitoringStore.errors_key(b, 1) for b in sorted(live)
        ]
        assert monitoring.shadow_batches(challenger) == sorted(live)
        # One reference profile, and the drift thresholds and feature correlations calibrated
        # for that model beside it.
        profiles = [k for k in keys if k.startswith("profiles/")]
        assert len([k for k in profiles if k.endswith(".npz")]) == 1
        assert len([k for k in profiles if k.endswith(".thresholds.json")]) == 1
        assert len([k for k in profiles if k.endswith(".correlations.json")]) == 1
        assert len(profiles) == 3
        assert not (project.home / "monitoring").exists()
        assert not list(project.home.rglob("*.npy")) and not list(project.home.rglob("*.npz"))

        # The concept-drift sensor reads the error streams from the bucket and fires.
        fired = _tick(instance, "concept_drift_sensor")
        assert fired.run_requests, fired.skip_message
        assert fired.run_requests[0].tags["retraining/trigger"] == "concept_drift"
        assert fired.run_requests[0].tags["retraining/cause_batch"] in sorted(flipped)
        assert json.loads(fired.cursor or "{}")["rows"] == 4 * 700

        # A sensor pointed at another store says so instead of silently reading nothing.
        for key in keys:
            if key.startswith("errors/"):
                monitoring.store.delete(key)
        with pytest.raises(KeyNotFound, match=r"error stream of batch .* RETRAINING_STATE_URL"):
            _tick(instance, "concept_drift_sensor")

        # The shadow sensor counts the bucket's shadow scores; the decision reads them.
        request = _tick(instance, "shadow_sensor").run_requests[0]
        assert request.tags["retraining/shadow_batches"] == ",".join(sorted(live))
        result = defs.resolve_job_def("shadow_decision_job").execute_in_process(
            instance=instance, resources=RESOURCES
        )
        assert result.success
        assert ProductionResource().store().challenger() is None  # decided, one way or the other
        assert f"shadow on {', '.join(sorted(live))}" in _decision_reason(instance)
