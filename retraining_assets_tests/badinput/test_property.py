"""Property tests: thousands of generated batch files through ingestion and validation.

``test_ten_thousand_batches`` throws 10,000 generated files (random schemas, dtypes, NaN/inf,
encodings, formats, sizes, file damage) at the pure ingestion path: ``parse_batch`` reads the
bytes, ``batch_period`` places the batch in time, and ``quick_problems`` applies the suite's rules
(ingestion accepts a batch only if these and the GE suite pass). Zero unhandled exceptions (every
failure is a ``BatchError``), zero invalid batches accepted, every clean batch accepted.
``test_generated_batches_through_great_expectations`` runs the complete ``check_batch`` (GE
included) on a few hundred of them. Both are derandomized, so CI sees the same examples.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from retraining_assets.core import batches as batch_io
from retraining_assets.core.validation import check_batch, quick_problems
from retraining_assets_tests.badinput.generate import BATCH_ID, Spec, make_file, specs

pytestmark = pytest.mark.slow

NOW = "2026-01-01"
_SETTINGS = {
    "derandomize": True,
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


def _ingest(spec: Spec) -> list[str]:
    """The pure ingestion of one generated file: its problems (empty = accepted)."""
    schema, name, data = make_file(spec)
    try:
        frame = batch_io.parse_batch(data, name, schema)
    except batch_io.BatchError as exc:
        return [str(exc)]
    stamps = frame["ts"] if list(frame.columns).count("ts") == 1 else None
    period = batch_io.batch_period(BATCH_ID, stamps, "weekly")
    import pandas as pd

    return quick_problems(
        frame,
        schema,
        with_target=schema.target in frame.columns,
        period=period,
        not_after=pd.Timestamp(NOW),
    )


def test_ten_thousand_batches() -> None:
    seen: Counter[str] = Counter()
    started = time.perf_counter()

    @settings(max_examples=10_000, **_SETTINGS)
    @given(spec=specs())
    def run(spec: Spec) -> None:
        problems = _ingest(spec)  # anything but BatchError propagates and fails the test
        seen["examples"] += 1
        seen["invalid" if spec.invalid else "clean"] += 1
        if spec.invalid:
            assert problems, f"invalid batch accepted: {spec}"
        else:
            assert not problems, f"clean batch refused: {problems} ({spec})"

    run()
    print(f"\n{dict(seen)} in {time.perf_counter() - started:.1f} s")
    assert seen["examples"] >= 10_000
    assert seen["invalid"] > 3_000 and seen["clean"] > 3_000


def test_generated_batches_through_great_expectations(tmp_path: Path) -> None:
    seen: Counter[str] = Counter()
    started = time.perf_counter()

    @settings(max_examples=300, **_SETTINGS)
    @given(spec=specs())
    def run(spec: Spec) -> None:
        schema, name, data = make_file(spec)
        folder = tmp_path / f"b{seen['examples']}"
        folder.mkdir()
        (folder / name).write_bytes(data)
        verdict = check_batch(folder, BATCH_ID, schema, now=NOW)
        seen["examples"] += 1
        if spec.invalid:
            assert not verdict.ok, f"invalid batch accepted: {spec}"
            assert verdict.message()
        else:
            assert verdict.ok, f"clean batch refused: {verdict.message()} ({spec})"

    run()
    print(f"\n{dict(seen)} in {time.perf_counter() - started:.1f} s")
    assert seen["examples"] >= 300
