"""Two replays in one process give the same result: nothing of the first one (environment,
definitions, caches, stores) decides the second; nor does where the Dagster instance keeps its
events (SQLite files with ``keep_state``, else memory)."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from retraining_assets.core.synthetic import make_history
from retraining_assets.replay import run_replay

pytestmark = pytest.mark.slow


def _table(report: dict) -> list[tuple]:
    return [
        (p["period"], p["served_version"], p["auc"], [e["cause"] for e in p["events"]])
        for p in report["policies"]["weekly"]["periods"]
    ]


def test_a_second_replay_in_the_same_process_gives_the_same_result(tmp_path, project) -> None:
    history = make_history(8, 150, seed=3, freq_days=1)
    pd.concat(history.values()).to_csv(tmp_path / "days.csv", index=False)
    config = tmp_path / "days.yaml"
    config.write_text(
        "dataset:\n  name: days\n  source: days.csv\n  timestamp: ts\n  target: label\n"
        "  id_column: row_id\n  categorical: [c0, c1]\n  frequency: daily\n  min_rows: 100\n"
        "triggers:\n  min_labelled_rows: 100\n"
    )
    from retraining_assets.core.dataset import (
        build_batches,
        load_dataset_config,
        schema_file_for,
    )

    dataset = load_dataset_config(config)
    build_batches(dataset, tmp_path / "batches", schema_file=schema_file_for(dataset))

    def ours() -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k.startswith(("RETRAINING_", "DAGSTER_"))}

    environment = ours()
    seen: list[dict[str, str]] = []
    reports = [
        run_replay(
            tmp_path / "batches",
            ["weekly"],
            tmp_path / f"out{i}",
            initial=4,
            window_batches=3,
            max_periods=2,
            config={"triggers": {"min_labelled_rows": 100}},
            schema_file=schema_file_for(dataset),
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
