"""A yearly dataset of fifty periods, replayed from a configuration file alone: batches named by
year start, the simulated clock a year per step, the fallback schedule retraining once a year."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from retraining_assets.cli import main
from retraining_assets.core.synthetic import make_batch

pytestmark = pytest.mark.slow


def _yearly_source(path, years: int = 50, rows_per_year: int = 120, seed: int = 11) -> None:
    """Seeded synthetic rows spread over each of ``years`` years from 1970 (tiny: 120 a year, enough
    positives in a test batch for the promotion gate)."""
    parts = []
    for i in range(years):
        start = pd.Timestamp(year=1970 + i, month=1, day=1)
        days = (pd.Timestamp(year=1971 + i, month=1, day=1) - start).days
        parts.append(
            make_batch(rows_per_year, start, seed=seed + i, days=days, first_row_id=i * 1000)
        )
    pd.concat(parts).sample(frac=1.0, random_state=0).to_csv(path, index=False)


def test_yearly_dataset_replays_from_a_config_file(tmp_path, project, capsys) -> None:
    _yearly_source(tmp_path / "years.csv")
    config = tmp_path / "years.yaml"
    config.write_text(
        "dataset:\n"
        "  name: fifty years\n"
        "  source: years.csv\n"
        "  timestamp: ts\n"
        "  target: label\n"
        "  id_column: row_id\n"
        "  categorical: [c0, c1]\n"
        "  frequency: yearly\n"
        "  min_rows: 100\n"
        "triggers:\n"
        "  min_labelled_rows: 100\n"
    )
    out = tmp_path / "out"
    args = ["replay", "--config", str(config), "--policy", "weekly", "--out", str(out)]
    # In this test process, after other replays: nothing they leave behind decides this result
    # (DVC's console logging once stayed bound to an earlier test's closed capture stream).
    assert main([*args, "--initial", "4", "--window", "3", "--periods", "2"]) == 0
    assert "built 50 yearly batches of fifty years" in capsys.readouterr().out
    batches = sorted(p.stem for p in (out / "batches").glob("*.parquet"))
    assert batches[0] == "1970-01-01" and batches[-1] == "2019-01-01" and len(batches) == 50
    schema = json.loads((tmp_path / "years.schema.json").read_text())
    assert schema["frequency"] == "yearly"

    report = json.loads((out / "replay.json").read_text())
    periods = report["policies"]["weekly"]["periods"]
    assert [p["period"] for p in periods] == ["1974-01-01", "1975-01-01"]
    # The fallback schedule follows the cadence: exactly one tick (one retraining) a year, not
    # fifty-two; each period is scored by the model served when it arrived.
    for period in periods:
        assert [e["cause"] for e in period["events"]] == ["weekly"]
        assert period["events"][0]["also_fired"] == []
        # The gate's decision and reasons travel with the event (latency depends on load).
        gate = period["events"][0]["gate"]
        assert gate["verdict"] and gate["reasons"] and gate["p95_latency_ms"] > 0
        assert 0.5 < gate["auc"] <= 1.0
        assert period["rows"] == 120 and 0.5 < period["auc"] <= 1.0
    assert report["policies"]["weekly"]["retrainings"] == 2
