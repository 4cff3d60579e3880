"""Streaming change detectors: Page-Hinkley and ADWIN on 0/1 error streams, state round trips."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from retraining_assets.core.streaming import Adwin, PageHinkley

CHANGE = 3000


def error_stream(seed: int, n: int = 6000, change: int = CHANGE, p0=0.2, p1=0.45) -> np.ndarray:
    """0/1 errors with a Bernoulli rate p0 before ``change`` and p1 from it on."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.random(change) < p0, rng.random(n - change) < p1]).astype(float)


def stationary_stream(seed: int, n: int, p: float = 0.2) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(float)


def round_trip(det):
    return type(det).from_dict(json.loads(json.dumps(det.to_dict())))


@pytest.mark.parametrize(
    ("factory", "max_delay"),
    [(PageHinkley, 500), (Adwin, 400)],
    ids=["page_hinkley", "adwin"],
)
@pytest.mark.parametrize("seed", range(5))
def test_detects_planted_error_rate_change(factory, max_delay, seed):
    hits = factory().update_many(error_stream(seed))
    assert hits, "no detection"
    assert CHANGE <= hits[0] <= CHANGE + max_delay


@pytest.mark.parametrize(
    "factory",
    [lambda: PageHinkley(delta=0.01), Adwin],
    ids=["page_hinkley_delta_0.01", "adwin"],
)
@pytest.mark.parametrize("seed", range(5))
def test_quiet_on_stationary_stream(factory, seed):
    # 6,000 values: the length of the planted-change streams. Measured in-control run lengths on
    # Bernoulli(0.2) errors: ~200k values for Page-Hinkley with delta=0.01 and ~50k with the
    # default delta=0.005 (so ~11% of 6k streams alarm: see the rate test below); ADWIN: no
    # alarm in 1M values.
    assert factory().update_many(stationary_stream(100 + seed, 6000)) == []


def test_page_hinkley_with_larger_delta_still_detects_quickly():
    for seed in range(5):
        hits = PageHinkley(delta=0.01).update_many(error_stream(seed))
        assert hits and CHANGE <= hits[0] <= CHANGE + 500


@pytest.mark.parametrize("seed", range(3))
def test_adwin_quiet_on_long_stationary_stream(seed):
    det = Adwin()
    assert det.update_many(stationary_stream(200 + seed, 20_000)) == []
    assert det.width == 20_000
    assert det.estimation == pytest.approx(0.2, abs=0.01)


def test_page_hinkley_false_alarm_rate_is_small():
    # 40 streams x 6,000 values = 240k values; with ARL ~50k expect ~5 alarms.
    alarms = sum(len(PageHinkley().update_many(stationary_stream(s, 6000))) for s in range(40))
    assert alarms <= 12


@pytest.mark.parametrize("factory", [PageHinkley, Adwin], ids=["page_hinkley", "adwin"])
@pytest.mark.parametrize("cut", [1, 1500, 2999, 3100, 4321])
def test_state_round_trip_mid_stream_gives_same_detections(factory, cut):
    xs = np.concatenate([error_stream(7), error_stream(8, p0=0.1, p1=0.5)])
    whole = factory().update_many(xs)
    det = factory()
    first = det.update_many(xs[:cut])
    det = round_trip(det)
    second = [cut + i for i in det.update_many(xs[cut:])]
    assert first + second == whole
    assert len(whole) >= 2


@pytest.mark.parametrize(
    "params",
    [
        {"threshold": 3.0, "min_instances": 5, "direction": "both"},
        {"threshold": 5.0, "direction": "decrease"},
        {},
        {"alpha": 0.999, "threshold": 10.0},
    ],
)
def test_page_hinkley_update_many_matches_update(params):
    xs = np.concatenate([error_stream(3), np.random.default_rng(4).random(3000)])
    loop = PageHinkley(**params)
    expected = [i for i, x in enumerate(xs) if loop.update(x)]
    vec = PageHinkley(**params)
    assert vec.update_many(xs) == expected
    assert vec.to_dict() == loop.to_dict()
    if params.get("threshold", 50) < 10:
        assert len(expected) > 20  # many restarts exercised


def test_adwin_update_many_matches_update_and_shrinks_window():
    xs = error_stream(5)
    loop = Adwin()
    expected = [i for i, x in enumerate(xs) if loop.update(x)]
    vec = Adwin()
    assert vec.update_many(xs) == expected
    assert vec.to_dict() == loop.to_dict()
    assert vec.width < len(xs) - CHANGE + 200
    assert vec.estimation == pytest.approx(0.45, abs=0.05)
    assert vec.n_seen == len(xs)


def test_adwin_window_statistics_match_the_data():
    xs = np.random.default_rng(0).random(5000)
    det = Adwin()
    det.update_many(xs)
    window = xs[len(xs) - det.width :]
    assert det.estimation == pytest.approx(window.mean(), rel=1e-9)
    assert det.variance == pytest.approx(window.var(), rel=1e-6)


def test_max_detections_stops_after_the_detection():
    xs = np.concatenate([error_stream(1), error_stream(2, p0=0.45, p1=0.9)])
    det = PageHinkley()
    all_hits = PageHinkley().update_many(xs)
    first = det.update_many(xs, max_detections=1)
    assert first == all_hits[:1]
    assert det.n_seen == first[0] + 1


def test_from_dict_rejects_the_wrong_kind():
    with pytest.raises(ValueError, match="page_hinkley"):
        Adwin.from_dict(PageHinkley().to_dict())


def test_reset_forgets_everything():
    det = Adwin()
    det.update_many(error_stream(0))
    det.reset()
    assert det.to_dict() == Adwin().to_dict()


def test_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        PageHinkley().update_many([0.1, math.nan])
