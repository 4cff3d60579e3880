"""The fallback schedule follows the dataset's cadence; a bad frequency fails when loading."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from retraining_assets.core.cadence import CadenceError
from retraining_assets.defs.resources import TriggerPolicyResource
from retraining_assets.defs.schedules import build_weekly_schedule, configured_frequency


def _config(tmp_path: Path, frequency: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "retraining.yaml"
    path.write_text(
        f"dataset:\n  source: x.csv\n  timestamp: t\n  target: y\n  frequency: {frequency!r}\n"
    )
    monkeypatch.setenv("RETRAINING_CONFIG", str(path))
    monkeypatch.delenv("RETRAINING_SCHEMA", raising=False)


def test_frequency_read_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _config(tmp_path, "QS", monkeypatch)
    assert configured_frequency() == "QS"
    _config(tmp_path, "Yearly", monkeypatch)
    assert configured_frequency() == "yearly"
    _config(tmp_path, "fortnightly", monkeypatch)
    with pytest.raises(CadenceError, match=r"retraining.yaml: dataset.frequency: unknown cade"):
        configured_frequency()


def test_fortnightly_schedule_retrains_once_per_period() -> None:
    schedule = build_weekly_schedule(None, "14D")
    assert schedule.cron_schedule == "0 3 * * 1"
    verdicts = []
    with dg.instance_for_test() as instance:
        for day in ("2024-01-08", "2024-01-15", "2024-01-22"):
            tick = dt.datetime.fromisoformat(f"{day}T03:00:00+00:00")
            # Entered: closing restores Dagster's state storage for later tests.
            with dg.build_schedule_context(
                instance=instance,
                scheduled_execution_time=tick,
                resources={"triggers": TriggerPolicyResource()},
            ) as context:
                data = schedule.evaluate_tick(context)
            verdicts.append(bool(data.run_requests))
    # Fortnights counted from Monday 1970-01-05: 2024-01-08 and 2024-01-22 open one.
    assert verdicts == [True, False, True]
    assert build_weekly_schedule("0 3 * * *", "14D").cron_schedule == "0 3 * * *"
