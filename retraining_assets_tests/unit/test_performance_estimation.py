"""Label-free AUC estimation (CBPE-style) on generated data with a known P(y | x)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from retraining_assets.core.evaluation import roc_auc
from retraining_assets.core.performance_estimation import (
    CalibratorError,
    ScoreCalibrator,
    estimate_performance,
    estimated_performance_degraded,
    expected_auc,
    fit_calibrator,
)


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
    degraded, why = estimated_performance_degraded(shifted, relative_floor=0.95, min_rows=200)
    assert degraded and "< 0.95 x reference AUC" in why
    ok, why_ok = estimated_performance_degraded(
        estimate_performance(calibrator, sample(rng, 3000)[1]), relative_floor=0.95, min_rows=200
    )
    assert not ok and ">= 0.95 x reference AUC" in why_ok
    few, why_few = estimated_performance_degraded(shifted, relative_floor=0.95, min_rows=5000)
    assert not few and "only 3000 rows" in why_few


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
