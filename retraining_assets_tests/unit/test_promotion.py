"""The promotion gate: every rule, its boundary, and the reasons it gives."""

from __future__ import annotations

import pytest

from retraining_assets.core.promotion import Decision, GatePolicy, ModelScore, decide_promotion
from retraining_assets.settings import DEFAULT_POLICY

NAN = float("nan")
BASELINE = ModelScore(auc=0.5, log_loss=0.64, p95_latency_ms=0.0)
POLICY = GatePolicy()


def _score(auc: float = 0.8, log_loss: float = 0.5, p95: float = 1.0) -> ModelScore:
    return ModelScore(auc=auc, log_loss=log_loss, p95_latency_ms=p95)


def _passes(decision: Decision) -> list[bool]:
    return [reason.startswith("PASS ") for reason in decision.reasons]


def test_policy_defaults_come_from_settings() -> None:
    assert POLICY.min_relative_auc == DEFAULT_POLICY.min_relative_auc == 0.99
    assert POLICY.max_p95_latency_ms == DEFAULT_POLICY.max_p95_latency_ms
    assert POLICY.min_baseline_auc_margin == DEFAULT_POLICY.min_baseline_auc_margin


# --- first model: against the baseline ---------------------------------------------------------


def test_first_model_beating_the_baseline_is_promoted() -> None:
    decision = decide_promotion(_score(auc=0.8, log_loss=0.5), None, BASELINE)
    assert decision.promote is True
    assert decision.verdict == "promote"
    assert decision.against == "baseline"
    assert len(decision.reasons) == 3  # AUC margin, log loss, latency
    assert _passes(decision) == [True, True, True]
    assert decision.summary().startswith("promote (vs baseline): PASS AUC 0.8000 >= baseline")


def test_first_model_within_the_auc_margin_is_rejected() -> None:
    margin = POLICY.min_baseline_auc_margin
    decision = decide_promotion(_score(auc=0.5 + margin / 2), None, BASELINE)
    assert decision.promote is False
    assert decision.verdict == "reject"
    assert _passes(decision) == [False, True, True]
    assert "AUC 0.5100 < baseline 0.5000 + 0.02" in decision.reasons[0]


def test_first_model_at_exactly_the_auc_margin_is_promoted() -> None:
    policy = GatePolicy(min_baseline_auc_margin=0.25)  # 0.5 + 0.25 is exact in binary
    decision = decide_promotion(_score(auc=0.75), None, BASELINE, policy)
    assert decision.promote is True
    assert _passes(decision) == [True, True, True]


@pytest.mark.parametrize("log_loss", [0.64, 0.7])
def test_first_model_without_a_lower_log_loss_is_rejected(log_loss: float) -> None:
    decision = decide_promotion(_score(auc=0.9, log_loss=log_loss), None, BASELINE)
    assert decision.promote is False
    assert _passes(decision) == [True, False, True]
    assert f"log loss {log_loss:.4f} >= baseline 0.6400" in decision.reasons[1]


def test_baseline_with_nan_auc_rejects_the_first_model() -> None:
    baseline = ModelScore(auc=NAN, log_loss=0.6, p95_latency_ms=0.0)
    decision = decide_promotion(_score(auc=0.9, log_loss=0.3), None, baseline)
    assert decision.promote is False
    assert _passes(decision)[0] is False


# --- against the champion ----------------------------------------------------------------------


@pytest.mark.parametrize("champion_auc", [0.8, 0.75, 0.8123456789, 1.0])
def test_champion_boundary_exactly_min_relative_auc_promotes(champion_auc: float) -> None:
    boundary = POLICY.min_relative_auc * champion_auc
    decision = decide_promotion(_score(auc=boundary), _score(auc=champion_auc), BASELINE)
    assert decision.promote is True
    assert decision.against == "champion"
    assert len(decision.reasons) == 2  # relative AUC, latency
    assert _passes(decision) == [True, True]


@pytest.mark.parametrize("champion_auc", [0.8, 0.75, 0.8123456789, 1.0])
def test_champion_just_below_the_boundary_rejects(champion_auc: float) -> None:
    boundary = POLICY.min_relative_auc * champion_auc
    below = boundary - 1e-9
    decision = decide_promotion(_score(auc=below), _score(auc=champion_auc), BASELINE)
    assert decision.promote is False
    assert decision.against == "champion"
    assert _passes(decision) == [False, True]


def test_rejection_reason_names_the_numbers() -> None:
    decision = decide_promotion(_score(auc=0.7), _score(auc=0.8), BASELINE)
    assert decision.promote is False
    assert decision.reasons[0] == "FAIL AUC 0.7000 < 0.99 x champion 0.8000 = 0.7920"
    assert decision.summary() == (
        "reject (vs champion): FAIL AUC 0.7000 < 0.99 x champion 0.8000 = 0.7920; "
        "PASS p95 latency 1.00 ms <= 100 ms"
    )


def test_champion_rule_ignores_log_loss_and_baseline() -> None:
    # Against a champion, a worse log loss or a strong baseline does not matter.
    strong_baseline = ModelScore(auc=0.95, log_loss=0.1, p95_latency_ms=0.0)
    decision = decide_promotion(
        _score(auc=0.8, log_loss=0.9), _score(auc=0.8, log_loss=0.4), strong_baseline
    )
    assert decision.promote is True


def test_better_candidate_beats_champion_and_custom_policy_applies() -> None:
    strict = GatePolicy(min_relative_auc=1.05)
    assert decide_promotion(_score(auc=0.82), _score(auc=0.8), BASELINE).promote is True
    decision = decide_promotion(_score(auc=0.82), _score(auc=0.8), BASELINE, strict)
    assert decision.promote is False
    assert "1.05 x champion 0.8000 = 0.8400" in decision.reasons[0]


# --- latency -----------------------------------------------------------------------------------


@pytest.mark.parametrize("champion", [None, _score(auc=0.8)], ids=["baseline", "champion"])
def test_latency_ceiling(champion: ModelScore | None) -> None:
    ceiling = POLICY.max_p95_latency_ms
    at_ceiling = decide_promotion(_score(p95=ceiling), champion, BASELINE)
    assert at_ceiling.promote is True
    over = decide_promotion(_score(p95=ceiling + 0.01), champion, BASELINE)
    assert over.promote is False
    assert _passes(over)[-1] is False and all(_passes(over)[:-1])
    assert over.reasons[-1] == f"FAIL p95 latency {ceiling + 0.01:.2f} ms > {ceiling:g} ms"


def test_custom_latency_ceiling() -> None:
    policy = GatePolicy(max_p95_latency_ms=0.5)
    decision = decide_promotion(_score(p95=1.0), _score(auc=0.8), BASELINE, policy)
    assert decision.promote is False
    assert decision.reasons[-1] == "FAIL p95 latency 1.00 ms > 0.5 ms"


# --- NaN ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["auc", "log_loss", "p95"])
@pytest.mark.parametrize("champion", [None, _score(auc=0.8)], ids=["baseline", "champion"])
def test_nan_candidate_metric_rejects(field: str, champion: ModelScore | None) -> None:
    decision = decide_promotion(_score(**{field: NAN}), champion, BASELINE)
    assert decision.promote is False
    assert decision.against == ("champion" if champion else "baseline")
    assert decision.reasons == ("FAIL candidate metric is NaN",)


def test_nan_champion_auc_rejects_with_a_reason() -> None:
    decision = decide_promotion(_score(auc=0.9), _score(auc=NAN), BASELINE)
    assert decision.promote is False
    assert decision.against == "champion"
    assert len(decision.reasons) == 2
    assert decision.reasons[0] == "FAIL champion AUC is NaN on this test set: cannot compare"
    assert decision.reasons[1].startswith("PASS p95 latency")


# --- reasons -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "champion", "expected"),
    [
        (_score(auc=0.8), None, [True, True, True]),
        (_score(auc=0.4, log_loss=0.9, p95=500.0), None, [False, False, False]),
        (_score(auc=0.9, log_loss=0.9, p95=500.0), None, [True, False, False]),
        (_score(auc=0.8), _score(auc=0.8), [True, True]),
        (_score(auc=0.5, p95=500.0), _score(auc=0.8), [False, False]),
        (_score(auc=0.9, p95=500.0), _score(auc=0.8), [True, False]),
    ],
)
def test_one_reason_per_rule_and_verdict_is_their_conjunction(
    candidate: ModelScore, champion: ModelScore | None, expected: list[bool]
) -> None:
    decision = decide_promotion(candidate, champion, BASELINE)
    assert _passes(decision) == expected
    assert all(r.startswith(("PASS ", "FAIL ")) for r in decision.reasons)
    assert decision.promote is all(expected)
    assert decision.summary().count(";") == len(expected) - 1


def test_identical_candidate_is_not_promoted_again() -> None:
    score = ModelScore(auc=0.8, log_loss=0.4, p95_latency_ms=1.0)
    decision = decide_promotion(score, score, score, identical_to_champion=True)
    assert not decision.promote
    assert decision.reasons == ("FAIL candidate is byte-identical to the champion",)
    # Without a champion the flag has no meaning and the normal rules apply.
    first = decide_promotion(score, None, ModelScore(0.5, 0.6, 0.0), identical_to_champion=True)
    assert first.promote
