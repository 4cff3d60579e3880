"""GE validation time of an 8-week flights window and of one weekly batch (best of N).

Usage::

    PYTHONPATH=$PWD .venv/bin/python -m retraining_assets.cli build-batches --out /tmp/b
    PYTHONPATH=$PWD .venv/bin/python benchmarks/validation_time.py /tmp/b [--weeks 8] [--repeat 5]

Prints the number of expectations and the best wall time of ``validate_frame`` on the window
(as ``validated_dataset`` runs it) and on its last batch (as ``raw_batches`` runs it).
"""

from __future__ import annotations

import argparse
import inspect
import time
from pathlib import Path

import pandas as pd


def main() -> None:
    """Time the suite on the window and on one batch."""
    from retraining_assets.core.validation import validate_frame
    from retraining_assets.settings import BATCH_COLUMN, FLIGHTS_SCHEMA, SPLIT_COLUMN

    parser = argparse.ArgumentParser()
    parser.add_argument("batches", type=Path)
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    files = sorted(args.batches.glob("*.parquet"))[10 : 10 + args.weeks]
    frames = []
    for path in files:
        frame = pd.read_parquet(path)
        frame[SPLIT_COLUMN] = "train"
        frame[BATCH_COLUMN] = path.stem
        frames.append(frame)
    window = pd.concat(frames, ignore_index=True)
    batch = pd.read_parquet(files[-1])
    extra = (SPLIT_COLUMN, BATCH_COLUMN)
    validate_frame(batch, FLIGHTS_SCHEMA)  # GX import and context creation, not timed
    period_kw = {}
    if "period" in inspect.signature(validate_frame).parameters:
        start = pd.Timestamp(files[-1].stem)
        period_kw = {"period": (start, start + pd.Timedelta(days=7))}
    for label, frame, kwargs in (
        (f"{args.weeks}-week window", window, {"extra_columns": extra}),
        ("one weekly batch", batch, period_kw),
    ):
        best = float("inf")
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = validate_frame(frame, FLIGHTS_SCHEMA, **kwargs)
            best = min(best, time.perf_counter() - started)
        assert result.success, result.summary()
        print(
            f"{label}: {len(frame)} rows, {len(result.outcomes)} expectations, "
            f"best of {args.repeat}: {best:.3f} s"
        )


if __name__ == "__main__":
    main()
