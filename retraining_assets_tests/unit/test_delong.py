"""Paired DeLong test: AUCs vs sklearn, variance vs the O(m n) definition, bootstrap agreement."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from retraining_assets.core import delong
from retraining_assets.core.delong import DeLongResult, auc_and_variance, delong_test

# --------------------------------------------------------------------------------------------
# Helpers: simulation and the slow, textbook DeLong
# --------------------------------------------------------------------------------------------


def simulate(
    n: int,
    noise_a: float,
    noise_b: float,
    *,
    seed: int,
    signal: float = 1.5,
    offset: float = -1.0,
    decimals: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels from a latent score; each model sees the latent score plus its own noise."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(signal * latent + offset)))).astype(int)
    a = latent + noise_a * rng.normal(size=n)
    b = latent + noise_b * rng.normal(size=n)
    if decimals is not None:  # coarse scores: many ties within and across classes
        a, b = np.round(a, decimals), np.round(b, decimals)
    return y, a, b


def slow_components(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """V10, V01 straight from the psi kernel: psi(x, y) = 1, 1/2, 0 for x > y, x = y, x < y."""
    x, yy = s[y == 1], s[y == 0]
    psi = (x[:, None] > yy[None, :]) + 0.5 * (x[:, None] == yy[None, :])
    return psi.mean(axis=1), psi.mean(axis=0)


def slow_covariance(y: np.ndarray, *scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and DeLong's S = S10 / m + S01 / n with the explicit double sums of the paper."""
    comps = [slow_components(y, s) for s in scores]
    aucs = np.array([v10.mean() for v10, _ in comps])
    m, n = comps[0][0].size, comps[0][1].size
    k = len(scores)
    s10, s01 = np.zeros((k, k)), np.zeros((k, k))
    for r in range(k):
        for q in range(k):
            s10[r, q] = sum(
                (comps[r][0][i] - aucs[r]) * (comps[q][0][i] - aucs[q]) for i in range(m)
            ) / (m - 1)
            s01[r, q] = sum(
                (comps[r][1][j] - aucs[r]) * (comps[q][1][j] - aucs[q]) for j in range(n)
            ) / (n - 1)
    return aucs, s10 / m + s01 / n


def bootstrap_aucs(
    x: np.ndarray, y: np.ndarray, pos_counts: np.ndarray, neg_counts: np.ndarray
) -> np.ndarray:
    """AUCs of resamples given how often each positive (``x``) and negative (``y``) was drawn.

    With the negatives sorted once, a resample's AUC is ``sum_i w_i (below_i + tied_i / 2)
    / (m n)`` from cumulative negative counts: the midrank AUC of the resampled rows.
    """
    order = np.argsort(y, kind="mergesort")
    y_sorted = y[order]
    lo = np.searchsorted(y_sorted, x, side="left")
    hi = np.searchsorted(y_sorted, x, side="right")
    cum = np.zeros((neg_counts.shape[0], y.size + 1), dtype=np.int64)
    np.cumsum(neg_counts[:, order], axis=1, out=cum[:, 1:])
    wins = np.einsum("bi,bi->b", pos_counts, cum[:, lo] + cum[:, hi])
    return np.asarray(wins / (2.0 * x.size * y.size), dtype=float)


def draw_counts(rng: np.random.Generator, size: int, n_draws: int) -> np.ndarray:
    """``(n_draws, size)`` counts of each of ``size`` rows in ``n_draws`` resamples of ``size``."""
    idx = rng.integers(0, size, size=(n_draws, size)) + np.arange(n_draws)[:, None] * size
    return np.bincount(idx.ravel(), minlength=n_draws * size).reshape(n_draws, size)


def paired_bootstrap(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, *, n_boot: int, seed: int
) -> tuple[float, float, float]:
    """Paired, class-stratified bootstrap of ``AUC(a) - AUC(b)``: the oracle DeLong must match.

    Every resample draws the positives and the negatives with replacement from their own class
    and uses the same rows for both models. Returns ``(se, 95% low, 95% high)``.
    """
    positive = np.asarray(y).astype(bool)
    m, n = int(positive.sum()), int((~positive).sum())
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // (m + n))  # bounds the (resamples, rows) matrices to ~50 MB
    diffs = []
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        pos_counts, neg_counts = draw_counts(rng, m, size), draw_counts(rng, n, size)
        auc_a = bootstrap_aucs(a[positive], a[~positive], pos_counts, neg_counts)
        auc_b = bootstrap_aucs(b[positive], b[~positive], pos_counts, neg_counts)
        diffs.append(auc_a - auc_b)
    d = np.concatenate(diffs)
    low, high = np.quantile(d, [0.025, 0.975])
    return float(np.std(d, ddof=1)), float(low), float(high)


# --------------------------------------------------------------------------------------------
# AUC and variance
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "decimals", "seed"),
    [(50, None, 0), (300, 1, 1), (1000, 0, 2), (2000, 2, 3), (5000, None, 4)],
)
def test_auc_matches_sklearn_with_ties(n: int, decimals: int | None, seed: int) -> None:
    y, a, b = simulate(n, 0.8, 1.2, seed=seed, decimals=decimals)
    if decimals is not None:
        assert np.unique(a).size < n  # really has ties
    auc_a, _ = auc_and_variance(y, a)
    result = delong_test(y, a, b)
    assert auc_a == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert result.auc_a == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert result.auc_b == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    assert result.difference == pytest.approx(result.auc_a - result.auc_b, abs=1e-15)


def test_auc_with_integer_scores_bool_labels_and_pandas() -> None:
    rng = np.random.default_rng(7)
    y = rng.random(400) < 0.3
    s = rng.integers(0, 5, size=400) + y  # five distinct values: heavy ties
    auc, _ = auc_and_variance(pd.Series(y), pd.Series(s))
    assert auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    all_tied, _ = auc_and_variance(y, np.zeros(400))
    assert all_tied == 0.5


def test_variance_by_hand_on_a_tiny_sample() -> None:
    # positives 0.9, 0.4; negatives 0.5, 0.1 -> V10 = (1, 1/2), V01 = (1/2, 1), AUC = 3/4,
    # S10 = S01 = 1/8, var = 1/8 / 2 + 1/8 / 2 = 1/8.
    auc, var = auc_and_variance([1, 1, 0, 0], [0.9, 0.4, 0.5, 0.1])
    assert auc == 0.75
    assert var == pytest.approx(0.125, abs=1e-15)
    # A tie across classes: positives 0.5, 0.9; negatives 0.5, 0.1 -> V10 = (3/4, 1),
    # V01 = (3/4, 1), AUC = 7/8, S10 = S01 = 1/32, var = 1/32.
    auc, var = auc_and_variance([1, 1, 0, 0], [0.5, 0.9, 0.5, 0.1])
    assert auc == 0.875
    assert var == pytest.approx(1 / 32, abs=1e-15)


@pytest.mark.parametrize(("n", "decimals", "seed"), [(120, None, 10), (250, 1, 11), (400, 0, 12)])
def test_variance_matches_the_slow_pairwise_definition(
    n: int, decimals: int | None, seed: int
) -> None:
    y, a, b = simulate(n, 0.7, 1.1, seed=seed, decimals=decimals)
    aucs, s = slow_covariance(y, a, b)
    auc_a, var_a = auc_and_variance(y, a)
    auc_b, var_b = auc_and_variance(y, b)
    assert auc_a == pytest.approx(aucs[0], abs=1e-12)
    assert auc_b == pytest.approx(aucs[1], abs=1e-12)
    assert var_a == pytest.approx(s[0, 0], abs=1e-10)
    assert var_b == pytest.approx(s[1, 1], abs=1e-10)
    result = delong_test(y, a, b)
    var_diff = s[0, 0] + s[1, 1] - 2 * s[0, 1]
    assert result.se**2 == pytest.approx(var_diff, abs=1e-10)
    assert result.se == pytest.approx(math.sqrt(var_diff), rel=1e-9)


def test_structural_components_match_the_psi_kernel() -> None:
    y, a, _ = simulate(300, 1.0, 1.0, seed=5, decimals=1)
    v10, v01 = delong._structural_components(y == 1, a)
    slow10, slow01 = slow_components(y, a)
    np.testing.assert_allclose(v10, slow10, atol=1e-12)
    np.testing.assert_allclose(v01, slow01, atol=1e-12)


def test_midranks_match_scipy() -> None:
    x = np.round(np.random.default_rng(3).normal(size=1000), 1)
    np.testing.assert_array_equal(delong._midranks(x), stats.rankdata(x, method="average"))


# --------------------------------------------------------------------------------------------
# Agreement with the paired bootstrap
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("noise_a", "noise_b", "decimals", "seed"),
    [
        (0.5, 0.5, None, 21),  # equally good, strongly correlated
        (0.6, 1.0, None, 22),  # a better
        (1.0, 0.4, 1, 23),  # b better, ties
        (1.5, 1.5, 0, 24),  # weak models, heavy ties
    ],
)
def test_delong_agrees_with_paired_bootstrap(
    noise_a: float, noise_b: float, decimals: int | None, seed: int
) -> None:
    y, a, b = simulate(2000, noise_a, noise_b, seed=seed, decimals=decimals)
    result = delong_test(y, a, b)
    se, low, high = paired_bootstrap(y, a, b, n_boot=2000, seed=seed)
    assert se == pytest.approx(result.se, rel=0.10)
    assert low == pytest.approx(result.ci_low, abs=0.005)
    assert high == pytest.approx(result.ci_high, abs=0.005)


def test_bootstrap_resample_auc_equals_sklearn_on_the_repeated_rows() -> None:
    y, a, _ = simulate(300, 1.0, 1.0, seed=31, decimals=1)
    pos, neg = a[y == 1], a[y == 0]
    rng = np.random.default_rng(0)
    pos_counts = draw_counts(rng, pos.size, 5)
    neg_counts = draw_counts(rng, neg.size, 5)
    assert (pos_counts.sum(axis=1) == pos.size).all()
    assert (neg_counts.sum(axis=1) == neg.size).all()
    aucs = bootstrap_aucs(pos, neg, pos_counts, neg_counts)
    for k in range(5):
        xs, ys = np.repeat(pos, pos_counts[k]), np.repeat(neg, neg_counts[k])
        labels = np.r_[np.ones(xs.size), np.zeros(ys.size)]
        assert aucs[k] == pytest.approx(roc_auc_score(labels, np.r_[xs, ys]), abs=1e-12)


# --------------------------------------------------------------------------------------------
# Behaviour of the test
# --------------------------------------------------------------------------------------------


def test_null_p_values_are_roughly_uniform() -> None:
    rng = np.random.default_rng(2024)
    p_values = []
    for _ in range(200):
        n = 600
        latent = rng.normal(size=n)
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(1.5 * latent - 1.0)))).astype(int)
        a = latent + rng.normal(size=n)
        b = latent + rng.normal(size=n)
        p_values.append(delong_test(y, a, b).p_value)
    p = np.asarray(p_values)
    assert 0.02 <= float(np.mean(p < 0.05)) <= 0.09
    assert 0.05 <= float(np.mean(p < 0.10)) <= 0.16
    assert stats.kstest(p, "uniform").pvalue > 0.01


def test_clearly_better_model_is_significant() -> None:
    y, a, b = simulate(2000, 0.3, 1.5, seed=51)
    result = delong_test(y, a, b)
    assert result.difference > 0.05
    assert result.p_value < 1e-3
    assert result.z > 3.3
    assert result.ci_low > 0


def test_swapping_models_flips_the_sign() -> None:
    y, a, b = simulate(1500, 0.7, 1.0, seed=61, decimals=1)
    ab, ba = delong_test(y, a, b), delong_test(y, b, a)
    assert ba.difference == pytest.approx(-ab.difference, abs=1e-15)
    assert ba.z == pytest.approx(-ab.z, rel=1e-12)
    assert ba.p_value == pytest.approx(ab.p_value, rel=1e-12)
    assert ba.se == pytest.approx(ab.se, rel=1e-12)
    assert ba.ci_low == pytest.approx(-ab.ci_high, abs=1e-15)
    assert ba.ci_high == pytest.approx(-ab.ci_low, abs=1e-15)
    assert (ba.auc_a, ba.auc_b) == (ab.auc_b, ab.auc_a)


def test_confidence_interval_and_p_value_are_consistent() -> None:
    y, a, b = simulate(1000, 0.7, 1.0, seed=71)
    r95 = delong_test(y, a, b)
    r90 = delong_test(y, a, b, confidence=0.90)
    assert r95.ci_low < r95.difference < r95.ci_high
    assert r95.ci_high - r95.difference == pytest.approx(stats.norm.ppf(0.975) * r95.se)
    ratio = (r90.ci_high - r90.ci_low) / (r95.ci_high - r95.ci_low)
    assert ratio == pytest.approx(stats.norm.ppf(0.95) / stats.norm.ppf(0.975))
    assert r95.p_value == pytest.approx(2 * stats.norm.sf(abs(r95.difference / r95.se)))
    # The 95% CI excludes 0 exactly when p < 0.05.
    assert (r95.p_value < 0.05) == (r95.ci_low > 0 or r95.ci_high < 0)
    assert (r95.n, r95.n_positive + r95.n_negative, r95.n_positive) == (1000, 1000, int(y.sum()))


# --------------------------------------------------------------------------------------------
# Edge cases
# --------------------------------------------------------------------------------------------


def test_identical_scores_give_p_one_and_a_zero_interval() -> None:
    y, a, _ = simulate(800, 1.0, 1.0, seed=81, decimals=1)
    for b in (a.copy(), 3.0 * a + 1.0):  # the same ranking: no difference, no variance
        result = delong_test(y, a, b)
        assert result.difference == 0.0
        assert result.se == 0.0
        assert result.z == 0.0
        assert result.p_value == 1.0
        assert (result.ci_low, result.ci_high) == (0.0, 0.0)


def test_zero_se_with_a_real_difference() -> None:
    # A perfect model against a constant one: every V10/V01 differs by exactly 1/2.
    y = np.array([1, 1, 1, 0, 0, 0])
    result = delong_test(y, [0.9, 0.8, 0.7, 0.3, 0.2, 0.1], np.zeros(6))
    assert result.difference == 0.5
    assert result.se == 0.0
    assert result.z == math.inf
    assert result.p_value == 0.0
    assert (result.ci_low, result.ci_high) == (0.5, 0.5)


@pytest.mark.parametrize("y", [np.ones(10), np.zeros(10), np.ones(10, dtype=bool)])
def test_single_class_is_rejected(y: np.ndarray) -> None:
    s = np.linspace(0, 1, 10)
    with pytest.raises(ValueError, match="single class"):
        delong_test(y, s, s)
    with pytest.raises(ValueError, match="single class"):
        auc_and_variance(y, s)


def test_one_positive_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least 2 positives and 2 negatives"):
        delong_test([1, 0, 0, 0], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1])


def test_nan_scores_are_rejected() -> None:
    y, a, b = simulate(100, 1.0, 1.0, seed=91)
    a[3] = np.nan
    with pytest.raises(ValueError, match="scores_a contains 1 NaN"):
        delong_test(y, a, b)
    with pytest.raises(ValueError, match="scores_b contains 1 NaN"):
        delong_test(y, b, a)
    with pytest.raises(ValueError, match="NaN"):
        auc_and_variance(y, a)


@pytest.mark.parametrize(
    ("y", "match"),
    [
        ([0, 1, 2, 1, 0], "binary labels"),
        ([0.0, 1.0, np.nan, 1.0, 0.0], "NaN"),
        (["a", "b", "a", "b", "a"], "binary labels"),
        ([[0, 1], [1, 0]], "one-dimensional"),
        ([], "empty"),
    ],
)
def test_invalid_labels_are_rejected(y: list[Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        auc_and_variance(y, np.arange(len(y), dtype=float))


def test_mismatched_lengths_and_bad_parameters_are_rejected() -> None:
    y, a, b = simulate(100, 1.0, 1.0, seed=92)
    with pytest.raises(ValueError, match="scores_b has 99 values but y_true has 100"):
        delong_test(y, a, b[:-1])
    for confidence in (0.0, 1.0, 95.0):
        with pytest.raises(ValueError, match="confidence"):
            delong_test(y, a, b, confidence=confidence)


# --------------------------------------------------------------------------------------------
# Result object
# --------------------------------------------------------------------------------------------


def test_summary_format() -> None:
    result = DeLongResult(
        auc_a=0.8121,
        auc_b=0.8049,
        difference=0.0072,
        se=0.0056,
        z=1.27,
        p_value=0.2051,
        ci_low=-0.0038,
        ci_high=0.0182,
        confidence=0.95,
        n=6211,
        n_positive=1520,
        n_negative=4691,
    )
    assert result.summary() == (
        "AUC 0.812 vs 0.805: +0.007 (95% CI \u22120.004 to +0.018, p = 0.21, "
        "n = 6,211 with 1,520 positives)"
    )
    small = DeLongResult(0.9, 0.8, 0.1, 0.01, 10.0, 1e-20, 0.08, 0.12, 0.9, 100, 40, 60)
    assert "(90% CI +0.080 to +0.120, p < 0.001," in small.summary()
    mid = DeLongResult(0.8, 0.79, 0.01, 0.005, 2.0, 0.0466, 0.0002, 0.0198, 0.95, 100, 40, 60)
    assert "p = 0.047" in mid.summary()


def test_as_dict_is_plain_and_json_friendly() -> None:
    y, a, b = simulate(500, 0.8, 1.0, seed=101)
    result = delong_test(y, a, b)
    d = result.as_dict()
    assert list(d) == [
        "auc_a",
        "auc_b",
        "difference",
        "se",
        "z",
        "p_value",
        "ci_low",
        "ci_high",
        "confidence",
        "n",
        "n_positive",
        "n_negative",
    ]
    assert all(type(d[k]) is float for k in list(d)[:9])
    assert all(type(d[k]) is int for k in ("n", "n_positive", "n_negative"))
    assert json.loads(json.dumps(d)) == d
    with pytest.raises(AttributeError):
        result.se = 0.0  # type: ignore[misc]
