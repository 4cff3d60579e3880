"""The weekly fallback: retrain even when no trigger fired, unless a retraining ran recently."""

import dagster as dg

from retraining_assets.core.triggers import Skip, decide_schedule
from retraining_assets.defs.jobs import retraining_job
from retraining_assets.defs.resources import TriggerPolicyResource
from retraining_assets.defs.sensors import TRIGGER_TAG, hours_since_last_retraining
from retraining_assets.settings import DEFAULT_TRIGGERS


def build_weekly_schedule(cron: str = DEFAULT_TRIGGERS.cron) -> dg.ScheduleDefinition:
    """The weekly retraining schedule on ``cron`` (UTC).

    Dagster schedules do not catch up: after downtime only the latest missed tick is evaluated.
    """

    @dg.schedule(
        name="weekly_retraining_schedule",
        cron_schedule=cron,
        job=retraining_job,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    def weekly_retraining_schedule(
        context: dg.ScheduleEvaluationContext, triggers: TriggerPolicyResource
    ) -> dg.RunRequest | dg.SkipReason:
        """Weekly fallback retraining; skips if a retraining ran within the schedule cooldown."""
        policy = triggers.policy()
        now = context.scheduled_execution_time.timestamp()
        decision = decide_schedule(hours_since_last_retraining(context.instance, now=now), policy)
        if isinstance(decision, Skip):
            return dg.SkipReason(decision.reason)
        tick = context.scheduled_execution_time.strftime("%Y-%m-%dT%H:%M")
        return dg.RunRequest(run_key=f"weekly:{tick}", tags={TRIGGER_TAG: "weekly"})

    return weekly_retraining_schedule
