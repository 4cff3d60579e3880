"""Drift statistics besides KS: PSI, chi-square, total variation, multiple-testing corrections."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

#: Probability that empty PSI bins (or unseen categories) are clipped to before taking logs.
PSI_EPSILON = 1e-4
#: Supported multiple-testing corrections.
CORRECTIONS: tuple[str, ...] = ("none", "bonferroni", "holm", "bh")


def psi(
    ref_props: Sequence[float] | np.ndarray,
    cur_props: Sequence[float] | np.ndarray,
    eps: float = PSI_EPSILON,
) -> float:
    """Population stability index ``sum((c - r) * ln(c / r))`` over matching bins.

    Args:
        ref_props: Reference share of each bin.
        cur_props: Current share of each bin (same bins, same order).
        eps: Shares below ``eps`` (empty bins, unseen categories) are raised to ``eps``
            before the formula, :data:`PSI_EPSILON` = 1e-4 by default; shares are not
            renormalised afterwards.

    Returns:
        The PSI (0 for identical proportions; 0.1 to 0.2 is usually read as a moderate shift,
        above 0.2 as a significant one).

    Raises:
        ValueError: if the two arrays have different lengths.
    """
    ref = np.maximum(np.asarray(ref_props, dtype=np.float64), eps)
    cur = np.maximum(np.asarray(cur_props, dtype=np.float64), eps)
    if ref.shape != cur.shape:
        raise ValueError(f"bins differ: {ref.shape} reference vs {cur.shape} current")
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _category_tables(
    ref_counts: Mapping[str, int], cur_counts: Mapping[str, int]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    keys = list(dict.fromkeys([*ref_counts, *cur_counts]))
    ref = np.array([ref_counts.get(key, 0) for key in keys], dtype=np.float64)
    cur = np.array([cur_counts.get(key, 0) for key in keys], dtype=np.float64)
    seen = (ref + cur) > 0
    if ref.sum() <= 0 or cur.sum() <= 0:
        raise ValueError("both samples need at least one row")
    return [key for key, keep in zip(keys, seen, strict=True) if keep], ref[seen], cur[seen]


def chi2_categorical(
    ref_counts: Mapping[str, int], cur_counts: Mapping[str, int]
) -> tuple[float, float, float]:
    """Chi-square test of homogeneity and PSI between two category distributions.

    The 2 x k table has one column per category seen in either sample: categories new in the
    batch and the :data:`MISSING_CATEGORY` bucket are ordinary columns. The test is
    ``scipy.stats.chi2_contingency(table, correction=False)`` (Pearson's statistic, no Yates
    correction, so a two-category feature is tested like any other).

    Args:
        ref_counts: Rows per category in the reference.
        cur_counts: Rows per category in the current batch.

    Returns:
        ``(statistic, p_value, psi)``; PSI is over the category shares with :data:`PSI_EPSILON`,
        so a category absent from the reference adds ``(c - eps) * ln(c / eps)``. With a single
        category overall the result is ``(0.0, 1.0, 0.0)``.

    Raises:
        ValueError: if either side has no rows.
    """
    _, ref, cur = _category_tables(ref_counts, cur_counts)
    index = psi(ref / ref.sum(), cur / cur.sum())
    if ref.size < 2:
        return 0.0, 1.0, index
    result = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
    return float(result.statistic), float(result.pvalue), index


def total_variation(ref_counts: Mapping[str, int], cur_counts: Mapping[str, int]) -> float:
    """Total variation distance ``0.5 * sum |c - r|`` between two category distributions.

    It is the share of probability mass that moved, the categorical counterpart of the KS D,
    and does not depend on the sample sizes (unlike Cramér's V of the 2 x k table, which shrinks
    as the reference grows relative to the batch).

    Args:
        ref_counts: Rows per category in the reference.
        cur_counts: Rows per category in the current batch.

    Returns:
        The distance, in ``[0, 1]``.
    """
    _, ref, cur = _category_tables(ref_counts, cur_counts)
    return float(0.5 * np.abs(cur / cur.sum() - ref / ref.sum()).sum())


def adjust_pvalues(pvalues: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """Correct a family of p-values for multiple testing.

    Args:
        pvalues: The raw p-values.
        method: ``"none"``; ``"bonferroni"`` (``min(1, k p)``); ``"holm"`` (step-down,
            family-wise error control: ``max_{j <= i} min(1, (k - j + 1) p_(j))``); or ``"bh"``
            (Benjamini-Hochberg false discovery rate: ``min_{j >= i} min(1, k p_(j) / j)``,
            as ``scipy.stats.false_discovery_control``).

    Returns:
        Adjusted p-values, in the input order.

    Raises:
        ValueError: for an unknown method.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    k = p.size
    if method not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {method!r}")
    if method == "none" or k == 0:
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * k, 1.0)
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adjusted = np.maximum.accumulate(ranked * (k - np.arange(k)))
    else:  # bh
        adjusted = ranked * (k / np.arange(1, k + 1))
        adjusted = np.minimum.accumulate(adjusted[::-1])[::-1]
    out = np.empty(k)
    out[order] = np.clip(adjusted, 0.0, 1.0)
    return out
