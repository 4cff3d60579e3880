"""Validation results kept by what decides them: a dataset validated once is not validated again.

The key is the dataset's DVC md5 (its exact bytes), the schema the suite is built from, the
suite's options and the code version of the validating step. Only passing results are kept: a
failure is always measured again, and a hit returns the very outcomes the first validation
recorded. A replay shares one folder between its policies, which often validate byte-identical
training windows; one process at a time validates a key, so a policy that reaches a window
another is validating waits for that result instead of running the suite again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from retraining_assets.core.validation import ExpectationOutcome, ValidationResult
from retraining_assets.fileio import single_flight, write_atomic
from retraining_assets.settings import DatasetSchema

#: Bumped when the layout of an entry changes.
CACHE_VERSION = 1


def validation_key(
    *, dataset_md5: str, schema: DatasetSchema, options: Mapping[str, Any], code_version: str
) -> str:
    """The sha256 naming one validation: its inputs as canonical JSON."""
    parts = {
        "cache": CACHE_VERSION,
        "dataset_md5": dataset_md5,
        "schema": dataclasses.asdict(schema),
        "options": dict(options),
        "code_version": code_version,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _load(path: Path) -> ValidationResult | None:
    """The result kept in ``path``, or ``None`` (missing or unreadable: a miss)."""
    try:
        data = json.loads(path.read_text())
        return ValidationResult(
            success=bool(data["success"]),
            outcomes=tuple(ExpectationOutcome(**o) for o in data["outcomes"]),
            n_rows=int(data["n_rows"]),
            duration_s=float(data["duration_s"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def validate_cached(
    root: str | Path | None, key: str, validate: Callable[[], ValidationResult]
) -> ValidationResult:
    """The passing result kept under ``key`` in ``root``, else ``validate()`` (kept if it passed).

    ``root`` ``None`` or empty: no cache, always ``validate()``. An unreadable entry is a miss.
    While one process validates a key, another asking for it waits for that result (and, if it
    failed, so was not kept, validates again itself).
    """
    if not root:
        return validate()
    folder = Path(root)
    path = folder / f"{key}.json"

    def validate_and_keep() -> ValidationResult:
        result = validate()
        if result.success:
            folder.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(dataclasses.asdict(result), default=str))
        return result

    return single_flight(folder / f".{key}.lock", lambda: _load(path), validate_and_keep)
