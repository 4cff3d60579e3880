"""Validation results are reused only for the same inputs, and only when they passed."""

from __future__ import annotations

from retraining_assets.core.synthetic import SYNTHETIC_SCHEMA
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
