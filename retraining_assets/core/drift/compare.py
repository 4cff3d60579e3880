"""Per batch: each column's statistics against the reference profile, then the verdict."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import pandas as pd

from retraining_assets.core.drift.columns import (
    MISSING_CATEGORY,
    _n_before_nan,
    _numeric_values,
    category_counts,
)
from retraining_assets.core.drift.ks import _ks_d_presorted, ks_pvalue
from retraining_assets.core.drift.profile import (
    CategoricalReference,
    NumericReference,
    ReferenceProfile,
    _bin_proportions,
)
from retraining_assets.core.drift.statistics import (
    adjust_pvalues,
    chi2_categorical,
    psi,
    total_variation,
)
from retraining_assets.core.drift.verdict import (
    DriftPolicy,
    DriftResult,
    _feature_verdict,
    _Stats,
    _weighted_share,
)

# The default policy (frozen): one instance shared by every call that does not pass one.
_DEFAULT_POLICY = DriftPolicy()


def _numeric_stats(ref: NumericReference, series: pd.Series | None) -> _Stats:
    """PSI, KS and missing rate of one numeric column: one sort, a few binary searches."""
    if series is None:
        return _Stats(
            name=ref.name,
            kind="numeric",
            absent=True,
            missing_rate_ref=ref.missing_rate,
            n_reference=ref.n_values,
        )
    values = _numeric_values(series)
    total = values.size
    ordered = np.sort(values)
    cur = ordered[: _n_before_nan(ordered)]
    n_missing = total - cur.size
    m, n = cur.size, ref.n_values
    index = d = pvalue = None
    if m and n:
        index = psi(ref.proportions, _bin_proportions(cur, ref.edges))
        d = _ks_d_presorted(ref.sorted_values, cur)
        pvalue = ks_pvalue(d, n, m)
    return _Stats(
        name=ref.name,
        kind="numeric",
        absent=False,
        psi=index,
        ks_d=d,
        ks_pvalue=pvalue,
        missing_rate_ref=ref.missing_rate,
        missing_rate_cur=n_missing / total,
        n_reference=n,
        n_current=m,
    )


def _categorical_stats(ref: CategoricalReference, series: pd.Series | None) -> _Stats:
    """Chi-square, PSI, total variation and missing rate of one categorical column."""
    n_ref = ref.n_total - ref.counts.get(MISSING_CATEGORY, 0)
    if series is None:
        return _Stats(
            name=ref.name,
            kind="categorical",
            absent=True,
            missing_rate_ref=ref.missing_rate,
            n_reference=n_ref,
        )
    counts = category_counts(series)
    total = len(series)
    n_missing = counts.get(MISSING_CATEGORY, 0)
    chi2 = pvalue = index = tvd = None
    if total > n_missing and n_ref > 0:
        chi2, pvalue, index = chi2_categorical(ref.counts, counts)
        tvd = total_variation(ref.counts, counts)
    return _Stats(
        name=ref.name,
        kind="categorical",
        absent=False,
        psi=index,
        chi2=chi2,
        chi2_pvalue=pvalue,
        tvd=tvd,
        missing_rate_ref=ref.missing_rate,
        missing_rate_cur=n_missing / total,
        n_reference=n_ref,
        n_current=total - n_missing,
    )


def compute_drift(
    profile: ReferenceProfile,
    current: pd.DataFrame,
    policy: DriftPolicy = _DEFAULT_POLICY,
    importance: Mapping[str, float] | None = None,
    *,
    workers: int = 2,
) -> DriftResult:
    """Compare a batch with the reference profile, feature by feature, then as a whole.

    Per numeric column the batch is sorted once (``np.sort``, NaN excluded) and compared with the
    reference's sorted values (KS) and quantile bins (PSI); per categorical column the category
    counts are compared (chi-square, PSI, total variation). The raw KS and chi-square p-values of
    all features form one family for the policy's correction.

    Args:
        profile: The reference summary from :func:`build_reference`.
        current: The batch; extra columns are ignored, a profiled column it lacks is drifted.
        policy: Thresholds and dataset rule.
        importance: Feature weights for the ``importance`` rule (features not listed weigh 0).
        workers: Threads over columns; ``np.sort`` and the binary searches release the GIL, so 2
            uses both cores. 1 runs everything in the calling thread. The result does not
            depend on it.

    Returns:
        Per feature statistics and the dataset verdict.

    Raises:
        ValueError: if the batch has no rows, or the importance rule lacks usable weights.
    """
    n_rows = len(current)
    if n_rows == 0:
        raise ValueError("current batch has no rows")
    tasks: list[Callable[[], _Stats]] = [
        partial(_numeric_stats, num, current[num.name] if num.name in current.columns else None)
        for num in profile.numeric
    ]
    tasks += [
        partial(_categorical_stats, cat, current[cat.name] if cat.name in current.columns else None)
        for cat in profile.categorical
    ]
    if workers > 1 and len(tasks) > 1:
        with ThreadPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
            raw = list(pool.map(lambda task: task(), tasks))
    else:
        raw = [task() for task in tasks]

    tested = [i for i, item in enumerate(raw) if item.pvalue is not None]
    adjusted_values = adjust_pvalues([raw[i].pvalue for i in tested], policy.correction)
    adjusted: dict[int, float] = {
        i: float(value) for i, value in zip(tested, adjusted_values, strict=True)
    }
    features = tuple(
        _feature_verdict(item, adjusted.get(i), policy, n_rows) for i, item in enumerate(raw)
    )

    if policy.rule == "any_psi":
        score = max((f.psi for f in features if f.psi is not None), default=0.0)
        threshold = policy.psi_threshold
        drifted = score > threshold
    else:
        if policy.rule == "share":
            score = sum(f.drifted for f in features) / len(features) if features else 0.0
        else:
            score = _weighted_share(features, importance)
        threshold = policy.share_threshold
        drifted = score >= threshold
    forced_by: tuple[str, ...] = ()
    if policy.missing_column_forces_drift:
        forced_by = tuple(item.name for item in raw if item.entirely_missing)
    return DriftResult(
        features=features,
        drifted=bool(drifted or forced_by),
        rule=policy.rule,
        score=float(score),
        threshold=float(threshold),
        n_reference=profile.n_rows,
        n_current=n_rows,
        forced_by=forced_by,
    )
