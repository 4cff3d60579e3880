"""The logic behind ``batch_drift``: monitored features, the verdict of the rule, the table."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from retraining_assets.core import synthetic
from retraining_assets.core.drift_assessment import (
    NO_REFERENCE,
    assess_drift,
    build_drift_reference,
    calibrate_reference_thresholds,
    feature_importance,
    monitored_features,
    reference_quantile,
    split_rows,
)
from retraining_assets.settings import BATCH_COLUMN, SPLIT_COLUMN, TriggerPolicy

SCHEMA = synthetic.SYNTHETIC_SCHEMA
IMPORTANCE = {"x0": 0.45, "x1": 0.2, "x2": 0.15, "x3": 0.05, "x4": 0.0, "c0": 0.1, "c1": 0.05}


@pytest.fixture(scope="module")
def history() -> dict[str, pd.DataFrame]:
    clean = synthetic.make_history(5, 600, seed=8)
    shifted = synthetic.make_history(
        5, 600, seed=8, drift_from=4, drift=synthetic.DriftSpec(covariate_shift=1.0)
    )
    return {**clean, "shifted": shifted[list(shifted)[-1]]}


@pytest.fixture(scope="module")
def train(history) -> pd.DataFrame:
    batches = [b for b in history if b != "shifted"][:4]
    return pd.concat([history[b].assign(**{BATCH_COLUMN: b}) for b in batches])


def test_monitored_features_leave_the_excluded_out_and_key_the_feature_set() -> None:
    features = monitored_features(SCHEMA, ["x4"])
    assert features.numeric == ("x0", "x1", "x2", "x3")
    assert features.categorical == tuple(SCHEMA.categorical_features)
    assert features.columns == [*features.numeric, *features.categorical]
    # Every excluded name is reported, even one the schema does not have.
    other = monitored_features(SCHEMA, ["zz", "x4"])
    assert other.excluded == ("x4", "zz") and other.profile_key == features.profile_key
    everything = monitored_features(SCHEMA, [])
    assert everything.excluded == () and everything.profile_key != features.profile_key
    assert len(features.profile_key) == 8


def test_split_rows_picks_a_split_and_keeps_a_frame_without_one() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], SPLIT_COLUMN: ["train", "test", "train"]})
    assert split_rows(frame, "train")["a"].tolist() == [1, 3]
    assert split_rows(frame, "test")["a"].tolist() == [2]
    plain = frame.drop(columns=[SPLIT_COLUMN])
    assert split_rows(plain, "train") is plain


@pytest.fixture(scope="module")
def thresholds(train) -> dict[str, float]:
    features = monitored_features(SCHEMA, [])
    return calibrate_reference_thresholds(train, features, TriggerPolicy().drift_quantile)


def test_thresholds_need_the_batch_column(train, thresholds) -> None:
    features = monitored_features(SCHEMA, [])
    assert calibrate_reference_thresholds(train.drop(columns=[BATCH_COLUMN]), features, 0.99) == {}
    assert set(thresholds) == set(features.columns)


class _Booster:
    def feature_name(self) -> list[str]:
        return ["x0", "x1", "c0"]

    def feature_importance(self, importance_type: str) -> np.ndarray:
        assert importance_type == "gain"
        return np.array([6.0, 2.0, 0.0])


def test_feature_importance_is_a_share_of_the_gain() -> None:
    assert feature_importance(_Booster()) == {"x0": 0.75, "x1": 0.25, "c0": 0.0}
    assert feature_importance(_Booster(), exclude=["x1"]) == {"x0": 0.75, "c0": 0.0}


def _assess(train, batch, rule: str, thresholds=None, excluded: tuple[str, ...] = ()):
    policy = TriggerPolicy(drift_rule=rule, drift_exclude=excluded)
    features = monitored_features(SCHEMA, excluded)
    return assess_drift(
        build_drift_reference(train, features),
        batch[features.columns],
        policy,
        features,
        importance={k: v for k, v in IMPORTANCE.items() if k not in excluded},
        thresholds=thresholds or {},
        production_version=7,
    )


@pytest.mark.parametrize("rule", ["matters", "any_psi"])
def test_a_shifted_batch_drifts_and_a_clean_one_does_not(train, history, thresholds, rule) -> None:
    calibrated = thresholds if rule == "matters" else None
    shifted = _assess(train, history["shifted"], rule, calibrated)
    clean = _assess(train, history[list(history)[4]], rule, calibrated)
    assert shifted.verdict.status == "drift" and shifted.verdict.measured
    assert clean.verdict.status == "no_drift"
    for assessment in (shifted, clean):
        verdict = assessment.verdict
        assert verdict.rule == rule and verdict.production_version == 7 and verdict.rows == 600
        psi = [v for v in verdict.psi.values() if v is not None]
        assert verdict.max_psi == pytest.approx(max(psi), abs=1e-6)
        assert verdict.psi[verdict.max_psi_feature] == pytest.approx(verdict.max_psi, abs=1e-6)
        assert verdict.max_psi_feature == assessment.top.name
    assert {"x0", "x1"} <= set(shifted.verdict.drifted_features)
    if rule == "matters":
        assert shifted.matters is not None and shifted.verdict.summary.startswith("drift that")
        assert shifted.verdict.score == shifted.matters.score >= shifted.verdict.threshold
    else:
        assert shifted.matters is None
        assert shifted.verdict.summary == shifted.result.summary()


def test_an_excluded_feature_is_not_measured_and_the_table_ranks_by_psi(train, history) -> None:
    assessment = _assess(train, history["shifted"], "any_psi", excluded=("x0",))
    assert "x0" not in assessment.verdict.psi and assessment.excluded == ("x0",)
    lines = assessment.table().splitlines()
    assert lines[0] == "| feature | PSI | KS D | p (adj.) | drifted |"
    assert lines[2].startswith(f"| {assessment.verdict.max_psi_feature} |")
    assert len(lines) == 2 + len(assessment.verdict.psi)


def test_a_column_missing_from_the_batch_counts_as_infinite_psi(train, history) -> None:
    batch = history[list(history)[4]].drop(columns=["x2"])
    assessment = _assess(train, batch.assign(x2=np.nan), "any_psi")
    assert assessment.verdict.max_psi == float("inf") and assessment.verdict.psi["x2"] is None
    assert assessment.verdict.max_psi_feature == "x2" and assessment.verdict.drifted


def test_only_the_matters_rule_calibrates_thresholds() -> None:
    assert reference_quantile(TriggerPolicy(drift_rule="matters", drift_quantile=0.9)) == 0.9
    assert reference_quantile(TriggerPolicy(drift_rule="share")) is None


def test_no_reference_is_an_unmeasured_verdict() -> None:
    assert NO_REFERENCE.status == "no_reference" and not NO_REFERENCE.measured
    assert dataclasses.replace(NO_REFERENCE).summary == "no production model yet"
