"""Drift that matters, the default dataset rule of ``batch_drift``.

Raw PSI > 0.2 on any feature fires on every week of real data: features whose distribution moves
all the time (weather, the season, calendar fields) without hurting the model. This rule keeps
only movement that is (1) unusual for that feature, (2) on a feature the model relies on, and
(3) not calendar-like by construction:

* **Calibrated thresholds.** The reference (the production model's training rows) is cut into its
  periods (the ``__batch__`` column). Each period is compared with a reference built from the
  other periods (leave one out), which gives, per feature, how far a normal period moves: the
  threshold is the ``quantile`` (the upper quartile, 0.75) of those PSIs times ``margin`` (1.5),
  and never below the classic ``psi_floor`` (0.2). The upper quartile, not the 99th percentile:
  with the handful of periods a training window holds, the 99th percentile is the single most
  unusual period (a storm week), so one outlier in the window would blind the rule to shifts of
  that size until the next retraining; the quartile is a robust measure of normal movement.
* **Importance-weighted.** The features that exceed their thresholds are weighed by the model's
  gain importance; the batch has drifted when their weight reaches ``share_threshold`` (10%) of
  the monitored total, so a feature the model does not use cannot fire it.
* **Correlated features share their importance.** Gain importance is split arbitrarily between
  strongly correlated features: a model may route all of a factor (the weather's temperature)
  through one of them (the dew point) and give the other almost nothing. A shift of the ignored
  one is a shift of the factor the model relies on, so a drifted feature also counts the
  importance of the features it correlates with strongly in the reference (|Spearman| >=
  ``correlation``, 0.7). Independent features are unaffected: a useless feature still cannot
  fire the rule.
* **Calendar-like features** (year, month, week, day of month or year) leave the reference range
  by construction as time passes; they are not monitored by this rule (weekday and hour cycle
  within every batch and stay monitored).

A feature absent from, or entirely missing in, a batch still forces a drift verdict
(``compute_drift``'s ``forced_by``). No Dagster import.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from retraining_assets.core.drift import DriftPolicy, DriftResult, build_reference, compute_drift

# Fields that leave the reference range by construction as time passes (a weekly batch holds one
# month, 7 days of the month, one week of the year). Weekday and hour cycle within every batch,
# so they stay monitored.
_CALENDAR = re.compile(
    r"(^|_)(year|quarter|month|week|weekofyear|week_of_year|day|dayofmonth|day_of_month|"
    r"dayofyear|day_of_year|doy|date)($|_)"
)

#: Defaults of the rule (``settings.TriggerPolicy`` passes its own; measured in docs/GUIDE.md).
DEFAULT_QUANTILE = 0.75
DEFAULT_MARGIN = 1.5
DEFAULT_SHARE = 0.1
#: |Spearman| from which two reference features count as one factor (0 turns sharing off).
DEFAULT_CORRELATION = 0.7


def calendar_like(name: str) -> bool:
    """True for a calendar field that moves with time by construction (year, month, day, ...)."""
    return bool(_CALENDAR.search(name.lower()))


@dataclass(frozen=True)
class MattersVerdict:
    """The outcome of :func:`drift_that_matters` on one batch.

    Attributes:
        drifted: The batch has drifted in a way that matters.
        score: Importance share of the features above their calibrated thresholds.
        threshold: ``share_threshold``.
        features: Those features, largest importance first.
        thresholds: The effective PSI threshold of every monitored feature.
        ignored: Features not monitored by the rule (calendar-like).
        through: Features below their thresholds whose importance counts because a strongly
            correlated feature drifted (largest importance first).
    """

    drifted: bool
    score: float
    threshold: float
    features: tuple[str, ...]
    thresholds: dict[str, float]
    ignored: tuple[str, ...]
    through: tuple[str, ...] = ()


def reference_psis(
    frame: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    period_column: str,
) -> dict[str, list[float]]:
    """Each feature's PSI between each reference period and the other periods (leave one out).

    Args:
        frame: The reference rows with a period column (e.g. ``__batch__``).
        numeric: Numeric features.
        categorical: Categorical features.
        period_column: The column naming each row's period.

    Returns:
        The finite PSIs per feature, one per period; empty when the reference has fewer than 3
        periods (nothing to calibrate on).
    """
    periods = sorted(frame[period_column].dropna().unique().tolist()) if len(frame) else []
    if len(periods) < 3:
        return {}
    values: dict[str, list[float]] = {name: [] for name in [*numeric, *categorical]}
    policy = DriftPolicy(use_ks=False, use_chi2=False)
    for period in periods:
        inside = frame[period_column] == period
        if not inside.any() or inside.all():
            continue
        profile = build_reference(frame[~inside], numeric, categorical)
        result = compute_drift(profile, frame[inside], policy, workers=1)
        for feature in result.features:
            if feature.psi is not None and np.isfinite(feature.psi):
                values[feature.name].append(float(feature.psi))
    return {name: found for name, found in values.items() if found}


def thresholds_from_psis(psis: Mapping[str, Sequence[float]], quantile: float) -> dict[str, float]:
    """The ``quantile`` of each feature's leave-one-out PSIs (see :func:`reference_psis`)."""
    return {name: float(np.quantile(list(found), quantile)) for name, found in psis.items()}


def calibrate_thresholds(
    frame: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    period_column: str,
    *,
    quantile: float = DEFAULT_QUANTILE,
) -> dict[str, float]:
    """Each feature's normal period-to-period PSI in the reference rows (leave one period out).

    Args:
        frame: The reference rows with a period column (e.g. ``__batch__``).
        numeric: Numeric features.
        categorical: Categorical features.
        period_column: The column naming each row's period.
        quantile: Quantile of the per-period PSIs (0.75: the upper quartile, which one stormy
            reference week does not move; 0.99 of a handful of periods is their maximum).

    Returns:
        PSI per feature; empty when the reference has fewer than 3 periods (no calibration).
    """
    return thresholds_from_psis(
        reference_psis(frame, numeric, categorical, period_column), quantile
    )


def reference_correlations(
    frame: pd.DataFrame, numeric: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Absolute Spearman correlation between each pair of numeric reference features.

    Args:
        frame: The reference rows.
        numeric: Numeric features (categorical ones have no rank correlation and share nothing).

    Returns:
        ``{a: {b: |rho|}}`` for every pair of distinct features present with a finite value
        (a constant feature correlates with nothing).
    """
    columns = [name for name in numeric if name in frame]
    if len(columns) < 2 or len(frame) < 3:
        return {}
    ranks = frame[columns].apply(pd.to_numeric, errors="coerce").rank()
    matrix = ranks.corr().abs()
    found: dict[str, dict[str, float]] = {}
    for a in columns:
        row = {
            b: round(float(matrix.at[a, b]), 4)
            for b in columns
            if b != a and np.isfinite(matrix.at[a, b])
        }
        if row:
            found[a] = row
    return found


def _through(
    over: Sequence[str],
    monitored: Sequence[str],
    correlations: Mapping[str, Mapping[str, float]],
    cutoff: float,
) -> list[str]:
    """Monitored features below their thresholds that correlate strongly with a drifted one."""
    if cutoff <= 0:
        return []
    drifted = set(over)
    return [
        name
        for name in monitored
        if name not in drifted
        and any(correlations.get(f, {}).get(name, 0.0) >= cutoff for f in drifted)
    ]


def drift_that_matters(
    result: DriftResult,
    thresholds: Mapping[str, float],
    importance: Mapping[str, float],
    *,
    psi_floor: float = 0.2,
    margin: float = DEFAULT_MARGIN,
    share_threshold: float = DEFAULT_SHARE,
    exclude_calendar: bool = True,
    correlations: Mapping[str, Mapping[str, float]] | None = None,
    correlation: float = DEFAULT_CORRELATION,
) -> MattersVerdict:
    """Decide whether a batch drifted in a way that matters (see the module docstring).

    Args:
        result: ``compute_drift`` of the batch (its per-feature PSI).
        thresholds: Calibrated PSI per feature from :func:`calibrate_thresholds` (a feature
            without one uses ``psi_floor``).
        importance: The model's gain importance per feature (normalised or not).
        psi_floor: No feature threshold is below this.
        margin: Multiplies the calibrated PSI (room for the next period being a bit unusual).
        share_threshold: Importance share of drifted features that makes the batch drifted.
        exclude_calendar: Leave calendar-like features out.
        correlations: |Spearman| between reference features (:func:`reference_correlations`);
            ``None`` or empty: no importance is shared.
        correlation: A drifted feature also counts the importance of the monitored features it
            correlates with at least this strongly (0: off).

    Returns:
        The verdict with its numbers.
    """
    ignored = tuple(f.name for f in result.features if exclude_calendar and calendar_like(f.name))
    monitored = [f for f in result.features if f.name not in ignored]
    effective = {
        f.name: max(psi_floor, margin * float(thresholds.get(f.name, 0.0))) for f in monitored
    }
    weights = {f.name: max(0.0, float(importance.get(f.name, 0.0))) for f in monitored}
    total = sum(weights.values())
    over = [
        f.name
        for f in monitored
        if f.psi is None or not np.isfinite(f.psi) or f.psi > effective[f.name]
    ]
    through = _through(over, [f.name for f in monitored], correlations or {}, correlation)
    counted = [*over, *through]
    score = sum(weights[name] for name in counted) / total if total > 0 else 0.0
    drifted = bool(score >= share_threshold or result.forced_by)
    return MattersVerdict(
        drifted=drifted,
        score=float(score),
        threshold=float(share_threshold),
        features=tuple(sorted(over, key=lambda name: -weights[name])),
        thresholds=effective,
        ignored=ignored,
        through=tuple(sorted(through, key=lambda name: -weights[name])),
    )
