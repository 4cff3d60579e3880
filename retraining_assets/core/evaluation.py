"""Evaluate models on one shared test set: metrics, single-row latency, ROC plot."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retraining_assets.core.training import Scorer
from retraining_assets.libraries import preload
from retraining_assets.settings import DatasetSchema

if TYPE_CHECKING:
    import lightgbm as lgb

_EPS = 1e-15


@dataclass(frozen=True)
class Metrics:
    """Quality of predicted probabilities against 0/1 labels."""

    auc: float
    log_loss: float
    brier: float
    n_rows: int
    n_positive: int

    @property
    def positive_rate(self) -> float:
        """Share of positive labels."""
        return self.n_positive / self.n_rows if self.n_rows else float("nan")

    def as_dict(self) -> dict[str, float]:
        """Flat dict for logging, with the positive rate."""
        return {**asdict(self), "positive_rate": self.positive_rate}


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum (Mann-Whitney) formula, ties counted half."""
    from scipy.stats import rankdata

    y = np.asarray(y_true).astype(bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def compute_metrics(y_true: np.ndarray, proba: np.ndarray) -> Metrics:
    """AUC, log loss and Brier score of ``proba`` for labels ``y_true``."""
    y = np.asarray(y_true, dtype="float64")
    p = np.clip(np.asarray(proba, dtype="float64"), _EPS, 1 - _EPS)
    log_loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return Metrics(
        auc=roc_auc(y, p),
        log_loss=log_loss,
        brier=float(np.mean((p - y) ** 2)),
        n_rows=len(y),
        n_positive=int(y.sum()),
    )


def baseline_metrics(y_train: np.ndarray, y_test: np.ndarray) -> Metrics:
    """Metrics of the trivial model that predicts the training positive rate for every row."""
    rate = float(np.mean(y_train))
    return compute_metrics(y_test, np.full(len(y_test), rate))


@dataclass(frozen=True)
class Latency:
    """Single-row inference latency in milliseconds."""

    p50_ms: float
    p95_ms: float
    p99_ms: float
    n_calls: int
    num_threads: int

    @classmethod
    def not_measured(cls) -> Latency:
        """No calls timed: every percentile NaN (the report shows it as not measured)."""
        nan = float("nan")
        return cls(p50_ms=nan, p95_ms=nan, p99_ms=nan, n_calls=0, num_threads=1)


def measure_latency(
    booster: lgb.Booster,
    frame: pd.DataFrame,
    schema: DatasetSchema,
    *,
    n_calls: int = 500,
    warmup: int = 50,
    num_threads: int = 1,
) -> Latency:
    """Time single-row predictions the way a serving process makes them.

    Each call encodes one raw row with the serving ``Scorer`` and predicts it (``num_threads=1``:
    with the default thread pool a single row costs ~100x more in thread start-up than in trees).
    The first ``warmup`` calls are discarded.
    """
    scorer = Scorer(booster, schema, num_threads=num_threads)
    n_rows = n_calls + warmup
    rows = frame.sample(n=n_rows, replace=len(frame) < n_rows, random_state=0)
    timings = []
    for i in range(len(rows)):
        row = rows.iloc[i : i + 1]
        started = time.perf_counter()
        scorer.predict(row)
        elapsed = (time.perf_counter() - started) * 1000.0
        if i >= warmup:
            timings.append(elapsed)
    arr = np.asarray(timings)
    return Latency(
        p50_ms=float(np.percentile(arr, 50)),
        p95_ms=float(np.percentile(arr, 95)),
        p99_ms=float(np.percentile(arr, 99)),
        n_calls=len(arr),
        num_threads=num_threads,
    )


@dataclass(frozen=True)
class ModelEvaluation:
    """One model's metrics and latency on the shared test set."""

    name: str
    metrics: Metrics
    latency: Latency

    def as_dict(self) -> dict[str, Any]:
        """Nested dict for JSON reports."""
        return {
            "name": self.name,
            "metrics": self.metrics.as_dict(),
            "latency": asdict(self.latency),
        }


def evaluate_model(
    name: str,
    booster: lgb.Booster,
    test: pd.DataFrame,
    schema: DatasetSchema,
    *,
    latency_calls: int = 500,
) -> tuple[ModelEvaluation, np.ndarray]:
    """Score ``booster`` on ``test``; returns the evaluation and the predicted probabilities.

    ``latency_calls`` 0: the latency is not timed (:meth:`Latency.not_measured`).
    """
    proba = Scorer(booster, schema).predict(test)
    metrics = compute_metrics(test[schema.target].to_numpy(), proba)
    latency = (
        measure_latency(booster, test, schema, n_calls=latency_calls)
        if latency_calls > 0
        else Latency.not_measured()
    )
    return ModelEvaluation(name=name, metrics=metrics, latency=latency), proba


def roc_curve_points(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold (descending)."""
    y = np.asarray(y_true).astype(bool)
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    s, y = np.asarray(scores)[order], y[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0.0, tps / max(tps[-1], 1)]
    fpr = np.r_[0.0, fps / max(fps[-1], 1)]
    return fpr, tpr


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    """Draw ROC curves (name -> (labels, scores)) with their AUC into a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    preload("matplotlib.pyplot")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    for name, (y, s) in curves.items():
        fpr, tpr = roc_curve_points(y, s)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(y, s):.4f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
