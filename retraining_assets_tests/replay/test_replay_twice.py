"""Two replays in one process give the same result: nothing of the first one (environment,
definitions, caches, stores) decides the second; nor does where the Dagster instance keeps its
events (SQLite files with ``keep_state``, else memory)."""

from __future__ import annotations

import os

import pytest

from retraining_assets.replay import run_replay
from retraining_assets_tests.replay.daily import daily_batches

pytestmark = pytest.mark.slow


def _table(report: dict) -> list[tuple]:
    return [
        (p["period"], p["served_version"], p["auc"], [e["cause"] for e in p["events"]])
        for p in report["policies"]["weekly"]["periods"]
    ]


def test_a_second_replay_in_the_same_process_gives_the_same_result(tmp_path, project) -> None:
    batches, schema_file = daily_batches(tmp_path, 8, 150, seed=3)

    def ours() -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k.startswith(("RETRAINING_", "DAGSTER_"))}

    environment = ours()
    seen: list[dict[str, str]] = []
    reports = [
        run_replay(
            batches,
            ["weekly"],
            tmp_path / f"out{i}",
            initial=4,
            window_batches=3,
            max_periods=2,
            config={"triggers": {"min_labelled_rows": 100}},
            schema_file=schema_file,
            progress=lambda line: seen.append(ours()),
            keep_state=i == 1,
        )
        for i in (1, 2)
    ]
    first, second = (_table(r) for r in reports)
    assert [row[3] for row in first] == [["weekly"], ["weekly"]]
    assert first == second
    # Every retraining ran through (the replay draws no ROC plot and no chart).
    assert all(
        e["success"] for p in reports[1]["policies"]["weekly"]["periods"] for e in p["events"]
    )
    # Only the kept state has the instance's SQLite files; the in-memory one left none.
    assert (tmp_path / "out1" / "state" / "weekly" / "dagster" / "history" / "runs.db").is_file()
    assert not (tmp_path / "out2" / "state").exists()
    # The replay never points the process environment at its state, not even while it runs.
    assert seen and all(during == environment for during in seen)
