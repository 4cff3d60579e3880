"""Alerts against a real HTTP sink on 127.0.0.1: delivery, de-duplication, cooldown, failures
that never fail the caller, and the Dagster paths that fire them (gate rejection, failed runs
and blocking checks, stale production)."""

from __future__ import annotations

import dagster as dg
import pytest

from retraining_assets.core.alerts import Alert
from retraining_assets.defs.alerts import AlertResource, alert_on_run_failure, health_alert_sensor
from retraining_assets.defs.resources import ProductionResource
from retraining_assets_tests.alert_sink import http_sink
from retraining_assets_tests.dagster.helpers import ingest, run_chain, write_batches


def _alert(subject: str = "v1") -> Alert:
    return Alert("stale_model", subject, "Production model v1 is stale", "15 days")


def test_sent_once_per_cooldown_shared_by_resources(project) -> None:
    with http_sink() as sink:
        first = AlertResource(webhook_url=sink.url)
        other_process = AlertResource(webhook_url=sink.url)
        assert first.notify(_alert()) == "sent"
        assert other_process.notify(_alert()) == "suppressed"
        assert first.notify(_alert("v2")) == "sent"
        assert len(sink.bodies) == 2
        assert sink.bodies[0]["text"].startswith(":hourglass: Production model v1 is stale")
        # Cooldown over: sent again, saying how many repeats were held back.
        assert AlertResource(webhook_url=sink.url, cooldown_minutes=0).notify(_alert()) == "sent"
        assert "1 repeat(s) held back" in sink.bodies[-1]["blocks"][-1]["elements"][0]["text"]


def test_delivery_failures_never_raise(project, monkeypatch) -> None:
    with http_sink() as sink:
        sink.status = 500
        assert AlertResource(webhook_url=sink.url).notify(_alert("a")) == "failed"
        assert len(sink.bodies) == 1
        dead = sink.url
    assert AlertResource(webhook_url=dead, timeout_seconds=2).notify(_alert("b")) == "failed"
    # No URL anywhere: logged only.
    monkeypatch.delenv("RETRAINING_ALERT_WEBHOOK", raising=False)
    assert AlertResource().notify(_alert("c")) == "logged"
    # A state store that cannot be written: still no exception.
    assert AlertResource(state_url="s3://", webhook_url=dead).notify(_alert("d")) == "failed"


@dg.asset
def _checked() -> int:
    return 1


@dg.asset_check(asset=_checked, blocking=True)
def _no_negative_labels() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=False, severity=dg.AssetCheckSeverity.ERROR, description="12 negative labels"
    )


@dg.asset(deps=[_checked])
def _downstream() -> int:
    return 2


@dg.op
def _boom() -> None:
    raise dg.Failure(description="state store unreachable at s3://bucket")


@dg.job
def _failing_job() -> None:
    _boom()


def _failure_context(instance: dg.DagsterInstance, run_id: str, resources: dict):
    run = instance.get_run_by_id(run_id)
    assert run is not None
    failure = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0]
    assert failure.dagster_event is not None
    return dg.build_run_status_sensor_context(
        sensor_name="alert_on_run_failure",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=failure.dagster_event,
        resources=resources,
    ).for_run_failure()


def test_run_failure_sensor_alerts_failed_blocking_check_and_failed_run(project) -> None:
    with http_sink() as sink, dg.instance_for_test() as instance:
        alerts = AlertResource(webhook_url=sink.url)
        checked = dg.materialize(
            [_checked, _downstream, _no_negative_labels],
            instance=instance,
            raise_on_error=False,
        )
        assert not checked.success
        alert_on_run_failure(_failure_context(instance, checked.run_id, {"alerts": alerts}))
        assert sink.kinds() == ["check_failed"]
        assert "_no_negative_labels" in sink.bodies[0]["text"]
        assert "12 negative labels" in sink.bodies[0]["text"]

        for _ in range(2):  # the same failure twice: one alert
            failed = _failing_job.execute_in_process(instance=instance, raise_on_error=False)
            alert_on_run_failure(_failure_context(instance, failed.run_id, {"alerts": alerts}))
        assert sink.kinds() == ["check_failed", "run_failed"]
        assert "_failing_job" in sink.bodies[1]["text"]


@pytest.mark.slow
def test_gate_rejection_and_stale_production_alert(project, monkeypatch) -> None:
    with http_sink() as sink, dg.instance_for_test() as instance:
        # The project's own resource, configured only by the environment.
        monkeypatch.setenv("RETRAINING_ALERT_WEBHOOK", sink.url)
        ingest(instance, write_batches(project, n_batches=5))
        assert run_chain(instance).success
        assert sink.bodies == []  # a promotion is not an alert
        assert run_chain(instance, gate={"max_p95_latency_ms": 0.0001}).success
        assert sink.kinds() == ["gate_rejected"]
        assert "FAIL " in sink.bodies[0]["text"]  # the gate's reasons

        context = dg.build_sensor_context(
            instance=instance,
            resources={
                "alerts": AlertResource(stale_after_days=0),
                "production": ProductionResource(),
            },
        )
        result = health_alert_sensor(context)
        assert "stale_model=sent" in str(result)
        assert sink.kinds() == ["gate_rejected", "stale_model"]
        assert "Production model v1 not re-validated" in sink.bodies[1]["text"]
        again = health_alert_sensor(
            dg.build_sensor_context(
                instance=instance,
                resources={
                    "alerts": AlertResource(stale_after_days=0),
                    "production": ProductionResource(),
                },
            )
        )
        assert "stale_model=suppressed" in str(again)
        assert len(sink.bodies) == 2
