"""The default drift rule: calibrated per-feature thresholds, importance, no calendar fields."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retraining_assets.core import synthetic
from retraining_assets.core.drift import DriftPolicy, build_reference, compute_drift
from retraining_assets.core.drift_matters import (
    DEFAULT_CORRELATION,
    DEFAULT_MARGIN,
    DEFAULT_QUANTILE,
    DEFAULT_SHARE,
    calendar_like,
    calibrate_thresholds,
    drift_that_matters,
    reference_correlations,
    reference_psis,
    thresholds_from_psis,
)
from retraining_assets.settings import BATCH_COLUMN, TriggerPolicy

NUMERIC = list(synthetic.SYNTHETIC_SCHEMA.numeric_features)
CATEGORICAL = list(synthetic.SYNTHETIC_SCHEMA.categorical_features)
# Roughly what LightGBM's gain gives on the generator: x4 has no effect on the label.
IMPORTANCE = {"x0": 0.45, "x1": 0.2, "x2": 0.15, "x3": 0.05, "x4": 0.0, "c0": 0.1, "c1": 0.05}


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    history = synthetic.make_history(6, 800, seed=5)
    return pd.concat([frame.assign(**{BATCH_COLUMN: b}) for b, frame in history.items()])


def _verdict(reference: pd.DataFrame, batch: pd.DataFrame):
    thresholds = calibrate_thresholds(reference, NUMERIC, CATEGORICAL, BATCH_COLUMN)
    profile = build_reference(reference, NUMERIC, CATEGORICAL)
    result = compute_drift(profile, batch, DriftPolicy(), workers=1)
    correlations = reference_correlations(reference, NUMERIC)
    return drift_that_matters(result, thresholds, IMPORTANCE, correlations=correlations)


def test_thresholds_come_from_the_reference_periods(reference) -> None:
    thresholds = calibrate_thresholds(reference, NUMERIC, CATEGORICAL, BATCH_COLUMN)
    assert set(thresholds) == {*NUMERIC, *CATEGORICAL}
    # Stationary periods of 800 rows move a few hundredths of PSI, not 0.2.
    assert all(0.0 < value < 0.1 for value in thresholds.values())
    assert calibrate_thresholds(reference.head(10), NUMERIC, CATEGORICAL, BATCH_COLUMN) == {}


@pytest.mark.parametrize(
    "column, fires", [("x0", True), ("x4", False), (None, False)], ids=["x0", "x4", "none"]
)
def test_a_shift_fires_only_on_a_feature_the_model_uses(reference, column, fires) -> None:
    spec = (
        synthetic.DriftSpec(covariate_shift=1.5, shift_columns=(column,))
        if column
        else synthetic.DriftSpec()
    )
    batch = synthetic.make_batch(800, pd.Timestamp("2024-03-04"), seed=9, drift=spec)
    verdict = _verdict(reference, batch)
    assert verdict.drifted is fires
    if column:
        assert column in verdict.features  # past its threshold either way; only x0 weighs
        assert verdict.score == pytest.approx(IMPORTANCE[column])


def test_calendar_fields_are_not_monitored() -> None:
    assert all(calendar_like(n) for n in ("month", "day", "week_of_year", "year", "sched_month"))
    assert not any(calendar_like(n) for n in ("weekday", "hour", "humid", "daylight", "x0"))


def test_one_unusual_reference_period_does_not_blind_the_default_threshold(reference) -> None:
    # One stormy week in the window: x0 shifted by 1.5 sd in one of the 6 reference periods.
    first = reference[BATCH_COLUMN].min()
    stormy = reference.copy()
    inside = stormy[BATCH_COLUMN] == first
    stormy.loc[inside, "x0"] = stormy.loc[inside, "x0"] + 1.5
    psis = reference_psis(stormy, NUMERIC, CATEGORICAL, BATCH_COLUMN)
    assert len(psis["x0"]) == 6
    near_max = thresholds_from_psis(psis, 0.99)["x0"]
    quartile = thresholds_from_psis(psis, DEFAULT_QUANTILE)["x0"]
    # The 99th percentile is the storm week; the upper quartile is still ordinary movement.
    assert near_max > 0.5
    assert quartile < 0.2 < near_max
    assert calibrate_thresholds(stormy, NUMERIC, CATEGORICAL, BATCH_COLUMN) == pytest.approx(
        thresholds_from_psis(psis, DEFAULT_QUANTILE)
    )


def test_the_rule_defaults_are_the_policy_defaults() -> None:
    policy = TriggerPolicy()
    assert policy.drift_rule == "matters"
    assert (
        policy.drift_quantile,
        policy.drift_margin,
        policy.drift_importance_share,
        policy.drift_correlation,
    ) == (DEFAULT_QUANTILE, DEFAULT_MARGIN, DEFAULT_SHARE, DEFAULT_CORRELATION)


def _with_twin(frame: pd.DataFrame, seed: int, shift: float = 0.0) -> pd.DataFrame:
    # A second measurement of x0's factor: strongly rank-correlated with x0 (about 0.95).
    noise = np.random.default_rng(seed).standard_normal(len(frame))
    return frame.assign(twin=frame["x0"] + 0.3 * noise + shift)


def test_reference_correlations_pair_only_related_features(reference) -> None:
    found = reference_correlations(_with_twin(reference, 1), [*NUMERIC, "twin"])
    assert found["x0"]["twin"] == found["twin"]["x0"] > 0.9
    # The generator's features are independent of each other.
    assert all(found[a][b] < 0.1 for a in NUMERIC for b in NUMERIC if a != b)
    assert reference_correlations(reference.head(2), NUMERIC) == {}


def test_a_shifted_twin_of_an_important_feature_counts_its_importance(reference) -> None:
    # The model routed the factor through x0 and gave its twin nothing; only the twin moves.
    numeric = [*NUMERIC, "twin"]
    twin_reference = _with_twin(reference, 1)
    importance = {**IMPORTANCE, "twin": 0.0}
    batch = _with_twin(synthetic.make_batch(800, pd.Timestamp("2024-03-04"), seed=9), 2, 1.5)
    thresholds = calibrate_thresholds(twin_reference, numeric, CATEGORICAL, BATCH_COLUMN)
    profile = build_reference(twin_reference, numeric, CATEGORICAL)
    result = compute_drift(profile, batch, DriftPolicy(), workers=1)
    correlations = reference_correlations(twin_reference, numeric)

    shared = drift_that_matters(result, thresholds, importance, correlations=correlations)
    assert shared.drifted
    assert shared.features == ("twin",)
    assert shared.through == ("x0",)
    assert shared.score == pytest.approx(IMPORTANCE["x0"])
    # Sharing off (or no correlations): the twin weighs nothing, as before.
    sharing_off = drift_that_matters(
        result, thresholds, importance, correlations=correlations, correlation=0
    )
    for off in (sharing_off, drift_that_matters(result, thresholds, importance)):
        assert not off.drifted
        assert off.through == ()
        assert off.score == 0.0
