"""The core calls behind the monitoring assets: measured and estimated quality as typed verdicts.

``assess_performance`` (``batch_performance``), ``assess_estimated_performance`` and
``estimate_history`` (``batch_estimated_performance``), ``degradation_inputs``
(``degradation_analysis``); no Dagster.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from retraining_assets.core.analysis import PeriodPerformance, degradation_inputs
from retraining_assets.core.monitoring import assess_performance, labelled_rows, row_errors
from retraining_assets.core.performance_estimation import (
    HISTORY_BATCHES,
    ScoreCalibrator,
    assess_estimated_performance,
    estimate_history,
    fit_calibrator,
)
from retraining_assets.core.synthetic import SYNTHETIC_SCHEMA
from retraining_assets.core.triggers import Fire, Skip, decide_estimated_performance
from retraining_assets.core.verdicts import (
    DriftVerdict,
    EstimatedPerformanceVerdict,
    PerformanceVerdict,
)
from retraining_assets.settings import TriggerPolicy

POLICY = TriggerPolicy()


def _scored(rng: np.random.Generator, n: int, skill: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities whose ranking is as good as ``skill`` makes it."""
    x = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * x))).astype("float64")
    p = 1 / (1 + np.exp(-(skill * x + (1 - skill) * rng.normal(size=n))))
    return y, p


def test_labelled_rows_drop_missing_labels_and_sort_by_time() -> None:
    frame = pd.DataFrame(
        {
            SYNTHETIC_SCHEMA.timestamp: pd.to_datetime(["2024-01-03", "2024-01-01", "2024-01-02"]),
            SYNTHETIC_SCHEMA.target: [1.0, np.nan, 0.0],
        }
    )
    rows = labelled_rows(frame, SYNTHETIC_SCHEMA)
    assert rows[SYNTHETIC_SCHEMA.target].tolist() == [0.0, 1.0]
    assert labelled_rows(frame.iloc[1:2], SYNTHETIC_SCHEMA).empty


def test_performance_verdict_ok_degraded_and_too_few_rows() -> None:
    rng = np.random.default_rng(3)
    y, p = _scored(rng, 2000, skill=1.0)
    good = assess_performance(y, p, POLICY, auc_at_promotion=0.7, production_version=4)
    assert good.verdict.status == "ok" and not good.verdict.degraded
    assert good.verdict.auc == pytest.approx(good.performance.auc)
    assert good.verdict.rows == 2000 and good.verdict.production_version == 4
    assert good.verdict.auc_at_promotion == 0.7 and good.verdict.errors_key is None
    np.testing.assert_allclose(good.errors, row_errors(y, p))
    # Below the relative floor of the AUC at promotion: degraded, with the numbers.
    bad = assess_performance(y, p, POLICY, auc_at_promotion=0.99, production_version=4)
    assert bad.verdict.degraded and "x AUC at promotion 0.9900" in bad.verdict.reason
    few = assess_performance(y[:50], p[:50], POLICY, auc_at_promotion=0.99, production_version=4)
    assert few.verdict.status == "ok" and few.verdict.reason == "only 50 labelled rows < 200"
    stored = good.stored_at("errors/b.v4.npy")
    assert stored.errors_key == "errors/b.v4.npy" and stored.auc == good.verdict.auc


def test_estimated_verdict_ok_degraded_and_no_verdict() -> None:
    rng = np.random.default_rng(5)
    y, p = _scored(rng, 4000, skill=1.0)
    calibrator = fit_calibrator(y, p)

    def assess(scores: np.ndarray) -> EstimatedPerformanceVerdict:
        result = assess_estimated_performance(
            calibrator, scores, POLICY, production_version=2, calibrator_key="calibrators/m.npz"
        )
        assert result.floor == pytest.approx(
            max(
                POLICY.estimated_relative_auc_floor * calibrator.reference_auc,
                POLICY.estimated_auc_floor,
            )
        )
        assert result.verdict.floor == result.floor
        return result.verdict

    same = assess(p[:1000])
    assert same.status == "ok" and same.calibrator_key == "calibrators/m.npz"
    assert same.production_version == 2 and same.rows == 1000
    # A population squeezed together: the model has less to separate, the estimate falls.
    squeezed = assess(np.sort(p)[1800:2400])
    assert squeezed.status == "degraded" and squeezed.estimated_auc < squeezed.floor
    few = assess(p[:10])
    assert few.status == "no_verdict" and not few.measured and few.reason.startswith("only 10")


def test_estimated_absolute_floor_catches_a_model_promoted_on_a_poor_test_week() -> None:
    # Flights, 2013-04-29: a model promoted on a test week with AUC 0.599 gets a relative floor of
    # 0.95 x 0.599 = 0.569 and was never judged degraded again while it served at ~0.59.
    calibrator = ScoreCalibrator(
        thresholds=np.array([0.0, 1.0]),
        probabilities=np.array([0.3, 0.55]),
        reference_auc=0.599,
        reference_rows=1000,
        reference_positive_rate=0.3,
    )
    scores = np.linspace(0.0, 1.0, 1000)

    def assess(policy: TriggerPolicy) -> EstimatedPerformanceVerdict:
        return assess_estimated_performance(
            calibrator, scores, policy, production_version=3, calibrator_key="calibrators/m.npz"
        ).verdict

    relative_only = assess(dataclasses.replace(POLICY, estimated_auc_floor=0.0))
    assert 0.95 * 0.599 < relative_only.estimated_auc < POLICY.estimated_auc_floor
    assert relative_only.status == "ok" and relative_only.floor == pytest.approx(0.95 * 0.599)
    assert "absolute" not in relative_only.reason
    # The default policy holds the estimate to the labelled rule's absolute floor as well, and
    # records the floor that decided.
    assert POLICY.estimated_auc_floor == POLICY.auc_floor
    served = assess(POLICY)
    assert served.status == "degraded" and served.floor == pytest.approx(0.6)
    assert f"< absolute floor 0.6000 (above 0.95 x reference AUC 0.5990 = {0.95 * 0.599:.4f})" in (
        served.reason
    )
    fired = decide_estimated_performance([("2013-05-06", served)], POLICY, None)
    assert isinstance(fired, Fire) and fired.version == 3 and "absolute floor" in fired.cause
    quiet = decide_estimated_performance([("2013-05-06", relative_only)], POLICY, None)
    assert isinstance(quiet, Skip) and "estimated quality holds" in quiet.reason


def _estimated(auc: float, version: int = 1, status: str = "ok") -> EstimatedPerformanceVerdict:
    return EstimatedPerformanceVerdict(
        status=status, reason="", estimated_auc=auc, production_version=version
    )


def _realised(auc: float, version: int | None = 1) -> PerformanceVerdict:
    return PerformanceVerdict(status="ok", reason="", auc=auc, production_version=version)


def test_estimate_history_keeps_the_newest_verdict_of_the_version() -> None:
    estimated = [
        ("b2", _estimated(0.70)),
        ("b1", _estimated(0.80)),
        ("b2", _estimated(0.75)),  # re-run: the newest wins
        ("b3", _estimated(0.60, version=2)),  # another model
        ("b4", _estimated(0.70)),
        ("b4", _estimated(math.nan, status="no_verdict")),  # newest gave no verdict: left out
    ]
    realised = [("b1", _realised(0.81)), ("b1", _realised(0.82)), ("b2", _realised(0.5, 2))]
    assert estimate_history(estimated, realised, 1) == {"b1": (0.80, 0.82), "b2": (0.75, None)}
    many = [(f"b{i:03d}", _estimated(0.7)) for i in range(HISTORY_BATCHES + 5)]
    kept = estimate_history(many, [], 1)
    assert len(kept) == HISTORY_BATCHES and min(kept) == "b005"


def test_degradation_inputs_keep_the_newest_measured_verdicts_in_batch_order() -> None:
    performance = [
        ("b2", _realised(0.8)),
        ("b1", _realised(0.9)),
        ("b2", _realised(0.7)),
        ("b2", _realised(0.1, version=None)),  # no model recorded: passed over
    ]
    drift = [
        ("b1", DriftVerdict(status="no_drift", psi={"x0": 0.05, "x1": None})),
        ("b1", DriftVerdict(status="no_reference")),  # measured nothing: the older one stays
        ("b2", DriftVerdict(status="drift", psi={"x0": 0.5})),
    ]
    history, psi = degradation_inputs(performance, drift)
    assert history == [
        PeriodPerformance(period="b1", auc=0.9, n_rows=0, log_loss=None, model_version=1),
        PeriodPerformance(period="b2", auc=0.7, n_rows=0, log_loss=None, model_version=1),
    ]
    assert psi == {"b1": {"x0": 0.05}, "b2": {"x0": 0.5}}
