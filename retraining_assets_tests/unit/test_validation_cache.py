"""Validation results are reused only for the same inputs, and only when they passed."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd

from retraining_assets.core import validation
from retraining_assets.core.synthetic import SYNTHETIC_SCHEMA, make_batch
from retraining_assets.core.validation import ExpectationOutcome, ValidationResult
from retraining_assets.core.validation_cache import validate_cached, validation_key
from retraining_assets.settings import FLIGHTS_SCHEMA


def _result(success: bool) -> ValidationResult:
    outcome = ExpectationOutcome(
        "expect_column_values_to_not_be_null", "nulls", success, "x0", "no missing", {"n": 3}
    )
    return ValidationResult(success=success, outcomes=(outcome,), n_rows=10, duration_s=1.5)


def _key(**changes) -> str:
    parts = {
        "dataset_md5": "a" * 32,
        "schema": SYNTHETIC_SCHEMA,
        "options": {"extra_columns": ("__split__",)},
        "code_version": "v1",
    }
    return validation_key(**{**parts, **changes})


def test_a_passing_result_is_reused_for_the_same_inputs_only(tmp_path) -> None:
    calls: list[bool] = []

    def validate(success: bool = True) -> ValidationResult:
        calls.append(success)
        return _result(success)

    assert validate_cached(tmp_path, _key(), validate) == _result(True)
    assert validate_cached(tmp_path, _key(), validate) == _result(True)
    assert calls == [True]
    for other in (_key(schema=FLIGHTS_SCHEMA), _key(dataset_md5="b" * 32), _key(code_version="v2")):
        validate_cached(tmp_path, other, validate)
    assert len(calls) == 4
    validate_cached(None, _key(), validate)
    assert len(calls) == 5


def test_a_failure_is_never_kept(tmp_path) -> None:
    calls: list[bool] = []

    def failing() -> ValidationResult:
        calls.append(False)
        return _result(False)

    key = _key(dataset_md5="c" * 32)
    assert not validate_cached(tmp_path, key, failing).success
    assert not validate_cached(tmp_path, key, failing).success
    assert len(calls) == 2


def test_a_key_being_validated_is_waited_for_and_reused(tmp_path, await_lock_waiter) -> None:
    # Two replay workers validating the same window at once: the suite runs once.
    calls: list[bool] = []
    other: list[ValidationResult] = []

    def validate() -> ValidationResult:
        calls.append(True)
        second.start()
        await_lock_waiter(tmp_path / f".{_key()}.lock")
        return _result(True)

    second = threading.Thread(
        target=lambda: other.append(validate_cached(tmp_path, _key(), validate))
    )
    assert validate_cached(tmp_path, _key(), validate) == _result(True)
    second.join(timeout=5)
    assert other == [_result(True)] and calls == [True]


# --- raw batches: check_batch with a cache ----------------------------------------------------

WEEK = pd.Timestamp("2024-03-04")
NOW = pd.Timestamp("2024-06-01")


def _write(folder: Path, frame: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / "2024-03-04.parquet", index=False)
    return folder


def _check(folder: Path, cache: Path | None, version: str = "v1", now: pd.Timestamp = NOW):
    return validation.check_batch(
        folder, "2024-03-04", SYNTHETIC_SCHEMA, now=now, cache=cache, code_version=version
    )


def test_a_batch_copy_with_the_same_bytes_reuses_the_passing_suite_result(
    tmp_path, suite_runs
) -> None:
    runs = suite_runs
    cache = tmp_path / "cache"
    frame = make_batch(200, WEEK, seed=3)
    # Two policies' copies of one batch: written by the same code from the same frame.
    first = _check(_write(tmp_path / "a", frame), cache)
    second = _check(_write(tmp_path / "b", frame), cache)
    assert first.ok and second.ok and first.md5 == second.md5
    assert first.result == second.result
    assert runs == [200]
    # Another code version, or no cache: the suite runs again.
    assert _check(tmp_path / "b", cache, version="v2").ok
    assert _check(tmp_path / "b", None).ok
    assert len(runs) == 3


def test_a_failing_batch_is_never_served_as_passing(tmp_path, suite_runs) -> None:
    runs = suite_runs
    cache = tmp_path / "cache"
    bad = make_batch(200, WEEK, seed=3)
    bad.loc[:5, "label"] = 7  # a label outside {0, 1}
    folder = _write(tmp_path / "a", bad)
    for _ in range(2):
        assert not _check(folder, cache).ok
    assert len(runs) == 2 and not list(cache.glob("*.json"))


def test_a_cached_pass_still_meets_todays_clock(tmp_path, suite_runs) -> None:
    """The pandas rules run on a cache hit too: rows now in the future are refused."""
    runs = suite_runs
    cache = tmp_path / "cache"
    folder = _write(tmp_path / "a", make_batch(200, WEEK, seed=3))
    assert _check(folder, cache).ok
    assert list(cache.glob("*.json"))
    earlier = _check(folder, cache, now=WEEK)
    assert runs == [200]  # a hit: only the pandas rules ran, and they refuse it
    assert not earlier.ok and "future" in earlier.message()
