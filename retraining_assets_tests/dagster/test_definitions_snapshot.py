"""Snapshot of what the code location offers: a change to it must be deliberate and reviewed.

The snapshot (``definitions_snapshot.json`` beside this file) lists the asset keys, asset
checks, jobs, sensors with their default status, schedules with their cron, and resource keys of
``retraining_assets.definitions.defs``. After an intended change, rewrite it with::

    UPDATE_DEFINITIONS_SNAPSHOT=1 pytest retraining_assets_tests/dagster -k definitions_snapshot

and commit the file with the change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from retraining_assets.definitions import defs

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")
UPDATE_ENV = "UPDATE_DEFINITIONS_SNAPSHOT"


def _status(value: Any) -> str:
    return str(getattr(value, "value", value))


def definitions_snapshot(definitions: dg.Definitions) -> dict[str, Any]:
    """The user-facing surface of ``definitions`` as plain, sorted JSON data."""
    graph = definitions.resolve_asset_graph()
    checks = sorted(
        f"{key.asset_key.to_user_string()}:{key.name}" for key in graph.asset_check_keys
    )
    sensors = {
        sensor.name: {
            "default_status": _status(sensor.default_status),
            "jobs": sorted(target.job_name for target in sensor.targets),
        }
        for sensor in definitions.sensors or []
    }
    schedules = {
        schedule.name: {
            "cron": schedule.cron_schedule,
            "timezone": schedule.execution_timezone,
            "default_status": _status(schedule.default_status),
            "job": schedule.job_name,
        }
        for schedule in definitions.schedules or []
        if isinstance(schedule, dg.ScheduleDefinition)
    }
    return {
        "assets": sorted(key.to_user_string() for key in graph.get_all_asset_keys()),
        "asset_checks": checks,
        "jobs": sorted(
            job.name for job in definitions.resolve_all_job_defs() if not job.name.startswith("__")
        ),
        "sensors": dict(sorted(sensors.items())),
        "schedules": dict(sorted(schedules.items())),
        "resources": sorted(definitions.resources or {}),
    }


def test_definitions_match_the_committed_snapshot() -> None:
    current = definitions_snapshot(defs)
    text = json.dumps(current, indent=2, sort_keys=True) + "\n"
    if os.environ.get(UPDATE_ENV) == "1":
        SNAPSHOT.write_text(text)
        pytest.skip(f"{SNAPSHOT.name} rewritten ({UPDATE_ENV}=1): review and commit it")
    assert SNAPSHOT.exists(), f"no snapshot: run with {UPDATE_ENV}=1 to write {SNAPSHOT}"
    committed = json.loads(SNAPSHOT.read_text())
    assert current == committed, (
        "the definitions differ from retraining_assets_tests/dagster/definitions_snapshot.json; "
        f"if the change is intended, rerun this test with {UPDATE_ENV}=1 and commit the file"
    )
