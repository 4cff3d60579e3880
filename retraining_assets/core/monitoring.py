"""Production-model quality on a labelled batch: metrics, calibration, per-row errors."""

from __future__ import annotations

import dataclasses
import io
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from retraining_assets.core.evaluation import compute_metrics
from retraining_assets.core.verdicts import PerformanceVerdict
from retraining_assets.libraries import preload

if TYPE_CHECKING:
    import pandas as pd

    from retraining_assets.schemas import DatasetSchema
    from retraining_assets.settings import TriggerPolicy


@dataclass(frozen=True)
class BatchPerformance:
    """How the serving model did on one labelled batch.

    Attributes:
        auc: ROC AUC (NaN when the batch has a single class).
        log_loss: Mean log loss.
        brier: Mean squared error of the probabilities.
        positive_rate: Observed share of positives.
        mean_prediction: Mean predicted probability (vs positive_rate: calibration-in-the-large).
        calibration_error: Expected calibration error over ``bins`` equal-width bins.
        n_rows: Labelled rows scored.
    """

    auc: float
    log_loss: float
    brier: float
    positive_rate: float
    mean_prediction: float
    calibration_error: float
    n_rows: int

    def as_dict(self) -> dict[str, float]:
        """Flat dict for metadata and JSON."""
        return asdict(self)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: row-weighted mean |observed rate - mean prediction| per bin."""
    y = np.asarray(y, dtype="float64")
    p = np.asarray(p, dtype="float64")
    if len(y) == 0:
        return float("nan")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    counts = np.bincount(idx, minlength=bins)
    obs = np.bincount(idx, weights=y, minlength=bins)
    pred = np.bincount(idx, weights=p, minlength=bins)
    used = counts > 0
    return float(np.sum(np.abs(obs[used] - pred[used])) / len(y))


def row_errors(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per-row squared error (the Brier score's terms): the concept-drift detector's stream.

    Bounded in [0, 1], as ADWIN's bound requires, and a proper scoring rule, so it rises when the
    probabilities stop matching the outcomes, not only when the ranking breaks.
    """
    y = np.asarray(y, dtype="float64")
    p = np.asarray(p, dtype="float64")
    return (p - y) ** 2


def batch_performance(y: np.ndarray, p: np.ndarray) -> BatchPerformance:
    """Metrics of predictions ``p`` against labels ``y`` for one batch."""
    metrics = compute_metrics(y, p)
    return BatchPerformance(
        auc=metrics.auc,
        log_loss=metrics.log_loss,
        brier=metrics.brier,
        positive_rate=metrics.positive_rate,
        mean_prediction=float(np.mean(p)) if len(p) else float("nan"),
        calibration_error=expected_calibration_error(y, p),
        n_rows=metrics.n_rows,
    )


def performance_degraded(
    auc: float,
    auc_at_promotion: float | None,
    *,
    auc_floor: float,
    relative_floor: float,
) -> tuple[bool, str]:
    """Whether an AUC on labelled feedback says the model degraded, and the sentence saying why."""
    if auc != auc:
        return False, "AUC undefined on this batch (one class only)"
    if auc < auc_floor:
        return True, f"AUC {auc:.4f} < absolute floor {auc_floor:.2f}"
    if auc_at_promotion is not None and auc < relative_floor * auc_at_promotion:
        return True, (
            f"AUC {auc:.4f} < {relative_floor:g} x AUC at promotion {auc_at_promotion:.4f}"
            f" = {relative_floor * auc_at_promotion:.4f}"
        )
    tail = (
        f", >= {relative_floor:g} x {auc_at_promotion:.4f} at promotion"
        if auc_at_promotion is not None
        else ""
    )
    return False, f"AUC {auc:.4f} >= floor {auc_floor:.2f}{tail}"


def labelled_rows(frame: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """The rows whose label has arrived, in time order (the error stream's order)."""
    labelled = frame[frame[schema.target].notna()]
    return labelled.sort_values(schema.timestamp, kind="stable")


@dataclass(frozen=True)
class PerformanceAssessment:
    """What :func:`assess_performance` concluded about one labelled batch.

    Attributes:
        performance: The metrics.
        verdict: The typed record; its ``errors_key`` is set by :meth:`stored_at` once the
            error stream is stored.
        errors: Per-row squared errors in time order (the concept-drift stream).
    """

    performance: BatchPerformance
    verdict: PerformanceVerdict
    errors: np.ndarray

    def stored_at(self, errors_key: str, scores_key: str | None = None) -> PerformanceVerdict:
        """The verdict naming where its error stream (and labels with scores) were stored."""
        return dataclasses.replace(self.verdict, errors_key=errors_key, scores_key=scores_key)


def assess_performance(
    y: np.ndarray,
    p: np.ndarray,
    policy: TriggerPolicy,
    *,
    auc_at_promotion: float | None,
    production_version: int,
) -> PerformanceAssessment:
    """Measure the production model on one labelled batch and decide whether it degraded.

    Degraded when the AUC falls below the absolute floor or below the relative floor times the
    AUC at promotion; a batch with fewer than ``min_labelled_rows`` labelled rows never counts
    as degraded (its AUC is too noisy).

    Args:
        y: Labels, in time order.
        p: The production model's probabilities for the same rows.
        policy: The trigger policy (``auc_floor``, ``relative_auc_floor``, ``min_labelled_rows``).
        auc_at_promotion: The model's AUC when promoted (``None`` if unknown).
        production_version: The measured model.

    Returns:
        The metrics, the verdict and the per-row errors.
    """
    perf = batch_performance(y, p)
    degraded, why = performance_degraded(
        perf.auc,
        auc_at_promotion,
        auc_floor=policy.auc_floor,
        relative_floor=policy.relative_auc_floor,
    )
    if perf.n_rows < policy.min_labelled_rows:
        degraded, why = False, f"only {perf.n_rows} labelled rows < {policy.min_labelled_rows}"
    verdict = PerformanceVerdict(
        status="degraded" if degraded else "ok",
        reason=why,
        auc=float(perf.auc),
        log_loss=float(perf.log_loss),
        rows=perf.n_rows,
        production_version=production_version,
        auc_at_promotion=None if auc_at_promotion is None else float(auc_at_promotion),
    )
    return PerformanceAssessment(performance=perf, verdict=verdict, errors=row_errors(y, p))


def plot_drift(result: Any, *, title: str, psi_threshold: float) -> bytes:
    """Horizontal bar chart of PSI per feature (drifted ones highlighted), as PNG bytes.

    Rendered in memory: the chart travels as an image embedded in the asset's metadata, so no
    file is left on the run worker's disk.

    Args:
        result: A ``core.drift.DriftResult``.
        title: Chart title.
        psi_threshold: Drawn as a vertical line.

    Returns:
        The PNG bytes.
    """
    import matplotlib

    matplotlib.use("Agg")
    preload("matplotlib.pyplot")
    import matplotlib.pyplot as plt

    # A feature missing from the batch has no PSI: drawn at the cap. One extreme bar must not
    # flatten the rest, hence the cap.
    features = sorted(result.features, key=lambda f: 5.0 if f.psi is None else min(f.psi, 5.0))
    names = [f.name for f in features]
    values = [5.0 if f.psi is None else min(f.psi, 5.0) for f in features]
    colors = ["tab:red" if f.drifted else "tab:blue" for f in features]
    fig, ax = plt.subplots(figsize=(6, 0.28 * len(names) + 1.2), dpi=100)
    ax.barh(names, values, color=colors)
    ax.axvline(psi_threshold, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel(f"PSI (capped at 5; dashed: threshold {psi_threshold:g}; red: drifted)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
