"""Batch files: read, write atomically, list, and collect a training window.

A batch is one file of time-stamped rows (``<batch_id>.parquet`` or ``.csv``). Batch ids sort in
time order (the demo uses the ISO date of the week's Monday), so the folder listing is the history.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from retraining_assets.settings import BATCH_COLUMN, SPLIT_COLUMN, DatasetSchema

BATCH_SUFFIXES = (".parquet", ".csv")


class BatchError(ValueError):
    """A batch file that cannot be used, with the reason in the message."""


def list_batches(directory: Path) -> list[str]:
    """Batch ids found in ``directory``, in time order (hidden and partial files ignored)."""
    if not directory.exists():
        return []
    ids = {
        p.stem
        for p in directory.iterdir()
        if p.is_file() and p.suffix in BATCH_SUFFIXES and not p.name.startswith((".", "_"))
    }
    return sorted(ids)


def batch_path(directory: Path, batch_id: str) -> Path:
    """The file of ``batch_id`` in ``directory`` (parquet preferred over csv)."""
    for suffix in BATCH_SUFFIXES:
        candidate = directory / f"{batch_id}{suffix}"
        if candidate.exists():
            return candidate
    raise BatchError(f"no batch file for {batch_id!r} in {directory}")


def read_batch(path: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read one batch file; ``columns`` projects (only those columns are read from parquet)."""
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path, columns=list(columns) if columns else None)
        frame = pd.read_csv(path)
        return frame[list(columns)] if columns else frame
    except (OSError, ValueError, KeyError) as exc:
        raise BatchError(f"cannot read batch {path.name}: {exc}") from exc


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` as parquet so that readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@dataclass(frozen=True)
class Window:
    """Which batches a training dataset is built from."""

    train_batches: tuple[str, ...]
    test_batches: tuple[str, ...]

    @property
    def all_batches(self) -> tuple[str, ...]:
        """Train then test batch ids."""
        return (*self.train_batches, *self.test_batches)


def select_window(
    available: Sequence[str], as_of: str | None, window_batches: int, test_batches: int = 1
) -> Window:
    """Choose a rolling window of batches for training and testing.

    The ``test_batches`` latest batches up to ``as_of`` are the test set (the most recent labelled
    period), the ``window_batches`` before them the training set.

    Raises:
        BatchError: if ``as_of`` is unknown or there are not enough batches.
    """
    ordered = sorted(available)
    if as_of:
        if as_of not in ordered:
            raise BatchError(f"as_of batch {as_of!r} is not among the {len(ordered)} known batches")
        ordered = ordered[: ordered.index(as_of) + 1]
    if window_batches < 1 or test_batches < 1:
        raise BatchError("window_batches and test_batches must be at least 1")
    if len(ordered) < test_batches + 1:
        raise BatchError(
            f"need at least {test_batches + 1} batches (training + test), found {len(ordered)}"
        )
    test = ordered[-test_batches:]
    train = ordered[:-test_batches][-window_batches:]
    return Window(train_batches=tuple(train), test_batches=tuple(test))


def collect_dataset(
    frames: dict[str, pd.DataFrame], window: Window, schema: DatasetSchema
) -> pd.DataFrame:
    """Concatenate the window's batches with ``__split__`` (``train``/``test``) and ``__batch__``.

    Rows keep the schema's columns only, in schema order, sorted by timestamp (then id) so that the
    same inputs always give the same bytes and so the same DVC md5.
    """
    parts = []
    for split, ids in (("train", window.train_batches), ("test", window.test_batches)):
        for batch_id in ids:
            frame = frames[batch_id]
            missing = [c for c in schema.columns if c not in frame.columns]
            if missing:
                raise BatchError(f"batch {batch_id} lacks columns {missing}")
            part = frame[schema.columns].copy()
            part[SPLIT_COLUMN] = split
            part[BATCH_COLUMN] = batch_id
            parts.append(part)
    dataset = pd.concat(parts, ignore_index=True)
    del parts  # the concatenation is the only copy kept
    # One stable lexicographic order: train before test, then time, then id ("train" < "test"
    # is not alphabetical, hence the explicit key). np.lexsort sorts by the last key first.
    keys = [dataset[schema.timestamp].to_numpy(), (dataset[SPLIT_COLUMN] == "test").to_numpy()]
    if schema.id_column:
        keys.insert(0, dataset[schema.id_column].to_numpy())
    order = np.lexsort(keys)
    return dataset.take(order).reset_index(drop=True)


FEEDBACK_DIR = "feedback"


def feedback_path(directory: Path, batch_id: str) -> Path:
    """Where the delayed labels of ``batch_id`` arrive: ``<batches>/feedback/<id>.parquet``."""
    return directory / FEEDBACK_DIR / f"{batch_id}.parquet"


def has_labels(directory: Path, batch_id: str, schema: DatasetSchema) -> bool:
    """Whether ``batch_id`` is labelled: its file has the target column, or feedback arrived.

    Reads only the parquet footer (or the csv header), never the rows.
    """
    if feedback_path(directory, batch_id).exists():
        return True
    path = batch_path(directory, batch_id)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return schema.target in pq.read_schema(path).names
    return schema.target in pd.read_csv(path, nrows=0).columns


def attach_labels(
    frame: pd.DataFrame, feedback: pd.DataFrame | None, schema: DatasetSchema
) -> pd.DataFrame:
    """Return ``frame`` with its target column, joined from ``feedback`` by id when given.

    Labels in the feedback file win over labels in the batch (they are the later, corrected
    truth). Rows without feedback keep a missing label, which validation then reports.

    Raises:
        BatchError: if feedback is given but the schema has no id column to join on, or the
            feedback lacks the id or target column, or has duplicate ids.
    """
    if feedback is None:
        if schema.target not in frame.columns:
            raise BatchError(f"no labels: column {schema.target!r} absent and no feedback file")
        return frame
    key = schema.id_column
    if key is None:
        raise BatchError("feedback labels need an id column in the schema to join on")
    missing = [c for c in (key, schema.target) if c not in feedback.columns]
    if missing:
        raise BatchError(f"feedback file lacks columns {missing}")
    if feedback[key].duplicated().any():
        raise BatchError(f"feedback file has duplicate {key!r} values")
    labels = feedback.set_index(key)[schema.target]
    out = frame.drop(columns=[schema.target], errors="ignore").copy()
    out[schema.target] = out[key].map(labels)
    return out[
        [c for c in schema.columns if c in out.columns]
        + [c for c in out.columns if c not in schema.columns]
    ]


def read_labelled_batch(
    directory: Path, batch_id: str, schema: DatasetSchema, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Read a batch with its labels (from the batch itself or its feedback file)."""
    frame = read_batch(batch_path(directory, batch_id))
    fb_path = feedback_path(directory, batch_id)
    feedback = read_batch(fb_path) if fb_path.exists() else None
    frame = attach_labels(frame, feedback, schema)
    return frame[list(columns)] if columns else frame
