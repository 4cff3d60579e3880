"""Bring your own data: a differently shaped dataset replayed through the real automation with
only a configuration file; and the retrospective analysis of the replay."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from retraining_assets.cli import main

pytestmark = pytest.mark.slow


def _churn_source(path, days: int = 14, rows_per_day: int = 260, seed: int = 5) -> None:
    """Daily subscription events, categorical-heavy, string target, other column names."""
    rng = np.random.default_rng(seed)
    n = days * rows_per_day
    start = pd.Timestamp("2024-05-01")
    frame = pd.DataFrame(
        {
            "customer": np.arange(100_000, 100_000 + n),
            "event_time": start
            + pd.to_timedelta(np.repeat(np.arange(days), rows_per_day), unit="D")
            + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s"),
            "plan": rng.choice(["basic", "plus", "pro", "family"], n),
            "region": rng.choice(["north", "south", "east", "west", "central"], n),
            "channel": rng.choice(["web", "app", "store"], n),
            "device": rng.choice(["ios", "android", "desktop"], n),
            "segment": rng.choice(["a", "b", "c", "d"], n),
            "payment": rng.choice(["card", "paypal", "invoice"], n),
            "tenure_days": rng.exponential(300, n).round(),
            "monthly_spend": rng.gamma(3, 12, n).round(2),
        }
    )
    logit = (
        -1.0
        + 1.2 * (frame["plan"] == "basic")
        - 0.8 * (frame["plan"] == "pro")
        + 0.7 * (frame["payment"] == "invoice")
        - 0.004 * frame["tenure_days"].clip(upper=600)
        + 0.01 * (frame["monthly_spend"] - 36)
    )
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame["status"] = np.where(churned, "churned", "stayed")
    frame.sample(frac=1.0, random_state=0).to_csv(path, index=False)


def test_second_dataset_replays_with_only_a_config_file(tmp_path, project, capsys) -> None:
    _churn_source(tmp_path / "events.csv")
    config = tmp_path / "churn.yaml"
    config.write_text(
        "dataset:\n"
        "  name: subscription churn\n"
        "  source: events.csv\n"
        "  timestamp: event_time\n"
        "  target: status\n"
        "  positive: churned\n"
        "  id_column: customer\n"
        "  frequency: daily\n"
        "  min_rows: 50\n"
        "triggers:\n"
        "  min_labelled_rows: 50\n"
    )
    out = tmp_path / "out"
    code = main(
        [
            "replay",
            "--config",
            str(config),
            "--policy",
            "never",
            "--out",
            str(out),
            "--initial",
            "5",
            "--window",
            "3",
            "--periods",
            "4",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "built 14 daily batches of subscription churn" in text
    report = json.loads((out / "replay.json").read_text())
    never = report["policies"]["never"]
    assert [p["period"] for p in never["periods"]] == [
        "2024-05-06",
        "2024-05-07",
        "2024-05-08",
        "2024-05-09",
    ]
    assert never["retrainings"] == 0
    assert all(p["served_version"] == 1 and 0.55 < p["auc"] < 0.95 for p in never["periods"])
    # The resolved schema sits beside the configuration, never among the batches.
    assert not (out / "batches" / "_schema.json").exists()
    schema = json.loads((tmp_path / "churn.schema.json").read_text())
    assert schema["target"] == "status" and len(schema["categorical_features"]) == 6
    assert (out / "replay.png").read_bytes()[:4] == b"\x89PNG"
    assert "| never |" in (out / "summary.md").read_text()

    assert main(["analyze", str(out)]) == 0
    analysis = json.loads((out / "analysis.json").read_text())
    assert analysis["policy"] == "never" and "summary" in analysis


def test_bad_dataset_config_fails_at_load_with_a_clear_message(tmp_path, project, capsys) -> None:
    _churn_source(tmp_path / "events.csv", days=3)
    config = tmp_path / "bad.yaml"
    config.write_text(
        "dataset:\n  source: events.csv\n  timestamp: ordered_at\n  target: status\n"
        "  positive: churned\n  frequency: daily\n"
    )
    assert main(["replay", "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "dataset.timestamp" in err and "ordered_at" in err and "event_time" in err
    assert not (tmp_path / "o" / "replay.json").exists()
