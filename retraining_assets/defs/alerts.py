"""Alerts: the notification resource and the two sensors that watch for what assets cannot see.

What fires when:
- gate rejection: ``production_model`` (one call) when the gate says reject;
- rollback: ``rollback_production`` (one call) after production moved back;
- failed run / failed blocking check: ``alert_on_run_failure`` (Dagster's run failure sensor);
- stale production model and sensor errors: ``health_alert_sensor`` (production not re-validated
  for ``stale_after_days``; a failed tick of any running sensor).

Every alert goes through :class:`AlertResource`, which de-duplicates by kind and subject with a
cooldown kept in the state store (``alerts`` area), so the daemon and every run worker share it.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import dagster as dg
from pydantic import Field

from retraining_assets.core.alerts import Alert, SentRecord, decide_send, now_utc, slack_payload
from retraining_assets.defs.resources import ProductionResource
from retraining_assets.defs.state import StateStoreResource

#: Environment variable with the webhook URL (Slack incoming webhook or any JSON endpoint).
WEBHOOK_ENV = "RETRAINING_ALERT_WEBHOOK"
_LOG = logging.getLogger(__name__)


class AlertResource(dg.ConfigurableResource):
    """Sends alerts to a webhook (Slack-compatible JSON), once per cooldown per alert.

    With no URL (field empty and ``$RETRAINING_ALERT_WEBHOOK`` unset) alerts are only logged.
    Delivery failures are logged as warnings and never fail the run or sensor that alerted.
    """

    webhook_url: str | None = Field(
        default=None, description="Webhook URL; default $RETRAINING_ALERT_WEBHOOK (empty: log)."
    )
    cooldown_minutes: float = Field(
        default=60.0, description="A sent alert silences the same kind and subject this long."
    )
    timeout_seconds: float = Field(default=5.0, description="HTTP timeout of one delivery.")
    stale_after_days: float = Field(
        default=14.0, description="Production not re-validated for this long is stale."
    )
    state_url: str | None = Field(
        default=None, description="State store URL for the sent records; default the project's."
    )

    def resolved_webhook(self) -> str:
        """The webhook URL in effect (read at call time, never at import)."""
        if self.webhook_url is not None:
            return self.webhook_url
        return os.environ.get(WEBHOOK_ENV, "")

    def notify(self, alert: Alert, log: Any = None) -> str:
        """Send ``alert`` unless its cooldown holds it back; never raises.

        Args:
            alert: What to say.
            log: A Dagster or stdlib logger (default: this module's).

        Returns:
            ``sent``, ``suppressed``, ``logged`` (no webhook) or ``failed`` (delivery error).
        """
        logger = log or _LOG
        try:
            return self._notify(alert, logger)
        except Exception as exc:
            logger.warning("alert %s not delivered: %s: %s", alert.key, type(exc).__name__, exc)
            return "failed"

    def _notify(self, alert: Alert, logger: Any) -> str:
        store = StateStoreResource(url=self.state_url).store("alerts")
        key = f"{alert.key}.json"
        raw = store.get_or_none(key)
        last = SentRecord.from_json(raw) if raw is not None else None
        now = now_utc()
        send, why = decide_send(last, now, self.cooldown_minutes * 60)
        if not send:
            assert last is not None
            store.put(key, SentRecord(last.key, last.sent_at, last.suppressed + 1).to_json())
            logger.info("alert %s held back: %s", alert.key, why)
            return "suppressed"
        record = SentRecord(alert.key, now.isoformat())
        # First send: create-if-absent, so two processes alerting at once send one message.
        if last is None and not store.create(key, record.to_json()):
            logger.info("alert %s held back: another process sent it", alert.key)
            return "suppressed"
        if last is not None:
            store.put(key, record.to_json())
        payload = slack_payload(alert, suppressed=last.suppressed if last else 0)
        url = self.resolved_webhook()
        if not url:
            logger.warning("alert (no webhook set in $%s): %s", WEBHOOK_ENV, payload["text"])
            return "logged"
        request = urllib.request.Request(
            url,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                response.read()
        except Exception as exc:
            logger.warning("alert %s not delivered to the webhook: %s", alert.key, exc)
            return "failed"
        logger.info("alert %s sent (%s)", alert.key, why)
        return "sent"

    def gate_rejected(
        self, context: dg.AssetExecutionContext, reasons: Sequence[str], mlflow_run_id: str
    ) -> str:
        """Alert that the gate rejected a candidate (production untouched)."""
        return self.notify(
            Alert(
                kind="gate_rejected",
                subject=f"{context.asset_key.to_user_string()}:{mlflow_run_id}",
                title="Retrained candidate rejected by the gate",
                text="\n".join(f"• {r}" for r in reasons),
                fields={"Dagster run": context.run_id, "MLflow run": mlflow_run_id},
            ),
            context.log,
        )

    def rollback(
        self, context: dg.OpExecutionContext, version: int, restores: int, reason: str
    ) -> str:
        """Alert that production was rolled back to an earlier version."""
        return self.notify(
            Alert(
                kind="rollback",
                subject=f"v{version}",
                title=f"Production rolled back to v{restores} (now served as v{version})",
                text=reason,
                fields={"Dagster run": context.run_id},
            ),
            context.log,
        )


def _failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[Alert]:
    """Failed ERROR-severity (blocking) check evaluations of one run, as alerts."""
    alerts = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        event = entry.dagster_event
        evaluation = event.event_specific_data if event is not None else None
        if not isinstance(evaluation, dg.AssetCheckEvaluation) or evaluation.passed:
            continue
        if evaluation.severity != dg.AssetCheckSeverity.ERROR:
            continue
        asset = evaluation.asset_key.to_user_string()
        desc = evaluation.description or ""
        alerts.append(
            Alert(
                kind="check_failed",
                subject=f"{asset}:{evaluation.check_name}",
                title=f"Blocking check {evaluation.check_name} failed on {asset}",
                text=desc,
                fields={"Dagster run": run_id},
            )
        )
    return alerts


@dg.run_failure_sensor(
    name="alert_on_run_failure",
    description="Alerts on every failed run of this code location and on its failed blocking "
    "checks (de-duplicated by job and error, or by check).",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def alert_on_run_failure(context: dg.RunFailureSensorContext, alerts: AlertResource) -> None:
    """Alerts when a run fails: one alert per failed blocking check, else one for the run."""
    run = context.dagster_run
    checks = _failed_checks(context.instance, run.run_id)
    for alert in checks:
        alerts.notify(alert, context.log)
    if checks:
        return
    message = (context.failure_event.message or "run failed").strip()
    first_line = message.splitlines()[0] if message else "run failed"
    alerts.notify(
        Alert(
            kind="run_failed",
            subject=f"{run.job_name}:{first_line[:200]}",
            title=f"Run of {run.job_name} failed",
            text=message[:1500],
            fields={"Dagster run": run.run_id, "Job": run.job_name},
        ),
        context.log,
    )


def _stale_alert(
    instance: dg.DagsterInstance, production: ProductionResource, max_days: float
) -> Alert | None:
    """An alert when production was not re-validated for ``max_days`` (None if fresh or absent).

    Re-validated means promoted, or judged against by a newer gate (``evaluation_report``).
    """
    current = production.store().current()
    if current is None:
        return None
    last = datetime.fromisoformat(current.created_at).timestamp()
    records = instance.fetch_materializations(dg.AssetKey("evaluation_report"), limit=1).records
    if records:
        last = max(last, records[0].timestamp)
    age_days = (now_utc().timestamp() - last) / 86400
    if age_days < max_days:
        return None
    return Alert(
        kind="stale_model",
        subject=f"v{current.version}",
        title=f"Production model v{current.version} not re-validated for {age_days:.1f} days",
        text=f"{age_days:.1f} days >= stale_after_days {max_days:g}: no retraining or gate has "
        "judged it since; check the sensors and the schedule.",
        fields={"Served md5": current.model_md5},
    )


def _sensor_error_alerts(
    context: dg.SensorEvaluationContext, since: float
) -> tuple[list[Alert], float]:
    """Failed ticks newer than ``since`` of every sensor with stored state, and the new cursor."""
    alerts, newest = [], since
    for state in context.instance.all_instigator_state():
        if state.instigator_type.value != "SENSOR" or state.name == context.sensor_name:
            continue
        ticks = context.instance.get_ticks(
            state.instigator_origin_id, state.selector_id, after=since, limit=5
        )
        for tick in ticks:
            if tick.status.value != "FAILURE" or tick.timestamp <= since:
                continue
            newest = max(newest, tick.timestamp)
            error = tick.error.message.strip() if tick.error else "sensor tick failed"
            alerts.append(
                Alert(
                    kind="sensor_error",
                    subject=f"{state.name}:{error.splitlines()[0][:200] if error else ''}",
                    title=f"Sensor {state.name} failed",
                    text=error[:1500],
                )
            )
    return alerts, newest


@dg.sensor(
    name="health_alert_sensor",
    description="Alerts when production is stale (not re-validated for stale_after_days) and "
    "when another sensor's tick failed.",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def health_alert_sensor(
    context: dg.SensorEvaluationContext, alerts: AlertResource, production: ProductionResource
) -> dg.SkipReason:
    """Checks production's freshness and other sensors' failed ticks; alerts, never launches."""
    since = float(context.cursor) if context.cursor else now_utc().timestamp() - 3600
    sent = []
    try:
        stale = _stale_alert(context.instance, production, alerts.stale_after_days)
    except Exception as exc:
        context.log.warning("production freshness unknown: %s", exc)
        stale = None
    errors, newest = _sensor_error_alerts(context, since)
    for alert in ([stale] if stale else []) + errors:
        sent.append(f"{alert.kind}={alerts.notify(alert, context.log)}")
    context.update_cursor(str(newest))
    return dg.SkipReason(", ".join(sent) or "production fresh, no failed sensor tick")
