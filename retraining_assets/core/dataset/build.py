"""Write a configured dataset as one parquet batch per period, and its schema beside the config."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from retraining_assets.core.batches import write_parquet_atomic
from retraining_assets.core.cadence import parse_cadence
from retraining_assets.core.dataset.config import DatasetConfig
from retraining_assets.core.dataset.resolve import resolve
from retraining_assets.core.dataset.schema_files import (
    LEGACY_SCHEMA_FILE,
    schema_file_for,
    write_schema_file,
)
from retraining_assets.core.dataset.sources import read_source


def period_start(timestamps: pd.Series, frequency: str) -> pd.Series:
    """The start of the period holding each timestamp.

    Args:
        timestamps: Naive datetimes.
        frequency: A cadence: ``daily`` (the day), ``weekly`` (its Monday), ``monthly`` (the
            1st), ``yearly``, ``2W``, ``6h``, ... (see :mod:`retraining_assets.core.cadence`).

    Returns:
        The period starts, same index.

    Raises:
        ValueError: on an unknown frequency (a ``CadenceError`` listing the accepted forms).
    """
    return parse_cadence(frequency).floor(timestamps)


def build_batches(
    config: DatasetConfig,
    out_dir: Path,
    *,
    max_batches: int | None = None,
    notes: list[str] | None = None,
    schema_file: Path | None = None,
) -> list[Path]:
    """Write the configured dataset as one parquet batch per period.

    Each batch is ``<period start as YYYY-MM-DD>.parquet`` (``YYYY-MM-DDTHHMM`` below a day)
    holding exactly the schema's columns, sorted by timestamp then id; the output is
    byte-for-byte the same on every run. The resolved schema is written to ``schema_file``
    (default :func:`schema_file_for` the configuration's file), never into ``out_dir``. Any
    other ``*.parquet`` file in ``out_dir`` (and a ``_schema.json`` an older release left
    there) is removed, so the folder holds exactly this output.

    Args:
        config: The dataset configuration.
        out_dir: Folder to write into (created if needed).
        max_batches: Keep only the first ``max_batches`` periods (all when ``None``).
        notes: If given, remarks from :func:`resolve` and small batches are appended.
        schema_file: Where to write the resolved schema (see above).

    Returns:
        The written batch files, in time order.

    Raises:
        DatasetConfigError: if the source or its data do not fit the configuration.
        ValueError: if ``max_batches`` is smaller than 1.
    """
    if max_batches is not None and max_batches < 1:
        raise ValueError(f"max_batches must be at least 1, got {max_batches}")
    schema, frame = resolve(config, read_source(config), notes=notes)
    cadence = parse_cadence(config.frequency)
    starts = cadence.floor(frame[schema.timestamp])
    written: list[Path] = []
    small: list[str] = []
    for start, part in frame.groupby(starts, sort=True):
        if max_batches is not None and len(written) >= max_batches:
            break
        batch_id = cadence.batch_id(pd.Timestamp(start))
        if len(part) < schema.min_rows:
            small.append(f"{batch_id} ({len(part)})")
        path = out_dir / f"{batch_id}.parquet"
        written.append(write_parquet_atomic(part.reset_index(drop=True), path))
    keep = {p.name for p in written}
    for stale in out_dir.glob("*.parquet"):
        if stale.name not in keep:
            stale.unlink()
    (out_dir / LEGACY_SCHEMA_FILE).unlink(missing_ok=True)
    write_schema_file(schema, schema_file or schema_file_for(config), frequency=config.frequency)
    if notes is not None and small:
        notes.append(
            f"{len(small)} of {len(written)} batches have fewer than min_rows={schema.min_rows} "
            f"rows: {', '.join(small[:5])}{', ...' if len(small) > 5 else ''}"
        )
    return written
