"""Reading a feature column: numeric values with NaN for missing, and category counts.

Shared by the reference profile (:mod:`.profile`) and the per-batch comparison
(:mod:`.compare`), so that both sides read a column the same way.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import pandas as pd

#: Category label that stands for a missing value (None, NaN, NA) of a categorical feature.
MISSING_CATEGORY = "__missing__"
# Counting an object column by object identity (see _object_counts) stops and falls back to
# hashing the values when there are more distinct objects than this.
_MAX_DISTINCT_OBJECTS = 4096


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
