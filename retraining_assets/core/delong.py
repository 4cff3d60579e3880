"""Paired DeLong test for the difference of two correlated ROC AUCs (numpy and scipy only).

The promotion gate scores the candidate and the champion on the *same* test set, so their AUCs
are correlated and a two-sample test would be far too conservative. DeLong, DeLong &
Clarke-Pearson (1988, *Biometrics* 44:837-845) estimate the covariance of correlated AUCs from
their structural components; Sun & Xu (2014, "Fast Implementation of DeLong's Algorithm for
Comparing the Areas Under Correlated Receiver Operating Characteristic Curves", *IEEE Signal
Processing Letters* 21(11):1389-1393) compute those components in O(n log n) from midranks.

Notation (Sun & Xu): ``m`` positives with scores ``X``, ``n`` negatives with scores ``Y``, and for
each model ``r``

* ``Tx``, ``Ty``, ``Tz``: midranks (ties get the average rank) of ``X`` within ``X``, of ``Y``
  within ``Y`` and of both within the combined sample ``Z = (X, Y)``;
* ``V10[i] = (Tz[i] - Tx[i]) / n``: the share of negatives scored below positive ``i`` (ties
  count one half), i.e. ``mean_j psi(X_i, Y_j)`` with ``psi(x, y) = 1, 1/2, 0`` for
  ``x > y, x = y, x < y``;
* ``V01[j] = 1 - (Tz[m + j] - Ty[j]) / m``: the share of positives scored above negative ``j``;
* ``AUC = mean(V10) = mean(V01)``, and the covariance matrix of the AUCs
  ``S = S10 / m + S01 / n`` with ``S10``, ``S01`` the sample covariance matrices (``ddof=1``) of the
  ``V10`` and ``V01`` rows across models.

The variance of the difference ``a - b`` is ``S_aa + S_bb - 2 S_ab``; it is computed here as
``var(V10_a - V10_b) / m + var(V01_a - V01_b) / n``, which is the same number without the
cancellation, and exactly zero when the two models rank the rows identically.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

__all__ = ["DeLongResult", "auc_and_variance", "delong_test"]

_MINUS = "\N{MINUS SIGN}"


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _labels(y_true: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Return ``y_true`` as a boolean vector, checking it is binary with both classes present."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be one-dimensional, got shape {y.shape}")
    if y.size == 0:
        raise ValueError("y_true is empty")
    if y.dtype == np.bool_:
        positive = y
    else:
        try:
            values = y.astype(float)
        except (TypeError, ValueError) as exc:
            raise ValueError("y_true must hold binary labels (0/1 or bool)") from exc
        if np.isnan(values).any():
            raise ValueError("y_true contains NaN")
        if not np.isin(values, (0.0, 1.0)).all():
            found = np.unique(values)[:5].tolist()
            raise ValueError(f"y_true must hold binary labels 0/1 (or bool), found {found}")
        positive = values == 1.0
    n_positive = int(positive.sum())
    n_negative = int(positive.size - n_positive)
    if n_positive == 0 or n_negative == 0:
        only = "positive" if n_negative == 0 else "negative"
        raise ValueError(
            f"y_true has a single class (all {positive.size} rows are {only}); the ROC AUC needs "
            "both positives and negatives"
        )
    if n_positive < 2 or n_negative < 2:
        raise ValueError(
            "the DeLong variance needs at least 2 positives and 2 negatives, got "
            f"{n_positive} positives and {n_negative} negatives"
        )
    return positive


def _scores(scores: npt.ArrayLike, size: int, name: str) -> npt.NDArray[np.float64]:
    """Return ``scores`` as a float vector of length ``size`` without NaN."""
    s = np.asarray(scores, dtype=float)
    if s.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {s.shape}")
    if s.size != size:
        raise ValueError(f"{name} has {s.size} values but y_true has {size}")
    if np.isnan(s).any():
        raise ValueError(f"{name} contains {int(np.isnan(s).sum())} NaN value(s)")
    return s


def _check_confidence(confidence: float) -> float:
    """Return ``confidence`` as a float after checking it lies strictly between 0 and 1."""
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    return c


# --------------------------------------------------------------------------------------------
# Fast DeLong (Sun & Xu 2014)
# --------------------------------------------------------------------------------------------


def _midranks(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """1-based midranks of ``x``: tied values all get the average of the ranks they span."""
    order = np.argsort(x, kind="mergesort")
    ordered = x[order]
    size = ordered.size
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], size]  # exclusive; the group spans ranks starts+1 .. ends
    ranks = np.empty(size, dtype=float)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def _structural_components(
    positive: npt.NDArray[np.bool_], scores: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """DeLong's structural components ``V10`` (one per positive) and ``V01`` (one per negative).

    Args:
        positive: Boolean class labels.
        scores: Scores of one model, same length.

    Returns:
        ``(V10, V01)``; both have mean equal to the AUC.
    """
    x = scores[positive]
    y = scores[~positive]
    m, n = x.size, y.size
    tz = _midranks(np.concatenate([x, y]))
    v10 = (tz[:m] - _midranks(x)) / n
    v01 = 1.0 - (tz[m:] - _midranks(y)) / m
    return v10, v01


def _sample_var(v: npt.NDArray[np.float64]) -> float:
    """Sample variance (``ddof=1``), clipped at zero against rounding."""
    return max(float(np.var(v, ddof=1)), 0.0)


def auc_and_variance(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[float, float]:
    """ROC AUC of one model and its DeLong variance.

    Args:
        y_true: Binary labels (0/1 or bool), with at least two rows of each class.
        scores: Model scores (higher means more likely positive); ties are allowed.

    Returns:
        ``(auc, variance)`` with ``variance = var(V10) / m + var(V01) / n`` (``m`` positives,
        ``n`` negatives). The AUC equals ``sklearn.metrics.roc_auc_score``.

    Raises:
        ValueError: If the labels are not binary, hold a single class, or the scores contain NaN
            or do not match the labels in length.
    """
    positive = _labels(y_true)
    s = _scores(scores, positive.size, "scores")
    v10, v01 = _structural_components(positive, s)
    variance = _sample_var(v10) / v10.size + _sample_var(v01) / v01.size
    return float(v10.mean()), variance


def _format_p(p: float) -> str:
    """``p = 0.21`` / ``p = 0.047`` / ``p < 0.001``."""
    if p < 0.001:
        return "p < 0.001"
    if p < 0.1:
        return f"p = {p:.2g}"
    return f"p = {p:.2f}"


def _signed(value: float, digits: int = 3) -> str:
    """``+0.007`` or U+2212 MINUS ``0.004``; a value that rounds to zero prints as ``+0.000``."""
    text = f"{abs(value):.{digits}f}"
    negative = value < 0 and float(text) != 0.0
    return (_MINUS if negative else "+") + text


@dataclass(frozen=True)
class DeLongResult:
    """Outcome of the paired DeLong test of ``AUC(a) - AUC(b)`` on one shared test set.

    Attributes:
        auc_a: ROC AUC of model a (e.g. the candidate).
        auc_b: ROC AUC of model b (e.g. the champion).
        difference: ``auc_a - auc_b``.
        se: DeLong standard error of the difference.
        z: ``difference / se`` (0 when both are 0, +-inf when only ``se`` is 0).
        p_value: Two-sided normal p-value of ``H0: AUC(a) = AUC(b)``.
        ci_low: Lower end of the normal-approximation confidence interval of the difference.
        ci_high: Upper end of that interval.
        confidence: Confidence level of the interval, e.g. 0.95.
        n: Number of rows.
        n_positive: Number of positive rows.
        n_negative: Number of negative rows.
    """

    auc_a: float
    auc_b: float
    difference: float
    se: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float
    confidence: float
    n: int
    n_positive: int
    n_negative: int

    def summary(self) -> str:
        """One human-readable line for logs and the promotion report.

        Returns:
            The AUCs, their difference with its confidence interval, the p-value and the sample
            size, e.g. ``AUC 0.812 vs 0.805: +0.007 (95% CI -0.004 to +0.018, p = 0.21,
            n = 6,211 with 1,520 positives)``; negative numbers use the Unicode minus sign
            (U+2212), p-values below 0.001 print as ``p < 0.001``.
        """
        level = f"{100 * self.confidence:.10g}%"
        return (
            f"AUC {self.auc_a:.3f} vs {self.auc_b:.3f}: {_signed(self.difference)} "
            f"({level} CI {_signed(self.ci_low)} to {_signed(self.ci_high)}, "
            f"{_format_p(self.p_value)}, n = {self.n:,} with {self.n_positive:,} positives)"
        )

    def as_dict(self) -> dict[str, Any]:
        """All fields as a plain, JSON-friendly dict (floats and ints).

        Returns:
            ``{field name: value}`` for every field.
        """
        return asdict(self)


def delong_test(
    y_true: npt.ArrayLike,
    scores_a: npt.ArrayLike,
    scores_b: npt.ArrayLike,
    *,
    confidence: float = 0.95,
) -> DeLongResult:
    """Paired DeLong test of the difference of two correlated ROC AUCs on the same rows.

    Args:
        y_true: Binary labels (0/1 or bool), with at least two rows of each class.
        scores_a: Scores of model a (e.g. the candidate), one per row.
        scores_b: Scores of model b (e.g. the champion), one per row, same rows.
        confidence: Level of the confidence interval of the difference.

    Returns:
        The :class:`DeLongResult`. When the two models rank the rows identically the standard
        error is exactly 0 and the result is ``difference = 0``, ``p_value = 1``, CI ``[0, 0]``.

    Raises:
        ValueError: If the labels are not binary or hold a single class, the scores contain NaN
            or differ in length from the labels, or ``confidence`` is not in ``(0, 1)``.
    """
    level = _check_confidence(confidence)
    positive = _labels(y_true)
    a = _scores(scores_a, positive.size, "scores_a")
    b = _scores(scores_b, positive.size, "scores_b")
    v10_a, v01_a = _structural_components(positive, a)
    v10_b, v01_b = _structural_components(positive, b)
    m, n = v10_a.size, v01_a.size
    auc_a, auc_b = float(v10_a.mean()), float(v10_b.mean())
    difference = auc_a - auc_b
    variance = _sample_var(v10_a - v10_b) / m + _sample_var(v01_a - v01_b) / n
    se = math.sqrt(variance)
    if se > 0.0:
        z = difference / se
        p_value = float(2.0 * stats.norm.sf(abs(z)))
    elif difference == 0.0:
        z, p_value = 0.0, 1.0
    else:  # a constant, non-zero shift of every structural component: no sampling variability
        z, p_value = math.copysign(math.inf, difference), 0.0
    half_width = float(stats.norm.ppf(0.5 + level / 2.0)) * se
    return DeLongResult(
        auc_a=auc_a,
        auc_b=auc_b,
        difference=difference,
        se=se,
        z=z,
        p_value=min(p_value, 1.0),
        ci_low=difference - half_width,
        ci_high=difference + half_width,
        confidence=level,
        n=m + n,
        n_positive=m,
        n_negative=n,
    )
