"""Offline change points: PELT and binary segmentation, penalties, degradation onset."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retraining_assets.core.change_points import (
    DegradationResult,
    default_penalty,
    degradation_onset,
    find_change_points,
    robust_noise_sd,
)


def auc_series(seed: int, levels: list[tuple[int, float]], sd: float = 0.01) -> np.ndarray:
    """Piecewise-constant AUC-like series: ``levels`` is [(length, level), ...] plus noise."""
    rng = np.random.default_rng(seed)
    return np.concatenate([level + sd * rng.standard_normal(length) for length, level in levels])


def brute_force_partition(y: np.ndarray, penalty: float, min_size: int) -> list[int]:
    """Optimal partitioning by O(n^2) dynamic programming, no pruning, direct segment costs."""
    n = len(y)

    def cost(a: int, b: int) -> float:
        seg = y[a:b]
        return float(((seg - seg.mean()) ** 2).sum())

    best = [math.inf] * (n + 1)
    best[0] = -penalty
    prev = [0] * (n + 1)
    for t in range(min_size, n + 1):
        for s in range(t - min_size + 1):
            if s != 0 and s < min_size:
                continue
            value = best[s] + cost(s, t) + penalty
            if value < best[t]:
                best[t], prev[t] = value, s
    out, t = [], n
    while t > 0:
        t = prev[t]
        if t:
            out.append(t)
    return sorted(out)


@pytest.mark.parametrize("method", ["pelt", "binseg"])
@pytest.mark.parametrize("seed", range(4))
def test_finds_planted_auc_drop(method, seed):
    y = auc_series(seed, [(30, 0.80), (22, 0.72)])
    cps = find_change_points(y, method=method)
    assert len(cps) == 1
    assert abs(cps[0] - 30) <= 1


@pytest.mark.parametrize("method", ["pelt", "binseg"])
@pytest.mark.parametrize("seed", range(3))
def test_finds_two_planted_changes(method, seed):
    y = auc_series(seed, [(20, 0.80), (15, 0.75), (17, 0.83)])
    cps = find_change_points(y, method=method)
    assert len(cps) == 2
    assert abs(cps[0] - 20) <= 1 and abs(cps[1] - 35) <= 1


@pytest.mark.parametrize("method", ["pelt", "binseg"])
@pytest.mark.parametrize("seed", range(5))
def test_no_change_points_on_stationary_series(method, seed):
    assert find_change_points(auc_series(seed, [(52, 0.80)]), method=method) == []


@pytest.mark.parametrize("seed", range(25))
def test_pelt_matches_brute_force_optimal_partitioning(seed):
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(5, 40))
    y = rng.standard_normal(n) + np.repeat(rng.normal(0, 2, 4), -(-n // 4))[:n]
    penalty = float(rng.uniform(0.2, 8.0))
    min_size = int(rng.integers(1, 4))
    expected = brute_force_partition(y, penalty, min_size)
    assert find_change_points(y, method="pelt", penalty=penalty, min_size=min_size) == expected


def test_min_size_and_max_changes():
    y = auc_series(0, [(10, 0.8), (10, 0.7), (10, 0.8), (10, 0.7)])
    assert find_change_points(y) == [10, 20, 30]
    for method in ("pelt", "binseg"):
        assert len(find_change_points(y, method=method, max_changes=1)) == 1
        assert find_change_points(y, method=method, max_changes=0) == []
        cps = find_change_points(y, method=method, min_size=12)
        assert all(b - a >= 12 for a, b in zip([0, *cps], [*cps, 40], strict=True))
    assert find_change_points([0.8, 0.7, 0.6]) == []
    assert find_change_points([0.8] * 20) == []


def test_default_penalty_uses_robust_noise_estimate():
    y = auc_series(3, [(200, 0.8), (200, 0.6)])
    assert robust_noise_sd(y) == pytest.approx(0.01, rel=0.15)
    assert default_penalty(y) == pytest.approx(3 * robust_noise_sd(y) ** 2 * math.log(400))
    assert default_penalty(y, factor=2.0) == pytest.approx(
        2 * robust_noise_sd(y) ** 2 * math.log(400)
    )
    assert default_penalty([0.5] * 10) > 0


# ---------------------------------------------------------------- degradation onset


@pytest.mark.parametrize("seed", range(4))
def test_degradation_onset_finds_planted_drop(seed):
    result = degradation_onset(auc_series(seed, [(30, 0.80), (22, 0.72)]))
    assert isinstance(result, DegradationResult)
    assert result.found and result.onset_index is not None and result.drop is not None
    assert abs(result.onset_index - 30) <= 1
    assert result.before_mean == pytest.approx(0.80, abs=0.01)
    assert result.after_mean == pytest.approx(0.72, abs=0.01)
    assert result.drop == pytest.approx(0.08, abs=0.01)
    assert "degradation from period" in result.summary()
    assert not degradation_onset(auc_series(seed, [(30, 0.80), (22, 0.72)]), min_drop=0.2).found


@pytest.mark.parametrize("seed", range(5))
def test_no_degradation_on_stationary_or_improving_series(seed):
    stationary = degradation_onset(auc_series(seed, [(52, 0.80)]))
    assert not stationary.found
    assert stationary.summary().startswith("no degradation")
    improving = degradation_onset(auc_series(seed, [(30, 0.72), (22, 0.80)]))
    assert not improving.found
    assert improving.change_points and abs(improving.change_points[0] - 30) <= 1


def test_degradation_skips_improvement_then_finds_drop_and_handles_losses():
    y = auc_series(1, [(15, 0.75), (15, 0.82), (22, 0.74)])
    result = degradation_onset(y)
    assert result.found and result.onset_index is not None and abs(result.onset_index - 30) <= 1
    loss = degradation_onset(-y + 1.0, higher_is_better=False)
    assert loss.onset_index == result.onset_index
