"""The reference summary: built once per model by :func:`build_reference`, stored with it.

Per numeric feature the sorted non-missing values, PSI bin edges at the reference quantiles
and the reference bin proportions; per categorical feature the category counts. The profile
is stored next to the model (:meth:`ReferenceProfile.to_npz`, plain ``np.savez``, no pickle).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from retraining_assets.core.drift.columns import (
    MISSING_CATEGORY,
    _n_before_nan,
    _numeric_values,
    category_counts,
)
from retraining_assets.fileio import atomic_path

_PROFILE_FORMAT = "retraining_assets.drift.profile/1"


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
        # np.savez on an open handle: given a name it would append ".npz" to the temporary file.
        with atomic_path(target) as tmp, tmp.open("wb") as handle:
            np.savez(handle, allow_pickle=False, **self._arrays())
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
