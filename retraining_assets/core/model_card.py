"""The model card of a promoted version: what it was trained on, how it scored, why it serves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

CARD_SCHEMA = "retraining_assets.model_card/1"


def build_model_card(
    *,
    version: int,
    model_md5: str,
    dataset_md5: str,
    strategy: str,
    train_batches: Sequence[str],
    test_batches: Sequence[str],
    params: Mapping[str, Any],
    candidate_metrics: Mapping[str, Any],
    production_metrics: Mapping[str, Any] | None,
    production_version: int | None,
    delong: Mapping[str, Any] | None,
    reasons: Sequence[str],
    trigger: Mapping[str, str],
    code_versions: Mapping[str, str],
    code_commit: str,
    mlflow_run_id: str,
    dagster_run_id: str,
) -> dict[str, Any]:
    """The model card of one promoted version, as plain JSON-ready data.

    Args:
        version: the production version this promotion created.
        model_md5: DVC md5 of the model file.
        dataset_md5: DVC md5 of the training dataset (train and test splits).
        strategy: the training-data strategy (``rolling``, ``full``, ...).
        train_batches: batch ids of the training split, oldest first.
        test_batches: batch ids of the held-out test split.
        params: training hyper-parameters.
        candidate_metrics: the promoted model's test metrics.
        production_metrics: the champion's metrics on the same test set (None for a first model).
        production_version: the champion it replaced (None for a first model).
        delong: paired DeLong test of the AUC difference (None when not computed).
        reasons: the gate's reasons, one per rule.
        trigger: what started the cycle and its evidence (drift statistics), from the run's tags.
        code_versions: code version of each asset of the chain.
        code_commit: git commit (or package version) of the code.
        mlflow_run_id: the MLflow run of the cycle.
        dagster_run_id: the Dagster run of the cycle.

    Returns:
        The card: render it with :func:`render_model_card`.
    """
    return {
        "schema": CARD_SCHEMA,
        "version": version,
        "model_md5": model_md5,
        "data": {
            "dataset_md5": dataset_md5,
            "strategy": strategy,
            "train_period": _period(train_batches),
            "test_period": _period(test_batches),
            "train_batches": list(train_batches),
            "test_batches": list(test_batches),
        },
        "params": dict(params),
        "metrics": {
            "candidate": dict(candidate_metrics),
            "replaced": dict(production_metrics) if production_metrics else None,
            "replaced_version": production_version,
            "delong": dict(delong) if delong else None,
        },
        "gate_reasons": list(reasons),
        "trigger": dict(trigger),
        "code": {"commit": code_commit, "versions": dict(code_versions)},
        "runs": {"mlflow_run_id": mlflow_run_id, "dagster_run_id": dagster_run_id},
    }


def _period(batches: Sequence[str]) -> str:
    if not batches:
        return "none"
    return batches[0] if len(batches) == 1 else f"{batches[0]} .. {batches[-1]}"


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def render_model_card(card: Mapping[str, Any]) -> str:
    """The card as markdown (for the MLflow run and the Dagster UI)."""
    data, metrics, code = card["data"], card["metrics"], card["code"]
    cand, prod = metrics["candidate"], metrics["replaced"] or {}
    lines = [
        f"# Model card: production v{card['version']}",
        "",
        "## Data",
        f"- dataset (DVC md5): `{data['dataset_md5']}`",
        f"- strategy: {data['strategy']}",
        f"- trained on: {data['train_period']} ({len(data['train_batches'])} batches)",
        f"- tested on: {data['test_period']}",
        "",
        "## Metrics (same test set)",
        "| metric | this model | replaced"
        + (f" (v{metrics['replaced_version']})" if metrics["replaced_version"] else "")
        + " |",
        "|---|---|---|",
    ]
    for key in ("auc", "log_loss", "brier", "p95_latency_ms"):
        if key in cand:
            lines.append(f"| {key} | {_num(cand[key])} | {_num(prod.get(key, '-'))} |")
    delong = metrics["delong"]
    if delong:
        lines.append(
            f"\nDeLong (paired): AUC difference {_num(delong.get('difference'))}, 95% CI "
            f"[{_num(delong.get('ci_low'))}, {_num(delong.get('ci_high'))}], "
            f"p = {_num(delong.get('p_value'))}"
        )
    lines += ["", "## Why it was promoted", *(f"- {r}" for r in card["gate_reasons"])]
    lines += ["", "## Trigger (drift at promotion)"]
    lines += [f"- {k}: {v}" for k, v in sorted(card["trigger"].items())] or ["- manual launch"]
    lines += [
        "",
        "## Code",
        f"- commit: `{code['commit']}`",
        *(f"- {asset}: `{v}`" for asset, v in sorted(code["versions"].items())),
        "",
        "## Runs",
        f"- MLflow run: `{card['runs']['mlflow_run_id']}`",
        f"- Dagster run: `{card['runs']['dagster_run_id']}`",
        f"- model (DVC md5): `{card['model_md5']}`",
    ]
    return "\n".join(lines) + "\n"
