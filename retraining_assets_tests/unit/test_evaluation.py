"""Evaluation: metrics against scikit-learn, ROC points, latency measurement and the ROC plot."""

from __future__ import annotations

import math
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from retraining_assets.core.evaluation import (
    Latency,
    Metrics,
    baseline_metrics,
    compute_metrics,
    evaluate_model,
    measure_latency,
    plot_roc,
    roc_auc,
    roc_curve_points,
)
from retraining_assets.core.synthetic import SYNTHETIC_SCHEMA, make_history
from retraining_assets.core.training import Scorer, TrainParams, train_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _tied_data(seed: int, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Labels loosely related to scores that take only 11 distinct values (many ties)."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 11, n) / 10.0
    y = (rng.uniform(size=n) < 0.2 + 0.6 * scores).astype("int64")
    return y, scores


@pytest.fixture(scope="module")
def small_history() -> dict[str, pd.DataFrame]:
    return make_history(2, 600, seed=99)


@pytest.fixture(scope="module")
def booster(small_history: dict[str, pd.DataFrame]) -> lgb.Booster:
    train = small_history[next(iter(small_history))]
    return train_model(train, SYNTHETIC_SCHEMA, TrainParams(num_boost_round=20)).booster


@pytest.fixture(scope="module")
def test_frame(small_history: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return small_history[list(small_history)[-1]]


# --- metrics -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_matches_sklearn_with_ties(seed: int) -> None:
    y, scores = _tied_data(seed)
    assert len(np.unique(scores)) == 11
    assert roc_auc(y, scores) == pytest.approx(skm.roc_auc_score(y, scores), abs=1e-12)


def test_roc_auc_on_continuous_scores_and_edge_cases() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 500)
    scores = rng.normal(size=500) + y
    assert roc_auc(y, scores) == pytest.approx(skm.roc_auc_score(y, scores), abs=1e-12)
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.4, 0.3, 0.2, 0.1])) == 0.0
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert math.isnan(roc_auc(np.ones(5), np.arange(5.0)))
    assert math.isnan(roc_auc(np.zeros(5), np.arange(5.0)))


@pytest.mark.parametrize("seed", [0, 1])
def test_compute_metrics_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 1000)
    proba = np.clip(rng.beta(2, 3, 1000) + 0.2 * y, 0.01, 0.99)
    m = compute_metrics(y, proba)
    assert isinstance(m, Metrics)
    assert m.log_loss == pytest.approx(skm.log_loss(y, proba), rel=1e-12)
    assert m.auc == pytest.approx(skm.roc_auc_score(y, proba), abs=1e-12)
    assert m.brier == pytest.approx(skm.brier_score_loss(y, proba), rel=1e-12)
    assert m.n_rows == 1000
    assert m.n_positive == int(y.sum())
    as_dict = m.as_dict()
    assert as_dict["positive_rate"] == pytest.approx(y.mean())
    assert set(as_dict) == {"auc", "log_loss", "brier", "n_rows", "n_positive", "positive_rate"}


def test_compute_metrics_is_finite_for_certain_predictions() -> None:
    y = np.array([0, 1, 1, 0])
    wrong = compute_metrics(y, np.array([1.0, 0.0, 0.0, 1.0]))
    assert math.isfinite(wrong.log_loss) and wrong.log_loss > 30  # clipped, not infinite
    right = compute_metrics(y, y.astype(float))
    assert right.log_loss == pytest.approx(0.0, abs=1e-12)
    assert right.brier == pytest.approx(0.0, abs=1e-12)
    assert right.auc == 1.0
    assert math.isnan(Metrics(auc=0.5, log_loss=1, brier=0, n_rows=0, n_positive=0).positive_rate)


def test_baseline_metrics_predicts_the_training_rate() -> None:
    rng = np.random.default_rng(3)
    y_train = (rng.uniform(size=800) < 0.3).astype(int)
    y_test = (rng.uniform(size=400) < 0.35).astype(int)
    base = baseline_metrics(y_train, y_test)
    rate = y_train.mean()
    assert base.auc == 0.5
    assert base.log_loss == pytest.approx(skm.log_loss(y_test, np.full(400, rate)), rel=1e-12)
    assert base.brier == pytest.approx(np.mean((rate - y_test) ** 2), rel=1e-12)
    assert base.n_rows == 400 and base.n_positive == int(y_test.sum())


# --- ROC curve -----------------------------------------------------------------------------------


@pytest.mark.parametrize("tied", [True, False])
def test_roc_curve_points_match_sklearn(tied: bool) -> None:
    y, scores = _tied_data(4, n=700)
    if not tied:
        scores = scores + np.random.default_rng(4).normal(scale=0.01, size=len(scores))
    fpr, tpr = roc_curve_points(y, scores)
    sk_fpr, sk_tpr, _ = skm.roc_curve(y, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, sk_tpr, atol=1e-12)
    assert fpr[0] == tpr[0] == 0.0
    assert fpr[-1] == tpr[-1] == 1.0
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()
    assert len(fpr) == len(np.unique(scores)) + 1
    # The trapezoid area under the points is the AUC.
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(y, scores), abs=1e-12)


def test_roc_curve_points_small_known_case() -> None:
    fpr, tpr = roc_curve_points(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.8, 0.1]))
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0]


# --- latency -------------------------------------------------------------------------------------


def test_measure_latency_is_consistent(booster: lgb.Booster, test_frame: pd.DataFrame) -> None:
    latency = measure_latency(booster, test_frame, SYNTHETIC_SCHEMA, n_calls=60, warmup=5)
    assert isinstance(latency, Latency)
    assert latency.n_calls == 60
    assert latency.num_threads == 1
    assert 0 < latency.p50_ms <= latency.p95_ms <= latency.p99_ms


def test_measure_latency_makes_the_calls_asked_on_a_small_frame(
    booster: lgb.Booster, test_frame: pd.DataFrame
) -> None:
    # Fewer rows than calls: rows are drawn with replacement, the number of calls still holds.
    small = test_frame.head(20)
    latency = measure_latency(booster, small, SYNTHETIC_SCHEMA, n_calls=50, warmup=10)
    assert latency.n_calls == 50
    assert 0 < latency.p50_ms <= latency.p95_ms <= latency.p99_ms


def test_evaluate_model_uses_the_serving_scorer(
    booster: lgb.Booster, test_frame: pd.DataFrame
) -> None:
    evaluation, proba = evaluate_model(
        "candidate", booster, test_frame, SYNTHETIC_SCHEMA, latency_calls=20
    )
    expected = Scorer(booster, SYNTHETIC_SCHEMA).predict(test_frame)
    np.testing.assert_array_equal(proba, expected)
    assert evaluation.name == "candidate"
    assert evaluation.metrics == compute_metrics(test_frame["label"].to_numpy(), expected)
    assert evaluation.metrics.auc > 0.7
    assert evaluation.latency.n_calls == 20
    report = evaluation.as_dict()
    assert report["name"] == "candidate"
    assert report["metrics"]["auc"] == evaluation.metrics.auc
    assert report["latency"]["n_calls"] == 20


# --- plot ----------------------------------------------------------------------------------------


def test_plot_roc_writes_a_png(tmp_path: Path) -> None:
    y, scores = _tied_data(7, n=300)
    rng = np.random.default_rng(7)
    out = plot_roc(
        {"candidate": (y, scores), "random": (y, rng.uniform(size=len(y)))},
        tmp_path / "plots" / "roc.png",
        title="ROC",
    )
    assert out == tmp_path / "plots" / "roc.png"
    raw = out.read_bytes()
    assert raw.startswith(PNG_MAGIC)
    assert len(raw) > 1000
    import matplotlib.image

    image = matplotlib.image.imread(out)
    assert image.shape[:2] == (500, 500)  # figsize 5x5 at 100 dpi


def test_latency_calls_zero_leaves_the_latency_unmeasured(
    booster: lgb.Booster, test_frame: pd.DataFrame
) -> None:
    evaluation, _ = evaluate_model("x", booster, test_frame, SYNTHETIC_SCHEMA, latency_calls=0)
    assert evaluation.latency.n_calls == 0 and math.isnan(evaluation.latency.p95_ms)


def test_the_gate_without_the_champions_latency_decides_the_same(
    booster: lgb.Booster, small_history: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    """The gate reads only the candidate's latency: not timing the champion changes no verdict."""
    from retraining_assets.core.promotion import GatePolicy, judge_candidate
    from retraining_assets.core.registry import ProductionRecord
    from retraining_assets.settings import SPLIT_COLUMN

    first, last = small_history.values()
    frame = pd.concat(
        [first.assign(**{SPLIT_COLUMN: "train"}), last.assign(**{SPLIT_COLUMN: "test"})]
    )
    champion = ProductionRecord(1, "m" * 32, "models/m.txt", "promote", "", "2024-01-01")
    candidate = train_model(first, SYNTHETIC_SCHEMA, TrainParams(num_boost_round=5)).booster

    def judge(champion_latency: bool):
        return judge_candidate(
            frame,
            SYNTHETIC_SCHEMA,
            candidate,
            (champion, booster),
            policy=GatePolicy(),
            latency_calls=20,
            identical_to_champion=False,
            plot_path=tmp_path / f"roc_{champion_latency}.png",
            test_batches=("b",),
            mode="direct",
            shadow_batches=0,
            champion_latency=champion_latency,
        )

    timed, untimed = judge(True), judge(False)
    assert timed.production is not None and untimed.production is not None
    assert timed.production.latency.n_calls == 20 and untimed.production.latency.n_calls == 0
    assert untimed.candidate.latency.n_calls == 20
    assert untimed.decision.promote == timed.decision.promote
    assert untimed.production.metrics == timed.production.metrics
    assert untimed.report.production is not None
    assert untimed.report.production["latency"]["n_calls"] == 0
