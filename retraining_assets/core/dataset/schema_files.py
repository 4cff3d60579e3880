"""The resolved schema of a dataset as a file: beside its configuration, never among the batches.

The schema (the validation rules of every batch) is configuration, not data: it is written
beside the file holding the dataset mapping, as ``<that file's stem>.schema.json``
(:func:`schema_file_for`; ``retraining.yaml`` -> ``retraining.schema.json``), so a file dropped
among the batches can never change the rules.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from retraining_assets.core.cadence import CadenceError, check_frequency
from retraining_assets.core.dataset.config import DatasetConfig
from retraining_assets.core.dataset.errors import DatasetConfigError
from retraining_assets.fileio import write_atomic
from retraining_assets.schemas import DatasetSchema

#: Name of the schema file older releases wrote into the batch folder; never read any more.
LEGACY_SCHEMA_FILE = "_schema.json"
#: Suffix of the resolved schema written beside a dataset configuration file.
SCHEMA_SUFFIX = ".schema.json"


def schema_to_dict(schema: DatasetSchema) -> dict[str, Any]:
    """A JSON-ready dict of ``schema`` (tuples as lists)."""
    data = dataclasses.asdict(schema)
    data["numeric_ranges"] = {k: list(v) for k, v in schema.numeric_ranges.items()}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def schema_from_dict(data: Mapping[str, Any]) -> DatasetSchema:
    """The inverse of :func:`schema_to_dict`."""
    return DatasetSchema(
        timestamp=data["timestamp"],
        target=data["target"],
        numeric_features=tuple(data["numeric_features"]),
        categorical_features=tuple(data["categorical_features"]),
        id_column=data.get("id_column"),
        numeric_ranges={k: (float(v[0]), float(v[1])) for k, v in data["numeric_ranges"].items()},
        required_non_null=tuple(data.get("required_non_null", ())),
        min_rows=int(data.get("min_rows", DatasetSchema.min_rows)),
    )


def schema_file_for(config: DatasetConfig | Path | str) -> Path:
    """Where the resolved schema of a dataset configuration lives: beside its file.

    ``conf/orders.yaml`` -> ``conf/orders.schema.json``; ``retraining.yaml`` (a ``dataset:``
    mapping inline) -> ``retraining.schema.json``. A configuration built in code (no file) uses
    ``<base_dir>/dataset.schema.json``.
    """
    if isinstance(config, DatasetConfig):
        origin = Path(config.origin)
        if config.origin == "<config>" or not origin.suffix:
            return config.base_dir / f"dataset{SCHEMA_SUFFIX}"
        path = origin
    else:
        path = Path(config)
    stem = path.name.rsplit(".", 1)[0] if path.suffix in (".yaml", ".yml") else path.name
    return path.with_name(f"{stem}{SCHEMA_SUFFIX}")


def write_schema_file(schema: DatasetSchema, path: Path, *, frequency: str = "weekly") -> Path:
    """Write ``schema`` (and the batch ``frequency``) as JSON to ``path`` (stable bytes, atomic).

    The path should sit with the project's configuration (:func:`schema_file_for`), never in
    a batch folder.
    """
    data = {**schema_to_dict(schema), "frequency": frequency}
    return write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def load_schema_file(path: Path) -> tuple[DatasetSchema, str]:
    """The schema and batch frequency :func:`write_schema_file` recorded in ``path``.

    Raises:
        DatasetConfigError: if the file is missing, not JSON, or not a schema.
    """
    try:
        data = json.loads(Path(path).read_text())
        schema = schema_from_dict(data)
        frequency = str(data.get("frequency", "weekly"))
    except FileNotFoundError:
        raise DatasetConfigError(
            f"{path}: no resolved schema: run `retraining build-batches` to write it"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DatasetConfigError(
            f"{path}: not a schema file written by build-batches: {exc}"
        ) from None
    try:
        frequency = check_frequency(frequency)
    except CadenceError as exc:
        raise DatasetConfigError(f"{path}: frequency: {exc}") from None
    return schema, frequency


def read_schema_file(path: Path) -> DatasetSchema | None:
    """The schema recorded in the schema file ``path``, or ``None`` if there is none.

    Only a schema file is read, never a folder's ``_schema.json``: batch folders hold data.
    """
    path = Path(path)
    if not path.is_file():
        return None
    return load_schema_file(path)[0]
