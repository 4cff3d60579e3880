"""The one error of dataset configurations, and how its messages name keys, columns and values.

Every message starts with the configuration file and the key (``retraining.yaml:
dataset.timestamp: ...``), lists what is available when a name is unknown, and suggests the
closest name when there is one.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Longest list of column names a message spells out.
_MAX_LISTED = 40


class DatasetConfigError(ValueError):
    """A dataset configuration, or the data it describes, that cannot be used.

    The message names the configuration file (when there is one), the key and the offending
    value, e.g. ``retraining.yaml: dataset.timestamp: column 'ts' not found; available: a, b``.
    """


def where(origin: str, section: str, key: str) -> str:
    """Message prefix naming the file and the key path, e.g. ``retraining.yaml: dataset.target``."""
    path = f"{section}.{key}" if section and key else (section or key)
    return f"{origin}: {path}" if path else origin


def kind(value: Any) -> str:
    """What a value is, for 'expected X, got ...' (``nothing`` for ``None``)."""
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"


def listing(columns: Sequence[Any] | pd.Index) -> str:
    """Column names separated by commas, cut after a screenful."""
    names = [str(c) for c in columns]
    if len(names) <= _MAX_LISTED:
        return ", ".join(names)
    return f"{', '.join(names[:_MAX_LISTED])}, ... ({len(names) - _MAX_LISTED} more)"


def suggest(name: str, candidates: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``candidates``, or an empty string."""
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def show(value: Any) -> str:
    """A data value as a message shows it: strings quoted, numpy scalars as python ones."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value) if isinstance(value, str) else str(value)
