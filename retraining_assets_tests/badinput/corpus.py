"""A corpus of bad batch files: each case writes one file (or feedback file) and names the message.

Every case is built from one clean synthetic batch of the week starting ``2024-03-04`` (the period
its batch id names) and breaks exactly one thing. ``expect`` is a regular expression the clear
message must match. Cases of kind ``feedback`` leave the batch valid and unlabelled and break its
late labels instead; ``changed`` replaces a validated file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from retraining_assets.core.synthetic import SYNTHETIC_SCHEMA, make_batch

SCHEMA = SYNTHETIC_SCHEMA
WEEK = pd.Timestamp("2024-03-04")
ROWS = 300


def clean(start: pd.Timestamp = WEEK, seed: int = 5, first_row_id: int = 0) -> pd.DataFrame:
    """A valid batch of the week starting ``start``."""
    return make_batch(ROWS, start, seed=seed, first_row_id=first_row_id)


Writer = Callable[[Path, str, pd.DataFrame], None]


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes:
        name: Short name (also the test id).
        write: Writes the bad file(s) for ``batch_id`` into a batch folder, from a clean frame.
        expect: Regular expression the message must match.
        kind: ``batch`` (the batch file is bad), ``feedback`` (its late labels are bad).
        suffix: File suffix of the batch (for ``batch`` cases).
    """

    name: str
    write: Writer
    expect: str
    kind: str = "batch"


def _parquet(folder: Path, batch_id: str, frame: pd.DataFrame) -> None:
    frame.to_parquet(folder / f"{batch_id}.parquet", index=False)


def _bytes(data: bytes, suffix: str = ".parquet") -> Writer:
    def write(folder: Path, batch_id: str, frame: pd.DataFrame) -> None:
        (folder / f"{batch_id}{suffix}").write_bytes(data)

    return write


def _edit(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Writer:
    def write(folder: Path, batch_id: str, frame: pd.DataFrame) -> None:
        _parquet(folder, batch_id, change(frame.copy()))

    return write


def _set(column: str, value: object, rows: slice = slice(0, 5)) -> Writer:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        values = frame[column].astype(object) if not np.isscalar(value) else frame[column]
        values = values.copy()
        values.iloc[rows] = value
        frame[column] = values
        return frame

    return _edit(change)


def _csv(change: Callable[[pd.DataFrame], pd.DataFrame] = lambda f: f, **options: object) -> Writer:
    def write(folder: Path, batch_id: str, frame: pd.DataFrame) -> None:
        change(frame.copy()).to_csv(folder / f"{batch_id}.csv", index=False, **options)  # type: ignore[call-overload]

    return write


def _truncated(folder: Path, batch_id: str, frame: pd.DataFrame) -> None:
    _parquet(folder, batch_id, frame)
    path = folder / f"{batch_id}.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _csv_renamed(folder: Path, batch_id: str, frame: pd.DataFrame) -> None:
    frame.to_csv(folder / f"{batch_id}.parquet", index=False)


def _symlink(target: str) -> Writer:
    def write(folder: Path, batch_id: str, frame: pd.DataFrame) -> None:
        os.symlink(target, folder / f"{batch_id}.parquet")

    return write


def _symlink_to_good(folder: Path, batch_id: str, frame: pd.DataFrame) -> None:
    outside = folder.parent / "outside.parquet"
    frame.to_parquet(outside, index=False)
    os.symlink(outside, folder / f"{batch_id}.parquet")


def _garbage_inside(folder: Path, batch_id: str, frame: pd.DataFrame) -> None:
    (folder / f"{batch_id}.parquet").write_bytes(b"PAR1" + os.urandom(2000) + b"PAR1")


def _duplicate_names(folder: Path, batch_id: str, frame: pd.DataFrame) -> None:
    arrays = [pa.array(frame[c]) for c in frame.columns] + [pa.array(frame["x0"] * 2)]
    table = pa.Table.from_arrays(arrays, names=[*frame.columns, "x0"])
    pq.write_table(table, folder / f"{batch_id}.parquet")


def _nested(column: str) -> Writer:
    def write(folder: Path, batch_id: str, frame: pd.DataFrame) -> None:
        columns = {c: pa.array(frame[c]) for c in frame.columns}
        columns[column] = pa.array([[float(v), 1.0] for v in frame[column]])
        pq.write_table(pa.table(columns), folder / f"{batch_id}.parquet")

    return write


def _struct(column: str) -> Writer:
    def write(folder: Path, batch_id: str, frame: pd.DataFrame) -> None:
        columns = {c: pa.array(frame[c]) for c in frame.columns}
        columns[column] = pa.array([{"level": str(v)} for v in frame[column]])
        pq.write_table(pa.table(columns), folder / f"{batch_id}.parquet")

    return write


def _doubled(frame: pd.DataFrame) -> pd.DataFrame:
    copy = frame.assign(row_id=frame["row_id"] + 1_000_000)
    return pd.concat([frame, copy], ignore_index=True)


def _shift(days: int) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame["ts"] = frame["ts"] + pd.Timedelta(days=days)
        return frame

    return change


def _feedback(
    change: Callable[[pd.DataFrame], pd.DataFrame] | None, raw: bytes | None = None
) -> Writer:
    """An unlabelled (valid) batch, and a feedback file made by ``change`` (or raw bytes)."""

    def write(folder: Path, batch_id: str, frame: pd.DataFrame) -> None:
        _parquet(folder, batch_id, frame.drop(columns=["label"]))
        (folder / "feedback").mkdir(exist_ok=True)
        target = folder / "feedback" / f"{batch_id}.parquet"
        if raw is not None:
            target.write_bytes(raw)
        elif change is not None:
            change(frame[["row_id", "label"]].copy()).to_parquet(target, index=False)

    return write


def _feedback_symlink(folder: Path, batch_id: str, frame: pd.DataFrame) -> None:
    _parquet(folder, batch_id, frame.drop(columns=["label"]))
    (folder / "feedback").mkdir(exist_ok=True)
    os.symlink("/etc/passwd", folder / "feedback" / f"{batch_id}.parquet")


CASES: list[Case] = [
    # --- files that cannot be read ------------------------------------------------------------
    Case("empty_parquet", _bytes(b""), r"is empty \(0 bytes\)"),
    Case("truncated_parquet", _truncated, r"not a parquet file .*truncated"),
    Case("csv_renamed_parquet", _csv_renamed, r"not a parquet file"),
    Case("symlink_etc_passwd", _symlink("/etc/passwd"), r"symbolic link"),
    Case("symlink_to_good_file", _symlink_to_good, r"symbolic link"),
    Case("garbage_between_magic", _garbage_inside, r"cannot read batch .*parquet"),
    Case("empty_csv", _bytes(b"", ".csv"), r"is empty \(0 bytes\)"),
    Case("csv_no_header", _bytes(b"\n\n", ".csv"), r"no header line"),
    Case(
        "csv_header_only",
        _bytes(b"row_id,ts,x0,x1,x2,x3,x4,c0,c1,label\n", ".csv"),
        r"table has 0 rows",
    ),
    Case(
        "csv_latin1",
        _csv(lambda f: f.assign(c0=f["c0"].where(f.index > 3, "caf\u00e9")), encoding="latin-1"),
        r"not UTF-8 text",
    ),
    Case("csv_utf16", _csv(encoding="utf-16"), r"not UTF-8 text"),
    Case("csv_semicolons", _csv(sep=";"), r"column 'ts' is missing"),
    Case(
        "csv_bad_timestamps",
        _csv(lambda f: f.assign(ts=f["ts"].astype(str).where(f.index > 2, "yesterday"))),
        r"column 'ts': 3 of 300 values are not ISO 8601 date/times \(e.g. 'yesterday'\)",
    ),
    Case(
        "csv_timestamps_out_of_period",
        _csv(_shift(-7)),
        r"column 'ts' has 300 values not within the batch period \[2024-03-04, 2024-03-11\)",
    ),
    Case(
        "csv_numbers_as_text",
        _csv(lambda f: f.assign(x0=f["x0"].astype(str).where(f.index > 0, "unknown"))),
        r"column 'x0' .*wrong type",
    ),
    # --- schema -------------------------------------------------------------------------------
    Case("missing_feature", _edit(lambda f: f.drop(columns=["x1"])), r"column 'x1' is missing"),
    Case("missing_timestamp", _edit(lambda f: f.drop(columns=["ts"])), r"column 'ts' is missing"),
    Case("missing_id", _edit(lambda f: f.drop(columns=["row_id"])), r"column 'row_id' is missing"),
    Case(
        "upper_case_names", _edit(lambda f: f.rename(columns=str.upper)), r"column 'ts' is missing"
    ),
    Case("duplicate_column_names", _duplicate_names, r"(?i)duplicate"),
    Case("no_rows", _edit(lambda f: f.iloc[:0]), r"table has 0 rows \(expected at least 50\)"),
    Case(
        "too_few_rows", _edit(lambda f: f.iloc[:10]), r"table has 10 rows \(expected at least 50\)"
    ),
    # --- types --------------------------------------------------------------------------------
    Case(
        "numbers_as_strings",
        _edit(lambda f: f.assign(x0=f["x0"].astype(str))),
        r"column 'x0' .*wrong type.*expected numeric",
    ),
    Case(
        "mixed_types",
        _csv(lambda f: f.assign(x1=f["x1"].astype(object).where(f.index > 2, "1,5"))),
        r"column 'x1' \(dtype object\) has 300 values of the wrong type, expected numeric"
        r" \(e.g. '1,5'",
    ),
    Case(
        "timestamp_as_text",
        _edit(lambda f: f.assign(ts=f["ts"].astype(str))),
        r"column 'ts' .*expected naive datetime",
    ),
    Case(
        "timestamp_tz_aware",
        _edit(lambda f: f.assign(ts=f["ts"].dt.tz_localize("UTC"))),
        r"column 'ts' has dtype datetime64\[ns, UTC\] \(expected naive datetime\)",
    ),
    Case(
        "timestamp_epoch_ints",
        _edit(lambda f: f.assign(ts=f["ts"].astype("int64"))),
        r"column 'ts' has dtype int64 \(expected naive datetime\)",
    ),
    Case(
        "categorical_as_ints",
        _edit(lambda f: f.assign(c0=np.arange(len(f)) % 3)),
        r"column 'c0' has dtype int64 \(expected string\)",
    ),
    Case(
        "label_as_words",
        _edit(lambda f: f.assign(label=f["label"].map({0: "no", 1: "yes"}))),
        r"column 'label' .*expected numeric or boolean",
    ),
    Case(
        "boolean_feature",
        _edit(lambda f: f.assign(x4=f["x4"] > 0)),
        r"column 'x4' has dtype bool \(expected numeric\)",
    ),
    Case("nested_lists", _nested("x0"), r"column 'x0' .*wrong type"),
    Case("struct_values", _struct("c0"), r"column 'c0' .*wrong type"),
    Case(
        "nan_only_feature",
        _edit(lambda f: f.assign(x0=np.nan)),
        r"column 'x0' has 300 missing values",
    ),
    Case(
        "nan_only_label",
        _edit(lambda f: f.assign(label=np.nan)),
        r"column 'label' has 300 missing values",
    ),
    Case("null_timestamps", _set("ts", pd.NaT, slice(0, 4)), r"column 'ts' has 4 missing values"),
    Case(
        "null_ids",
        _edit(lambda f: f.assign(row_id=f["row_id"].astype("float64").where(f.index > 1))),
        r"column 'row_id' has 2 missing values",
    ),
    Case("null_categories", _set("c1", None, slice(0, 6)), r"column 'c1' has 6 missing values"),
    # --- values -------------------------------------------------------------------------------
    Case("plus_inf", _set("x0", np.inf), r"column 'x0' has 5 values not finite .*\(e.g. inf\)"),
    Case(
        "minus_inf", _set("x4", -np.inf, slice(0, 2)), r"column 'x4' has 2 values not finite .*-inf"
    ),
    Case(
        "huge_1e308",
        _set("x1", 1e308, slice(0, 1)),
        r"column 'x1' has 1 value not finite .*1e\+308",
    ),
    Case("all_inf", _edit(lambda f: f.assign(x0=np.inf)), r"column 'x0' has 300 values not finite"),
    Case(
        "int64_extreme",
        _edit(lambda f: f.assign(x4=np.iinfo("int64").min)),
        r"column 'x4' has 300 values not finite",
    ),
    Case(
        "out_of_range",
        _set("x3", -1e9, slice(0, 1)),
        r"column 'x3' has 1 value outside \[0, 50\] \(e.g. -1000000000\)",
    ),
    Case(
        "label_two", _set("label", 2, slice(0, 7)), r"column 'label' has 7 values not in \{0, 1\}"
    ),
    Case(
        "label_half",
        _edit(lambda f: f.assign(label=f["label"].astype("float64").where(f.index > 0, 0.5))),
        r"column 'label' has 1 value not in \{0, 1\}",
    ),
    Case(
        "single_class",
        _edit(lambda f: f.assign(label=0)),
        r"column 'label' never takes the value 1",
    ),
    Case(
        "timestamps_1900",
        _set("ts", pd.Timestamp("1900-01-01"), slice(0, 3)),
        r"column 'ts' has 3 values not within the batch period .*1900-01-01",
    ),
    Case(
        "timestamps_2200",
        _set("ts", pd.Timestamp("2200-01-01"), slice(0, 3)),
        r"column 'ts' reaches '2200-01-01 00:00:00', later than .*not in the future",
    ),
    Case(
        "previous_week",
        _edit(_shift(-7)),
        r"300 values not within the batch period \[2024-03-04, 2024-03-11\)",
    ),
    Case(
        "duplicate_ids",
        _edit(lambda f: f.assign(row_id=f["row_id"] // 2)),
        r"column 'row_id' has 300 rows sharing a value",
    ),
    Case(
        "duplicated_rows_new_ids",
        _edit(_doubled),
        r"table has 600 rows repeating another row in every column but the id",
    ),
    # --- late labels (feedback) ---------------------------------------------------------------
    Case("feedback_empty", _feedback(None, raw=b""), r"is empty \(0 bytes\)", kind="feedback"),
    Case(
        "feedback_truncated",
        _feedback(None, raw=b"PAR1\x00\x01"),
        r"not a parquet file",
        kind="feedback",
    ),
    Case("feedback_symlink", _feedback_symlink, r"symbolic link", kind="feedback"),
    Case(
        "feedback_no_id",
        _feedback(lambda f: f.drop(columns=["row_id"])),
        r"feedback file lacks columns \['row_id'\]",
        kind="feedback",
    ),
    Case(
        "feedback_partial",
        _feedback(lambda f: f.iloc[:100]),
        r"leaves 200 of 300 rows without a 'label' label",
        kind="feedback",
    ),
    Case(
        "feedback_label_three",
        _feedback(lambda f: f.assign(label=3)),
        r"'label' has 300 values not in \{0, 1\}",
        kind="feedback",
    ),
    Case(
        "feedback_duplicate_ids",
        _feedback(lambda f: pd.concat([f, f])),
        r"duplicate 'row_id'",
        kind="feedback",
    ),
]


def schema_override_file(folder: Path) -> Path:
    """A ``_schema.json`` with relaxed rules dropped among the batches (it must be ignored)."""
    relaxed = {
        "timestamp": "ts",
        "target": "label",
        "id_column": None,
        "numeric_features": ["x0"],
        "categorical_features": [],
        "numeric_ranges": {},
        "required_non_null": [],
        "min_rows": 1,
    }
    path = folder / "_schema.json"
    path.write_text(json.dumps(relaxed))
    return path
