"""The promotion gate: decide whether a candidate replaces the production model, and say why."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from retraining_assets.core.evaluation import roc_auc
from retraining_assets.settings import DEFAULT_POLICY


@dataclass(frozen=True)
class GatePolicy:
    """Rules a candidate must meet.

    Attributes:
        min_relative_auc: Candidate AUC must be at least this times the champion's (same test set).
        max_p95_latency_ms: Ceiling on the candidate's p95 single-row latency.
        min_baseline_auc_margin: With no champion, AUC must exceed the trivial baseline's by this.
        min_test_positives: Fewer positives (or negatives) in the test set: refuse to decide.
    """

    min_relative_auc: float = DEFAULT_POLICY.min_relative_auc
    max_p95_latency_ms: float = DEFAULT_POLICY.max_p95_latency_ms
    min_baseline_auc_margin: float = DEFAULT_POLICY.min_baseline_auc_margin
    min_test_positives: int = DEFAULT_POLICY.min_test_positives


@dataclass(frozen=True)
class ModelScore:
    """What the gate looks at for one model on the shared test set."""

    auc: float
    log_loss: float
    p95_latency_ms: float


@dataclass(frozen=True)
class Decision:
    """The gate's verdict with the reason for every rule it checked."""

    promote: bool
    against: str  # "champion" or "baseline"
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def verdict(self) -> str:
        """``promote`` or ``reject``."""
        return "promote" if self.promote else "reject"

    def summary(self) -> str:
        """One line: verdict and reasons."""
        return f"{self.verdict} (vs {self.against}): " + "; ".join(self.reasons)


def decide_promotion(
    candidate: ModelScore,
    champion: ModelScore | None,
    baseline: ModelScore,
    policy: GatePolicy | None = None,
    *,
    identical_to_champion: bool = False,
    test_counts: tuple[int, int] | None = None,
) -> Decision:
    """Decide whether ``candidate`` should become production.

    With a champion, the candidate needs AUC >= ``min_relative_auc`` x champion AUC (both measured
    on the same test set) and p95 latency within the ceiling. Without one (the very first model),
    it must beat the trivial baseline (predicting the training positive rate) by a margin in AUC
    and have a lower log loss. Any NaN metric rejects. A candidate whose bytes are those of the
    champion is rejected: promoting it would only add a version that changes nothing. With
    ``test_counts`` (positives, negatives) below ``min_test_positives`` it refuses to decide.
    """
    policy = policy or GatePolicy()
    if test_counts is not None:
        n_pos, n_neg = test_counts
        if min(n_pos, n_neg) < policy.min_test_positives:
            return Decision(
                False,
                "champion" if champion else "baseline",
                (
                    f"FAIL test set too small: {n_pos} positives, {n_neg} negatives (need "
                    f"{policy.min_test_positives} of each to compare AUCs)",
                ),
            )
    if identical_to_champion and champion is not None:
        return Decision(False, "champion", ("FAIL candidate is byte-identical to the champion",))
    reasons: list[str] = []
    ok = True

    def check(passed: bool, text: str) -> None:
        nonlocal ok
        ok = ok and passed
        reasons.append(("PASS " if passed else "FAIL ") + text)

    values = [candidate.auc, candidate.log_loss, candidate.p95_latency_ms]
    if any(v != v for v in values):  # NaN check without numpy
        return Decision(
            False, "champion" if champion else "baseline", ("FAIL candidate metric is NaN",)
        )

    if champion is not None:
        if champion.auc != champion.auc:
            check(False, "champion AUC is NaN on this test set: cannot compare")
        else:
            floor = policy.min_relative_auc * champion.auc
            check(
                candidate.auc >= floor,
                f"AUC {candidate.auc:.4f} {'>=' if candidate.auc >= floor else '<'} "
                f"{policy.min_relative_auc:g} x champion {champion.auc:.4f} = {floor:.4f}",
            )
        against = "champion"
    else:
        floor = baseline.auc + policy.min_baseline_auc_margin
        check(
            candidate.auc >= floor,
            f"AUC {candidate.auc:.4f} {'>=' if candidate.auc >= floor else '<'} baseline "
            f"{baseline.auc:.4f} + {policy.min_baseline_auc_margin:g}",
        )
        better = candidate.log_loss < baseline.log_loss
        check(
            better,
            f"log loss {candidate.log_loss:.4f} {'<' if better else '>='}"
            f" baseline {baseline.log_loss:.4f}",
        )
        against = "baseline"
    check(
        candidate.p95_latency_ms <= policy.max_p95_latency_ms,
        f"p95 latency {candidate.p95_latency_ms:.2f} ms "
        f"{'<=' if candidate.p95_latency_ms <= policy.max_p95_latency_ms else '>'} "
        f"{policy.max_p95_latency_ms:g} ms",
    )
    return Decision(promote=ok, against=against, reasons=tuple(reasons))


def decide_shadow(
    y_true: np.ndarray,
    champion_proba: np.ndarray,
    challenger_proba: np.ndarray,
    *,
    min_relative_auc: float = DEFAULT_POLICY.min_relative_auc,
    min_positives: int = DEFAULT_POLICY.shadow_min_positives,
) -> Decision:
    """Decide a challenger's fate after its shadow period on live, labelled rows.

    Both models scored the same rows (all shadow batches pooled). The challenger is promoted if
    its AUC is at least ``min_relative_auc`` x the champion's (the offline gate's rule), and
    retired otherwise; too few positives to measure AUC retires it too (never promote blind).
    """
    y = np.asarray(y_true)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos < min_positives or n_neg < min_positives:
        return Decision(
            False,
            "champion",
            (
                f"FAIL shadow set too small: {n_pos} positives, {n_neg} negatives "
                f"(need {min_positives} of each)",
            ),
        )
    champion = roc_auc(y, champion_proba)
    challenger = roc_auc(y, challenger_proba)
    floor = min_relative_auc * champion
    ok = challenger >= floor
    reason = (
        f"{'PASS' if ok else 'FAIL'} shadow AUC {challenger:.4f} {'>=' if ok else '<'} "
        f"{min_relative_auc:g} x champion {champion:.4f} = {floor:.4f} on {len(y)} live rows "
        f"({n_pos} positives)"
    )
    return Decision(ok, "champion", (reason,))
