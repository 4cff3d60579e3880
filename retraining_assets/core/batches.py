"""Batch files: read safely, write atomically, list, quarantine, and collect a training window.

A batch is one file of time-stamped rows (``<batch_id>.parquet`` or ``.csv``) in the batch folder,
a local folder or an object-store prefix (:class:`~retraining_assets.storage.ObjectStore`). Batch
ids are single safe names (letters, digits, ``._=-``, see :func:`check_batch_id`): a partition key
such as ``../../x`` or ``/abs/path`` is refused before anything is read or written. Symbolic links
are refused, whatever they point at.

A batch that fails ingestion is moved aside into ``_quarantine/`` with a JSON reason file
(:func:`quarantine`), so it never enters a listing again; only a file put back under its name is
validated again. Training reads a batch only through :func:`read_validated_batch`, which refuses
bytes whose md5 differs from the one recorded when the batch passed validation.

Every failure on input data raises :class:`BatchError` (or a subclass) with one clear sentence:
whatever the bytes hold, reading never raises anything else.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retraining_assets.fileio import atomic_path
from retraining_assets.settings import BATCH_COLUMN, SPLIT_COLUMN, DatasetSchema
from retraining_assets.storage import (
    InvalidKey,
    KeyNotFound,
    LocalStore,
    ObjectStore,
    StoreError,
    check_name,
    open_store,
)

BATCH_SUFFIXES = (".parquet", ".csv")
#: Sub-folder of the batch folder where late labels arrive: ``feedback/<batch_id>.parquet``.
FEEDBACK_DIR = "feedback"
#: Sub-folder of the batch folder where refused files are moved, each with a ``.reason.json``.
QUARANTINE_DIR = "_quarantine"
_SAFE_STEM = re.compile(r"^[A-Za-z0-9_.=-]+$")


class BatchError(ValueError):
    """A batch file that cannot be used, with the reason in the message."""


class BatchNotFound(BatchError):
    """No file for the batch id (never arrived, or already quarantined)."""


class InvalidBatchId(BatchError):
    """A batch id (partition key) that is not one safe name; nothing was read or written."""


class BatchChanged(BatchError):
    """The file's bytes differ from those that passed validation (replaced since)."""


class FeedbackError(BatchError):
    """A late-label (feedback) file that cannot be used."""


def check_batch_id(batch_id: str) -> str:
    """Return ``batch_id`` if it is one safe name, else raise :class:`InvalidBatchId`."""
    try:
        return check_name(batch_id, "batch id")
    except InvalidKey as exc:
        raise InvalidBatchId(str(exc)) from None


def batch_store(source: Path | str | ObjectStore) -> ObjectStore:
    """The object store of a batch source: a store as is, a folder path, or ``s3://bucket/prefix``."""
    if isinstance(source, ObjectStore):
        return source
    return open_store(source)


def _local_root(store: ObjectStore) -> Path | None:
    return store.root if isinstance(store, LocalStore) else None


@dataclass(frozen=True)
class BatchListing:
    """What the batch folder holds.

    Attributes:
        ids: Usable batch ids, sorted.
        refused: File name -> why it is not a batch (symbolic link, unsafe name).
        signatures: Batch id -> ``size:mtime_ns`` of its file (``size:mtime_ns:etag`` on S3), so
            a sensor notices a new file, or one replaced under the same name.
        links: Batch ids (safe names) whose file is a symbolic link: refused, to be quarantined.
    """

    ids: list[str]
    refused: dict[str, str] = field(default_factory=dict)
    signatures: dict[str, str] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)


def _is_candidate(name: str, suffixes: Sequence[str] = BATCH_SUFFIXES) -> bool:
    return not name.startswith((".", "_")) and any(name.endswith(s) for s in suffixes)


def scan_batches(source: Path | str | ObjectStore, sub: str = "") -> BatchListing:
    """List the batch files of ``source`` (or of its sub-folder ``sub``, e.g. ``feedback``).

    Hidden (``.``), partial (``_``) and non-batch files are ignored; symbolic links and names that
    are not safe batch ids are reported in ``refused``, never listed.
    """
    store = batch_store(source)
    root = _local_root(store)
    ids: set[str] = set()
    refused: dict[str, str] = {}
    signatures: dict[str, str] = {}
    links: set[str] = set()
    if root is not None:
        folder = root / sub if sub else root
        if folder.is_symlink() or not folder.is_dir():
            return BatchListing([], {sub: "symbolic link"} if folder.is_symlink() else {})
        with os.scandir(folder) as entries:
            for entry in entries:
                if not _is_candidate(entry.name):
                    continue
                stem = entry.name.rsplit(".", 1)[0]
                if entry.is_symlink():
                    refused[entry.name] = "symbolic link (refused: it could point anywhere)"
                    if _SAFE_STEM.fullmatch(stem) and stem not in (".", ".."):
                        links.add(stem)
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    check_batch_id(stem)
                except InvalidBatchId as exc:
                    refused[entry.name] = str(exc)
                    continue
                ids.add(stem)
                info = entry.stat(follow_symlinks=False)
                signatures[stem] = f"{info.st_size}:{info.st_mtime_ns}"
    else:
        prefix = f"{sub}/" if sub else ""
        try:
            keys = store.signatures(sub) if sub else store.signatures()
        except StoreError as exc:
            raise BatchError(f"cannot list batches in {store.location}: {exc}") from None
        for key, signature in keys.items():
            name = key[len(prefix) :] if prefix and key.startswith(prefix) else key
            if "/" in name or not _is_candidate(name):
                continue
            stem = name.rsplit(".", 1)[0]
            try:
                ids.add(check_batch_id(stem))
            except InvalidBatchId as exc:
                refused[name] = str(exc)
                continue
            signatures[stem] = signature
    return BatchListing(sorted(ids), refused, signatures, sorted(links))


def list_batches(source: Path | str | ObjectStore) -> list[str]:
    """Batch ids found in ``source``, sorted (hidden, partial, linked and unsafe files ignored)."""
    return scan_batches(source).ids


def list_feedback(source: Path | str | ObjectStore) -> list[str]:
    """Batch ids with a feedback (late labels) file in ``source``'s ``feedback/`` folder."""
    return scan_batches(source, FEEDBACK_DIR).ids


def batch_key(source: Path | str | ObjectStore, batch_id: str) -> str:
    """The file name (store key) of ``batch_id``: ``.parquet`` preferred over ``.csv``.

    Raises:
        InvalidBatchId: if ``batch_id`` is not one safe name (nothing is touched).
        BatchNotFound: if no file exists.
    """
    check_batch_id(batch_id)
    store = batch_store(source)
    root = _local_root(store)
    for suffix in BATCH_SUFFIXES:
        key = f"{batch_id}{suffix}"
        if root is not None:
            if (root / key).is_symlink() or (root / key).exists():
                return key
        elif store.exists(key):
            return key
    where = store.location
    raise BatchNotFound(f"no batch file for {batch_id!r} in {where} (.parquet or .csv)")


def batch_path(directory: Path, batch_id: str) -> Path:
    """The file of ``batch_id`` in the local folder ``directory`` (parquet preferred over csv).

    Raises:
        InvalidBatchId: if ``batch_id`` is not one safe name.
        BatchNotFound: if there is no file.
        BatchError: if the file is a symbolic link.
    """
    path = Path(directory) / batch_key(Path(directory), batch_id)
    if path.is_symlink():
        raise BatchError(f"{path.name} in {directory} is a symbolic link: refused")
    return path


def feedback_key(batch_id: str) -> str:
    """The store key of the late labels of ``batch_id``: ``feedback/<id>.parquet``."""
    return f"{FEEDBACK_DIR}/{check_batch_id(batch_id)}.parquet"


def feedback_path(directory: Path, batch_id: str) -> Path:
    """Where the delayed labels of ``batch_id`` arrive: ``<batches>/feedback/<id>.parquet``."""
    return Path(directory) / feedback_key(batch_id)


@dataclass(frozen=True)
class RawBatch:
    """The bytes of one batch file, read once (parsing and hashing use the same bytes).

    Attributes:
        batch_id: The batch id.
        key: File name in the batch folder (``<id>.parquet``, ``<id>.csv``, ``feedback/<id>...``).
        data: The file's bytes.
        md5: MD5 of ``data`` (what DVC records for a file).
    """

    batch_id: str
    key: str
    data: bytes
    md5: str


def _read_key(store: ObjectStore, key: str) -> bytes:
    try:
        return store.get(key)
    except KeyNotFound:
        raise BatchNotFound(f"{key} not found in {store.location}") from None
    except StoreError as exc:
        # LocalStore refuses symbolic links (a link to /etc/passwd is never opened).
        raise BatchError(f"{key}: {exc}") from None
    except OSError as exc:
        raise BatchError(f"{key}: cannot read: {exc.strerror or exc}") from None


def read_raw(source: Path | str | ObjectStore, batch_id: str) -> RawBatch:
    """Read the bytes of ``batch_id``'s file (never following a symbolic link).

    Raises:
        InvalidBatchId, BatchNotFound, BatchError: see :func:`batch_key`; a link or an I/O error.
    """
    store = batch_store(source)
    key = batch_key(store, batch_id)
    data = _read_key(store, key)
    return RawBatch(batch_id, key, data, hashlib.md5(data, usedforsecurity=False).hexdigest())


def read_raw_feedback(source: Path | str | ObjectStore, batch_id: str) -> RawBatch | None:
    """The bytes of ``batch_id``'s feedback file, or ``None`` if there is none."""
    store = batch_store(source)
    key = feedback_key(batch_id)
    root = _local_root(store)
    if root is not None:
        if not (root / key).is_symlink() and not (root / key).exists():
            return None
    elif not store.exists(key):
        return None
    try:
        data = _read_key(store, key)
    except BatchNotFound:
        return None
    except BatchError as exc:
        raise FeedbackError(str(exc)) from None
    return RawBatch(batch_id, key, data, hashlib.md5(data, usedforsecurity=False).hexdigest())


def parse_batch(
    data: bytes,
    name: str,
    schema: DatasetSchema | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Parse the bytes of a batch file (parquet or CSV by ``name``'s suffix) into a frame.

    CSV is read as UTF-8 (a byte-order mark is allowed); with a ``schema``, its categorical
    features stay strings and its timestamp column is parsed (ISO 8601; values with a UTC offset
    are converted to UTC, then made naive like the rest).

    Args:
        data: The file's bytes.
        name: The file name (for the format and the messages).
        schema: The dataset schema, for CSV typing.
        columns: Only these columns (all must exist).

    Raises:
        BatchError: whatever is wrong with the bytes (empty, truncated, another format, not
            UTF-8, unparseable timestamps, missing columns), in one sentence naming the file.
    """
    if not data:
        raise BatchError(f"{name} is empty (0 bytes)")
    try:
        if name.endswith(".parquet"):
            if data[:4] != b"PAR1" or data[-4:] != b"PAR1":
                raise BatchError(
                    f"{name} is not a parquet file ({len(data)} bytes without the PAR1 markers: "
                    "truncated, or another format renamed .parquet)"
                )
            import pyarrow.parquet as pq

            names = pq.ParquetFile(io.BytesIO(data)).schema_arrow.names
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise BatchError(f"{name}: columns {twice} appear more than once (duplicated)")
            frame = pd.read_parquet(io.BytesIO(data), columns=list(columns) if columns else None)
        else:
            frame = _read_csv(data, name, schema)
        if columns:
            missing = [c for c in columns if c not in frame.columns]
            if missing:
                raise BatchError(f"{name} lacks columns {missing}")
            frame = frame[list(columns)]
    except BatchError:
        raise
    except Exception as exc:  # untrusted bytes: any parser failure is the file's fault
        detail = (str(exc).strip().splitlines() or [""])[0][:300]
        raise BatchError(f"cannot read batch {name}: {type(exc).__name__}: {detail}") from None
    return frame


def _read_csv(data: bytes, name: str, schema: DatasetSchema | None) -> pd.DataFrame:
    # Categorical features stay text ("01" is not 1); the rest is inferred.
    dtype: dict[Any, Any] = {}
    if schema is not None:
        dtype = {c: "object" for c in schema.categorical_features}
    try:
        frame = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", dtype=dtype, low_memory=False)
    except UnicodeDecodeError as exc:
        raise BatchError(
            f"{name} is not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r}); "
            "save it as UTF-8"
        ) from None
    except pd.errors.EmptyDataError:
        raise BatchError(f"{name} has no header line (no columns)") from None
    # pandas renames a repeated header ("x", "x.1"): a duplicated name must not pass unseen.
    header = next(csv.reader(io.StringIO(data.split(b"\n", 1)[0].decode("utf-8-sig"))), [])
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise BatchError(f"{name}: columns {twice} appear more than once (duplicated)")
    if schema is not None and schema.timestamp in frame.columns:
        stamps = frame[schema.timestamp]
        if isinstance(stamps, pd.Series) and stamps.dtype == object:
            frame[schema.timestamp] = parse_timestamps(
                stamps, f"{name}: column {schema.timestamp!r}"
            )
    return frame


def parse_timestamps(values: pd.Series, what: str) -> pd.Series:
    """Naive ``datetime64[ns]`` from ISO 8601 text (offsets converted to UTC); missing stays NaT.

    Raises:
        BatchError: naming ``what``, how many values are not date/times, and an example.
    """
    present = values.notna().to_numpy()
    try:
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    bad = present & parsed.isna().to_numpy()
    if bad.any():
        example = values[bad].iloc[0]
        raise BatchError(
            f"{what}: {int(bad.sum())} of {len(values)} values are not ISO 8601 date/times "
            f"(e.g. {example!r})"
        )
    return parsed.dt.tz_localize(None).astype("datetime64[ns]")


def read_batch(
    path: Path, columns: Sequence[str] | None = None, schema: DatasetSchema | None = None
) -> pd.DataFrame:
    """Read one local batch file; ``columns`` projects. A symbolic link is refused.

    Raises:
        BatchError: if the file is missing, a link, or unreadable (see :func:`parse_batch`).
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise BatchNotFound(f"cannot read batch {path.name}: no such file") from None
    except OSError as exc:
        if path.is_symlink():
            raise BatchError(f"{path.name} is a symbolic link: refused") from None
        raise BatchError(f"cannot read batch {path.name}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise BatchError(f"cannot read batch {path.name}: {exc.strerror or exc}") from None
    return parse_batch(data, path.name, schema, columns)


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` as parquet so that readers never see a half-written file."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False, compression="zstd")
    return path


# --- periods ----------------------------------------------------------------------------------


def batch_period(
    batch_id: str, timestamps: pd.Series | None, frequency: str = "weekly"
) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The period ``[start, end)`` a batch covers.

    A batch id starting with a date, or a date and time (``2024-01-08``, ``2024-01-08T0600``,
    ``2024-01-08_late``), names its period's start; otherwise the period is the one holding the
    batch's earliest timestamp (see :mod:`retraining_assets.core.cadence`). ``None`` when neither
    is known (no usable timestamps).

    Raises:
        BatchError: on an unknown frequency.
    """
    from retraining_assets.core.cadence import CadenceError, batch_start, parse_cadence

    try:
        cadence = parse_cadence(frequency)
    except CadenceError as exc:
        raise BatchError(f"unknown batch frequency {frequency!r}: {exc}") from None
    start = batch_start(batch_id)
    if start is None:
        if timestamps is None or not pd.api.types.is_datetime64_dtype(timestamps.dtype):
            return None
        first = timestamps.min()
        if pd.isna(first):
            return None
        start = cadence.start_of(pd.Timestamp(first))
    return start, cadence.next(start)


# --- quarantine -------------------------------------------------------------------------------


def quarantine(
    source: Path | str | ObjectStore,
    key: str,
    reason: Mapping[str, Any],
    now: datetime | None = None,
) -> str:
    """Move the file ``key`` out of the batch folder into ``_quarantine/`` with a reason file.

    The file keeps its bytes (a link is moved as a link, never followed) under
    ``_quarantine/<key stem>.<UTC time>.<suffix>``, beside ``... .reason.json`` holding ``reason``
    plus the file name and the time. Listings never look into ``_quarantine/``.

    Returns:
        The quarantined file's key.
    """
    store = batch_store(source)
    when = now or datetime.now(UTC)
    stamp = when.strftime("%Y%m%dT%H%M%S%fZ")
    folder, _, name = key.rpartition("/")
    stem, dot, suffix = name.partition(".")
    base = f"{QUARANTINE_DIR}/{folder + '/' if folder else ''}{stem}.{stamp}"
    target = f"{base}.{suffix}" if dot else base
    record = {
        **dict(reason),
        "file": key,
        "quarantined_as": target,
        "quarantined_at": when.isoformat(),
    }
    text = json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
    store.put(f"{base}.reason.json", text.encode())
    root = _local_root(store)
    if root is not None:
        # A rename moves the entry itself: a symbolic link stays a link and is never opened.
        destination = root / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(root / key, destination)
    else:
        store.put(target, store.get(key))
        store.delete(key)
    return target


def quarantined(source: Path | str | ObjectStore) -> list[dict[str, Any]]:
    """The reason records of every quarantined file, oldest first."""
    store = batch_store(source)
    records = []
    for key in store.list(QUARANTINE_DIR):
        if key.endswith(".reason.json"):
            try:
                records.append(json.loads(store.get(key)))
            except (ValueError, StoreError):
                records.append({"file": key, "reason": "unreadable reason file"})
    return sorted(records, key=lambda r: str(r.get("quarantined_at", "")))


# --- labels -----------------------------------------------------------------------------------


def has_labels(directory: Path, batch_id: str, schema: DatasetSchema) -> bool:
    """Whether ``batch_id`` is labelled: its file has the target column, or feedback arrived.

    Reads only the parquet footer (or the csv header), never the rows.

    Raises:
        BatchError: if the file is unusable.
    """
    directory = Path(directory)
    fb = feedback_path(directory, batch_id)
    if fb.exists() and not fb.is_symlink():
        return True
    path = batch_path(directory, batch_id)
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return schema.target in pq.read_schema(path).names
        return schema.target in pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns
    except Exception as exc:  # untrusted bytes
        raise BatchError(f"cannot read batch {path.name}: {type(exc).__name__}: {exc}") from None


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
        raise FeedbackError("feedback labels need an id column in the schema to join on")
    missing = [c for c in (key, schema.target) if c not in feedback.columns]
    if missing:
        raise FeedbackError(f"feedback file lacks columns {missing}")
    try:
        if feedback[key].duplicated().any():
            raise FeedbackError(f"feedback file has duplicate {key!r} values")
        labels = feedback.set_index(key)[schema.target]
        out = frame.drop(columns=[schema.target], errors="ignore").copy()
        out[schema.target] = out[key].map(labels)
    except BatchError:
        raise
    except Exception as exc:  # unhashable or mixed-type ids in an untrusted file
        raise FeedbackError(f"feedback file cannot be joined on {key!r}: {exc}") from None
    return out[
        [c for c in schema.columns if c in out.columns]
        + [c for c in out.columns if c not in schema.columns]
    ]


def check_feedback_labels(frame: pd.DataFrame, schema: DatasetSchema) -> None:
    """Require every row of a batch joined with its feedback to carry a 0/1 label.

    Raises:
        FeedbackError: naming how many rows lack a label or hold another value, with examples.
    """
    labels = frame[schema.target]
    missing = int(labels.isna().sum())
    if missing:
        raise FeedbackError(
            f"feedback leaves {missing} of {len(frame)} rows without a {schema.target!r} label "
            "(every row of the batch needs one)"
        )
    try:
        values = pd.to_numeric(labels, errors="coerce")
    except (TypeError, ValueError):
        values = pd.Series(np.nan, index=labels.index)
    wrong = ~values.isin([0, 1])
    if wrong.any():
        examples = ", ".join(repr(v) for v in pd.unique(labels[wrong].astype(str))[:3])
        raise FeedbackError(
            f"feedback column {schema.target!r} has {int(wrong.sum())} values not in {{0, 1}} "
            f"(e.g. {examples})"
        )


def read_labelled_batch(
    directory: Path, batch_id: str, schema: DatasetSchema, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Read a batch with its labels (from the batch itself or its feedback file)."""
    frame = read_batch(batch_path(directory, batch_id), schema=schema)
    fb_path = feedback_path(directory, batch_id)
    feedback = None
    if fb_path.exists() or fb_path.is_symlink():
        try:
            feedback = read_batch(fb_path)
        except BatchError as exc:
            raise FeedbackError(f"feedback of {batch_id}: {exc}") from None
    frame = attach_labels(frame, feedback, schema)
    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise BatchError(f"batch {batch_id} lacks columns {missing}")
        return frame[list(columns)]
    return frame


def read_labelled(
    source: Path | str | ObjectStore, batch_id: str, schema: DatasetSchema
) -> pd.DataFrame | None:
    """``batch_id`` with its labels (in the file or its feedback file), or ``None`` without labels.

    Works on any batch source (a folder or an S3 prefix): the bytes come through the store.

    Raises:
        FeedbackError: if the feedback file is unusable.
        BatchError: if the batch file is missing or unreadable.
    """
    store = batch_store(source)
    raw = read_raw(store, batch_id)
    fb = read_raw_feedback(store, batch_id)
    frame = parse_batch(raw.data, raw.key, schema)
    feedback = None
    if fb is not None:
        try:
            feedback = parse_batch(fb.data, fb.key)
        except BatchError as exc:
            raise FeedbackError(f"feedback of {batch_id}: {exc}") from None
    elif schema.target not in frame.columns:
        return None
    return attach_labels(frame, feedback, schema)


def read_validated_batch(
    source: Path | str | ObjectStore,
    batch_id: str,
    expected_md5: str,
    schema: DatasetSchema,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read a batch that passed validation, with its labels, refusing any other bytes.

    The md5 is computed on the very bytes that are parsed, so a file replaced after validation
    is refused, never half-used.

    Raises:
        BatchChanged: if the bytes differ from those validated (``expected_md5``).
        FeedbackError: if the feedback file is unusable or leaves rows unlabelled / not 0/1.
        BatchError: if the file vanished or cannot be read.
    """
    store = batch_store(source)
    raw = read_raw(store, batch_id)
    if raw.md5 != expected_md5:
        raise BatchChanged(
            f"{raw.key} changed since it passed validation (md5 now {raw.md5}, validated "
            f"{expected_md5}): refused until it is validated again"
        )
    frame = parse_batch(raw.data, raw.key, schema)
    fb = read_raw_feedback(store, batch_id)
    feedback = None
    if fb is not None:
        try:
            feedback = parse_batch(fb.data, fb.key)
        except BatchError as exc:
            raise FeedbackError(str(exc)) from None
    frame = attach_labels(frame, feedback, schema)
    if feedback is not None:
        check_feedback_labels(frame, schema)
    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise BatchError(f"batch {batch_id} lacks columns {missing}")
        if list(frame.columns) != list(columns):  # a projection copies: only when needed
            return frame[list(columns)]
    return frame


# --- windows ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Which batches a training dataset is built from."""

    train_batches: tuple[str, ...]
    test_batches: tuple[str, ...]

    @property
    def all_batches(self) -> tuple[str, ...]:
        """Train then test batch ids."""
        return (*self.train_batches, *self.test_batches)


def time_order(available: Sequence[str], times: Mapping[str, Any] | None = None) -> list[str]:
    """``available`` in time order: by ``times[id]`` (the batch's period start), then by id.

    Without ``times`` (or for an id missing from it) the id itself is the time, as for the
    ISO-dated ids of the demo. A file name never outranks the data's own time.
    """
    if not times:
        return sorted(available)

    def key(batch_id: str) -> tuple[pd.Timestamp, str]:
        value = times.get(batch_id)
        try:
            stamp = pd.Timestamp(value if value is not None else batch_id)
        except (ValueError, TypeError):
            stamp = pd.Timestamp.max
        if pd.isna(stamp):
            stamp = pd.Timestamp.max
        return stamp, batch_id

    return sorted(available, key=key)


def select_window(
    available: Sequence[str],
    as_of: str | None,
    window_batches: int,
    test_batches: int = 1,
    times: Mapping[str, Any] | None = None,
) -> Window:
    """Choose a rolling window of batches for training and testing.

    The ``test_batches`` latest batches up to ``as_of`` are the test set (the most recent labelled
    period), the ``window_batches`` before them the training set. "Latest" is by ``times`` (each
    batch's period start, see :func:`time_order`) when given, never by file name.

    Raises:
        BatchError: if ``as_of`` is unknown or there are not enough batches.
    """
    ordered = time_order(available, times)
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


def split_rows(dataset: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of ``dataset`` whose ``SPLIT_COLUMN`` is ``split`` (``train`` or ``test``).

    :func:`collect_dataset` puts each split's rows in one run (train first), so this is a slice
    that shares the dataset's memory; a boolean selection (a copy of every column) is only made
    when the split's rows are not contiguous.
    """
    where = np.flatnonzero((dataset[SPLIT_COLUMN] == split).to_numpy(dtype=bool))
    if len(where) == 0 or where[-1] - where[0] + 1 == len(where):
        start = int(where[0]) if len(where) else 0
        return dataset.iloc[start : start + len(where)]
    return dataset.iloc[where]


def collect_dataset(
    frames: dict[str, pd.DataFrame], window: Window, schema: DatasetSchema
) -> pd.DataFrame:
    """Concatenate the window's batches with ``__split__`` (``train``/``test``) and ``__batch__``.

    Rows keep the schema's columns only, in schema order, sorted by timestamp (then id) so that the
    same inputs always give the same bytes and so the same DVC md5.
    """
    # Built column by column in its final order: the window's frames, one column being gathered
    # and the result are all that live at once. Copying each frame, concatenating them and then
    # reordering the concatenation held three to four copies of the rows (a 5M-row window peaked
    # at about 4x its frame).
    parts: list[tuple[str, str, pd.DataFrame]] = []
    for split, ids in (("train", window.train_batches), ("test", window.test_batches)):
        for batch_id in ids:
            frame = frames[batch_id]
            missing = [c for c in schema.columns if c not in frame.columns]
            if missing:
                raise BatchError(f"batch {batch_id} lacks columns {missing}")
            parts.append((split, batch_id, frame))

    def gathered(name: str) -> pd.Series:
        return pd.concat([frame[name] for _, _, frame in parts], ignore_index=True)

    # One stable lexicographic order: train before test, then time, then id ("train" < "test"
    # is not alphabetical, hence the explicit key). np.lexsort sorts by the last key first.
    position = np.repeat(np.arange(len(parts)), [len(frame) for _, _, frame in parts])
    is_test = np.array([split == "test" for split, _, _ in parts], dtype=bool)[position]
    keys = [gathered(schema.timestamp).to_numpy(), is_test]
    if schema.id_column:
        keys.insert(0, gathered(schema.id_column).to_numpy())
    try:
        order = np.lexsort(keys)
    except TypeError as exc:  # mixed types in an unvalidated column
        raise BatchError(f"cannot order the window's rows by time and id: {exc}") from None
    del keys, is_test
    columns: dict[str, pd.Series] = {}
    for name in schema.columns:
        columns[name] = gathered(name).take(order).reset_index(drop=True)
    # The same Python strings as a column filled with one value: object arrays of references.
    taken = position[order]
    splits = np.array([split for split, _, _ in parts], dtype=object)
    batch_ids = np.array([batch_id for _, batch_id, _ in parts], dtype=object)
    columns[SPLIT_COLUMN] = pd.Series(splits[taken], dtype=object)
    columns[BATCH_COLUMN] = pd.Series(batch_ids[taken], dtype=object)
    return pd.DataFrame(columns, copy=False)


def overlapping_batches(
    frames: Mapping[str, pd.DataFrame], order: Sequence[str], schema: DatasetSchema
) -> dict[str, str]:
    """Batches that repeat rows of an earlier batch: by id, or in every column but the id.

    A copy of a batch under another name (same ids, or the same rows under new ids) would count
    those rows twice, or put training rows into the test set. The earlier batch of ``order``
    (normally the one validated first) is kept; each later one is named with the reason. A
    missing id (NaN, None) never counts as a repeat.

    Returns:
        Batch id -> reason, for the batches to leave out.
    """
    present = [b for b in order if frames.get(b) is not None]
    with_ids = bool(schema.id_column) and any(schema.id_column in frames[b] for b in present)
    data_columns = [c for c in schema.columns if c != schema.id_column]
    ids = _KeyTracker(
        [frames[b].get(schema.id_column) for b in present] if with_ids else [None] * len(present)
    )
    rows = _KeyTracker(_row_hashes([frames[b] for b in present], data_columns))
    out: dict[str, str] = {}
    for k, batch_id in enumerate(present):
        reason = None
        clash = ids.repeats(k)
        if clash is not None:
            count, first, owner = clash
            value = frames[batch_id][schema.id_column].iloc[first : first + 1].tolist()[0]
            reason = (
                f"{count} of its {schema.id_column!r} values are already in batch "
                f"{present[owner]} (e.g. {value!r})"
            )
        else:
            repeated = rows.repeats(k)
            n_rows = rows.size(k)
            # A handful of identical rows happens in real data (two flights alike); a copy
            # repeats most of them.
            if repeated is not None and repeated[0] > max(1, n_rows // 100):
                count, _, owner = repeated
                reason = (
                    f"{count} of its {n_rows} rows repeat rows of batch {present[owner]} "
                    "in every column but the id"
                )
        if reason is not None:
            out[batch_id] = reason
            continue
        ids.keep(k)
        rows.keep(k)
    return out


def _row_hashes(frames: list[pd.DataFrame], columns: list[str]) -> list[pd.Series | None]:
    """Per frame, one 64-bit hash per row of ``columns``; ``None`` for unhashable values.

    Frames that hold every column are hashed as one concatenation (a row's hash depends on its
    values only): hashing column by column costs mostly per-call overhead on weekly batches.
    """
    hashed = None
    if frames and all(c in f.columns for f in frames for c in columns):
        try:
            hashed = pd.util.hash_pandas_object(
                pd.concat([f[columns] for f in frames], ignore_index=True), index=False
            )
        except TypeError:  # unhashable values in some frame: hashed one by one below
            hashed = None
    if hashed is not None:
        bounds = np.cumsum([0, *(len(f) for f in frames)])
        return [hashed.iloc[a:b] for a, b in itertools.pairwise(bounds)]
    out: list[pd.Series | None] = []
    for frame in frames:
        present = [c for c in columns if c in frame.columns]
        try:
            out.append(pd.util.hash_pandas_object(frame[present], index=False))
        except TypeError:  # unhashable values: validation rejects those batches anyway
            out.append(None)
    return out


class _KeyTracker:
    """Which keys of batch ``k`` already belong to a kept batch, without a Python loop per row.

    All batches' keys are factorized together once (pandas' hash table: any hashable values,
    NA -> -1), so "seen" is a boolean array over the distinct keys and each batch costs a few
    numpy operations on its own rows (a dict per row cost ~0.1 s for an 8-week window).
    """

    def __init__(self, keys: list[pd.Series | None]) -> None:
        sizes = [0 if k is None else len(k) for k in keys]
        self._bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._present = [k is not None for k in keys]
        parts = [k for k in keys if k is not None and len(k)]
        if parts:
            codes, uniques = pd.factorize(pd.concat(parts, ignore_index=True))
            n_unique = len(uniques)
        else:
            codes, n_unique = np.empty(0, dtype=np.int64), 0
        self._codes = np.asarray(codes)
        self._owner = np.full(n_unique, -1, dtype=np.int64)

    def size(self, k: int) -> int:
        """Rows of batch ``k``."""
        return int(self._bounds[k + 1] - self._bounds[k])

    def _of(self, k: int) -> np.ndarray:
        return self._codes[self._bounds[k] : self._bounds[k + 1]]

    def repeats(self, k: int) -> tuple[int, int, int] | None:
        """(rows of ``k`` whose key a kept batch has, the first such row, its batch) or None."""
        if not self._present[k]:
            return None
        codes = self._of(k)
        owners = np.where(codes >= 0, self._owner[codes], -1)
        hit = np.flatnonzero(owners >= 0)
        if len(hit) == 0:
            return None
        return len(hit), int(hit[0]), int(owners[hit[0]])

    def keep(self, k: int) -> None:
        """Batch ``k`` is kept: its keys count as seen from now on (the first owner stays)."""
        if not self._present[k]:
            return
        codes = self._of(k)
        codes = codes[codes >= 0]
        fresh = codes[self._owner[codes] < 0]
        self._owner[fresh] = k
