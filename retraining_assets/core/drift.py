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
"""

from __future__ import annotations

import ctypes
import io
import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special, stats

from retraining_assets.settings import DEFAULT_TRIGGERS

try:  # Exact small-sample KS p-value: scipy's own private helper (see ks_pvalue).
    from scipy.stats._stats_py import _attempt_exact_2kssamp
except ImportError:  # pragma: no cover - only on a scipy that moved the helper
    _attempt_exact_2kssamp = None

#: Probability that empty PSI bins (or unseen categories) are clipped to before taking logs.
PSI_EPSILON = 1e-4
#: Category label that stands for a missing value (None, NaN, NA) of a categorical feature.
MISSING_CATEGORY = "__missing__"
#: Supported multiple-testing corrections.
CORRECTIONS: tuple[str, ...] = ("none", "bonferroni", "holm", "bh")
#: Supported dataset-level verdict rules.
RULES: tuple[str, ...] = ("any_psi", "share", "importance")

#: scipy ``ks_2samp(method="auto")`` is exact when the larger sample has at most this many values.
KS_MAX_EXACT_N = 10_000
# scipy.special.smirnov sums every term up to this n, and approximates above it.
_SMIRNOV_MAX_COMPUTE_N = 1_000_000
# Below this n scipy's own (double-double) Smirnov sum is already fast: use it as is.
_FAST_SMIRNOV_MIN_N = 1_000
_SMIRNOV_CHUNK = 1 << 16
# Width of the Smirnov terms' bump, in evaluated terms (see _smirnov_step).
_SMIRNOV_WIDTH_PER_STEP = 40.0
# Coarse-to-fine KS D search over the sorted batch (see _ks_d_presorted): first block size, and
# how much finer each next level is.
_KS_BLOCK = 512
_KS_RATIO = 8
# Counting an object column by object identity (see _object_counts) stops and falls back to
# hashing the values when there are more distinct objects than this.
_MAX_DISTINCT_OBJECTS = 4096
_PROFILE_FORMAT = "retraining_assets.drift.profile/1"

Kind = Literal["numeric", "categorical"]


# ---------------------------------------------------------------------------------------------
# Reference profile
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NumericReference:
    """Summary of one numeric feature of the reference.

    Attributes:
        name: Column name.
        sorted_values: Non-missing values, ascending, float64 (read-only).
        edges: PSI bin edges ``[-inf, e_1, ..., e_k, +inf]``; bins are right-closed
            ``(e_{i-1}, e_i]`` and the interior edges are distinct reference values.
        proportions: Share of the non-missing reference values in each bin.
        n_missing: Number of missing values in the reference.
    """

    name: str
    sorted_values: np.ndarray
    edges: np.ndarray
    proportions: np.ndarray
    n_missing: int

    @property
    def n_values(self) -> int:
        """Number of non-missing reference values."""
        return int(self.sorted_values.size)

    @property
    def n_total(self) -> int:
        """Number of reference rows."""
        return self.n_values + self.n_missing

    @property
    def missing_rate(self) -> float:
        """Share of missing values in the reference (0 for an empty reference)."""
        return self.n_missing / self.n_total if self.n_total else 0.0


@dataclass(frozen=True, eq=False)
class CategoricalReference:
    """Summary of one categorical feature of the reference.

    Attributes:
        name: Column name.
        counts: Rows per category (as strings), missing values under :data:`MISSING_CATEGORY`.
    """

    name: str
    counts: Mapping[str, int]

    @property
    def n_total(self) -> int:
        """Number of reference rows."""
        return int(sum(self.counts.values()))

    @property
    def missing_rate(self) -> float:
        """Share of missing values in the reference (0 for an empty reference)."""
        total = self.n_total
        return self.counts.get(MISSING_CATEGORY, 0) / total if total else 0.0


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Everything drift detection needs from the reference, computed once.

    Attributes:
        numeric: Per numeric feature summaries, in feature order.
        categorical: Per categorical feature summaries, in feature order.
        n_rows: Number of reference rows.
        n_bins: Number of quantile bins asked for (discrete features may have fewer).
    """

    numeric: tuple[NumericReference, ...]
    categorical: tuple[CategoricalReference, ...]
    n_rows: int
    n_bins: int

    @property
    def features(self) -> list[str]:
        """All feature names, numeric first."""
        return [ref.name for ref in self.numeric] + [ref.name for ref in self.categorical]

    def to_bytes(self) -> bytes:
        """Serialise the profile as an uncompressed ``.npz`` archive (no pickle).

        Returns:
            The archive bytes, readable with :meth:`from_bytes`.
        """
        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=False, **self._arrays())
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceProfile:
        """Load a profile written by :meth:`to_bytes` or :meth:`to_npz`.

        Args:
            data: The archive bytes.

        Returns:
            The profile.
        """
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return cls._from_arrays({key: archive[key] for key in archive.files})

    def to_npz(self, path: str | os.PathLike[str]) -> Path:
        """Write the profile to ``path`` (written to a temporary file, then renamed).

        Args:
            path: Destination file; written as is (no ``.npz`` suffix is added).

        Returns:
            The written path.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as handle:
            np.savez(handle, allow_pickle=False, **self._arrays())
        os.replace(tmp, target)
        return target

    @classmethod
    def from_npz(cls, path: str | os.PathLike[str]) -> ReferenceProfile:
        """Load a profile written by :meth:`to_npz`.

        Args:
            path: The archive.

        Returns:
            The profile.
        """
        with np.load(Path(path), allow_pickle=False) as archive:
            return cls._from_arrays({key: archive[key] for key in archive.files})

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {
            "format": np.array([_PROFILE_FORMAT]),
            "n_rows": np.array(self.n_rows, dtype=np.int64),
            "n_bins": np.array(self.n_bins, dtype=np.int64),
            "numeric_names": np.array([ref.name for ref in self.numeric], dtype=str),
            "categorical_names": np.array([ref.name for ref in self.categorical], dtype=str),
        }
        for i, num in enumerate(self.numeric):
            arrays[f"num{i}_sorted"] = num.sorted_values
            arrays[f"num{i}_edges"] = num.edges
            arrays[f"num{i}_props"] = num.proportions
            arrays[f"num{i}_missing"] = np.array(num.n_missing, dtype=np.int64)
        for i, cat in enumerate(self.categorical):
            arrays[f"cat{i}_keys"] = np.array(list(cat.counts), dtype=str)
            arrays[f"cat{i}_counts"] = np.array(list(cat.counts.values()), dtype=np.int64)
        return arrays

    @classmethod
    def _from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> ReferenceProfile:
        fmt = str(arrays["format"][0]) if "format" in arrays else "?"
        if fmt != _PROFILE_FORMAT:
            raise ValueError(f"not a drift reference profile (format {fmt!r})")
        numeric = tuple(
            NumericReference(
                name=str(name),
                sorted_values=_readonly(arrays[f"num{i}_sorted"].astype(np.float64, copy=False)),
                edges=_readonly(arrays[f"num{i}_edges"].astype(np.float64, copy=False)),
                proportions=_readonly(arrays[f"num{i}_props"].astype(np.float64, copy=False)),
                n_missing=int(arrays[f"num{i}_missing"]),
            )
            for i, name in enumerate(arrays["numeric_names"].tolist())
        )
        categorical = tuple(
            CategoricalReference(
                name=str(name),
                counts={
                    str(key): int(count)
                    for key, count in zip(
                        arrays[f"cat{i}_keys"].tolist(),
                        arrays[f"cat{i}_counts"].tolist(),
                        strict=True,
                    )
                },
            )
            for i, name in enumerate(arrays["categorical_names"].tolist())
        )
        return cls(
            numeric=numeric,
            categorical=categorical,
            n_rows=int(arrays["n_rows"]),
            n_bins=int(arrays["n_bins"]),
        )


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _numeric_values(series: pd.Series) -> np.ndarray:
    """A column as float64 with NaN for missing values (a view when it already is float64)."""
    if series.dtype == np.float64:
        return series.to_numpy()
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def _n_before_nan(ordered: np.ndarray) -> int:
    """Number of non-NaN values of an ascending float array (``np.sort`` puts NaN last).

    A binary search (NaN compares above everything in numpy's sort order) instead of an
    ``isnan`` pass over the whole column.
    """
    if ordered.size == 0 or not np.isnan(ordered[-1]):
        return ordered.size
    return int(np.searchsorted(ordered, np.nan, side="left"))


def _is_missing(value: Any) -> bool:
    try:
        missing = pd.isna(value)
    except (TypeError, ValueError):  # pragma: no cover - exotic scalars
        return False
    return bool(missing) if isinstance(missing, bool | np.bool_) else False


def category_counts(series: pd.Series) -> dict[str, int]:
    """Count the rows of each category, keyed by ``str(value)``.

    Args:
        series: A categorical column (object, string or ``category`` dtype).

    Returns:
        Rows per category; missing values (None, NaN, NA) are counted under
        :data:`MISSING_CATEGORY`, and categories with no rows are left out.
    """
    keys: list[Any] | None = None
    if isinstance(series.dtype, pd.CategoricalDtype):
        # Dictionary-encoded already: count the integer codes (-1 is missing) with one bincount
        # instead of hashing every value.
        codes = series.cat.codes.to_numpy()
        per_code = np.bincount(codes.astype(np.intp) + 1, minlength=len(series.cat.categories) + 1)
        keys = [*series.cat.categories.astype(object).tolist(), None]
        numbers = [*per_code[1:].tolist(), int(per_code[0])]
    elif series.dtype == object:
        by_identity = _object_counts(series.to_numpy())
        if by_identity is not None:
            keys, numbers = by_identity
    if keys is None:
        counts = series.value_counts(dropna=False, sort=False)
        keys, numbers = counts.index.tolist(), counts.to_numpy().tolist()
    out: dict[str, int] = {}
    for key, count in zip(keys, numbers, strict=True):
        if count <= 0:
            continue
        label = MISSING_CATEGORY if _is_missing(key) else str(key)
        out[label] = out.get(label, 0) + int(count)
    return out


def _object_counts(values: np.ndarray) -> tuple[list[Any], list[int]] | None:
    """Distinct objects of an object array with their row counts, counted by identity.

    ``value_counts`` of an object column calls each value's ``__hash__`` and ``__eq__`` per row.
    The cells of the array are pointers, and a string column usually holds few distinct objects:
    pyarrow (``read_parquet``) creates one object per distinct string, pandas' CSV reader one per
    distinct string and chunk. Counting the pointers in pandas' int64 hash table is 3-4x cheaper;
    equal strings held by distinct objects come out as separate entries, which the caller merges
    by label. Entries keep the order of first occurrence, as ``value_counts(sort=False)``.

    Returns:
        ``(objects, counts)``, or None when a distinct object is neither a string nor missing (a
        mixed column such as ``1`` and ``1.0``, which ``value_counts`` counts as one value) or
        when there are more than :data:`_MAX_DISTINCT_OBJECTS` distinct objects (values mostly
        unique: identity saves nothing).
    """
    values = np.ascontiguousarray(values)
    if values.size == 0:
        return None
    # A read-only int64 view of the array's object pointers (no copy); `values` keeps the array
    # and every object it points to alive while the view and the addresses are used.
    address = values.__array_interface__["data"][0]
    pointers = np.ctypeslib.as_array((ctypes.c_ssize_t * values.size).from_address(address))
    counts = pd.Series(pointers, copy=False).value_counts(sort=False)
    if counts.size > _MAX_DISTINCT_OBJECTS:
        return None
    objects = [ctypes.cast(pointer, ctypes.py_object).value for pointer in counts.index.tolist()]
    if not all(isinstance(item, str) or _is_missing(item) for item in objects):
        return None
    return objects, counts.to_numpy().tolist()


def _quantile_edges(sorted_values: np.ndarray, n_bins: int) -> np.ndarray:
    """PSI edges ``[-inf, interior..., +inf]`` at the reference quantiles (inverted CDF)."""
    n = sorted_values.size
    if n == 0:
        return np.array([-np.inf, np.inf])
    probs = np.arange(1, n_bins) / n_bins
    # Inverted CDF: the smallest value whose ECDF reaches q, so every edge is a data value and
    # every right-closed bin (e_{i-1}, e_i] holds at least e_i itself.
    positions = np.clip(np.ceil(probs * n).astype(np.int64) - 1, 0, n - 1)
    interior = np.unique(sorted_values[positions])
    top = sorted_values[-1]
    # An edge at the maximum would leave the top bin empty: merge it into the bin below.
    interior = interior[interior < top]
    if interior.size == 0:  # constant feature: one bin for the value, one for anything above
        interior = np.array([top])
    return np.concatenate(([-np.inf], interior, [np.inf]))


def _bin_proportions(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of sorted, non-missing values in each right-closed bin ``(e_{i-1}, e_i]``."""
    n = sorted_values.size
    cumulative = np.searchsorted(sorted_values, edges[1:-1], side="right")
    counts = np.diff(np.concatenate(([0], cumulative, [n])))
    return counts / n if n else np.zeros(counts.size)


def build_reference(
    frame: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    n_bins: int = 10,
) -> ReferenceProfile:
    """Summarise the reference data once, for every later :func:`compute_drift`.

    Args:
        frame: The reference rows (typically the production model's training data).
        numeric: Numeric feature columns.
        categorical: Categorical feature columns.
        n_bins: Number of quantile bins for PSI (deciles by default). Equal quantiles of a
            discrete feature are merged, so it may get fewer bins.

    Returns:
        The profile: sorted values, bin edges and proportions, missing counts, category counts.

    Raises:
        ValueError: if a column is missing or listed twice, ``n_bins < 2`` or ``frame`` is empty.
    """
    if n_bins < 2:
        raise ValueError(f"n_bins must be at least 2, got {n_bins}")
    names = [*numeric, *categorical]
    if len(set(names)) != len(names):
        raise ValueError(f"features listed more than once: {names}")
    absent = [name for name in names if name not in frame.columns]
    if absent:
        raise ValueError(f"reference has no column(s) {absent}")
    if len(frame) == 0:
        raise ValueError("reference frame is empty")
    numeric_refs = []
    for name in numeric:
        values = _numeric_values(frame[name])
        ordered = np.sort(values)
        ordered = ordered[: _n_before_nan(ordered)]
        n_missing = values.size - ordered.size
        edges = _quantile_edges(ordered, n_bins)
        numeric_refs.append(
            NumericReference(
                name=name,
                sorted_values=_readonly(ordered),
                edges=_readonly(edges),
                proportions=_readonly(_bin_proportions(ordered, edges)),
                n_missing=n_missing,
            )
        )
    categorical_refs = [
        CategoricalReference(name=name, counts=category_counts(frame[name])) for name in categorical
    ]
    return ReferenceProfile(
        numeric=tuple(numeric_refs),
        categorical=tuple(categorical_refs),
        n_rows=len(frame),
        n_bins=n_bins,
    )


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------


def psi(
    ref_props: Sequence[float] | np.ndarray,
    cur_props: Sequence[float] | np.ndarray,
    eps: float = PSI_EPSILON,
) -> float:
    """Population stability index ``sum((c - r) * ln(c / r))`` over matching bins.

    Args:
        ref_props: Reference share of each bin.
        cur_props: Current share of each bin (same bins, same order).
        eps: Shares below ``eps`` (empty bins, unseen categories) are raised to ``eps``
            before the formula, :data:`PSI_EPSILON` = 1e-4 by default; shares are not
            renormalised afterwards.

    Returns:
        The PSI (0 for identical proportions; 0.1 to 0.2 is usually read as a moderate shift,
        above 0.2 as a significant one).

    Raises:
        ValueError: if the two arrays have different lengths.
    """
    ref = np.maximum(np.asarray(ref_props, dtype=np.float64), eps)
    cur = np.maximum(np.asarray(cur_props, dtype=np.float64), eps)
    if ref.shape != cur.shape:
        raise ValueError(f"bins differ: {ref.shape} reference vs {cur.shape} current")
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _ks_d_at(ref_sorted: np.ndarray, cur_sorted: np.ndarray, points: np.ndarray) -> float:
    """Largest ``|F_ref - F_cur|`` at ``points`` (current values) and just before each of them.

    At a value ``v`` the ECDF difference is ``#ref <= v / n - #cur <= v / m``. Just before ``v``
    (at the largest reference point below ``v``, if any, and otherwise at a point already counted)
    it is ``#ref < v / n - #cur < v / m``; only its positive side can be an extreme, because in a
    gap between current values the current ECDF is flat while the reference one rises.
    """
    n, m = ref_sorted.size, cur_sorted.size
    # The same count / n - count / m as scipy (whose exact mode then rounds D to h / lcm(n, m)).
    at = np.searchsorted(ref_sorted, points, "right") / n
    at -= np.searchsorted(cur_sorted, points, "right") / m
    before = np.searchsorted(ref_sorted, points, "left") / n
    before -= np.searchsorted(cur_sorted, points, "left") / m
    return float(max(at.max(), -at.min(), before.max(), 0.0))


def _ks_counts(
    ref_sorted: np.ndarray, cur_sorted: np.ndarray, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ECDF counts at the batch values ``cur_sorted[index]``; an index of ``m`` stands for +inf.

    Returns ``#ref < v / n``, ``#ref <= v / n``, ``#cur < v / m`` and ``#cur <= v / m``.
    """
    n, m = ref_sorted.size, cur_sorted.size
    clipped = np.minimum(index, m - 1)
    values = cur_sorted[clipped]
    ref_lt = np.searchsorted(ref_sorted, values, "left")
    # #ref <= v differs from #ref < v only where v occurs in the reference (if ref_lt == n,
    # ref[n - 1] < v, so clipping the index cannot make a false hit).
    hit = ref_sorted[np.minimum(ref_lt, n - 1)] == values
    ref_le = ref_lt.copy()
    if hit.any():
        ref_le[hit] = np.searchsorted(ref_sorted, values[hit], "right")
    # #cur < v and #cur <= v are v's position and the next one, unless a neighbour equals v:
    # looking at the two neighbours of each point replaces a pass over the batch for ties.
    cur_lt, cur_le = index.copy(), index + 1
    tied = (cur_sorted[np.maximum(clipped - 1, 0)] == values) & (clipped > 0)
    tied |= (cur_sorted[np.minimum(clipped + 1, m - 1)] == values) & (clipped < m - 1)
    if tied.any():
        cur_lt[tied] = np.searchsorted(cur_sorted, values[tied], "left")
        cur_le[tied] = np.searchsorted(cur_sorted, values[tied], "right")
    beyond = index >= m
    if beyond.any():
        ref_lt[beyond], ref_le[beyond], cur_lt[beyond], cur_le[beyond] = n, n, m, m
    return ref_lt / n, ref_le / n, cur_lt / m, cur_le / m


def _ks_d_presorted(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> float:
    """Two-sample KS D of two ascending, NaN-free samples, exact, in a small part of one sort.

    ``D = max |F_ref(x) - F_cur(x)|`` over every point of both samples (both ECDFs are
    right-continuous steps that only move there), and every such extreme is seen by
    :func:`_ks_d_at` at some batch value. Few distinct batch values (discrete features): all of
    them are evaluated. Otherwise a coarse-to-fine search over the sorted batch: cut it into
    blocks of :data:`_KS_BLOCK` values and evaluate the ECDFs at the block boundaries only. On
    the x-interval ``[v_start, v_end)`` of a block both ECDFs lie between their values at the two
    ends, which bounds ``|F_ref - F_cur|`` there; a block whose bound cannot beat the best exact
    value found so far is dropped, the others are cut :data:`_KS_RATIO` times finer, down to
    single values (whose interval extreme is the value at the start or just before the end).
    The result is the same maximum from the same integer counts, at about ``m / 512``
    binary searches for a continuous feature.
    """
    m = cur_sorted.size
    size = _KS_BLOCK
    if m <= size:
        return _ks_d_at(ref_sorted, cur_sorted, cur_sorted)
    # One row per block being refined; its columns are the boundaries of the sub-blocks.
    grid = np.minimum(np.arange(0, m + size, size), m)[None, :]
    # Long runs of equal values (half the block starts repeat the previous one's value) hint at
    # few distinct values; only then is the whole batch scanned for them, so a continuous
    # feature is never read in full here.
    at_starts = cur_sorted[grid[0, :-1]]
    if 2 * int(np.count_nonzero(at_starts[1:] == at_starts[:-1])) >= at_starts.size:
        new_value = cur_sorted[1:] != cur_sorted[:-1]
        if int(np.count_nonzero(new_value)) + 1 <= m // size:
            first_of_run = np.concatenate((cur_sorted[:1], cur_sorted[1:][new_value]))
            return _ks_d_at(ref_sorted, cur_sorted, first_of_run)
    found = 0.0
    while True:
        ref_lt, ref_le, cur_lt, cur_le = (
            counts.reshape(grid.shape)
            for counts in _ks_counts(ref_sorted, cur_sorted, grid.ravel())
        )
        at = ref_le - cur_le
        found = max(found, float(at.max()), float(-at.min()), float((ref_lt - cur_lt).max()))
        if size == 1:
            return found
        # On [v_start, v_end): F_ref within [ref_le(start), ref_lt(end)], F_cur within
        # [cur_le(start), cur_lt(end)].
        bound = np.maximum(ref_lt[:, 1:] - cur_le[:, :-1], cur_lt[:, 1:] - ref_le[:, :-1])
        rows, cols = np.nonzero(bound > found - 1e-12)
        if rows.size == 0:
            return found
        starts, ends = grid[rows, cols], grid[rows, cols + 1]
        size = max(size // _KS_RATIO, 1)
        steps = np.arange(0, int((ends - starts).max()) + size, size)
        grid = np.minimum(starts[:, None] + steps[None, :], ends[:, None])


def ks_statistic_sorted(ref_sorted: np.ndarray, cur: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov D, reusing an already sorted reference.

    Sorts only ``cur``; the reference ECDF is read by binary search. Equals
    ``scipy.stats.ks_2samp(ref, cur).statistic`` (both ECDFs right-continuous, evaluated at every
    point of both samples), ties included.

    Args:
        ref_sorted: Reference values, ascending, without NaN.
        cur: Current values in any order; NaN values are ignored.

    Returns:
        ``D = max_x |F_ref(x) - F_cur(x)|``.

    Raises:
        ValueError: if either sample is empty.
    """
    ordered = np.sort(np.asarray(cur, dtype=np.float64))
    ordered = ordered[: _n_before_nan(ordered)]
    ref = np.asarray(ref_sorted, dtype=np.float64)
    if ref.size == 0 or ordered.size == 0:
        raise ValueError("KS needs two non-empty samples")
    return _ks_d_presorted(ref, ordered)


_STIRLING_SERIES = (1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188)
# stirlerr(k) = ln k! - (k ln k - k + ln(2 pi k) / 2) for k < 16, where the series is not accurate.
_STIRLERR_SMALL = np.array(
    [0.0]
    + [
        float(special.gammaln(k + 1.0) - (k * math.log(k) - k + 0.5 * math.log(2 * math.pi * k)))
        for k in range(1, 16)
    ]
)


def _stirlerr(k: np.ndarray) -> np.ndarray:
    """Stirling's series error of ``ln k!`` for ``k >= 16`` (Loader 2000), to ~1e-17."""
    r = 1.0 / k
    r2 = r * r
    s0, s1, s2, s3, s4 = _STIRLING_SERIES
    return r * (s0 - r2 * (s1 - r2 * (s2 - r2 * (s3 - r2 * s4))))


def _smirnov_step(n: int, x: float) -> int:
    """Spacing of the terms :func:`_smirnov_sf` evaluates (1: every term).

    As a function of ``v`` the terms form one smooth bump whose width is at least
    ``sqrt(n) / (4 x)`` (the Gaussian width of the binomial factor around ``p_v = 1/2``) and which
    vanishes at both ends (``e^-(n x)`` and less). The sum over every integer and the sum over every
    ``h``-th integer times ``h`` are two trapezoid rules of the same integral, and by Poisson
    summation both differ from it by about ``exp(-2 (pi width / h)^2)``: at ``h`` = width / 40 that
    is far below the rounding error of the sum itself.
    """
    return max(1, math.floor(math.sqrt(n) / (4.0 * x) / _SMIRNOV_WIDTH_PER_STEP))


def _smirnov_sf(n: int, x: float) -> float:
    """One-sided one-sample ``P(D+_n >= x)`` by the Birnbaum-Tingey sum, vectorised.

    The same finite sum ``x * sum_v C(n, v) (x + v/n)^(v-1) (1 - x - v/n)^(n-v)`` that
    ``scipy.special.smirnov`` evaluates term by term in double-double arithmetic (about a second
    at n = 1e6). Each term is written as ``x / p_v * Binomial(n, p_v).pmf(v)`` with
    ``p_v = x + v/n`` and the pmf in Loader's saddle-point form (Stirling series errors plus
    ``log1p`` deviance terms), so no large logarithms cancel: relative error about 1e-13, checked
    against scipy in the tests. The terms are a smooth bump many thousands of ``v`` wide at large
    ``n``, so only every :func:`_smirnov_step`-th one is evaluated (weighted by the step), which
    changes the sum by far less than its rounding error and makes it a few hundred times cheaper.
    """
    nx = n * x
    v_max = math.floor(n - nx)
    if n - nx - v_max <= 0:  # the term with 1 - x - v/n == 0 is zero
        v_max -= 1
    # Logarithms of partial sums, added up once at the end: near n x^2 = 370 the result is
    # subnormal, and summing subnormal terms one by one would lose digits.
    logs = [n * math.log1p(-x)]  # v = 0
    stirlerr_n = float(_stirlerr(np.array(float(n)))) if n >= 16 else _STIRLERR_SMALL[n]
    const = stirlerr_n + 0.5 * math.log(n / (2 * math.pi))
    step = _smirnov_step(n, x)
    chunk = _SMIRNOV_CHUNK * step
    for start in range(1, v_max + 1, chunk):
        v = np.arange(start, min(start + chunk, v_max + 1), step, dtype=np.float64)
        w = n - v
        err_v = _stirlerr(np.maximum(v, 16.0))
        small_v = v < 16
        if small_v.any():
            err_v[small_v] = _STIRLERR_SMALL[v[small_v].astype(np.int64)]
        err_w = _stirlerr(np.maximum(w, 16.0))
        if w[-1] < 16:  # only when n * x < 16, i.e. never in the band _kstwo_sf uses
            tail = w < 16
            err_w[tail] = _STIRLERR_SMALL[w[tail].astype(np.int64)]
        log_term = (
            v * np.log1p(nx / v)
            + w * np.log1p(-nx / w)
            - 0.5 * np.log(v * w)
            + (const - err_v - err_w)
            - np.log1p(v / nx)
        )
        top = float(log_term.max())
        logs.append(top + math.log(step * float(np.exp(log_term - top).sum())))
    top = max(logs)
    return math.exp(top + math.log(math.fsum(math.exp(item - top) for item in logs)))


def _kstwo_sf(d: float, n: int) -> float:
    """``scipy.stats.kstwo.sf(d, n)``, with its one slow branch computed faster.

    For ``n > 140`` and ``2.2 <= n d^2 < 370`` scipy returns ``2 * scipy.special.smirnov(n, d)``,
    an O(n) scalar loop (0.1 s at n = 1e5, 1.2 s at n = 1e6). There the same sum is evaluated by
    :func:`_smirnov_sf` with numpy; every other branch (and n above scipy's exact-sum limit of
    1e6) is delegated to scipy itself.
    """
    if _FAST_SMIRNOV_MIN_N < n <= _SMIRNOV_MAX_COMPUTE_N and 0.0 < d < 0.5:
        nx = n * d
        if 1.0 < nx < n - 1 and 2.2 <= nx * d < 370.0:
            return min(max(2.0 * _smirnov_sf(n, d), 0.0), 1.0)
    return float(stats.kstwo.sf(d, n))


def ks_pvalue(d: float, n: int, m: int) -> float:
    """Two-sided p-value of a two-sample KS statistic, as ``scipy.stats.ks_2samp`` computes it.

    Reproduces ``ks_2samp(a, b)`` with its defaults (``alternative="two-sided"``,
    ``method="auto"``; checked against scipy 1.17) by replicating its dispatch and helpers:

    * if ``max(n, m) <= 10000`` (:data:`KS_MAX_EXACT_N`), the exact null distribution:
      ``D`` is rounded to the lattice ``h / lcm(n, m)`` and scipy's private
      ``scipy.stats._stats_py._attempt_exact_2kssamp`` counts the lattice paths (Hodges 1958);
    * otherwise, or when that computation overflows, Smirnov's asymptotic form
      ``kstwo.sf(D, round(n m / (n + m)))``, the one-sample Kolmogorov distribution at the
      effective sample size. Its slow branch is evaluated by a vectorised copy of the same sum
      (see :func:`_kstwo_sf`); all other branches are scipy's own code.

    Args:
        d: The KS statistic, in ``[0, 1]``.
        n: Size of the first sample (non-missing values).
        m: Size of the second sample.

    Returns:
        The p-value, in ``[0, 1]``.

    Raises:
        ValueError: if a sample size is not positive.
    """
    if n <= 0 or m <= 0:
        raise ValueError(f"sample sizes must be positive, got {n} and {m}")
    d = float(d)
    if max(n, m) <= KS_MAX_EXACT_N and _attempt_exact_2kssamp is not None:
        success, d_lattice, prob = _attempt_exact_2kssamp(n, m, math.gcd(n, m), d, "two-sided")
        d = float(d_lattice)
        if success:
            return float(np.clip(prob, 0.0, 1.0))
    en = float(n) * float(m) / (float(n) + float(m))
    return float(np.clip(_kstwo_sf(d, int(np.round(en))), 0.0, 1.0))


def _category_tables(
    ref_counts: Mapping[str, int], cur_counts: Mapping[str, int]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    keys = list(dict.fromkeys([*ref_counts, *cur_counts]))
    ref = np.array([ref_counts.get(key, 0) for key in keys], dtype=np.float64)
    cur = np.array([cur_counts.get(key, 0) for key in keys], dtype=np.float64)
    seen = (ref + cur) > 0
    if ref.sum() <= 0 or cur.sum() <= 0:
        raise ValueError("both samples need at least one row")
    return [key for key, keep in zip(keys, seen, strict=True) if keep], ref[seen], cur[seen]


def chi2_categorical(
    ref_counts: Mapping[str, int], cur_counts: Mapping[str, int]
) -> tuple[float, float, float]:
    """Chi-square test of homogeneity and PSI between two category distributions.

    The 2 x k table has one column per category seen in either sample: categories new in the
    batch and the :data:`MISSING_CATEGORY` bucket are ordinary columns. The test is
    ``scipy.stats.chi2_contingency(table, correction=False)`` (Pearson's statistic, no Yates
    correction, so a two-category feature is tested like any other).

    Args:
        ref_counts: Rows per category in the reference.
        cur_counts: Rows per category in the current batch.

    Returns:
        ``(statistic, p_value, psi)``; PSI is over the category shares with :data:`PSI_EPSILON`,
        so a category absent from the reference adds ``(c - eps) * ln(c / eps)``. With a single
        category overall the result is ``(0.0, 1.0, 0.0)``.

    Raises:
        ValueError: if either side has no rows.
    """
    _, ref, cur = _category_tables(ref_counts, cur_counts)
    index = psi(ref / ref.sum(), cur / cur.sum())
    if ref.size < 2:
        return 0.0, 1.0, index
    result = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
    return float(result.statistic), float(result.pvalue), index


def total_variation(ref_counts: Mapping[str, int], cur_counts: Mapping[str, int]) -> float:
    """Total variation distance ``0.5 * sum |c - r|`` between two category distributions.

    It is the share of probability mass that moved, the categorical counterpart of the KS D,
    and does not depend on the sample sizes (unlike Cramér's V of the 2 x k table, which shrinks
    as the reference grows relative to the batch).

    Args:
        ref_counts: Rows per category in the reference.
        cur_counts: Rows per category in the current batch.

    Returns:
        The distance, in ``[0, 1]``.
    """
    _, ref, cur = _category_tables(ref_counts, cur_counts)
    return float(0.5 * np.abs(cur / cur.sum() - ref / ref.sum()).sum())


def adjust_pvalues(pvalues: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """Correct a family of p-values for multiple testing.

    Args:
        pvalues: The raw p-values.
        method: ``"none"``; ``"bonferroni"`` (``min(1, k p)``); ``"holm"`` (step-down,
            family-wise error control: ``max_{j <= i} min(1, (k - j + 1) p_(j))``); or ``"bh"``
            (Benjamini-Hochberg false discovery rate: ``min_{j >= i} min(1, k p_(j) / j)``,
            as ``scipy.stats.false_discovery_control``).

    Returns:
        Adjusted p-values, in the input order.

    Raises:
        ValueError: for an unknown method.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    k = p.size
    if method not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {method!r}")
    if method == "none" or k == 0:
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * k, 1.0)
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adjusted = np.maximum.accumulate(ranked * (k - np.arange(k)))
    else:  # bh
        adjusted = ranked * (k / np.arange(1, k + 1))
        adjusted = np.minimum.accumulate(adjusted[::-1])[::-1]
    out = np.empty(k)
    out[order] = np.clip(adjusted, 0.0, 1.0)
    return out


# ---------------------------------------------------------------------------------------------
# Policy and result
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Per batch
# ---------------------------------------------------------------------------------------------


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


def compute_drift(
    profile: ReferenceProfile,
    current: pd.DataFrame,
    policy: DriftPolicy = DriftPolicy(),
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
