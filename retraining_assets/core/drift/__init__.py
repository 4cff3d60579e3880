"""Vectorised data-drift statistics of a batch against a reference summary (numpy and scipy only).

The reference (the production model's training data) is summarised once by
:func:`build_reference` into a :class:`ReferenceProfile`: per numeric feature the sorted
non-missing values, PSI bin edges at the reference quantiles and the reference bin proportions;
per categorical feature the category counts. The profile is stored next to the model
(:meth:`ReferenceProfile.to_npz`, plain ``np.savez``, no pickle) and reused for every batch.

Per batch, :func:`compute_drift` sorts each numeric column once (the dominant cost); the rest is
binary searches for about one batch value in 500 (a coarse-to-fine search for the KS maximum)
and for the PSI edges, a couple of O(n) passes, and category counts:

* PSI over the reference's quantile bins (:func:`psi`, empty bins clipped to :data:`PSI_EPSILON`);
* the two-sample Kolmogorov-Smirnov D (:func:`ks_statistic_sorted`, equal to
  ``scipy.stats.ks_2samp(...).statistic``, ties included) and its p-value (:func:`ks_pvalue`,
  equal to scipy's default ``method="auto"``);
* for categorical features, a chi-square test of homogeneity and PSI over the categories
  (:func:`chi2_categorical`);
* missing-rate changes (missing values never enter PSI or KS of a numeric feature).

P-values are corrected for testing many features (:func:`adjust_pvalues`, Holm by default) and a
test only counts with an effect-size floor (KS ``D >= 0.1``; total variation distance ``>= 0.1``
for categories), because at large n a test flags differences too small to matter, and at
``alpha = 0.05`` about one null feature in twenty. :class:`DriftPolicy` holds the thresholds and
the dataset-level rule; :class:`DriftResult` is the JSON-friendly outcome.

One idea per module: ``columns`` (reading a column: float values, category counts), ``profile``
(the reference summary), ``ks`` (KS D and p-value from sorted samples, as scipy's),
``statistics`` (PSI, chi-square, total variation, multiple-testing corrections), ``verdict``
(policy, per-feature and dataset verdicts, result) and ``compare`` (:func:`compute_drift`: a
batch against a profile). The public names are imported here; underscore names are shared
between these modules only.
"""

from retraining_assets.core.drift.columns import MISSING_CATEGORY, category_counts
from retraining_assets.core.drift.compare import compute_drift
from retraining_assets.core.drift.ks import KS_MAX_EXACT_N, ks_pvalue, ks_statistic_sorted
from retraining_assets.core.drift.profile import (
    CategoricalReference,
    NumericReference,
    ReferenceProfile,
    build_reference,
)
from retraining_assets.core.drift.statistics import (
    CORRECTIONS,
    PSI_EPSILON,
    adjust_pvalues,
    chi2_categorical,
    psi,
    total_variation,
)
from retraining_assets.core.drift.verdict import RULES, DriftPolicy, DriftResult, FeatureDrift

__all__ = [
    "CORRECTIONS",
    "KS_MAX_EXACT_N",
    "MISSING_CATEGORY",
    "PSI_EPSILON",
    "RULES",
    "CategoricalReference",
    "DriftPolicy",
    "DriftResult",
    "FeatureDrift",
    "NumericReference",
    "ReferenceProfile",
    "adjust_pvalues",
    "build_reference",
    "category_counts",
    "chi2_categorical",
    "compute_drift",
    "ks_pvalue",
    "ks_statistic_sorted",
    "psi",
    "total_variation",
]
