"""When to retrain: pure decide functions over typed verdicts, a policy and a clock.

Every trigger is one function from what the monitoring assets concluded (records of
:mod:`retraining_assets.core.verdicts`), the trigger policy (``settings.TriggerPolicy``) and the
clock (hours since the last counted retraining, or ``None`` if there was none) to either
:class:`Fire` (a cause and its evidence, which become the run's tags) or :class:`Skip` (a reason
with the numbers). The Dagster sensors and schedule are thin shells around these functions, and
the replay drives the same sensors, so what a replay measures is what production does.

No Dagster import here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from retraining_assets.core.verdicts import (
    ConceptDriftVerdict,
    DriftVerdict,
    EstimatedPerformanceVerdict,
    PerformanceVerdict,
)

if TYPE_CHECKING:
    from retraining_assets.core.streaming import Adwin, PageHinkley
    from retraining_assets.settings import TriggerPolicy


@dataclass(frozen=True)
class Fire:
    """Start a retraining.

    Attributes:
        trigger: Which trigger fired (``data_drift``, ``performance_drift``, ``concept_drift``,
            ``weekly``).
        cause: One line saying why, with the numbers.
        partition: The batch that caused it ("" for the schedule).
        version: The production version the cause was measured against.
        evidence: Extra facts for the run's tags (``retraining/<key>``).
    """

    trigger: str
    cause: str
    partition: str = ""
    version: int | None = None
    evidence: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Skip:
    """Do not retrain, and why (with the numbers)."""

    reason: str


Decision = Fire | Skip


def cooldown_reason(hours_since_last: float | None, cooldown_hours: float) -> str | None:
    """Why a trigger is held back by the cooldown, or ``None`` if it is not.

    Args:
        hours_since_last: Hours since the last pending, running or successful retraining.
        cooldown_hours: The policy's cooldown.
    """
    if hours_since_last is not None and hours_since_last < cooldown_hours:
        return f"cooldown: last retraining {hours_since_last:.1f} h ago < {cooldown_hours:g} h"
    return None


def decide_data_drift(
    measured: Sequence[tuple[str, DriftVerdict | None]],
    policy: TriggerPolicy,
    hours_since_last: float | None,
) -> Decision:
    """Fire on the newest batch whose drift verdict is positive, unless in cooldown.

    Args:
        measured: ``(batch id, verdict)`` of the new ``batch_drift`` materializations, oldest
            first (``None``: a materialization without a typed verdict).
        policy: The trigger policy (cooldown).
        hours_since_last: The clock: hours since the last retraining.
    """
    if not measured:
        return Skip("no new drift measurements")
    compared = [(b, v) for b, v in measured if v is not None and v.measured]
    drifted = [(b, v) for b, v in compared if v.drifted]
    if not drifted:
        if not compared:
            return Skip("no production model to compare against yet")
        batch, top = max(compared, key=lambda item: item[1].max_psi)
        rule = top.rule or "any_psi"
        if rule == "any_psi":
            return Skip(
                f"no drift in {len(compared)} new batch(es): max PSI {top.max_psi:.3f} < "
                f"{policy.psi_threshold:.2f} ({top.max_psi_feature} in {batch})"
            )
        batch_s, best = max(compared, key=lambda item: item[1].score)
        return Skip(
            f"no drift in {len(compared)} new batch(es) under rule {rule}: highest score "
            f"{best.score:.3f} < {best.threshold:.3f} ({batch_s}); max PSI {top.max_psi:.3f} "
            f"({top.max_psi_feature} in {batch})"
        )
    batch, cause = drifted[-1]
    held = cooldown_reason(hours_since_last, policy.cooldown_hours)
    if held:
        return Skip(f"drift in {batch} ({cause.summary}) but {held}")
    return Fire(
        trigger="data_drift",
        cause=cause.summary,
        partition=batch,
        version=cause.production_version,
        evidence={
            "cause": cause.summary,
            "drifted_features": ", ".join(cause.drifted_features) or "none",
            "drift_rule": cause.rule,
        },
    )


def decide_performance(
    measured: Sequence[tuple[str, PerformanceVerdict | None]],
    policy: TriggerPolicy,
    hours_since_last: float | None,
) -> Decision:
    """Fire on the newest labelled batch whose quality fell below a floor, unless in cooldown.

    Args:
        measured: ``(batch id, verdict)`` of the new ``batch_performance`` materializations.
        policy: The trigger policy (cooldown).
        hours_since_last: The clock: hours since the last retraining.
    """
    known = [(b, v) for b, v in measured if v is not None]
    if not known:
        return Skip("no new labelled batches measured")
    degraded = [(b, v) for b, v in known if v.degraded]
    if not degraded:
        batch, worst = min(known, key=lambda item: item[1].auc)
        return Skip(
            f"quality holds on {len(known)} new labelled batch(es): lowest {worst.reason} ({batch})"
        )
    return _fire_on_newest(degraded, "performance_drift", "degraded", policy, hours_since_last)


def _fire_on_newest(
    degraded: Sequence[tuple[str, PerformanceVerdict | EstimatedPerformanceVerdict]],
    trigger: str,
    what: str,
    policy: TriggerPolicy,
    hours_since_last: float | None,
) -> Decision:
    """Fire on the newest degraded batch, unless the cooldown holds it back."""
    batch, cause = degraded[-1]
    held = cooldown_reason(hours_since_last, policy.cooldown_hours)
    if held:
        return Skip(f"{what} on {batch} but {held}")
    return Fire(
        trigger=trigger,
        cause=cause.reason,
        partition=batch,
        version=cause.production_version,
        evidence={"cause": cause.reason},
    )


def decide_estimated_performance(
    measured: Sequence[tuple[str, EstimatedPerformanceVerdict | None]],
    policy: TriggerPolicy,
    hours_since_last: float | None,
) -> Decision:
    """Fire, before labels arrive, on the newest batch whose estimated AUC fell below its floor.

    Args:
        measured: ``(batch id, verdict)`` of the new ``batch_estimated_performance``
            materializations, oldest first.
        policy: The trigger policy (cooldown).
        hours_since_last: The clock: hours since the last retraining.
    """
    if not measured:
        return Skip("no new estimated-performance measurements")
    known = [(b, v) for b, v in measured if v is not None and v.measured]
    if not known:
        return Skip(f"no estimated-performance verdict in {len(measured)} new batch(es)")
    degraded = [(b, v) for b, v in known if v.degraded]
    if not degraded:
        batch, worst = min(known, key=lambda item: item[1].estimated_auc)
        return Skip(
            f"estimated quality holds on {len(known)} new batch(es): lowest {worst.reason} "
            f"({batch})"
        )
    return _fire_on_newest(
        degraded, "estimated_performance", "estimated degradation", policy, hours_since_last
    )


def decide_concept_drift(
    change: ConceptDriftVerdict,
    drift_of_batch: DriftVerdict | None,
    policy: TriggerPolicy,
    hours_since_last: float | None,
) -> Decision:
    """Fire when the error stream rose on a batch whose features did not drift.

    Only a rise counts: a model whose errors fall is improving, not drifting.

    Args:
        change: What the error-stream detector saw on the new labelled batches.
        drift_of_batch: The drift verdict of the batch where the change was seen, if measured.
        policy: The trigger policy (detector, cooldown).
        hours_since_last: The clock: hours since the last retraining.
    """
    version = change.production_version
    if not change.detected:
        return Skip(
            f"no change in the error stream of v{version} after {change.rows_seen} labelled rows "
            f"({change.detector})"
        )
    means = ""
    if change.before_mean is not None and change.after_mean is not None:
        means = f": mean error {change.before_mean:.3f} -> {change.after_mean:.3f}"
    if not change.rising:
        return Skip(
            f"the error stream of v{version} changed on {change.partition}{means}, a fall: "
            "only a rise is concept drift"
        )
    if drift_of_batch is not None and drift_of_batch.drifted:
        return Skip(
            f"errors changed on {change.partition} but its features drifted too: "
            "left to data_drift_sensor"
        )
    held = cooldown_reason(hours_since_last, policy.cooldown_hours)
    if held:
        return Skip(f"concept drift on {change.partition} but {held}")
    return Fire(
        trigger="concept_drift",
        cause=f"error stream rose ({change.detector}{means}) without feature drift",
        partition=change.partition,
        version=version,
        evidence={
            "cause": f"error stream rose ({change.detector}{means}) without feature drift",
        },
    )


def decide_schedule(hours_since_last: float | None, policy: TriggerPolicy) -> Decision:
    """The weekly fallback fires unless a retraining ran within the schedule cooldown."""
    if hours_since_last is not None and hours_since_last < policy.schedule_cooldown_hours:
        return Skip(
            f"last retraining {hours_since_last:.1f} h ago < cooldown "
            f"{policy.schedule_cooldown_hours:g} h"
        )
    return Fire(trigger="weekly", cause="weekly schedule")


# --- the error stream, one-sided -------------------------------------------------------------


@dataclass
class ErrorRise:
    """What :func:`watch_errors` found in one chunk of errors."""

    rising: bool = False
    falling: bool = False
    before_mean: float | None = None
    after_mean: float | None = None


def new_error_detector(policy: TriggerPolicy) -> Adwin | PageHinkley:
    """The policy's error-stream detector, fresh (Page-Hinkley watches increases only)."""
    from retraining_assets.core.streaming import Adwin, PageHinkley

    if policy.concept_detector == "adwin":
        return Adwin(delta=policy.concept_delta)
    return PageHinkley(
        delta=policy.concept_ph_delta, threshold=policy.concept_ph_threshold, direction="increase"
    )


def watch_errors(detector: Adwin | PageHinkley, errors: Any) -> ErrorRise:
    """Feed errors to a stateful detector; tell a rise of the mean error from a fall.

    ADWIN reacts to changes either way. At each of its alarms the values it drops are the older
    regime and the window it keeps the newer one, so the alarm is a rise when the kept mean is
    above the dropped mean. Page-Hinkley is built to watch increases only.

    Args:
        detector: An ``Adwin`` or ``PageHinkley`` with its state so far (updated in place).
        errors: The next per-row errors, in time order, in [0, 1].

    Returns:
        Whether a rise (or a fall) was seen, with the mean error before and after the first rise.
    """
    import numpy as np

    from retraining_assets.core.streaming import Adwin

    values = np.asarray(errors, dtype=np.float64)
    found = ErrorRise()
    pos = 0
    while pos < len(values):
        if isinstance(detector, Adwin):
            width0, total0 = detector.width, detector.estimation * detector.width
        hits = detector.update_many(values[pos:], max_detections=1)
        if not hits:
            break
        alarm = pos + hits[0]
        if isinstance(detector, Adwin):
            added = alarm + 1 - pos
            kept = detector.width
            dropped = width0 + added - kept
            total_before = total0 + float(values[pos : alarm + 1].sum())
            after = detector.estimation
            before = (total_before - after * kept) / dropped if dropped > 0 else math.nan
            rising = after > before
        else:
            before, after, rising = math.nan, float(values[pos : alarm + 1].mean()), True
        if rising and not found.rising:
            found.rising = True
            found.before_mean = None if math.isnan(before) else float(before)
            found.after_mean = float(after)
        elif not rising:
            found.falling = True
        pos = alarm + 1
    return found


@dataclass(frozen=True)
class ErrorWatch:
    """What :func:`track_concept_drift` saw, and the detector state to carry to the next look.

    Attributes:
        change: The concept-drift verdict over the new batches (for ``decide_concept_drift``).
        state: ``version``, ``detector`` (its ``to_dict``) and ``rows`` seen, JSON-ready.
    """

    change: ConceptDriftVerdict
    state: dict[str, Any]


def track_concept_drift(
    state: Mapping[str, Any],
    verdicts: Sequence[tuple[str, PerformanceVerdict | None]],
    version: int | None,
    policy: TriggerPolicy,
    errors_of: Callable[[str, PerformanceVerdict, int], Any],
) -> ErrorWatch:
    """Feed the error streams of newly measured batches to the production model's detector.

    The detector's state is carried between looks and restarts with each production version;
    a batch measured with another model is passed over (its errors say nothing about this one).
    The first rise wins; a fall is reported only when no rise was seen.

    Args:
        state: The previous look's ``ErrorWatch.state`` (``{}`` on the first look).
        verdicts: ``(batch, batch_performance verdict)`` of the new batches, oldest first.
        version: The current production version (``None``: no model, nothing is watched).
        policy: The trigger policy (which detector, its sensitivity).
        errors_of: Reads the error stream of ``(batch, verdict, version)``.
    """
    from retraining_assets.core.streaming import Adwin, PageHinkley

    detector: Adwin | PageHinkley
    if state.get("version") != version or "detector" not in state:
        # Squared error per row lies in [0, 1], the range ADWIN's bound assumes.
        detector = new_error_detector(policy)
        rows_seen = 0
    else:
        saved = state["detector"]
        detector = (Adwin if saved["kind"] == "adwin" else PageHinkley).from_dict(saved)
        rows_seen = int(state.get("rows", 0))
    change = ConceptDriftVerdict(
        detected=False, rising=False, detector=policy.concept_detector, production_version=version
    )
    for partition, verdict in verdicts:
        if verdict is None or version is None or verdict.production_version != version:
            continue
        errors = errors_of(partition, verdict, version)
        seen = watch_errors(detector, errors)
        rows_seen += len(errors)
        if seen.rising and not change.rising:
            change = ConceptDriftVerdict(
                detected=True,
                rising=True,
                partition=partition,
                before_mean=seen.before_mean,
                after_mean=seen.after_mean,
                detector=policy.concept_detector,
                production_version=version,
            )
        elif seen.falling and not change.detected:
            change = ConceptDriftVerdict(
                detected=True,
                rising=False,
                partition=partition,
                detector=policy.concept_detector,
                production_version=version,
            )
    return ErrorWatch(
        change=dataclasses.replace(change, rows_seen=rows_seen),
        state={"version": version, "detector": detector.to_dict(), "rows": rows_seen},
    )
