"""Peak memory of one big batch through ingestion, drift monitoring and retraining vs its frame.

Target (issue 13): a 5M-row batch through monitoring and retraining peaks within 2.5x its frame.

The parent writes a batch of ``--rows`` rows in the flights schema (rows of the real 2013
flights resampled into the week of 2013-01-07, timestamp-derived columns recomputed, fresh ids, so
the batch passes every validation rule) and a test week (``--test-rows`` rows, 2013-01-14). Each
stage then runs in a fresh subprocess, on the code of ``--code`` (default: this checkout;
``--before DIR`` adds the same stages on another checkout, printed side by side):

- ``ingest``: ``validation.check_batch`` (what ``raw_batches`` does: read the bytes, md5, parse,
  GX suite, the pandas rules);
- ``drift``: read + parse the batch's feature columns and ``drift.compute_drift`` against a
  profile of real flights (what ``batch_drift`` does; the cached profile is built before the
  baseline);
- ``dataset``: read the window (the big batch as train, the test week), ``collect_dataset``,
  ``apply_weights``, ``write_parquet_atomic`` (``training_dataset`` without ``dvc add``);
- ``validate``: read the dataset parquet and ``validate_frame`` it (``validated_dataset``);
- ``train``: read the dataset parquet and ``train_model`` on its train split with its weights
  (``candidate_model``; ``--rounds`` trees, default 10: the Dataset is built once whatever the
  count, and the trees add no memory that grows with rows).

Each child imports everything first (pandas, pyarrow, GX with its context, LightGBM, SciPy), so
``baseline`` (``VmRSS`` just before the stage) holds the code; the RSS high-water mark is then
reset (``/proc/self/clear_refs``) and ``peak`` is ``ru_maxrss`` after the stage (also sampled
every 2 ms as a cross-check). ``frame`` is ``memory_usage(deep=True)`` of the batch as parsed.
Printed: peak / frame (the target) and (peak - baseline) / frame.

    nice .venv/bin/python benchmarks/peak_memory.py [--rows 5000000] [--before /tmp/base]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
BATCH = "2013-01-07"
TEST = "2013-01-14"
STAGES = ("ingest", "drift", "dataset", "validate", "train")
MB = 1024 * 1024


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def current_rss() -> int:
    """Current resident set size of this process, bytes."""
    return _status_kb("VmRSS") * 1024


def reset_peak() -> bool:
    """Reset this process's RSS high-water mark; False if the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss() -> int:
    """``ru_maxrss`` of this process, bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def make_batches(folder: Path, rows: int, test_rows: int, seed: int = 7) -> None:
    """Write the big batch and the test week as parquet files into ``folder``."""
    import numpy as np
    import pandas as pd

    from retraining_assets.core.batches import write_parquet_atomic
    from retraining_assets.core.demo_data import load_flights
    from retraining_assets.settings import FLIGHTS_SCHEMA as schema

    flights = load_flights()
    rng = np.random.default_rng(seed)
    first_id = 0
    for batch_id, n in ((BATCH, rows), (TEST, test_rows)):
        frame = flights.iloc[rng.integers(0, len(flights), n)].reset_index(drop=True)
        seconds = np.sort(rng.integers(0, 7 * 86400, n))
        stamps = pd.Timestamp(batch_id) + pd.to_timedelta(seconds, unit="s")
        frame[schema.timestamp] = stamps
        frame["month"] = stamps.month.astype("float64")
        frame["weekday"] = stamps.weekday.astype("float64")
        frame["hour"] = stamps.hour.astype("float64")
        frame["minute"] = stamps.minute.astype("float64")
        frame[schema.id_column] = np.arange(first_id, first_id + n, dtype="int64")
        first_id += n
        write_parquet_atomic(frame[schema.columns], folder / f"{batch_id}.parquet")
        del frame


def _imports() -> None:
    """Everything a stage may load, so that the baseline holds the libraries' code."""
    import lightgbm  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import scipy.stats  # noqa: F401

    import retraining_assets  # noqa: F401
    from retraining_assets.core import batches, drift, strategies, training  # noqa: F401
    from retraining_assets.core.validation import _get_context

    _get_context()


def child(stage: str, folder: Path) -> dict[str, Any]:
    """Run one stage in this (fresh) process and return its memory figures."""
    import pandas as pd

    _imports()
    from retraining_assets.core import batches as batch_io
    from retraining_assets.core.drift import build_reference, compute_drift
    from retraining_assets.core.strategies import apply_weights, plan_training
    from retraining_assets.core.training import TrainParams, train_model
    from retraining_assets.core.validation import check_batch, validate_frame
    from retraining_assets.core.versioning import file_md5
    from retraining_assets.settings import (
        BATCH_COLUMN,
        SPLIT_COLUMN,
        WEIGHT_COLUMN,
    )
    from retraining_assets.settings import FLIGHTS_SCHEMA as schema

    numeric, categorical = list(schema.numeric_features), list(schema.categorical_features)
    dataset_path = folder / "training_dataset.parquet"
    profile = None
    if stage == "drift":
        from retraining_assets.core.demo_data import load_flights

        reference = load_flights().head(50_000)
        profile = build_reference(reference, numeric, categorical)
        del reference
    md5s = {}
    if stage == "dataset":
        md5s = {b: file_md5(folder / f"{b}.parquet") for b in (BATCH, TEST)}
    args = sys.argv
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 10

    def run() -> str:
        if stage == "ingest":
            verdict = check_batch(folder, BATCH, schema, now=pd.Timestamp("2013-02-01"))
            if not verdict.ok:
                raise SystemExit(f"the batch was rejected: {verdict.message()}")
            return f"{len(verdict.frame)} rows accepted"
        if stage == "drift":
            assert profile is not None
            raw = batch_io.read_raw(folder, BATCH)
            features = [*numeric, *categorical]
            frame = batch_io.parse_batch(raw.data, raw.key, schema, columns=features)
            del raw
            result = compute_drift(profile, frame)
            return f"drift score {result.score:.3f}"
        if stage == "dataset":
            # As training_dataset: the md5s are those ingestion recorded.
            plan = plan_training([BATCH, TEST], "full", as_of=None, window_batches=8)
            frames = {
                b: batch_io.read_validated_batch(folder, b, md5s[b], schema, columns=schema.columns)
                for b in plan.window.all_batches
            }
            dataset = apply_weights(
                batch_io.collect_dataset(frames, plan.window, schema), plan, schema
            )
            del frames
            batch_io.write_parquet_atomic(dataset, dataset_path)
            return f"{len(dataset)} rows written"
        if stage == "validate":
            frame = pd.read_parquet(dataset_path)
            result = validate_frame(
                frame, schema, extra_columns=(SPLIT_COLUMN, BATCH_COLUMN, WEIGHT_COLUMN)
            )
            if not result.success:
                raise SystemExit(f"the dataset failed validation: {result.summary()}")
            return f"{len(result.outcomes)} expectations passed"
        if stage == "train":
            frame = pd.read_parquet(dataset_path)
            if hasattr(batch_io, "split_rows"):  # as candidate_model does
                train = batch_io.split_rows(frame, "train")
            else:  # the code before split_rows
                train = frame[frame[SPLIT_COLUMN] == "train"]
            weights = train[WEIGHT_COLUMN].to_numpy() if WEIGHT_COLUMN in train else None
            params = TrainParams(num_boost_round=rounds, early_stopping_rounds=rounds)
            trained = train_model(train, schema, params, weights=weights)
            return f"{trained.best_iteration} trees, valid AUC {trained.valid_auc:.3f}"
        raise SystemExit(f"unknown stage {stage}")

    sampled = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            sampled[0] = max(sampled[0], current_rss())
            time.sleep(0.002)

    baseline = current_rss()
    was_reset = reset_peak()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    outcome = run()
    seconds = time.perf_counter() - started
    peak = peak_rss()
    done.set()
    sampler.join()
    return {
        "stage": stage,
        "baseline": baseline,
        "peak": peak,
        "sampled_peak": sampled[0],
        "reset": was_reset,
        "seconds": seconds,
        "outcome": outcome,
    }


def frame_child(folder: Path) -> dict[str, Any]:
    """Rows and in-memory size of the big batch as the project parses it."""
    from retraining_assets.core import batches as batch_io
    from retraining_assets.settings import FLIGHTS_SCHEMA as schema

    raw = batch_io.read_raw(folder, BATCH)
    frame = batch_io.parse_batch(raw.data, raw.key, schema)
    return {
        "rows": len(frame),
        "file": len(raw.data),
        "deep": int(frame.memory_usage(deep=True).sum()),
        "shallow": int(frame.memory_usage(deep=False).sum()),
        "dtypes": {c: str(t) for c, t in frame.dtypes.items()},
    }


def _run(code: Path, *args: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": str(code),
        "OMP_NUM_THREADS": "1",
        "GX_ANALYTICS_ENABLED": "false",
    }
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise SystemExit(f"child {args} on {code} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    """Write the batches, run every stage in a fresh process per checkout, print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--test-rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--code", type=Path, default=HERE)
    parser.add_argument("--before", type=Path, help="another checkout, run side by side")
    parser.add_argument("--folder", type=Path, help="reuse (or keep) the batches here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        folder = Path(args.child[1])
        result = frame_child(folder) if args.child[0] == "frame" else child(args.child[0], folder)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / f"{BATCH}.parquet").exists():
            started = time.perf_counter()
            make_batches(folder, args.rows, args.test_rows)
            seconds = time.perf_counter() - started
            print(f"wrote {args.rows} + {args.test_rows} rows in {seconds:.0f} s")
        frame = _run(args.code, "frame", str(folder))
        print(
            f"batch: {frame['rows']} rows, file {frame['file'] / MB:.0f} MB, frame"
            f" {frame['deep'] / MB:.0f} MB deep ({frame['shallow'] / MB:.0f} MB shallow)"
        )
        codes = {"after": args.code}
        if args.before:
            codes = {"before": args.before, **codes}
        results: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in codes}
        for stage in args.stages.split(","):
            for name, code in codes.items():  # alternate: before, after per stage
                extra = ["--rounds", str(args.rounds)]
                results[name][stage] = _run(code, stage, str(folder), *extra)
                r = results[name][stage]
                print(
                    f"  {stage:9} {name:6} peak {r['peak'] / MB:7.0f} MB"
                    f" ({r['peak'] / frame['deep']:.2f}x frame), {r['seconds']:.0f} s:"
                    f" {r['outcome']}",
                    flush=True,
                )
        deep = frame["deep"]
        print()
        head = " | ".join(f"{name} peak MB | x frame | (peak-base) x frame" for name in codes)
        print(f"| stage | {head} |")
        print("|---|" + "---|---|---|" * len(codes))
        for stage in args.stages.split(","):
            cells = []
            for name in codes:
                r = results[name][stage]
                cells.append(
                    f"{r['peak'] / MB:.0f} | {r['peak'] / deep:.2f} |"
                    f" {(r['peak'] - r['baseline']) / deep:.2f}"
                )
            print(f"| {stage} | " + " | ".join(cells) + " |")
        every = [r for rs in results.values() for r in rs.values()]
        spread = max(abs(r["peak"] - r["sampled_peak"]) for r in every)
        print(
            f"frame = {deep / MB:.0f} MB (memory_usage(deep=True) of the parsed batch); peak ="
            " ru_maxrss after a high-water reset before the stage; baseline = RSS after imports"
            f" (reset ok: {all(r['reset'] for r in every)}; sampled peaks within"
            f" {spread / MB:.0f} MB)"
        )


if __name__ == "__main__":
    main()
