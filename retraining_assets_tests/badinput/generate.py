"""Generated batch files for the property tests: a random schema, a clean batch, corruptions.

A :class:`Spec` (drawn by Hypothesis) fixes the schema's shape, the batch size, a seed for the
values (numpy draws them: fast), the file format and encoding, and a list of corruptions. The
clean batch satisfies every rule of the suite; each corruption breaks at least one rule for sure,
so the ground truth of a generated file is simply "invalid iff any corruption was applied".
Variations that must stay valid (column order, extra columns, dtypes, missing values where
allowed, CSV with a byte-order mark) are drawn too.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import strategies as st

from retraining_assets.schemas import DatasetSchema

START = pd.Timestamp("2024-03-04")
PERIOD_END = START + pd.Timedelta(days=7)
BATCH_ID = "2024-03-04"

#: Corruptions of the rows (each breaks a rule of the suite).
ROW_CORRUPTIONS = (
    "drop_column",
    "inf",
    "minus_inf",
    "huge",
    "text_in_numeric",
    "null_required",
    "out_of_range",
    "ts_1900",
    "ts_2200",
    "ts_period_end",
    "ts_as_text",
    "ts_tz_aware",
    "label_two",
    "label_single_class",
    "label_null",
    "duplicate_ids",
    "too_few_rows",
    "duplicated_rows",
    "categorical_ints",
    "nested_lists",
)
#: Corruptions of the file's bytes.
FILE_CORRUPTIONS = (
    "truncate",
    "empty",
    "garbage",
    "utf16",
    "latin1",
    "renamed",
    "duplicate_header",
)
FORMATS = ("parquet", "csv", "csv-bom")


@dataclass(frozen=True)
class Spec:
    """Everything that defines one generated batch file."""

    n_numeric: int
    n_categorical: int
    with_id: bool
    ranged: int
    required: int
    rows: int
    min_rows: int
    seed: int
    fmt: str
    corruptions: tuple[str, ...]
    file_corruption: str | None
    shuffle_columns: bool
    extra_column: bool
    float32: bool
    optional_nans: bool
    unicode_levels: bool

    @property
    def invalid(self) -> bool:
        """Ground truth: any corruption makes the file invalid."""
        return bool(self.corruptions) or self.file_corruption is not None


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    """A random :class:`Spec`; about half are clean."""
    n_numeric = draw(st.integers(1, 4))
    n_categorical = draw(st.integers(0, 3))
    fmt = draw(st.sampled_from(FORMATS))
    broken = draw(st.booleans())
    corruptions: tuple[str, ...] = ()
    file_corruption = None
    if broken:
        if draw(st.integers(0, 4)) == 0:
            allowed = [
                c for c in FILE_CORRUPTIONS if fmt != "parquet" or c not in ("utf16", "latin1")
            ]
            file_corruption = draw(st.sampled_from(allowed))
        else:
            corruptions = tuple(
                draw(
                    st.lists(st.sampled_from(ROW_CORRUPTIONS), min_size=1, max_size=3, unique=True)
                )
            )
    return Spec(
        n_numeric=n_numeric,
        n_categorical=n_categorical,
        with_id=draw(st.booleans()),
        ranged=draw(st.integers(0, n_numeric)),
        required=draw(st.integers(0, n_numeric + n_categorical)),
        rows=draw(st.integers(2, 120)),
        min_rows=draw(st.integers(1, 20)),
        seed=draw(st.integers(0, 2**32 - 1)),
        fmt=fmt,
        corruptions=corruptions,
        file_corruption=file_corruption,
        shuffle_columns=draw(st.booleans()),
        extra_column=draw(st.booleans()),
        float32=draw(st.booleans()),
        optional_nans=draw(st.booleans()),
        unicode_levels=draw(st.booleans()),
    )


def schema_of(spec: Spec) -> DatasetSchema:
    """The random schema of ``spec``."""
    numeric = tuple(f"n{i}" for i in range(spec.n_numeric))
    categorical = tuple(f"c{i}" for i in range(spec.n_categorical))
    features = [*numeric, *categorical]
    return DatasetSchema(
        timestamp="ts",
        target="y",
        numeric_features=numeric,
        categorical_features=categorical,
        id_column="id" if spec.with_id else None,
        numeric_ranges={c: (-100.0, 100.0) for c in numeric[: spec.ranged]},
        required_non_null=tuple(features[: spec.required]),
        min_rows=spec.min_rows,
    )


def _levels(rng: np.random.Generator, unicode_levels: bool) -> np.ndarray:
    base = ["alpha", "beta", "gamma", "delta", "omega"]
    if unicode_levels:
        base = [*base, "café", "東京", "naïve"]
    return np.array([f"l_{b}" for b in base], dtype=object)


def clean_frame(spec: Spec, schema: DatasetSchema) -> pd.DataFrame:
    """A batch satisfying every rule of ``schema`` (both classes, no duplicates, in its week)."""
    rng = np.random.default_rng(spec.seed)
    rows = max(spec.rows, spec.min_rows, 2)
    seconds = np.sort(rng.choice(7 * 86_400, size=rows, replace=False))
    data: dict[str, object] = {}
    if schema.id_column:
        data["id"] = np.arange(rows, dtype="int64") + int(rng.integers(0, 1000))
    data["ts"] = START + pd.to_timedelta(seconds, unit="s")
    for name in schema.numeric_features:
        values = rng.normal(0, 10, rows)
        if name in schema.numeric_ranges:
            values = np.clip(values, -99.0, 99.0)
        if spec.optional_nans and name not in schema.required_non_null:
            values[rng.random(rows) < 0.1] = np.nan
        data[name] = values.astype("float32") if spec.float32 else values
    levels = _levels(rng, spec.unicode_levels)
    for name in schema.categorical_features:
        values = levels[rng.integers(0, len(levels), rows)].copy()
        if spec.optional_nans and name not in schema.required_non_null:
            values[rng.random(rows) < 0.1] = None
        data[name] = values
    label = (rng.random(rows) < 0.4).astype("int64")
    label[0], label[1] = 0, 1
    data["y"] = label
    frame = pd.DataFrame(data)
    if spec.extra_column:
        frame["note"] = "extra"
    if spec.shuffle_columns:
        frame = frame[list(rng.permutation(frame.columns))]
    return frame


def _values(series: pd.Series) -> np.ndarray:
    """The values as float64, or as objects if another corruption put text there."""
    try:
        return series.to_numpy(dtype="float64").copy()
    except (TypeError, ValueError):
        return series.to_numpy(dtype=object).copy()


def _corrupt(
    frame: pd.DataFrame, schema: DatasetSchema, what: str, rng: np.random.Generator
) -> pd.DataFrame:
    frame = frame.copy()
    n = len(frame)
    if n == 0:
        return frame  # already below min_rows (>= 1): invalid whatever else is done
    rows = rng.choice(n, size=max(1, n // 10), replace=False)
    numeric = list(schema.numeric_features)
    column = numeric[int(rng.integers(0, len(numeric)))]
    if what == "drop_column":
        # Not the target: a batch without it is a valid unlabelled batch (labels come later).
        choices = [c for c in schema.columns if c != schema.target]
        return frame.drop(columns=[choices[int(rng.integers(0, len(choices)))]])
    if what in ("inf", "minus_inf", "huge"):
        value = {"inf": np.inf, "minus_inf": -np.inf, "huge": 1e308}[what]
        values = _values(frame[column])
        values[rows] = value
        frame[column] = values
        return frame
    if what == "text_in_numeric":
        values = frame[column].astype(object)
        values.iloc[rows] = "oops"
        frame[column] = values
        return frame
    if what == "null_required":
        required = [schema.timestamp, schema.target, *schema.required_non_null]
        name = required[int(rng.integers(0, len(required)))]
        values = (
            frame[name].astype(object)
            if name in schema.categorical_features
            else frame[name].copy()
        )
        if name == schema.timestamp:
            values = frame[name].copy()
            values.iloc[rows] = pd.NaT
        elif name == schema.target:
            values = frame[name].astype("float64")
            values.iloc[rows] = np.nan
        else:
            if name in numeric:
                values = pd.Series(_values(frame[name]), index=frame.index)
            values.iloc[rows] = None if name in schema.categorical_features else np.nan
        frame[name] = values
        return frame
    if what == "out_of_range":
        name = next(iter(schema.numeric_ranges)) if schema.numeric_ranges else column
        values = _values(frame[name])
        values[rows] = 1e13 if name not in schema.numeric_ranges else 1000.0
        frame[name] = values
        return frame
    if what in ("ts_1900", "ts_2200", "ts_period_end"):
        stamp = {
            "ts_1900": pd.Timestamp("1900-01-01"),
            "ts_2200": pd.Timestamp("2200-01-01"),
            "ts_period_end": PERIOD_END,
        }[what]
        values = frame["ts"].copy()
        values.iloc[rows] = stamp
        frame["ts"] = values
        return frame
    if what in ("ts_as_text", "ts_tz_aware") and not pd.api.types.is_datetime64_dtype(
        frame["ts"].dtype
    ):
        return frame  # an earlier corruption changed the column already
    if what == "ts_as_text":
        frame["ts"] = frame["ts"].dt.strftime("%d/%m/%Y %H:%M")
        return frame
    if what == "ts_tz_aware":
        frame["ts"] = frame["ts"].dt.tz_localize("Asia/Tokyo")
        return frame
    if what == "label_two":
        values = frame["y"].copy()
        values.iloc[rows] = 2
        frame["y"] = values
        return frame
    if what == "label_single_class":
        frame["y"] = 1
        return frame
    if what == "label_null":
        values = frame["y"].astype("float64")
        values.iloc[rows] = np.nan
        frame["y"] = values
        return frame
    if what == "duplicate_ids":
        if n < 2:
            return frame  # only after too_few_rows (clean batches have 2 rows or more)
        if schema.id_column:
            values = frame["id"].copy()
            values.iloc[1] = values.iloc[0]
            values.iloc[rows] = values.iloc[0]
            frame["id"] = values
            return frame
        what = "duplicated_rows"
    if what == "too_few_rows":
        if schema.min_rows >= 2:
            return frame.iloc[: schema.min_rows - 1]
        return frame.iloc[:0]
    if what == "duplicated_rows":
        copy = frame.copy()
        if schema.id_column:
            copy["id"] = copy["id"] + 10_000_000
        return pd.concat([frame, copy], ignore_index=True)
    if what == "categorical_ints":
        if schema.categorical_features:
            frame[schema.categorical_features[0]] = np.arange(n) % 4
            return frame
        values = frame[column].astype(object)
        values.iloc[rows] = "text"
        frame[column] = values
        return frame
    if what == "nested_lists":
        frame[column] = [[float(i), 1.0] for i in range(n)]
        return frame
    raise AssertionError(what)


def _serialize(frame: pd.DataFrame, spec: Spec) -> tuple[str, bytes]:
    if spec.fmt == "parquet":
        buffer = io.BytesIO()
        try:
            frame.to_parquet(buffer, index=False)
        except (pa.ArrowException, ValueError, TypeError):
            # Mixed object columns: store every value as text, as a careless exporter would.
            table = pa.table({c: pa.array(frame[c].map(repr).tolist()) for c in frame.columns})
            buffer = io.BytesIO()
            pq.write_table(table, buffer)
        return f"{BATCH_ID}.parquet", buffer.getvalue()
    encoding = "utf-8-sig" if spec.fmt == "csv-bom" else "utf-8"
    return f"{BATCH_ID}.csv", frame.to_csv(index=False).encode(encoding)


def make_file(spec: Spec) -> tuple[DatasetSchema, str, bytes]:
    """The schema, file name and bytes of ``spec``'s batch."""
    schema = schema_of(spec)
    rng = np.random.default_rng(spec.seed + 1)
    frame = clean_frame(spec, schema)
    corruptions = list(spec.corruptions)
    if spec.fmt != "parquet":
        # CSV has no types: integers in a categorical column are read back as text, and a
        # timestamp with a UTC offset is converted to UTC; both are valid there.
        swap = {"categorical_ints": "text_in_numeric", "ts_tz_aware": "ts_as_text"}
        corruptions = list(dict.fromkeys(swap.get(c, c) for c in corruptions))
    # Duplicating rows last: a later corruption could make the copies differ again.
    corruptions.sort(key=lambda c: c == "duplicated_rows")
    for what in corruptions:
        if what == "drop_column" or set(schema.columns) <= set(frame.columns):
            frame = _corrupt(frame, schema, what, rng)
    name, data = _serialize(frame, spec)
    corruption = spec.file_corruption
    if corruption == "truncate":
        data = data[: max(1, len(data) // 3)]
        if name.endswith(".csv"):
            # A CSV cut mid-way may still parse: cut inside the header, so no row is left.
            data = data[: max(1, data.index(b"\n") // 2)] if b"\n" in data else b""
    elif corruption == "empty":
        data = b""
    elif corruption == "garbage":
        data = bytes(np.random.default_rng(spec.seed).integers(0, 256, 300, dtype=np.uint8))
        data = (b"PAR1" + data + b"PAR1") if name.endswith(".parquet") else b"\xff\xfe" + data
    elif corruption == "utf16":
        data = frame.to_csv(index=False).encode("utf-16")
    elif corruption == "latin1":
        text = frame.to_csv(index=False)
        data = text.replace("ts", "tś", 1).encode("latin-1", errors="replace")
        data = data.replace(b"t?", b"t\xe9", 1)
    elif corruption == "renamed":
        name = f"{BATCH_ID}.parquet"
        data = frame.to_csv(index=False).encode()
    elif corruption == "duplicate_header":
        first = next(iter(frame.columns))
        frame = frame.assign(**{"dup_tmp": frame[first]})
        text = frame.to_csv(index=False)
        header, _, body = text.partition("\n")
        data = (header.replace("dup_tmp", str(first)) + "\n" + body).encode()
        if name.endswith(".parquet"):
            arrays = [pa.array(frame[c].tolist()) for c in frame.columns]
            table = pa.Table.from_arrays(arrays, names=[*list(frame.columns)[:-1], str(first)])
            buffer = io.BytesIO()
            pq.write_table(table, buffer)
            data = buffer.getvalue()
    return schema, name, data
