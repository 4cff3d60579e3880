"""Property tests: thousands of generated batch files through ingestion and validation.

``test_ten_thousand_batches`` throws 10,000 generated files (random schemas, dtypes, NaN/inf,
encodings, formats, sizes, file damage) at the pure ingestion path: ``parse_batch`` reads the
bytes, ``batch_period`` places the batch in time, and ``quick_problems`` applies the suite's rules
(ingestion accepts a batch only if these and the GE suite pass). Zero unhandled exceptions (every
failure is a ``BatchError``), zero invalid batches accepted, every clean batch accepted.
``test_generated_batches_through_great_expectations`` runs the complete ``check_batch`` (GE
included) on a few hundred of them. Both are derandomized, so CI sees the same examples.

Each test's examples are drawn in :data:`SHARDS` processes side by side, each a Hypothesis run
with its own fixed seed and an equal share of the examples: the work is CPU-bound and the CI
machine has two cores while pytest runs one test at a time (10,000 examples took 160 s in one
process). The shard count is fixed, not taken from the machine, so every machine draws the same
examples. Under pytest-xdist (``make test`` runs ``-n 2``) the other core already runs another
worker's tests: the shards then run one after the other in the worker's own process (same seeds,
same shares, same examples), instead of two more busy processes on two cores.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings

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
#: Processes (and Hypothesis seeds) each test's examples are split over.
SHARDS = 2


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


def _sharded(
    shard_fn: Callable[[int, int, Path], Counter[str]], total: int, tmp: Path
) -> Counter[str]:
    """Run ``shard_fn(shard, examples, folder)`` for every shard in its own process; sum counts.

    In an xdist worker the shards run in the worker's process, one after the other.

    A failing shard's error (Hypothesis' falsifying example and traceback, as text) is raised
    here as an ``AssertionError``.
    """
    started = time.perf_counter()
    share = -(-total // SHARDS)
    folders = [tmp / f"shard{shard}" for shard in range(SHARDS)]
    for folder in folders:
        folder.mkdir()
    seen: Counter[str] = Counter()
    cpu = []
    if os.environ.get("PYTEST_XDIST_WORKER"):  # an xdist worker: the other core is taken
        where = "one xdist worker"
        for shard, folder in enumerate(folders):
            before = time.process_time()
            seen.update(shard_fn(shard, share, folder))
            cpu.append(f"{time.process_time() - before:.1f}")
    else:
        where = f"{SHARDS} processes"
        context = multiprocessing.get_context("spawn")  # no fork of pytest's threads and state
        with ProcessPoolExecutor(SHARDS, mp_context=context) as pool:
            futures = [
                pool.submit(_timed, shard_fn, shard, share, folder)
                for shard, folder in enumerate(folders)
            ]
            for future in futures:
                counts, seconds = future.result()
                seen.update(counts)
                cpu.append(f"{seconds:.1f}")
    print(
        f"\n{dict(seen)} in {time.perf_counter() - started:.1f} s "
        f"({where}, CPU s per shard: {', '.join(cpu)})"
    )
    return seen


def _timed(
    shard_fn: Callable[[int, int, Path], Counter[str]], shard: int, examples: int, folder: Path
) -> tuple[Counter[str], float]:
    """``shard_fn``'s counts and the CPU seconds its process spent (imports included)."""
    counts = shard_fn(shard, examples, folder)
    return counts, time.process_time()


def _failure(exc: BaseException) -> AssertionError:
    """A shard's failure as text (picklable whatever Hypothesis raised)."""
    return AssertionError("".join(traceback.format_exception(exc)))


def _explore(shard: int, examples: int, check: Callable[[Spec], None]) -> None:
    """``check`` on ``examples`` generated specs, seeded by ``shard``; a failure as text."""
    run = seed(shard)(settings(max_examples=examples, **_SETTINGS)(given(spec=specs())(check)))
    try:
        run()
    except Exception as exc:
        raise _failure(exc) from None


def _ingestion_shard(shard: int, examples: int, _folder: Path) -> Counter[str]:
    seen: Counter[str] = Counter()

    def check(spec: Spec) -> None:
        problems = _ingest(spec)  # anything but BatchError propagates and fails the test
        seen["examples"] += 1
        seen["invalid" if spec.invalid else "clean"] += 1
        if spec.invalid:
            assert problems, f"invalid batch accepted: {spec}"
        else:
            assert not problems, f"clean batch refused: {problems} ({spec})"

    _explore(shard, examples, check)
    return seen


def test_ten_thousand_batches(tmp_path: Path) -> None:
    seen = _sharded(_ingestion_shard, 10_000, tmp_path)
    assert seen["examples"] >= 10_000
    assert seen["invalid"] > 3_000 and seen["clean"] > 3_000


def _suite_shard(shard: int, examples: int, folder: Path) -> Counter[str]:
    seen: Counter[str] = Counter()

    def check(spec: Spec) -> None:
        schema, name, data = make_file(spec)
        seen["calls"] += 1  # a folder per call: shrinking calls again before counting
        batch = folder / f"b{seen['calls']}"
        batch.mkdir()
        (batch / name).write_bytes(data)
        verdict = check_batch(batch, BATCH_ID, schema, now=NOW)
        seen["examples"] += 1
        if spec.invalid:
            assert not verdict.ok, f"invalid batch accepted: {spec}"
            assert verdict.message()
        else:
            assert verdict.ok, f"clean batch refused: {verdict.message()} ({spec})"

    _explore(shard, examples, check)
    return seen


def test_generated_batches_through_great_expectations(tmp_path: Path) -> None:
    seen = _sharded(_suite_shard, 300, tmp_path)
    assert seen["examples"] >= 300
