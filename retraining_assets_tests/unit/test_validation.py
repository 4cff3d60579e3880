"""Great Expectations validation: suite groups, failure reporting, no mutation, lazy GX import."""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from retraining_assets.core import validation
from retraining_assets.core.validation import (
    GROUPS,
    UNIQUE_COLUMN_NAMES,
    ExpectationOutcome,
    ValidationResult,
    build_suite,
    validate_frame,
)
from retraining_assets.settings import FLIGHTS_SCHEMA, SPLIT_COLUMN

SCHEMA = FLIGHTS_SCHEMA
N = 200


def _make_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {
        "flight_id": np.arange(n, dtype="int64"),
        "scheduled_departure": pd.Timestamp("2013-01-01")
        + pd.to_timedelta(rng.integers(0, 365 * 24 * 60, n), unit="min"),
    }
    for column in SCHEMA.numeric_features:
        low, high = SCHEMA.numeric_ranges.get(column, (0.0, 100.0))
        data[column] = rng.uniform(low, high, n).round().astype("float64")
    for column, choices in zip(
        SCHEMA.categorical_features,
        (["AA", "B6", "DL", "UA"], ["EWR", "JFK", "LGA"], ["ATL", "BOS", "LAX", "ORD"]),
        strict=True,
    ):
        data[column] = rng.choice(choices, n).astype(object)
    data["delayed"] = rng.integers(0, 2, n).astype("int64")
    return pd.DataFrame(data)[SCHEMA.columns]


@pytest.fixture(scope="module")
def valid_frame() -> pd.DataFrame:
    """A valid FLIGHTS_SCHEMA batch; also pays the GX import and context creation once."""
    frame = _make_frame(N)
    validation._get_context()
    return frame


@pytest.fixture
def frame(valid_frame: pd.DataFrame) -> pd.DataFrame:
    return valid_frame.copy()


def _failed_groups(result: ValidationResult) -> set[str]:
    return {group for group in GROUPS if not result.group_success(group)}


def _failures(result: ValidationResult, group: str) -> list[ExpectationOutcome]:
    return [o for o in result.by_group()[group] if not o.success]


def test_valid_frame_passes(frame: pd.DataFrame) -> None:
    result = validate_frame(frame, SCHEMA)
    assert result.success, result.summary()
    assert result.failures() == []
    assert _failed_groups(result) == set()
    assert result.n_rows == N
    assert result.duration_s > 0
    assert result.summary() == f"All {len(result.outcomes)} expectations passed on {N} rows."
    assert set(result.by_group()) == set(GROUPS)
    assert all(result.by_group()[group] for group in GROUPS)
    assert all(o.group in GROUPS and o.observed for o in result.outcomes)


def test_suite_tags_every_expectation_with_a_group() -> None:
    suite = build_suite(SCHEMA, extra_columns=(SPLIT_COLUMN,))
    groups = [e.meta["group"] for e in suite.expectations]
    assert set(groups) == set(GROUPS)
    existence = [e.column for e in suite.expectations if e.expectation_type.endswith("to_exist")]
    assert existence == [*SCHEMA.columns, SPLIT_COLUMN]


def test_missing_column_fails_schema_and_is_named(frame: pd.DataFrame) -> None:
    result = validate_frame(frame.drop(columns=["distance"]), SCHEMA)
    assert not result.success
    assert "schema" in _failed_groups(result)
    assert "column 'distance' is missing" in result.summary()
    on_distance = [o for o in result.outcomes if o.column == "distance"]
    assert len(on_distance) >= 3  # exists, type, not-null, range
    assert all(not o.success for o in on_distance)
    assert {o.column for o in result.failures()} == {"distance"}


def test_nan_labels_fail_nulls(frame: pd.DataFrame) -> None:
    frame["delayed"] = frame["delayed"].astype("float64")
    frame.loc[frame.index[:17], "delayed"] = np.nan
    result = validate_frame(frame, SCHEMA)
    assert _failed_groups(result) == {"nulls"}
    (failure,) = result.failures()
    assert failure.column == "delayed"
    assert "17 missing values" in result.summary()
    assert "delayed" in result.summary()


def test_label_out_of_set_fails_label(frame: pd.DataFrame) -> None:
    frame.loc[frame.index[5], "delayed"] = 2
    result = validate_frame(frame, SCHEMA)
    assert _failed_groups(result) == {"label"}
    assert "not in {0, 1}" in result.summary()


def test_single_class_fails_label(frame: pd.DataFrame) -> None:
    frame["delayed"] = 1
    result = validate_frame(frame, SCHEMA)
    assert _failed_groups(result) == {"label"}
    assert "never takes the value 0" in result.summary()


def test_out_of_range_hour_fails_ranges(frame: pd.DataFrame) -> None:
    frame.loc[frame.index[3], "hour"] = 30.0
    frame.loc[frame.index[4], "humid"] = np.nan  # missing values are not range violations
    result = validate_frame(frame, SCHEMA)
    assert _failed_groups(result) == {"ranges"}
    (failure,) = _failures(result, "ranges")
    assert failure.column == "hour"
    assert failure.details["result"]["unexpected_count"] == 1
    assert "column 'hour' has 1 value outside [0, 23]" in result.summary()


def test_failures_get_examples_and_passes_keep_their_sentences(frame: pd.DataFrame) -> None:
    """The pass/fail-only first run is completed with examples for the failed expectations."""
    frame.loc[frame.index[3], "hour"] = 30.0
    frame.loc[frame.index[5], "delayed"] = 2
    result = validate_frame(frame, SCHEMA)
    assert _failed_groups(result) == {"ranges", "label"}
    by_column = {(o.name, o.column): o for o in result.outcomes}
    hour = by_column[("expect_column_values_to_be_between", "hour")]
    assert hour.details["result"]["partial_unexpected_list"] == [30.0]
    assert "(e.g. 30)" in hour.observed
    label = by_column[("expect_column_values_to_be_in_set", "delayed")]
    assert "not in {0, 1} (e.g. 2)" in label.observed
    distance = by_column[("expect_column_values_to_be_between", "distance")]
    assert distance.success and distance.observed.endswith("values are within [1, 6000]")
    assert [o.name for o in result.outcomes] == [
        o.name for o in validate_frame(frame.iloc[:0], SCHEMA).outcomes
    ]


def test_too_few_rows_fails_row_count(frame: pd.DataFrame) -> None:
    result = validate_frame(frame.head(SCHEMA.min_rows - 1), SCHEMA)
    assert _failed_groups(result) == {"row_count"}
    assert f"{SCHEMA.min_rows - 1} rows (expected at least {SCHEMA.min_rows})" in result.summary()


def test_duplicated_id_fails(frame: pd.DataFrame) -> None:
    frame.loc[frame.index[1], "flight_id"] = frame["flight_id"].iloc[0]
    result = validate_frame(frame, SCHEMA)
    assert not result.success
    (failure,) = result.failures()
    assert failure.column == "flight_id"
    assert failure.group == "schema"


def test_wrong_types_fail_types(frame: pd.DataFrame) -> None:
    frame["carrier"] = np.arange(len(frame))
    frame["scheduled_departure"] = frame["scheduled_departure"].astype(str)
    result = validate_frame(frame, SCHEMA)
    assert _failed_groups(result) == {"types"}
    assert {o.column for o in result.failures()} == {"carrier", "scheduled_departure"}


def test_category_and_nullable_dtypes_are_accepted(frame: pd.DataFrame) -> None:
    frame["carrier"] = frame["carrier"].astype("category")
    frame["origin"] = frame["origin"].astype("string")
    frame["month"] = frame["month"].astype("Int64")
    result = validate_frame(frame, SCHEMA)
    assert result.success, result.summary()


def test_extra_split_column_is_accepted(frame: pd.DataFrame) -> None:
    with_split = frame.assign(**{SPLIT_COLUMN: "train"})
    assert validate_frame(with_split, SCHEMA, extra_columns=(SPLIT_COLUMN,)).success
    missing = validate_frame(frame, SCHEMA, extra_columns=(SPLIT_COLUMN,))
    assert _failed_groups(missing) == {"schema"}
    assert f"column '{SPLIT_COLUMN}' is missing" in missing.summary()


def test_input_frame_is_not_modified(frame: pd.DataFrame) -> None:
    frame["carrier"] = frame["carrier"].astype("category")
    frame.loc[frame.index[0], "hour"] = 99.0
    frame = frame.drop(columns=["distance"])
    before = frame.copy(deep=True)
    validate_frame(frame, SCHEMA, extra_columns=(SPLIT_COLUMN,))
    pd.testing.assert_frame_equal(frame, before)


def test_duplicated_column_names_do_not_raise(frame: pd.DataFrame) -> None:
    doubled = pd.concat([frame, frame[["hour"]]], axis=1)
    result = validate_frame(doubled, SCHEMA)
    assert not result.group_success("schema")
    assert result.failures()[0].name == UNIQUE_COLUMN_NAMES
    assert "'hour' is duplicated" in result.summary()


def test_repeated_calls_are_independent_and_leave_no_data_source(frame: pd.DataFrame) -> None:
    bad = frame.copy()
    bad.loc[bad.index[0], "hour"] = 99.0
    assert not validate_frame(bad, SCHEMA).success
    assert validate_frame(frame, SCHEMA).success
    assert not validate_frame(bad, SCHEMA).success
    assert list(validation._get_context().data_sources.all()) == []


def test_no_network_access(frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[object] = []

    def refuse(_self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    assert validate_frame(frame, SCHEMA).success
    assert attempts == []


def test_result_helpers() -> None:
    ok = ExpectationOutcome("e1", "nulls", True, "a", "fine", {})
    bad = ExpectationOutcome("e2", "ranges", False, "b", "column 'b' is off", {})
    result = ValidationResult(False, (ok, bad), n_rows=3, duration_s=0.1)
    assert result.failures() == [bad]
    assert result.group_success("nulls") and not result.group_success("ranges")
    assert result.group_success("label")  # no expectations in the group
    assert result.by_group()["ranges"] == [bad]
    assert result.summary() == "1 of 2 expectations failed on 3 rows: ranges: column 'b' is off."
    with pytest.raises(ValueError, match="unknown expectation group"):
        result.group_success("bogus")


def test_module_import_does_not_import_great_expectations() -> None:
    code = (
        "import sys, retraining_assets.core.validation\n"
        "print([m for m in ('great_expectations', 'dagster', 'mlflow') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_duplicated_rows_matches_pandas_without_copying_the_columns() -> None:
    """The memory-light row key gives pandas' answer: missing values equal, -0.0 == 0.0, mixed
    dtypes, and enough distinct values per column to force the key's re-numbering."""
    rng = np.random.default_rng(5)
    for n in (0, 1, 7, 200):
        frame = pd.DataFrame(
            {
                "a": rng.choice([0.0, -0.0, 1.0, np.nan], n),
                "b": pd.Series(rng.choice(["x", "y", None], n), dtype=object),
                "c": pd.to_datetime(rng.integers(0, 3, n), unit="s"),
                "d": rng.integers(0, 2, n),
            }
        )
        for columns in (["a"], ["a", "b"], ["a", "b", "c", "d"]):
            expected = frame[columns].duplicated(keep=False).to_numpy()
            assert (validation.duplicated_rows(frame, columns) == expected).all()
    wide = pd.DataFrame({f"c{i}": rng.integers(0, 5000, 3000) for i in range(8)})
    wide = pd.concat([wide, wide.iloc[:40]], ignore_index=True)
    got = validation.duplicated_rows(wide, list(wide.columns))
    assert got.sum() == 80
    assert (got == wide.duplicated(keep=False).to_numpy()).all()
