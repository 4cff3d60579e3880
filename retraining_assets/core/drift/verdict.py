"""From statistics to verdicts: the policy, per-feature and dataset verdicts, the result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from retraining_assets.core.drift.statistics import CORRECTIONS
from retraining_assets.settings import DEFAULT_TRIGGERS

#: Supported dataset-level verdict rules.
RULES: tuple[str, ...] = ("any_psi", "share", "importance")
Kind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class DriftPolicy:
    """When a feature, and a batch, count as drifted.

    A feature is drifted if any of these fires:

    * PSI ``> psi_threshold``;
    * numeric, ``use_ks``: KS adjusted p ``< ks_alpha`` and ``D >= ks_min_d``;
    * categorical, ``use_chi2``: chi-square adjusted p ``< ks_alpha`` and total variation
      distance ``>= chi2_min_tvd`` (the share of rows that changed category, the categorical
      analogue of D; Cramér's V is not used because for a 2 x k table it shrinks as the
      reference grows relative to the batch);
    * ``|missing rate change| > missing_rate_threshold``;
    * the feature is absent from the batch or entirely missing in it.

    The effect-size floors matter: at large n KS and chi-square flag differences too small to
    matter, and at ``alpha = 0.05`` about one null feature in twenty.

    Attributes:
        psi_threshold: PSI above which a feature drifted.
        ks_alpha: Significance level of the (adjusted) KS and chi-square p-values.
        ks_min_d: Smallest KS D that counts (effect-size floor).
        chi2_min_tvd: Smallest total variation distance that counts for a categorical feature.
        correction: Multiple-testing correction over all features' p-values: ``"none"``,
            ``"bonferroni"``, ``"holm"`` or ``"bh"``.
        missing_rate_threshold: Largest tolerated absolute change of the missing rate.
        rule: Dataset verdict: ``"any_psi"`` (some feature's PSI above ``psi_threshold``),
            ``"share"`` (share of drifted features ``>= share_threshold``) or ``"importance"``
            (importance-weighted share of drifted features ``>= share_threshold``).
        share_threshold: Threshold of the ``share`` and ``importance`` rules.
        use_ks: Let the KS test make a numeric feature drifted.
        use_chi2: Let the chi-square test make a categorical feature drifted.
        missing_column_forces_drift: A feature absent from, or entirely missing in, the batch
            makes the batch drifted whatever the rule (no statistic can vouch for it).
    """

    # The thresholds the drift trigger also has are the trigger's (settings.TriggerPolicy).
    psi_threshold: float = DEFAULT_TRIGGERS.psi_threshold
    ks_alpha: float = DEFAULT_TRIGGERS.ks_alpha
    ks_min_d: float = DEFAULT_TRIGGERS.ks_min_d
    chi2_min_tvd: float = 0.1
    correction: str = DEFAULT_TRIGGERS.correction
    missing_rate_threshold: float = 0.1
    rule: str = "any_psi"
    share_threshold: float = DEFAULT_TRIGGERS.share_threshold
    use_ks: bool = True
    use_chi2: bool = True
    missing_column_forces_drift: bool = True

    def __post_init__(self) -> None:
        """Reject unknown options and out-of-range thresholds."""
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction must be one of {CORRECTIONS}, got {self.correction!r}")
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {self.rule!r}")
        if not 0.0 < self.ks_alpha < 1.0:
            raise ValueError(f"ks_alpha must be within (0, 1), got {self.ks_alpha}")
        for name in ("psi_threshold", "ks_min_d", "chi2_min_tvd", "missing_rate_threshold"):
            if getattr(self, name) < 0.0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        if not 0.0 < self.share_threshold <= 1.0:
            raise ValueError(f"share_threshold must be within (0, 1], got {self.share_threshold}")


@dataclass(frozen=True)
class FeatureDrift:
    """Drift statistics and verdict of one feature (plain floats, JSON-friendly).

    Attributes:
        name: Feature name.
        kind: ``"numeric"`` or ``"categorical"``.
        psi: PSI over the reference quantile bins or categories; None if not computable (no
            values on one side).
        ks_d: Two-sample KS D (numeric), else None.
        ks_pvalue: Raw KS p-value (numeric), else None.
        chi2: Chi-square statistic (categorical), else None.
        chi2_pvalue: Raw chi-square p-value (categorical), else None.
        tvd: Total variation distance between the category shares (categorical), else None.
        p_value_adjusted: The KS or chi-square p-value after the policy's correction.
        missing_rate_ref: Share of missing values in the reference.
        missing_rate_cur: Share of missing values in the batch (1.0 for an absent column).
        missing_rate_change: ``missing_rate_cur - missing_rate_ref``.
        n_reference: Non-missing reference values used by the statistics.
        n_current: Non-missing batch values used by the statistics.
        drifted: Whether the feature drifted under the policy.
        reasons: Why it drifted, one short sentence per rule that fired.
    """

    name: str
    kind: str
    psi: float | None
    ks_d: float | None
    ks_pvalue: float | None
    chi2: float | None
    chi2_pvalue: float | None
    tvd: float | None
    p_value_adjusted: float | None
    missing_rate_ref: float
    missing_rate_cur: float
    missing_rate_change: float
    n_reference: int
    n_current: int
    drifted: bool
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (``reasons`` as a list)."""
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        return data


@dataclass(frozen=True)
class DriftResult:
    """Outcome of :func:`compute_drift` for one batch.

    Attributes:
        features: Per feature results, numeric first, in profile order.
        drifted: Dataset-level verdict.
        rule: The rule that produced the verdict.
        score: The quantity the rule compared: the largest PSI (``any_psi``), the share of
            drifted features (``share``) or their importance-weighted share (``importance``).
        threshold: What ``score`` was compared with.
        n_reference: Reference rows.
        n_current: Batch rows.
        forced_by: Features entirely missing in the batch that forced the verdict.
    """

    features: tuple[FeatureDrift, ...]
    drifted: bool
    rule: str
    score: float
    threshold: float
    n_reference: int
    n_current: int
    forced_by: tuple[str, ...] = ()

    def drifted_features(self) -> tuple[str, ...]:
        """Names of the drifted features, in feature order."""
        return tuple(feature.name for feature in self.features if feature.drifted)

    def summary(self) -> str:
        """One line with the verdict and the numbers behind it.

        Returns:
            For example ``"drift: 3 of 20 features drifted (max PSI 0.41 on x0 > 0.20)"`` or
            ``"no drift: max PSI 0.08 <= 0.20 (x3), 0 of 20 features drifted"``.
        """
        count = f"{len(self.drifted_features())} of {len(self.features)} features drifted"
        scored = [(f.psi, f.name) for f in self.features if f.psi is not None]
        top = max(scored, key=lambda item: item[0]) if scored else None
        if self.rule == "any_psi":
            if top is None:
                detail = f"no PSI could be computed, {count}"
            else:
                value, limit = _pair(top[0], self.threshold)
                if top[0] > self.threshold:
                    detail = f"{count} (max PSI {value} on {top[1]} > {limit})"
                else:
                    detail = f"max PSI {value} <= {limit} ({top[1]}), {count}"
        else:
            label = "share" if self.rule == "share" else "importance-weighted share"
            value, limit = _pair(self.score, self.threshold)
            sign = ">=" if self.score >= self.threshold else "<"
            psi_note = f"max PSI {top[0]:.2f} on {top[1]}" if top else "no PSI"
            detail = f"{count} ({label} {value} {sign} {limit}; {psi_note})"
        if self.forced_by:
            return f"drift: {', '.join(self.forced_by)} entirely missing in batch; {detail}"
        return f"{'drift' if self.drifted else 'no drift'}: {detail}"

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict, with the summary line."""
        return {
            "drifted": self.drifted,
            "rule": self.rule,
            "score": self.score,
            "threshold": self.threshold,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "forced_by": list(self.forced_by),
            "drifted_features": list(self.drifted_features()),
            "summary": self.summary(),
            "features": [feature.to_dict() for feature in self.features],
        }


def _pair(value: float, threshold: float) -> tuple[str, str]:
    """Format two numbers with 2 decimals, or 4 when 2 would make them look equal."""
    for digits in (2, 4, 6):
        a, b = f"{value:.{digits}f}", f"{threshold:.{digits}f}"
        if a != b or value == threshold:
            return a, b
    return f"{value:.6g}", f"{threshold:.6g}"


@dataclass(frozen=True)
class _Stats:
    name: str
    kind: Kind
    absent: bool
    psi: float | None = None
    ks_d: float | None = None
    ks_pvalue: float | None = None
    chi2: float | None = None
    chi2_pvalue: float | None = None
    tvd: float | None = None
    missing_rate_ref: float = 0.0
    missing_rate_cur: float = 1.0
    n_reference: int = 0
    n_current: int = 0

    @property
    def pvalue(self) -> float | None:
        return self.ks_pvalue if self.kind == "numeric" else self.chi2_pvalue

    @property
    def entirely_missing(self) -> bool:
        """Absent, or no value in the batch although the reference has some."""
        return self.absent or (self.n_current == 0 and self.n_reference > 0)


def _feature_verdict(
    raw: _Stats, adjusted: float | None, policy: DriftPolicy, n_rows: int
) -> FeatureDrift:
    reasons: list[str] = []
    change = raw.missing_rate_cur - raw.missing_rate_ref
    if raw.absent:
        reasons.append("column absent from batch")
    elif raw.entirely_missing:
        reasons.append(
            f"all {n_rows} values missing in batch "
            f"(reference missing rate {raw.missing_rate_ref:.1%})"
        )
    if raw.psi is not None and raw.psi > policy.psi_threshold:
        reasons.append(f"PSI {raw.psi:.3f} > {policy.psi_threshold:.2f}")
    if adjusted is not None and adjusted < policy.ks_alpha:
        if raw.kind == "numeric" and policy.use_ks and raw.ks_d is not None:
            if raw.ks_d >= policy.ks_min_d:
                reasons.append(
                    f"KS D {raw.ks_d:.3f} >= {policy.ks_min_d:.2f} "
                    f"with adjusted p {adjusted:.2g} < {policy.ks_alpha:g}"
                )
        elif (
            raw.kind == "categorical"
            and policy.use_chi2
            and raw.tvd is not None
            and raw.tvd >= policy.chi2_min_tvd
        ):
            reasons.append(
                f"chi2 adjusted p {adjusted:.2g} < {policy.ks_alpha:g} "
                f"with total variation {raw.tvd:.3f} >= {policy.chi2_min_tvd:.2f}"
            )
    if raw.n_current > 0 and abs(change) > policy.missing_rate_threshold:
        reasons.append(
            f"missing rate {raw.missing_rate_ref:.1%} -> {raw.missing_rate_cur:.1%} "
            f"(change {change:+.1%}, limit {policy.missing_rate_threshold:.0%})"
        )
    return FeatureDrift(
        name=raw.name,
        kind=raw.kind,
        psi=raw.psi,
        ks_d=raw.ks_d,
        ks_pvalue=raw.ks_pvalue,
        chi2=raw.chi2,
        chi2_pvalue=raw.chi2_pvalue,
        tvd=raw.tvd,
        p_value_adjusted=adjusted,
        missing_rate_ref=float(raw.missing_rate_ref),
        missing_rate_cur=float(raw.missing_rate_cur),
        missing_rate_change=float(change),
        n_reference=raw.n_reference,
        n_current=raw.n_current,
        drifted=bool(reasons),
        reasons=tuple(reasons),
    )


def _weighted_share(
    features: Sequence[FeatureDrift], importance: Mapping[str, float] | None
) -> float:
    if importance is None:
        raise ValueError("rule 'importance' needs importance weights")
    weights = np.array([float(importance.get(f.name, 0.0)) for f in features])
    if np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise ValueError("importance weights must be finite and non-negative")
    total = weights.sum()
    if total <= 0:
        raise ValueError("importance weights of the profiled features sum to zero")
    drifted = np.array([f.drifted for f in features], dtype=np.float64)
    return float(weights @ drifted / total)
