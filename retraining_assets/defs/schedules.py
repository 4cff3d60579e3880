"""The fallback schedule: retrain once per batch period even when no trigger fired.

It skips when a retraining ran recently. Its cadence follows the dataset's ``frequency`` (a
monthly dataset is retrained monthly, a yearly one yearly) unless ``triggers.cron`` sets one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from pathlib import Path

import dagster as dg

from retraining_assets.core.triggers import Skip, decide_schedule
from retraining_assets.defs.jobs import retraining_job
from retraining_assets.defs.resources import SCHEMA_ENV, TriggerPolicyResource
from retraining_assets.defs.sensors import TRIGGER_TAG, hours_since_last_retraining
from retraining_assets.settings import config_file, load_config


def configured_frequency() -> str:
    """The batches' cadence as configured: the schema file's, the dataset's, else ``weekly``.

    Read when the code location loads, without pandas (loading stays light):
    ``$RETRAINING_SCHEMA`` (a schema file written by ``build-batches``) if set and present, else
    ``frequency`` of the configuration file's ``dataset:`` mapping (or of the YAML file it
    names); the built-in datasets are weekly.

    Raises:
        CadenceError: if the configured ``frequency`` is not a cadence; the message names the
            file and lists the accepted forms, so a bad value fails at load.
    """
    import json

    import yaml

    from retraining_assets.core.cadence import CadenceError, check_frequency

    explicit = os.environ.get(SCHEMA_ENV)
    path = config_file()
    value: object = None
    if explicit and Path(explicit).is_file():
        path = Path(explicit)
        with contextlib.suppress(ValueError, OSError, AttributeError):
            value = json.loads(path.read_text()).get("frequency")
    else:
        section = load_config(path).get("dataset")
        if isinstance(section, str) and section.strip().endswith((".yaml", ".yml")):
            named = Path(section.strip()).expanduser()
            path = named if named.is_absolute() else path.parent / named
            with contextlib.suppress(OSError, yaml.YAMLError):
                loaded = yaml.safe_load(path.read_text())
                section = loaded.get("dataset", loaded) if isinstance(loaded, dict) else None
        if isinstance(section, dict):
            value = section.get("frequency")
    if value is None:
        return "weekly"
    try:
        return check_frequency(value)
    except CadenceError as exc:
        raise CadenceError(f"{path}: dataset.frequency: {exc}") from None


def explicit_cron() -> str | None:
    """``triggers.cron`` when the configuration file sets it, else ``None``."""
    value = (load_config().get("triggers") or {}).get("cron")
    return str(value) if value else None


def build_weekly_schedule(
    cron: str | None = None, frequency: str = "weekly"
) -> dg.ScheduleDefinition:
    """The fallback retraining schedule: one tick per batch period (UTC).

    Args:
        cron: An explicit cron (``triggers.cron``): every tick may retrain. ``None``: the
            cadence of ``frequency`` decides (``Cadence.cron``; ticks that do not open a period,
            e.g. the other 13 days of a ``14D`` cadence, skip).
        frequency: The dataset's cadence (``weekly``, ``monthly``, ``2W``, ``yearly``, ...).

    Dagster schedules do not catch up: after downtime only the latest missed tick is evaluated.
    The name stays ``weekly_retraining_schedule`` (the flights demo's weekly cadence) whatever
    the cadence, so run history and UI links keep working.
    """
    from retraining_assets.core.cadence import parse_cadence

    cadence = parse_cadence(frequency)
    every = cron or cadence.cron()
    # Only a cadence cron cannot express (14D, 7h) ticks more often than it opens periods.
    per_period = cron is None and not cadence.cron_is_exact

    @dg.schedule(
        name="weekly_retraining_schedule",
        cron_schedule=every,
        job=retraining_job,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Fallback retraining {cadence.describe()} ({every}, UTC) unless a "
        "retraining ran within the schedule cooldown.",
    )
    def weekly_retraining_schedule(
        context: dg.ScheduleEvaluationContext, triggers: TriggerPolicyResource
    ) -> dg.RunRequest | dg.SkipReason:
        """Fallback retraining once per period; skips within the schedule cooldown."""
        scheduled = context.scheduled_execution_time
        if per_period:
            tick_time = dt.datetime.fromtimestamp(scheduled.timestamp(), dt.UTC).replace(
                tzinfo=None
            )
            if not cadence.opens_period(tick_time):
                return dg.SkipReason(
                    f"{tick_time:%Y-%m-%d %H:%M} does not open a period ({cadence.describe()})"
                )
        policy = triggers.policy()
        now = scheduled.timestamp()
        decision = decide_schedule(hours_since_last_retraining(context.instance, now=now), policy)
        if isinstance(decision, Skip):
            return dg.SkipReason(decision.reason)
        tick = scheduled.strftime("%Y-%m-%dT%H:%M")
        return dg.RunRequest(run_key=f"weekly:{tick}", tags={TRIGGER_TAG: "weekly"})

    return weekly_retraining_schedule
