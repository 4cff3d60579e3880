"""Label-free AUC estimation (CBPE-style) on generated data with a known P(y | x)."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pandas as pd
import pytest

from retraining_assets.core.evaluation import roc_auc
from retraining_assets.core.performance_estimation import (
    CalibratorError,
    LabelledScores,
    PerformanceEstimate,
    ScoreCalibrator,
    calibration_batches,
    estimate_performance,
    estimated_auc_floor,
    estimated_performance_degraded,
    expected_auc,
    fit_calibrator,
    labelled_scores_keys,
    recalibrate,
)
from retraining_assets.core.verdicts import PerformanceVerdict


def sample(rng: np.random.Generator, n: int, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from a fixed logistic P(y | x); raw scores monotone but miscalibrated.

    ``spread`` scales the spread of x: a narrower population (covariate shift, same P(y | x))
    leaves the model less to separate, so its AUC drops.
    """
    x = rng.normal(0.0, spread, n)
    p = 1.0 / (1.0 + np.exp(-(2.0 * x - 1.0)))
    y = (rng.random(n) < p).astype("float64")
    return y, p**3


def test_expected_auc_equals_the_pairwise_definition() -> None:
    rng = np.random.default_rng(1)
    s = rng.integers(0, 6, 40).astype("float64")  # many ties
    p = rng.random(40)
    num = den = 0.0
    for i, j in itertools.permutations(range(40), 2):
        w = p[i] * (1 - p[j])
        den += w
        num += w * (1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0)
    assert expected_auc(s, p) == pytest.approx(num / den, rel=1e-12)
    # Certain labels: the expectation is the realised AUC.
    y = (rng.random(40) < 0.4).astype("float64")
    assert expected_auc(s, y) == pytest.approx(roc_auc(y, s), rel=1e-12)
    assert np.isnan(expected_auc(s, np.ones(40)))


def test_estimate_tracks_realised_auc_in_distribution_and_under_shift() -> None:
    rng = np.random.default_rng(7)
    calibrator = fit_calibrator(*sample(rng, 4000))
    errors = []
    for _ in range(3):
        y, s = sample(rng, 3000)
        estimate = estimate_performance(calibrator, s)
        errors.append(abs(estimate.estimated_auc - roc_auc(y, s)))
        assert estimate.expected_positive_rate == pytest.approx(y.mean(), abs=0.03)
    assert max(errors) < 0.02
    # Planted covariate shift: the population narrows, the AUC falls and the estimate with it.
    y, s = sample(rng, 3000, spread=0.4)
    shifted = estimate_performance(calibrator, s)
    realised = roc_auc(y, s)
    assert realised < calibrator.reference_auc - 0.1
    assert abs(shifted.estimated_auc - realised) < 0.03
    degraded, why = estimated_performance_degraded(
        shifted, relative_floor=0.95, auc_floor=0.6, min_rows=200
    )
    assert degraded and "< 0.95 x reference AUC" in why
    ok, why_ok = estimated_performance_degraded(
        estimate_performance(calibrator, sample(rng, 3000)[1]),
        relative_floor=0.95,
        auc_floor=0.6,
        min_rows=200,
    )
    assert not ok and ">= 0.95 x reference AUC" in why_ok
    assert why_ok.endswith("and >= absolute floor 0.6000")
    few, why_few = estimated_performance_degraded(
        shifted, relative_floor=0.95, auc_floor=0.6, min_rows=5000
    )
    assert not few and "only 3000 rows" in why_few


def test_the_absolute_floor_decides_when_it_is_the_higher_one() -> None:
    def estimate(auc: float, reference: float) -> PerformanceEstimate:
        return PerformanceEstimate(
            estimated_auc=auc,
            reference_auc=reference,
            expected_positive_rate=0.3,
            reference_positive_rate=0.3,
            n_rows=1000,
        )

    assert estimated_auc_floor(0.599, relative_floor=0.95, auc_floor=0.6) == 0.6
    assert estimated_auc_floor(0.8, relative_floor=0.95, auc_floor=0.6) == pytest.approx(0.76)
    assert estimated_auc_floor(0.599, relative_floor=0.95, auc_floor=0.0) == pytest.approx(0.56905)
    # Between the relative floor (0.569) and the absolute one (0.6): degraded only with the latter.
    low = estimate(0.59, reference=0.599)
    degraded, why = estimated_performance_degraded(
        low, relative_floor=0.95, auc_floor=0.6, min_rows=200
    )
    assert degraded and why.startswith("estimated AUC 0.5900 < absolute floor 0.6000")
    held, why_held = estimated_performance_degraded(
        low, relative_floor=0.95, auc_floor=0.0, min_rows=200
    )
    assert not held and why_held == "estimated AUC 0.5900 >= 0.95 x reference AUC 0.5990 = 0.5690"
    # A good model: the relative floor is the higher one and decides, as before.
    fine = estimate(0.79, reference=0.8)
    assert not estimated_performance_degraded(
        fine, relative_floor=0.95, auc_floor=0.6, min_rows=200
    )[0]
    worse = estimate(0.75, reference=0.8)
    degraded, why = estimated_performance_degraded(
        worse, relative_floor=0.95, auc_floor=0.6, min_rows=200
    )
    assert degraded and why == "estimated AUC 0.7500 < 0.95 x reference AUC 0.8000 = 0.7600"


def test_calibrator_round_trips_as_plain_numbers_and_rejects_bad_bytes() -> None:
    rng = np.random.default_rng(3)
    calibrator = fit_calibrator(*sample(rng, 500))
    again = ScoreCalibrator.from_bytes(calibrator.to_bytes())
    np.testing.assert_array_equal(again.thresholds, calibrator.thresholds)
    np.testing.assert_array_equal(again.probabilities, calibrator.probabilities)
    assert again.reference_auc == calibrator.reference_auc
    assert again.reference_rows == 500
    scores = np.array([-1.0, 0.0, 0.2, 0.5, 2.0])
    calibrated = again.calibrate(scores)
    assert np.all(np.diff(calibrated) >= 0) and calibrated.min() >= 0 and calibrated.max() <= 1
    with pytest.raises(CalibratorError, match="unreadable"):
        ScoreCalibrator.from_bytes(b"not an archive")
    with pytest.raises(CalibratorError, match="non-decreasing"):
        ScoreCalibrator(np.array([0.0, 1.0]), np.array([0.9, 0.1]), 0.8, 10, 0.3)
    with pytest.raises(ValueError, match="single class"):
        fit_calibrator(np.zeros(10), np.linspace(0, 1, 10))


def test_estimated_verdict_round_trips_and_decides() -> None:
    from retraining_assets.core.triggers import Fire, Skip, decide_estimated_performance
    from retraining_assets.core.verdicts import (
        EstimatedPerformanceVerdict,
        parse_verdict,
        read_verdict,
        verdict_metadata,
    )
    from retraining_assets.settings import DEFAULT_TRIGGERS

    def verdict(auc: float, status: str) -> EstimatedPerformanceVerdict:
        return EstimatedPerformanceVerdict(
            status=status,
            reason=f"estimated AUC {auc:.4f} vs floor 0.7790",
            estimated_auc=auc,
            reference_auc=0.82,
            floor=0.779,
            rows=800,
            production_version=3,
        )

    low = verdict(0.70, "degraded")
    assert read_verdict(verdict_metadata(low), EstimatedPerformanceVerdict) == low
    undefined = verdict(float("nan"), "no_verdict")
    assert np.isnan(parse_verdict(verdict_metadata(undefined)["verdict"]).estimated_auc)

    ok = [("2024-01-01", verdict(0.81, "ok")), ("2024-01-08", verdict(0.80, "ok"))]
    quiet = decide_estimated_performance(ok, DEFAULT_TRIGGERS, None)
    assert isinstance(quiet, Skip) and "lowest estimated AUC 0.8000" in quiet.reason
    assert "(2024-01-08)" in quiet.reason
    fire = decide_estimated_performance([*ok, ("2024-01-15", low)], DEFAULT_TRIGGERS, 30.0)
    assert isinstance(fire, Fire)
    assert (fire.trigger, fire.partition, fire.version) == (
        "estimated_performance",
        "2024-01-15",
        3,
    )
    held = decide_estimated_performance([("2024-01-15", low)], DEFAULT_TRIGGERS, 2.0)
    assert isinstance(held, Skip) and "cooldown: last retraining 2.0 h ago < 24 h" in held.reason
    none = decide_estimated_performance([("2024-01-15", undefined)], DEFAULT_TRIGGERS, None)
    assert isinstance(none, Skip) and "no estimated-performance verdict" in none.reason


def labelled(
    rng: np.random.Generator, batch_id: str, start: str | None, n: int = 1500, lift: float = 0.0
) -> LabelledScores:
    """A labelled batch of :func:`sample`; ``lift`` moves P(y | score) (the score stays)."""
    x = rng.normal(0.0, 1.0, n)
    p = 1.0 / (1.0 + np.exp(-(2.0 * x - 1.0 + lift)))
    y = (rng.random(n) < p).astype("float64")
    stamp = pd.Timestamp(start) if start else None
    return LabelledScores(
        y=y,
        scores=(1.0 / (1.0 + np.exp(-(2.0 * x - 1.0)))) ** 3,
        batch_id=batch_id,
        period_start=stamp,
    )


def test_only_batches_before_the_estimated_one_are_calibrated_on() -> None:
    """No leakage: never the batch's own labels, never a later batch's, never an unknown time."""
    rng = np.random.default_rng(11)
    sets = [
        labelled(rng, "2024-01-15", "2024-01-15", n=50),
        labelled(rng, "late", "2024-01-29", n=50),  # a later batch whose labels came early
        labelled(rng, "2024-01-01", "2024-01-01", n=50),
        labelled(rng, "2024-01-22", "2024-01-22", n=50),  # the estimated batch itself
        labelled(rng, "undated", None, n=50),
    ]
    # Which batches have stored scores: the newest verdict of the same version, per batch.
    verdicts = [
        ("2024-01-08", PerformanceVerdict("ok", "", 0.8, production_version=1, scores_key="a")),
        ("2024-01-08", PerformanceVerdict("ok", "", 0.8, production_version=1, scores_key="b")),
        ("2024-01-08", PerformanceVerdict("ok", "", 0.8, production_version=2, scores_key="c")),
        ("2024-01-01", PerformanceVerdict("ok", "", 0.8, production_version=1)),  # before keys
    ]
    assert labelled_scores_keys(verdicts, 1) == {"2024-01-08": "b"}
    assert labelled_scores_keys(verdicts, 2) == {"2024-01-08": "c"}
    used = calibration_batches(pd.Timestamp("2024-01-22"), sets)
    assert [s.batch_id for s in used] == ["2024-01-01", "2024-01-15"]
    assert calibration_batches(pd.Timestamp("2024-01-01"), sets) == []
    assert calibration_batches(None, sets) == []


def test_recalibration_pools_the_test_split_and_earlier_batches_and_keeps_the_floor() -> None:
    rng = np.random.default_rng(5)
    reference = labelled(rng, "", None, n=2000)
    base = fit_calibrator(*reference.arrays())
    # Without labelled batches: the test-split calibration, unchanged.
    alone = recalibrate(base, None, [])
    assert alone.calibrator is base and alone.batches == () and alone.labelled_rows == 0
    assert "no labelled batch" in alone.describe()
    # P(y | score) drifts while the model serves: later batches have more positives per score.
    weeks = [labelled(rng, f"2024-01-{d:02d}", f"2024-01-{d:02d}", lift=0.8) for d in (1, 8, 15)]
    refit = recalibrate(base, reference, weeks)
    assert refit.batches == ("2024-01-01", "2024-01-08", "2024-01-15")
    assert refit.labelled_rows == 4500
    assert "3 labelled batch(es)" in refit.describe() and "4,500 rows" in refit.describe()
    # The benchmark's pooled fit, number for number (test split first, then time order).
    pooled = fit_calibrator(
        np.concatenate([reference.y, *(w.y for w in weeks)]),
        np.concatenate([reference.scores, *(w.scores for w in weeks)]),
    )
    np.testing.assert_array_equal(refit.calibrator.thresholds, pooled.thresholds)
    np.testing.assert_array_equal(refit.calibrator.probabilities, pooled.probabilities)
    # The reference (and so the sensor's floor) stays the test split's.
    assert refit.calibrator.reference_auc == base.reference_auc
    assert refit.calibrator.reference_rows == 2000
    assert refit.calibrator.reference_positive_rate == pytest.approx(reference.y.mean())
    # The refit follows the drift: a new batch's estimate is closer to its realised AUC.
    new = labelled(rng, "2024-01-22", "2024-01-22", n=4000, lift=0.8)
    realised = roc_auc(new.y, new.scores)
    before = estimate_performance(base, new.scores)
    after = estimate_performance(refit.calibrator, new.scores)
    assert abs(after.expected_positive_rate - new.y.mean()) < abs(
        before.expected_positive_rate - new.y.mean()
    )
    assert abs(after.estimated_auc - realised) <= abs(before.estimated_auc - realised) + 0.002
    with pytest.raises(ValueError, match="test split"):
        recalibrate(base, None, weeks)


def test_labelled_scores_round_trip_as_plain_numbers_and_reject_bad_bytes() -> None:
    rng = np.random.default_rng(2)
    original = labelled(rng, "2024-01-08", "2024-01-08", n=30)
    again = LabelledScores.from_bytes(original.to_bytes())
    np.testing.assert_array_equal(again.y, original.y)
    np.testing.assert_array_equal(again.scores, original.scores)
    assert (again.batch_id, again.period_start) == ("2024-01-08", pd.Timestamp("2024-01-08"))
    unknown = LabelledScores.from_bytes(LabelledScores(y=np.ones(2), scores=np.ones(2)).to_bytes())
    assert (unknown.batch_id, unknown.period_start, unknown.rows) == ("", None, 2)
    with pytest.raises(CalibratorError, match="unreadable"):
        LabelledScores.from_bytes(b"not an archive")
    with pytest.raises(CalibratorError, match="equal length"):
        LabelledScores(y=np.ones(3), scores=np.ones(2))
    buffer = io.BytesIO()
    np.savez(buffer, y=np.ones(2))
    with pytest.raises(CalibratorError, match="missing"):
        LabelledScores.from_bytes(buffer.getvalue())
