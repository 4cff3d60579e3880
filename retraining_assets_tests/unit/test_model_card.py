"""The model card of a promoted version: JSON data and its markdown rendering."""

from __future__ import annotations

import json

from retraining_assets.core.model_card import build_model_card, render_model_card


def _card(**overrides):
    args = dict(
        version=3,
        model_md5="m" * 32,
        dataset_md5="d" * 32,
        strategy="rolling",
        train_batches=["2013-W10", "2013-W11", "2013-W12"],
        test_batches=["2013-W13"],
        params={"num_leaves": 31},
        candidate_metrics={"auc": 0.81234, "log_loss": 0.5, "p95_latency_ms": 0.4},
        production_metrics={"auc": 0.8, "log_loss": 0.52, "p95_latency_ms": 0.5},
        production_version=2,
        delong={"difference": 0.012, "ci_low": -0.01, "ci_high": 0.03, "p_value": 0.3},
        reasons=["PASS AUC 0.812 >= 0.99 x 0.800"],
        trigger={"retraining/trigger": "data_drift", "retraining/max_psi": "0.31"},
        code_versions={"candidate_model": "abc123abc123"},
        code_commit="0123abcd",
        mlflow_run_id="run1",
        dagster_run_id="dag1",
    )
    args.update(overrides)
    return build_model_card(**args)


def test_card_holds_data_metrics_gate_drift_and_code() -> None:
    card = _card()
    assert json.loads(json.dumps(card)) == card  # plain JSON
    assert card["data"]["dataset_md5"] == "d" * 32
    assert card["data"]["train_period"] == "2013-W10 .. 2013-W12"
    assert card["metrics"]["delong"]["ci_low"] == -0.01
    md = render_model_card(card)
    for text in (
        "production v3",
        "d" * 32,
        "2013-W10 .. 2013-W12",
        "| auc | 0.8123 | 0.8000 |",
        "95% CI [-0.0100, 0.0300]",
        "PASS AUC",
        "retraining/trigger: data_drift",
        "`0123abcd`",
        "candidate_model: `abc123abc123`",
    ):
        assert text in md, text


def test_first_model_card_without_champion_or_trigger() -> None:
    card = _card(production_metrics=None, production_version=None, delong=None, trigger={})
    md = render_model_card(card)
    assert "| auc | 0.8123 | - |" in md
    assert "DeLong" not in md
    assert "manual launch" in md
