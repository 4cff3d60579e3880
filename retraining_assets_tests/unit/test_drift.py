"""Drift statistics: agreement with scipy, PSI formula, corrections, verdicts on synthetic data."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from retraining_assets.core import drift
from retraining_assets.core.drift import (
    MISSING_CATEGORY,
    PSI_EPSILON,
    DriftPolicy,
    adjust_pvalues,
    build_reference,
    chi2_categorical,
    compute_drift,
    ks_pvalue,
    ks_statistic_sorted,
    psi,
)
from retraining_assets.core.drift import columns as drift_columns
from retraining_assets.core.drift import ks as drift_ks
from retraining_assets.core.synthetic import SYNTHETIC_SCHEMA, DriftSpec, make_batch

START = pd.Timestamp("2024-01-01")
NUMERIC = list(SYNTHETIC_SCHEMA.numeric_features)
CATEGORICAL = list(SYNTHETIC_SCHEMA.categorical_features)


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return make_batch(20_000, START, seed=1)


@pytest.fixture(scope="module")
def profile(reference: pd.DataFrame) -> drift.ReferenceProfile:
    return build_reference(reference, NUMERIC, CATEGORICAL)


def _feature(result: drift.DriftResult, name: str) -> drift.FeatureDrift:
    return next(f for f in result.features if f.name == name)


# --- KS statistic and p-value against scipy ---------------------------------------------------


def _samples(case: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if case == "continuous":
        return rng.normal(size=700), rng.normal(0.2, 1.1, size=450)
    if case == "integers":
        return rng.integers(0, 6, 900).astype(float), rng.integers(1, 8, 333).astype(float)
    if case == "binary":
        return (rng.random(500) < 0.3).astype(float), (rng.random(800) < 0.4).astype(float)
    if case == "shared_values":
        base = rng.normal(size=50).round(1)
        return rng.choice(base, 400), rng.choice(base, 260) + 0.1
    if case == "tiny":
        return np.array([1.0]), np.array([2.0, 0.5])
    if case == "tiny_ties":
        return np.array([1.0, 1.0, 2.0]), np.array([1.0, 2.0, 2.0, 2.0])
    if case == "identical":
        x = rng.normal(size=300)
        return x, x.copy()
    if case == "disjoint":
        return rng.normal(size=40), rng.normal(size=30) + 100
    if case == "large_continuous":  # blocked search over the sorted batch
        return rng.normal(size=3000), rng.standard_t(5, size=20_000)
    if case == "large_few_values":  # few distinct values: every one evaluated
        return rng.integers(0, 9, 4000).astype(float), rng.integers(2, 12, 30_000).astype(float)
    if case == "large_rounded":  # many ties, still many distinct values
        return rng.normal(size=5000).round(2), rng.normal(0.05, size=40_000).round(2)
    if case == "large_spike":  # one value holds 65% of the batch, the rest is continuous
        spike = np.zeros(26_000)
        return rng.normal(size=6000), np.concatenate((spike, rng.normal(0.1, size=14_000)))
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    ["continuous", "integers", "binary", "shared_values", "tiny", "tiny_ties", "identical",
     "disjoint", "large_continuous", "large_few_values", "large_rounded", "large_spike"],
)  # fmt: skip
def test_ks_statistic_matches_scipy(case: str) -> None:
    rng = np.random.default_rng(7)
    a, b = _samples(case, rng)
    expected = stats.ks_2samp(a, b)
    d = ks_statistic_sorted(np.sort(a), b)
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    # Swapping the roles gives the same D.
    assert ks_statistic_sorted(np.sort(b), a) == pytest.approx(expected.statistic, abs=1e-12)
    assert ks_pvalue(d, a.size, b.size) == pytest.approx(expected.pvalue, abs=1e-9)


def test_ks_statistic_matches_scipy_on_random_shapes() -> None:
    # Exercises the block bounds of the sorted-batch search: many sizes, shifts, scales, ties.
    rng = np.random.default_rng(11)
    for i in range(80):
        n, m = (int(v) for v in rng.integers(1, 6000, 2))
        shift, scale = rng.normal(0, 0.1), math.exp(rng.normal(0, 0.1))
        a, b = rng.normal(size=n), rng.normal(shift, scale, size=m)
        if i % 4 == 1:  # ties inside and across samples
            digits = int(rng.integers(0, 3))
            a, b = a.round(digits), b.round(digits)
        elif i % 4 == 2:  # every batch value also in the reference
            b = a[rng.integers(0, n, m)]
        expected = stats.ks_2samp(a, b).statistic
        assert ks_statistic_sorted(np.sort(a), b) == pytest.approx(expected, abs=1e-12)


def test_ks_statistic_ignores_nan_and_rejects_empty() -> None:
    a, b = np.array([0.0, 1.0, 2.0]), np.array([0.5, np.nan, 1.5])
    assert ks_statistic_sorted(a, b) == pytest.approx(stats.ks_2samp(a, b[~np.isnan(b)]).statistic)
    with pytest.raises(ValueError):
        ks_statistic_sorted(a, np.array([np.nan]))


SIZES = [
    (1, 1), (2, 3), (5, 5), (10, 7), (30, 20), (100, 100), (250, 40), (1000, 800),
    (3000, 2000), (10_000, 60), (10_001, 500), (20_000, 15_000), (60_000, 60_000),
]  # fmt: skip


@pytest.mark.parametrize(("n", "m"), SIZES)
def test_ks_pvalue_matches_scipy_default_method(n: int, m: int) -> None:
    rng = np.random.default_rng(n * 31 + m)
    scale = 1.0 / math.sqrt(n * m / (n + m))
    for shift in (0.0, 1.5 * scale, 4.0 * scale):
        a, b = rng.normal(size=n), rng.normal(shift, size=m)
        expected = stats.ks_2samp(a, b)
        d = ks_statistic_sorted(np.sort(a), b)
        got = ks_pvalue(d, n, m)
        assert got == pytest.approx(expected.pvalue, abs=1e-9)
        if expected.pvalue > 1e-250:
            assert got == pytest.approx(expected.pvalue, rel=1e-9)


def test_ks_pvalue_uses_scipy_exact_helper() -> None:
    # The exact small-sample path calls scipy's private helper; if scipy moves it this fails
    # loudly instead of silently switching small samples to the asymptotic formula.
    assert drift_ks._attempt_exact_2kssamp is not None
    with pytest.raises(ValueError):
        ks_pvalue(0.1, 0, 5)


@pytest.mark.parametrize("n", [2_000, 20_000, 100_000])
@pytest.mark.parametrize("z2", [2.2, 8.0, 60.0, 360.0])
def test_fast_smirnov_branch_matches_scipy(n: int, z2: float) -> None:
    d = math.sqrt(z2 / n)
    expected = float(stats.kstwo.sf(d, n))
    assert drift_ks._kstwo_sf(d, n) == pytest.approx(expected, rel=1e-10, abs=1e-300)
    assert drift_ks._smirnov_sf(n, d) == pytest.approx(float(special.smirnov(n, d)), rel=1e-10)


@pytest.mark.parametrize("n", [300_000, 1_000_000])
@pytest.mark.parametrize("z2", [2.2, 8.0, 60.0, 360.0])
def test_smirnov_sum_on_a_step_matches_every_term(
    n: int, z2: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = math.sqrt(z2 / n)
    assert drift_ks._smirnov_step(n, d) > 50  # the shortcut is really taken
    fast = drift_ks._smirnov_sf(n, d)
    monkeypatch.setattr(drift_ks, "_SMIRNOV_WIDTH_PER_STEP", math.inf)  # step 1: every term
    assert drift_ks._smirnov_step(n, d) == 1
    assert fast == pytest.approx(drift_ks._smirnov_sf(n, d), rel=1e-12)


# --- PSI ---------------------------------------------------------------------------------------


def _direct_psi(ref: np.ndarray, cur: np.ndarray, edges: np.ndarray) -> float:
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        r = max(np.count_nonzero((ref > lo) & (ref <= hi)) / ref.size, PSI_EPSILON)
        c = max(np.count_nonzero((cur > lo) & (cur <= hi)) / cur.size, PSI_EPSILON)
        total += (c - r) * math.log(c / r)
    return total


def test_psi_matches_direct_formula(reference: pd.DataFrame) -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame(
        {
            "normal": reference["x0"],
            "ints": rng.integers(0, 4, len(reference)).astype(float),
            "with_nan": np.where(rng.random(len(reference)) < 0.1, np.nan, reference["x3"]),
        }
    )
    cur = pd.DataFrame(
        {
            "normal": rng.normal(0.3, 1.2, 5000),
            "ints": rng.integers(0, 6, 5000).astype(float),  # values above the reference max
            "with_nan": np.where(rng.random(5000) < 0.3, np.nan, rng.exponential(1.3, 5000)),
        }
    )
    prof = build_reference(ref, list(ref.columns), [])
    result = compute_drift(prof, cur)
    for num in prof.numeric:
        expected = _direct_psi(ref[num.name].to_numpy(), cur[num.name].to_numpy(), num.edges)
        assert _feature(result, num.name).psi == pytest.approx(expected, rel=1e-12)
    # Deciles: 10 bins for a continuous feature, one bin per value for a 4-valued one.
    assert prof.numeric[0].edges.size == 11
    assert prof.numeric[0].proportions == pytest.approx(np.full(10, 0.1))
    np.testing.assert_array_equal(prof.numeric[1].edges, [-np.inf, 0.0, 1.0, 2.0, np.inf])


def test_psi_function() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2]) == pytest.approx(
        2 * (-0.1) * math.log(0.8) + (0.2 - 1e-4) * math.log(0.2 / 1e-4)
    )
    with pytest.raises(ValueError):
        psi([1.0], [0.5, 0.5])


def test_identical_samples_show_no_drift(
    reference: pd.DataFrame, profile: drift.ReferenceProfile
) -> None:
    result = compute_drift(profile, reference)
    for feature in result.features:
        assert feature.psi == pytest.approx(0.0, abs=1e-12)
        assert not feature.drifted
    assert _feature(result, "x0").ks_d == 0.0
    assert _feature(result, "c0").chi2 == pytest.approx(0.0, abs=1e-9)
    assert not result.drifted


def test_discrete_and_constant_features_get_no_empty_reference_bin() -> None:
    ref = pd.DataFrame({"binary": [0.0] * 95 + [1.0] * 5, "constant": [3.0] * 100})
    prof = build_reference(ref, ["binary", "constant"], [])
    binary, constant = prof.numeric
    np.testing.assert_array_equal(binary.edges, [-np.inf, 0.0, np.inf])
    assert binary.proportions == pytest.approx([0.95, 0.05])
    np.testing.assert_array_equal(constant.edges, [-np.inf, 3.0, np.inf])
    cur = pd.DataFrame({"binary": [0.0] * 50 + [1.0] * 50, "constant": [3.0] * 90 + [4.0] * 10})
    result = compute_drift(prof, cur)
    assert _feature(result, "binary").drifted
    assert _feature(result, "constant").psi == pytest.approx(
        (0.1 - PSI_EPSILON) * math.log(0.1 / PSI_EPSILON) - 0.1 * math.log(0.9), rel=1e-12
    )


# --- categorical -------------------------------------------------------------------------------


def test_chi2_categorical_matches_scipy() -> None:
    ref = {"a": 500, "b": 300, "c": 200, MISSING_CATEGORY: 20}
    cur = {"a": 260, "b": 180, "d": 40, MISSING_CATEGORY: 30}  # "c" gone, "d" new
    stat, pvalue, index = chi2_categorical(ref, cur)
    keys = ["a", "b", "c", MISSING_CATEGORY, "d"]
    table = np.array([[ref.get(k, 0) for k in keys], [cur.get(k, 0) for k in keys]])
    expected = stats.chi2_contingency(table, correction=False)
    assert stat == pytest.approx(expected.statistic, rel=1e-12)
    assert pvalue == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    r, c = table[0] / table[0].sum(), table[1] / table[1].sum()
    r, c = np.maximum(r, PSI_EPSILON), np.maximum(c, PSI_EPSILON)
    assert index == pytest.approx(float(np.sum((c - r) * np.log(c / r))))
    assert chi2_categorical({"a": 5}, {"a": 9}) == (0.0, 1.0, 0.0)


def test_unseen_category_counts_as_drift(
    reference: pd.DataFrame, profile: drift.ReferenceProfile
) -> None:
    batch = make_batch(5000, START, seed=11)
    batch.loc[batch.index[:1500], "c1"] = "new-level"  # 30% of rows in a category never seen
    result = compute_drift(profile, batch)
    c1 = _feature(result, "c1")
    assert c1.psi is not None and c1.psi > 1.0
    assert c1.drifted and any(reason.startswith("PSI") for reason in c1.reasons)
    assert c1.tvd == pytest.approx(0.3, abs=0.01)
    assert result.drifted


def test_category_dtype_counts_like_strings(reference: pd.DataFrame) -> None:
    prof = build_reference(reference.astype({"c0": "category"}), NUMERIC, CATEGORICAL)
    plain = build_reference(reference, NUMERIC, CATEGORICAL)
    assert [dict(c.counts) for c in prof.categorical] == [dict(c.counts) for c in plain.categorical]
    batch = make_batch(4000, START, seed=12)
    batch.loc[batch.index[:300], "c0"] = "never-seen"
    batch.loc[batch.index[300:350], "c0"] = None
    as_category = batch.astype({"c0": "category"})
    # An unused category (no rows) is not counted, as value_counts of the strings would not.
    as_category["c0"] = as_category["c0"].cat.add_categories(["unused"])
    counts = drift.category_counts(as_category["c0"])
    assert counts == drift.category_counts(batch["c0"])
    assert counts["never-seen"] == 300 and counts[MISSING_CATEGORY] == 50 and "unused" not in counts
    expected, got = compute_drift(prof, batch), compute_drift(prof, as_category)
    assert got.drifted == expected.drifted and got.drifted_features() == expected.drifted_features()
    # Categories may be listed in another order, so sums may differ in the last bits.
    for name in ("chi2", "chi2_pvalue", "psi", "tvd", "missing_rate_cur"):
        assert getattr(_feature(got, "c0"), name) == pytest.approx(
            getattr(_feature(expected, "c0"), name), rel=1e-12, abs=1e-300
        )


def _counts_by_value(series: pd.Series) -> list[tuple[str, int]]:
    """What category_counts returned before objects were counted by identity."""
    out: dict[str, int] = {}
    counts = series.value_counts(dropna=False, sort=False)
    for key, count in zip(counts.index.tolist(), counts.tolist(), strict=True):
        label = MISSING_CATEGORY if pd.isna(key) else str(key)
        out[label] = out.get(label, 0) + int(count)
    return list(out.items())


def test_object_strings_counted_by_identity_like_by_value() -> None:
    rng = np.random.default_rng(21)
    # Equal strings held by distinct objects (as a CSV reader makes them), interned ones, and
    # None, NaN and NA.
    fresh = ["".join(["le", "vel", str(k)]) for k in rng.integers(0, 7, 3000)]
    values = np.array(fresh + ["level3"] * 200 + [None, np.nan, pd.NA] * 50, dtype=object)
    series = pd.Series(values[rng.permutation(values.size)])
    assert drift_columns._object_counts(series.to_numpy()) is not None  # the identity path is taken
    assert list(drift.category_counts(series).items()) == _counts_by_value(series)
    strided = pd.Series(series.to_numpy()[::3])  # not contiguous: counted on a copy
    assert list(drift.category_counts(strided).items()) == _counts_by_value(strided)
    # 1, 1.0 and True are one value to value_counts, labelled "1": not counted by identity.
    mixed = pd.Series([1, 1.0, True, "a", None, 2, "a"], dtype=object)
    assert drift_columns._object_counts(mixed.to_numpy()) is None
    assert drift.category_counts(mixed) == {"1": 3, "a": 2, MISSING_CATEGORY: 1, "2": 1}
    unique = pd.Series(
        [f"id{i}" for i in range(drift_columns._MAX_DISTINCT_OBJECTS + 1)], dtype=object
    )
    assert drift_columns._object_counts(unique.to_numpy()) is None
    assert drift.category_counts(unique) == dict.fromkeys(unique, 1)
    assert drift.category_counts(pd.Series([], dtype=object)) == {}


def test_nan_inf_constant_and_all_missing_numeric_columns() -> None:
    rng = np.random.default_rng(13)
    ref = pd.DataFrame(
        {
            "with_inf": np.concatenate([rng.normal(size=990), [np.inf] * 5, [-np.inf] * 5]),
            "constant": np.full(1000, 2.0),
            "all_nan": np.full(1000, np.nan),
        }
    )
    ref.loc[::7, "with_inf"] = np.nan
    prof = build_reference(ref, list(ref.columns), [])
    assert [num.n_missing for num in prof.numeric] == [ref["with_inf"].isna().sum(), 0, 1000]
    cur = pd.DataFrame(
        {
            "with_inf": np.concatenate([rng.normal(0.3, size=1490), [np.inf] * 10]),
            "constant": np.full(1500, 2.0),
            "all_nan": np.concatenate([[np.nan] * 1400, rng.normal(size=100)]),
        }
    )
    cur.loc[::3, "with_inf"] = np.nan
    cur.loc[::5, "constant"] = np.nan
    result = compute_drift(prof, cur)
    with_inf, constant, all_nan = (_feature(result, name) for name in cur.columns)
    a, b = ref["with_inf"].dropna().to_numpy(), cur["with_inf"].dropna().to_numpy()
    expected = stats.ks_2samp(a, b)
    assert with_inf.ks_d == pytest.approx(expected.statistic, abs=1e-15)
    assert with_inf.ks_pvalue == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert with_inf.n_current == b.size
    assert with_inf.missing_rate_cur == pytest.approx(1 - b.size / 1500)
    assert constant.ks_d == 0.0 and constant.psi == pytest.approx(0.0, abs=1e-12)
    assert constant.n_current == 1200 and constant.missing_rate_cur == pytest.approx(0.2)
    # No reference value: nothing to compare, but the missing rate is still reported.
    assert all_nan.n_reference == 0 and all_nan.ks_d is None and all_nan.psi is None
    assert all_nan.n_current == 100 and all_nan.missing_rate_cur == pytest.approx(1400 / 1500)
    with pytest.raises(ValueError, match="no rows"):
        compute_drift(prof, cur.iloc[:0])


# --- multiple testing --------------------------------------------------------------------------


def test_corrections() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5])
    # Holm by hand: sorted 0.005, 0.01, 0.03, 0.04, 0.5 times 5, 4, 3, 2, 1, running max.
    holm_sorted = [0.025, 0.04, 0.09, 0.09, 0.5]
    expected_holm = np.empty(5)
    expected_holm[np.argsort(p)] = holm_sorted
    np.testing.assert_allclose(adjust_pvalues(p, "holm"), expected_holm, rtol=1e-12)
    np.testing.assert_allclose(adjust_pvalues(p, "bonferroni"), np.minimum(5 * p, 1.0))
    np.testing.assert_array_equal(adjust_pvalues(p, "none"), p)
    rng = np.random.default_rng(0)
    for k in (1, 2, 7, 40):
        q = np.concatenate([rng.random(k) ** 3, [0.2] * 3])  # include ties
        np.testing.assert_allclose(
            adjust_pvalues(q, "bh"), stats.false_discovery_control(q, method="bh"), rtol=1e-12
        )
        assert np.all(adjust_pvalues(q, "holm") >= q)
    assert adjust_pvalues([], "holm").size == 0
    with pytest.raises(ValueError):
        adjust_pvalues(p, "sidak")


# --- verdicts on synthetic data ----------------------------------------------------------------


def test_covariate_shift_is_detected(profile: drift.ReferenceProfile) -> None:
    batch = make_batch(5000, START, seed=2, drift=DriftSpec(covariate_shift=1.0))
    result = compute_drift(profile, batch)
    assert result.drifted
    assert set(result.drifted_features()) == {"x0", "x1"}
    x0 = _feature(result, "x0")
    assert x0.psi is not None and x0.psi > 0.5
    assert x0.ks_d is not None and x0.ks_d > 0.3
    assert x0.p_value_adjusted is not None and x0.p_value_adjusted < 1e-100
    assert any(reason.startswith("KS D") for reason in x0.reasons)
    assert result.rule == "any_psi" and result.score == pytest.approx(max(x0.psi, 0.0), abs=1.0)
    assert re.fullmatch(
        r"drift: 2 of 7 features drifted \(max PSI \d+\.\d\d on x[01] > 0\.20\)", result.summary()
    )
    assert result.n_reference == 20_000 and result.n_current == 5000


def test_no_drift_gives_negative_verdict(profile: drift.ReferenceProfile) -> None:
    batch = make_batch(5000, START, seed=3)
    result = compute_drift(profile, batch)
    assert not result.drifted
    assert result.drifted_features() == ()
    assert result.score < 0.05
    assert re.fullmatch(
        r"no drift: max PSI 0\.\d\d <= 0\.20 \((x\d|c\d)\), 0 of 7 features drifted",
        result.summary(),
    )
    payload = json.dumps(result.to_dict(), allow_nan=False)
    assert json.loads(payload)["summary"] == result.summary()


def test_null_columns_give_no_false_positives_with_effect_size_floor() -> None:
    rng = np.random.default_rng(2024)
    n, columns, repeats = 50_000, 20, 4
    names = [f"z{i}" for i in range(columns)]
    raw_flags = policy_flags = 0
    for _ in range(repeats):
        ref = pd.DataFrame(rng.normal(size=(n, columns)), columns=names)
        cur = pd.DataFrame(rng.normal(size=(n, columns)), columns=names)
        result = compute_drift(build_reference(ref, names, []), cur)
        raw_flags += sum(f.ks_pvalue is not None and f.ks_pvalue < 0.05 for f in result.features)
        policy_flags += len(result.drifted_features())
        assert max(f.ks_d or 0.0 for f in result.features) < 0.02
        assert not result.drifted
    # About one null column in twenty at raw p < 0.05 (4 expected of 80), none with the policy.
    assert 1 <= raw_flags <= 12
    assert policy_flags == 0


def test_missing_rate_change_is_drift(profile: drift.ReferenceProfile) -> None:
    batch = make_batch(5000, START, seed=4)
    batch.loc[batch.index[::4], "x4"] = np.nan  # 25% missing, reference has none
    result = compute_drift(profile, batch)
    x4 = _feature(result, "x4")
    assert x4.missing_rate_cur == pytest.approx(0.25)
    assert x4.missing_rate_change == pytest.approx(0.25)
    assert x4.n_current == 3750
    assert x4.psi is not None and x4.psi < 0.05  # missing values stay out of PSI and KS
    assert x4.drifted and x4.reasons[0].startswith("missing rate 0.0% -> 25.0%")
    assert not result.drifted  # any_psi: no PSI above 0.2
    assert compute_drift(profile, batch, DriftPolicy(rule="share", share_threshold=0.1)).drifted


def test_column_entirely_missing_is_drifted(profile: drift.ReferenceProfile) -> None:
    batch = make_batch(3000, START, seed=5).drop(columns=["x2"])
    batch["x3"] = np.nan
    batch["c0"] = None
    result = compute_drift(profile, batch)
    x2, x3, c0 = (_feature(result, name) for name in ("x2", "x3", "c0"))
    assert x2.drifted and x2.reasons == ("column absent from batch",)
    assert x2.missing_rate_cur == 1.0 and x2.psi is None and x2.ks_d is None
    assert x3.drifted and x3.reasons[0] == (
        "all 3000 values missing in batch (reference missing rate 0.0%)"
    )
    assert c0.drifted and c0.missing_rate_cur == 1.0 and c0.chi2 is None
    assert result.drifted and result.forced_by == ("x2", "x3", "c0")
    assert result.summary().startswith("drift: x2, x3, c0 entirely missing in batch; ")
    relaxed = DriftPolicy(missing_column_forces_drift=False)
    assert not compute_drift(profile, batch, relaxed).drifted
    with pytest.raises(ValueError):
        compute_drift(profile, batch.iloc[:0])


def test_share_and_importance_rules(profile: drift.ReferenceProfile) -> None:
    batch = make_batch(5000, START, seed=6, drift=DriftSpec(covariate_shift=1.0))
    share = compute_drift(profile, batch, DriftPolicy(rule="share"))
    assert share.score == pytest.approx(2 / 7) and not share.drifted
    assert share.summary().startswith("no drift: 2 of 7 features drifted (share 0.29 < 0.30;")
    weights = {"x0": 5.0, "x1": 1.0, "x2": 1.0, "x3": 1.0, "x4": 1.0, "c0": 1.0}
    weighted = compute_drift(profile, batch, DriftPolicy(rule="importance"), weights)
    assert weighted.score == pytest.approx(6 / 10) and weighted.drifted
    assert "importance-weighted share 0.60 >= 0.30" in weighted.summary()
    with pytest.raises(ValueError):
        compute_drift(profile, batch, DriftPolicy(rule="importance"))
    with pytest.raises(ValueError):
        DriftPolicy(rule="majority")
    with pytest.raises(ValueError):
        DriftPolicy(correction="sidak")


def test_workers_do_not_change_the_result(profile: drift.ReferenceProfile) -> None:
    batch = make_batch(4000, START, seed=8, drift=DriftSpec(covariate_shift=0.3))
    one = compute_drift(profile, batch, workers=1)
    two = compute_drift(profile, batch, workers=2)
    assert one.to_dict() == two.to_dict()


def test_profile_npz_round_trip(profile: drift.ReferenceProfile, tmp_path: Path) -> None:
    path = profile.to_npz(tmp_path / "reference.profile")
    assert path == tmp_path / "reference.profile" and path.exists()
    loaded = drift.ReferenceProfile.from_npz(path)
    assert loaded.features == profile.features
    assert (loaded.n_rows, loaded.n_bins) == (profile.n_rows, profile.n_bins)
    for a, b in zip(loaded.numeric, profile.numeric, strict=True):
        np.testing.assert_array_equal(a.sorted_values, b.sorted_values)
        np.testing.assert_array_equal(a.edges, b.edges)
        assert a.n_missing == b.n_missing
    assert [dict(c.counts) for c in loaded.categorical] == [
        dict(c.counts) for c in profile.categorical
    ]
    batch = make_batch(3000, START, seed=9, drift=DriftSpec(covariate_shift=0.5))
    expected = compute_drift(profile, batch).to_dict()
    assert compute_drift(loaded, batch).to_dict() == expected
    from_bytes = drift.ReferenceProfile.from_bytes(profile.to_bytes())
    assert compute_drift(from_bytes, batch).to_dict() == expected
    with pytest.raises(ValueError):
        (tmp_path / "other.npz").write_bytes(b"")
        np.savez(tmp_path / "other.npz", x=np.zeros(1))
        drift.ReferenceProfile.from_npz(tmp_path / "other.npz")


def test_build_reference_validates_input(reference: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="no column"):
        build_reference(reference, ["nope"], [])
    with pytest.raises(ValueError, match="more than once"):
        build_reference(reference, ["x0"], ["x0"])
    with pytest.raises(ValueError, match="n_bins"):
        build_reference(reference, ["x0"], [], n_bins=1)
