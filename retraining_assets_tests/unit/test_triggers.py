"""Typed verdicts and the pure decide functions behind the sensors (no Dagster)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from retraining_assets.core.triggers import (
    Fire,
    Skip,
    decide_concept_drift,
    decide_data_drift,
    decide_performance,
    decide_schedule,
    track_concept_drift,
)
from retraining_assets.core.verdicts import (
    SCHEMA_VERSION,
    VERDICT_KEY,
    DriftVerdict,
    PerformanceVerdict,
    VerdictSchemaError,
    read_verdict,
    verdict_metadata,
)
from retraining_assets.settings import TriggerPolicy

POLICY = TriggerPolicy()


def drift(status: str, max_psi: float, **kw) -> DriftVerdict:
    return DriftVerdict(
        status=status,
        rule="any_psi",
        score=max_psi,
        threshold=0.2,
        max_psi=max_psi,
        max_psi_feature="x0",
        drifted_features=("x0",) if status == "drift" else (),
        production_version=3,
        summary=f"max PSI {max_psi}",
        **kw,
    )


def test_verdicts_round_trip_through_metadata_json() -> None:
    record = drift("drift", float("inf"), psi={"x0": None, "x1": 0.4})
    stored = verdict_metadata(record)
    assert stored[VERDICT_KEY]["schema_version"] == SCHEMA_VERSION
    assert stored[VERDICT_KEY]["max_psi"] == "inf"  # JSON has no infinity
    assert read_verdict(stored, DriftVerdict) == record
    perf = PerformanceVerdict(status="ok", reason="AUC 0.8", auc=0.8, errors_key="errors/a.npy")
    assert read_verdict(verdict_metadata(perf), PerformanceVerdict) == perf
    assert read_verdict({"drift/verdict": "drift"}, DriftVerdict) is None  # no typed record


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: {**d, "schema_version": SCHEMA_VERSION + 1}, "schema_version"),
        (lambda d: {k: v for k, v in d.items() if k != "status"}, "missing fields ['status']"),
        (lambda d: {**d, "verdict_status": d["status"]}, "unknown fields ['verdict_status']"),
        (lambda d: {**d, "kind": "performance"}, "expected a 'drift' verdict"),
    ],
)
def test_a_record_of_another_schema_fails_clearly(change, message) -> None:
    stored = verdict_metadata(drift("drift", 0.4))[VERDICT_KEY]
    with pytest.raises(VerdictSchemaError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_verdict({VERDICT_KEY: change(stored)}, DriftVerdict)


def test_data_drift_decision_fires_skips_and_respects_the_cooldown() -> None:
    quiet = decide_data_drift([("w1", drift("no_drift", 0.05)), ("w2", None)], POLICY, None)
    assert quiet == Skip("no drift in 1 new batch(es): max PSI 0.050 < 0.20 (x0 in w1)")
    fired = decide_data_drift([("w1", drift("drift", 0.4))], POLICY, None)
    assert isinstance(fired, Fire) and fired.partition == "w1" and fired.version == 3
    assert fired.evidence["drifted_features"] == "x0"
    held = decide_data_drift([("w1", drift("drift", 0.4))], POLICY, 2.0)
    assert isinstance(held, Skip) and "cooldown: last retraining 2.0 h ago < 24 h" in held.reason
    other_rule = dataclasses.replace(drift("no_drift", 0.5), rule="matters", score=0.4, threshold=1)
    reason = decide_data_drift([("w1", other_rule)], POLICY, None)
    assert isinstance(reason, Skip) and "rule matters: highest score 0.400 < 1.000" in reason.reason


def test_performance_and_schedule_decisions() -> None:
    ok = PerformanceVerdict(status="ok", reason="AUC 0.8100 >= 0.60", auc=0.81)
    bad = PerformanceVerdict(status="degraded", reason="AUC 0.55 < 0.60", auc=0.55)
    assert isinstance(decide_performance([("w1", ok)], POLICY, None), Skip)
    assert isinstance(decide_performance([("w1", ok), ("w2", bad)], POLICY, None), Fire)
    assert isinstance(decide_schedule(10.0, POLICY), Skip)
    assert isinstance(decide_schedule(100.0, POLICY), Fire)


def _stream(rates: list[float], n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random(n) < rate).astype("float64") for rate in rates]


def _concept(rates: list[float], seed: int = 0):
    """The concept-drift sensor's steps, batch by batch, on 0/1 error streams."""
    streams = {f"b{i}": errors for i, errors in enumerate(_stream(rates, 1500, seed))}
    verdicts = [(b, performance("ok", 0.8)) for b in streams]
    watch = track_concept_drift({}, verdicts, 1, POLICY, lambda b, _v, _version: streams[b])
    return watch.change, decide_concept_drift(watch.change, None, POLICY, None)


def performance(status: str, auc: float, version: int = 1) -> PerformanceVerdict:
    return PerformanceVerdict(status=status, reason="", auc=auc, production_version=version)


def test_concept_drift_tracking_carries_state_and_restarts_with_a_new_version() -> None:
    streams = {f"b{i}": e for i, e in enumerate(_stream([0.1, 0.1, 0.1, 0.3, 0.3], 1500, 4))}
    read: list[str] = []

    def errors_of(batch: str, _verdict: PerformanceVerdict, _version: int) -> np.ndarray:
        read.append(batch)
        return streams[batch]

    first = track_concept_drift(
        {},
        [("b0", performance("ok", 0.8)), ("b1", performance("ok", 0.8)), ("old", None)],
        1,
        POLICY,
        errors_of,
    )
    assert not first.change.detected and first.change.rows_seen == 3000
    assert first.state["version"] == 1 and first.state["rows"] == 3000
    # A verdict of another model is passed over without reading its stream.
    later = [(b, performance("ok", 0.8)) for b in ("b2", "b3", "b4")]
    later.insert(0, ("v0", performance("ok", 0.8, version=0)))
    second = track_concept_drift(first.state, later, 1, POLICY, errors_of)
    assert "v0" not in read and read == ["b0", "b1", "b2", "b3", "b4"]
    assert second.change.rising and second.change.partition == "b3"
    # The saved state carried on: the rows of the first look count too.
    assert second.change.rows_seen == 7500 and second.change.production_version == 1
    # A new production version starts a fresh detector.
    restarted = track_concept_drift(second.state, later[1:], 2, POLICY, errors_of)
    assert restarted.state["version"] == 2 and restarted.change.rows_seen == 0
    assert not restarted.change.detected  # every verdict was measured with v1
    nothing = track_concept_drift({}, later, None, POLICY, errors_of)
    assert not nothing.change.detected and nothing.state["version"] is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_concept_drift_ignores_a_falling_error_rate(seed: int) -> None:
    change, decision = _concept([0.3, 0.3, 0.1, 0.1], seed)
    assert change.detected and not change.rising  # ADWIN saw the change ...
    assert isinstance(decision, Skip) and "a fall" in decision.reason  # ... and it is no cause


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_concept_drift_fires_on_a_rising_error_rate(seed: int) -> None:
    change, decision = _concept([0.1, 0.1, 0.3, 0.3], seed)
    assert change.rising and change.partition == "b2"
    assert change.before_mean == pytest.approx(0.1, abs=0.03)
    # ADWIN keeps some old values in its window right after the alarm: the recent mean is mixed.
    assert change.after_mean is not None and change.after_mean > change.before_mean + 0.02
    assert isinstance(decision, Fire) and decision.trigger == "concept_drift"
    features_drifted = decide_concept_drift(change, drift("drift", 0.5), POLICY, None)
    assert (
        isinstance(features_drifted, Skip)
        and "left to data_drift_sensor" in features_drifted.reason
    )


def test_replay_summary_ranks_policies_by_retrainings_per_auc_gained() -> None:
    from retraining_assets.replay import PolicyResult, parse_policies, summary_markdown
    from retraining_assets.replay import trigger_quality as quality_of

    def result(policy: str, auc: float, retrainings: int) -> PolicyResult:
        return PolicyResult(policy, [], retrainings, retrainings, auc, 1.0, [])

    results = [
        result("never", 0.70, 0),
        result("weekly", 0.74, 40),
        result("drift", 0.738, 10),
        result("combined", 0.741, 30),
    ]
    quality = quality_of(results)
    assert quality["drift"]["share_of_weekly_gain"] == pytest.approx(0.95)
    assert quality["drift"]["retrainings_per_0.01_auc"] == pytest.approx(10 / 3.8)
    assert quality["never"]["retrainings_per_0.01_auc"] is None
    lines = summary_markdown(results, 1.0).splitlines()
    table = [line.split("|")[1].strip() for line in lines if line.startswith("|")]
    ranked = [name for name in table if name in {"never", "weekly", "drift", "combined"}]
    assert ranked == ["drift", "combined", "weekly", "never"]
    assert "Failures" not in summary_markdown(results, 1.0)
    assert parse_policies("weekly, drift,weekly") == ["weekly", "drift"]
    assert parse_policies("all")[0] == "never"
    assert parse_policies("all,estimated") == [*parse_policies("all"), "estimated"]


def test_parallel_replay_starts_weekly_beside_drift_and_combined_behind_them() -> None:
    """Weekly and drift first, combined behind them, then the shorter policies longest first."""
    from retraining_assets.replay import launch_order, parse_policies

    policies = parse_policies("all")
    order = [policies[i] for i in launch_order(policies)]
    assert order == ["weekly", "drift", "combined", "performance", "never"]
    # Names it does not rank follow, in the order given; a subset keeps the ranking.
    assert launch_order(["x", "never", "y", "weekly"]) == [3, 1, 0, 2]


def test_replay_summary_names_failed_retrainings_and_unserved_periods() -> None:
    from retraining_assets.replay import PeriodRecord, PolicyResult, summary_markdown

    def period(name: str, version: int | None, events: list[dict]) -> PeriodRecord:
        return PeriodRecord(name, name, 10, version, None, None, None, None, events=events)

    periods = [
        period("1974", None, []),
        period("1975", 1, [{"success": False}]),
        period("1976", 1, [{"success": True}]),
    ]
    text = summary_markdown([PolicyResult("weekly", periods, 2, 0, None, 1.0, [])], 1.0)
    assert "`weekly`: 1 retraining run(s) failed: 1975" in text
    assert "`weekly`: no model served 1 period(s), from 1974" in text
