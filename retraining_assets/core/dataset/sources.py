"""Read the rows a dataset configuration points at: a CSV or parquet file, a folder, or the demo."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from retraining_assets.core.dataset.config import NYCFLIGHTS13_SOURCE, DatasetConfig
from retraining_assets.core.dataset.errors import DatasetConfigError, listing

_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz")
_PARQUET_SUFFIXES = (".parquet", ".pq")


def _source_files(config: DatasetConfig) -> list[Path]:
    assert isinstance(config.source, Path)
    source = config.source
    if source.is_dir():
        files = sorted(
            p
            for p in source.iterdir()
            if p.is_file()
            and not p.name.startswith((".", "_"))
            and p.name.lower().endswith((*_CSV_SUFFIXES, *_PARQUET_SUFFIXES))
        )
        if not files:
            raise DatasetConfigError(
                f"{config.where('source')}: folder {source} holds no .csv or .parquet file"
            )
        return files
    if not source.exists():
        raise DatasetConfigError(f"{config.where('source')}: {source} does not exist")
    if not source.name.lower().endswith((*_CSV_SUFFIXES, *_PARQUET_SUFFIXES)):
        raise DatasetConfigError(
            f"{config.where('source')}: {source.name}: expected a .csv or .parquet file "
            "(or a folder of them)"
        )
    return [source]


def read_source(config: DatasetConfig) -> pd.DataFrame:
    """Read the configured source: one file, a folder of files (concatenated), or the demo.

    CSV or parquet is chosen by suffix (``.csv``, ``.csv.gz``, ... / ``.parquet``, ``.pq``). A
    folder's files (hidden and ``_``-prefixed ones skipped) are read in name order and must all
    have the same columns.

    Raises:
        DatasetConfigError: if the source is missing, empty, unreadable, or its files disagree
            on the columns.
    """
    if config.source == NYCFLIGHTS13_SOURCE:
        from retraining_assets.core.demo_data import load_flights

        try:
            return load_flights()
        except FileNotFoundError as exc:
            raise DatasetConfigError(f"{config.where('source')}: {exc}") from None
    frames: list[pd.DataFrame] = []
    first: Path | None = None
    for path in _source_files(config):
        try:
            if path.name.lower().endswith(_PARQUET_SUFFIXES):
                frame = pd.read_parquet(path)
            else:
                frame = pd.read_csv(path, low_memory=False)
        except (OSError, ValueError) as exc:
            raise DatasetConfigError(
                f"{config.where('source')}: cannot read {path}: {exc}"
            ) from None
        if frames and list(frame.columns) != list(frames[0].columns):
            assert first is not None
            raise DatasetConfigError(
                f"{config.where('source')}: {path.name} has columns "
                f"{listing(frame.columns)} but {first.name} has {listing(frames[0].columns)}"
            )
        first = first or path
        frames.append(frame)
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)
