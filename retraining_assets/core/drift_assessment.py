"""One batch's data drift as a typed verdict: the logic behind the ``batch_drift`` asset.

The asset reads the batch, the production model and its cached reference; everything between
(which features are monitored, the statistics, the configured dataset rule, the verdict record,
the table people read) is here, with no Dagster import. The reference itself is built by
:func:`build_drift_reference` from the rows the model was trained on and cached by the caller.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retraining_assets.core.verdicts import DriftVerdict
from retraining_assets.settings import BATCH_COLUMN, SPLIT_COLUMN

if TYPE_CHECKING:
    import pandas as pd

    from retraining_assets.core.drift import (
        DriftPolicy,
        DriftResult,
        FeatureDrift,
        ReferenceProfile,
    )
    from retraining_assets.core.drift_matters import MattersVerdict
    from retraining_assets.schemas import DatasetSchema
    from retraining_assets.settings import TriggerPolicy

#: The verdict of a batch measured before any model was promoted.
NO_REFERENCE = DriftVerdict(status="no_reference", summary="no production model yet")


@dataclass(frozen=True)
class MonitoredFeatures:
    """The features whose drift is measured: the schema's, less the policy's ``drift_exclude``.

    Attributes:
        numeric: Monitored numeric features, in schema order.
        categorical: Monitored categorical features, in schema order.
        excluded: Every name in ``drift_exclude``, sorted (whether or not the schema has it).
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    excluded: tuple[str, ...]

    @property
    def columns(self) -> list[str]:
        """The batch columns drift reads (numeric first)."""
        return [*self.numeric, *self.categorical]

    @property
    def profile_key(self) -> str:
        """A short key of this feature set: one cached reference per model and feature set."""
        text = ",".join([*self.numeric, "|", *self.categorical])
        return hashlib.sha1(text.encode()).hexdigest()[:8]


def monitored_features(schema: DatasetSchema, exclude: Iterable[str]) -> MonitoredFeatures:
    """The schema's features less ``exclude`` (the policy's ``drift_exclude``)."""
    excluded = set(exclude)
    return MonitoredFeatures(
        numeric=tuple(f for f in schema.numeric_features if f not in excluded),
        categorical=tuple(f for f in schema.categorical_features if f not in excluded),
        excluded=tuple(sorted(excluded)),
    )


def split_rows(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of one split (``train``, ``test``) of a versioned dataset; all rows without one."""
    return frame[frame[SPLIT_COLUMN] == split] if SPLIT_COLUMN in frame else frame


def build_drift_reference(train: pd.DataFrame, features: MonitoredFeatures) -> ReferenceProfile:
    """The drift reference of a model from the rows it was trained on."""
    from retraining_assets.core.drift import build_reference

    return build_reference(train, list(features.numeric), list(features.categorical))


def calibrate_reference_thresholds(
    train: pd.DataFrame, features: MonitoredFeatures, quantile: float
) -> dict[str, float]:
    """Each feature's normal PSI between training batches (leave one out), for ``matters``.

    Empty when the training rows carry no batch column (nothing to calibrate on).
    """
    from retraining_assets.core.drift_matters import calibrate_thresholds

    if BATCH_COLUMN not in train:
        return {}
    return calibrate_thresholds(
        train, list(features.numeric), list(features.categorical), BATCH_COLUMN, quantile=quantile
    )


def reference_correlations(
    train: pd.DataFrame, features: MonitoredFeatures
) -> dict[str, dict[str, float]]:
    """|Spearman| between the monitored numeric features in the training rows, for ``matters``."""
    from retraining_assets.core.drift_matters import reference_correlations as correlations

    return correlations(train, list(features.numeric))


def feature_importance(booster: Any, exclude: Iterable[str] = ()) -> dict[str, float]:
    """The model's gain importance per feature, as shares of the total, less ``exclude``."""
    gains = booster.feature_importance(importance_type="gain")
    total = float(sum(gains)) or 1.0
    excluded = set(exclude)
    return {
        name: float(g) / total
        for name, g in zip(booster.feature_name(), gains, strict=True)
        if name not in excluded
    }


def reference_quantile(policy: TriggerPolicy) -> float | None:
    """The quantile of the calibrated PSI thresholds: only the ``matters`` rule has them."""
    return policy.drift_quantile if policy.drift_rule == "matters" else None


def drift_policy(policy: TriggerPolicy) -> DriftPolicy:
    """The statistics' policy of a trigger policy.

    Under the ``matters`` rule the dataset verdict is decided afterwards from the per-feature
    PSI, so the statistics run with ``any_psi``, which fills them in.
    """
    from retraining_assets.core.drift import DriftPolicy

    return DriftPolicy(
        psi_threshold=policy.psi_threshold,
        ks_alpha=policy.ks_alpha,
        ks_min_d=policy.ks_min_d,
        correction=policy.correction,
        rule="any_psi" if policy.drift_rule == "matters" else policy.drift_rule,
        share_threshold=policy.share_threshold,
    )


def _psi_of(feature: FeatureDrift) -> float:
    # None: the column is missing from the batch entirely (drifted, with a reason).
    return float("inf") if feature.psi is None else feature.psi


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


@dataclass(frozen=True)
class DriftAssessment:
    """What :func:`assess_drift` concluded about one batch.

    Attributes:
        verdict: The typed record sensors, the replay and the analysis read.
        result: The per-feature statistics behind it.
        excluded: The policy's ``drift_exclude``, sorted.
        matters: The ``matters`` rule's numbers, when that rule decided (else ``None``).
    """

    verdict: DriftVerdict
    result: DriftResult
    excluded: tuple[str, ...]
    matters: MattersVerdict | None = None

    @property
    def top(self) -> FeatureDrift:
        """The feature with the largest PSI (a feature missing from the batch counts as inf)."""
        return max(self.result.features, key=_psi_of)

    def table(self) -> str:
        """The per-feature statistics as a markdown table, largest PSI first."""
        rows = "\n".join(
            f"| {f.name} | {_fmt(f.psi, '.3f')} | {_fmt(f.ks_d, '.3f')} | "
            f"{_fmt(f.p_value_adjusted, '.2g')} | {'; '.join(f.reasons) if f.drifted else ''} |"
            for f in sorted(self.result.features, key=lambda f: -_psi_of(f))
        )
        return "| feature | PSI | KS D | p (adj.) | drifted |\n|---|---|---|---|---|\n" + rows

    def chart(self, title: str, psi_threshold: float) -> bytes:
        """PSI per feature as a PNG bar chart (drifted features highlighted)."""
        from retraining_assets.core.monitoring import plot_drift

        return plot_drift(self.result, title=title, psi_threshold=psi_threshold)


def _drift_that_matters(
    result: DriftResult,
    thresholds: Mapping[str, float],
    importance: Mapping[str, float],
    policy: TriggerPolicy,
    correlations: Mapping[str, Mapping[str, float]] | None = None,
) -> MattersVerdict:
    """The ``matters`` rule with the policy's knobs (the PSI threshold is the floor)."""
    from retraining_assets.core.drift_matters import drift_that_matters

    return drift_that_matters(
        result,
        thresholds,
        importance,
        psi_floor=policy.psi_threshold,
        margin=policy.drift_margin,
        share_threshold=policy.drift_importance_share,
        exclude_calendar=policy.drift_exclude_calendar,
        correlations=correlations,
        correlation=policy.drift_correlation,
    )


def _matters_summary(matters: MattersVerdict, forced_by: tuple[str, ...]) -> str:
    """One line for people: the importance share against its threshold, and the features."""
    score, threshold = matters.score, matters.threshold
    return (
        f"{'drift' if matters.drifted else 'no drift'} that matters: importance share "
        f"{score:.2f} {'>=' if score >= threshold else '<'} {threshold:.2f} over features "
        f"past their calibrated PSI thresholds ({', '.join(matters.features) or 'none'})"
        + (
            f" and the features correlated with them ({', '.join(matters.through)})"
            if matters.through
            else ""
        )
        + (f"; forced by {', '.join(forced_by)}" if forced_by else "")
    )


def assess_drift(
    profile: ReferenceProfile,
    frame: pd.DataFrame,
    policy: TriggerPolicy,
    features: MonitoredFeatures,
    *,
    importance: Mapping[str, float],
    thresholds: Mapping[str, float],
    production_version: int,
    correlations: Mapping[str, Mapping[str, float]] | None = None,
) -> DriftAssessment:
    """Measure one batch's drift against a model's reference and decide by the policy's rule.

    Args:
        profile: The reference of the production model (:func:`build_drift_reference`).
        frame: The batch (its monitored columns).
        policy: The trigger policy (thresholds, ``drift_rule`` and the ``matters`` knobs).
        features: The monitored features (:func:`monitored_features`).
        importance: The model's gain importance of the monitored features.
        thresholds: Calibrated PSI per feature (``matters`` only; empty otherwise).
        production_version: The version the batch is compared against.
        correlations: |Spearman| between reference features (``matters`` only): a drifted
            feature also counts the importance of those it correlates with strongly.

    Returns:
        The verdict with its statistics.
    """
    from retraining_assets.core.drift import compute_drift

    result = compute_drift(profile, frame, drift_policy(policy), importance=importance)
    matters = None
    if policy.drift_rule == "matters":
        matters = _drift_that_matters(result, thresholds, importance, policy, correlations)
        drifted, score, threshold = matters.drifted, matters.score, matters.threshold
        drifted_features, summary = matters.features, _matters_summary(matters, result.forced_by)
    else:
        drifted, score, threshold = result.drifted, result.score, result.threshold
        drifted_features, summary = result.drifted_features(), result.summary()
    top = max(result.features, key=_psi_of)
    verdict = DriftVerdict(
        status="drift" if drifted else "no_drift",
        rule=policy.drift_rule,
        score=float(score),
        threshold=float(threshold),
        max_psi=_psi_of(top),
        max_psi_feature=top.name,
        drifted_features=tuple(drifted_features),
        psi={f.name: (None if f.psi is None else round(float(f.psi), 6)) for f in result.features},
        production_version=production_version,
        rows=result.n_current,
        summary=summary,
    )
    return DriftAssessment(
        verdict=verdict, result=result, excluded=features.excluded, matters=matters
    )
