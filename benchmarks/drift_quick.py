"""Quick wall-time check of :func:`compute_drift` against a bare sort and a scipy KS loop.

Usage::

    .venv/bin/python benchmarks/drift_quick.py [--rows 100000] [--repeats 5]

Reference and batch both have ``rows`` rows of 20 numeric columns (normal, exponential,
integer-valued and 5%-missing ones; four drift slightly, two clearly) and 5 categorical string
columns (5 to 50 levels). Each timing is the best of ``repeats`` runs, all in this process:

* ``np.sort``: sorting the batch's 20 numeric columns, one thread (the floor any exact KS needs);
* ``compute_drift``: the full per-batch work (KS D and p-value, PSI, chi-square, missing rates,
  corrections, verdict) against a profile built once, with 1 and 2 worker threads;
* ``scipy ks_2samp loop``: ``scipy.stats.ks_2samp`` per numeric column (statistic and p-value,
  no PSI, no categoricals), as a per-column scipy approach would do.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats

from retraining_assets.core.drift import build_reference, compute_drift

N_NUMERIC = 20
N_CATEGORICAL = 5


def make_frame(rows: int, seed: int, *, drifted: bool) -> pd.DataFrame:
    """One frame of synthetic features.

    Args:
        rows: Number of rows.
        seed: Random seed.
        drifted: Shift columns ``n0``-``n3`` slightly and ``n4``-``n5`` clearly, and move
            some mass between the levels of ``c0``.

    Returns:
        A frame with columns ``n0``..``n19`` (float64) and ``c0``..``c4`` (object strings).
    """
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    for i in range(N_NUMERIC):
        if i % 4 == 1:
            col = rng.exponential(1.0, rows)
        elif i % 4 == 2:
            col = rng.integers(0, 30, rows).astype(np.float64)
        else:
            col = rng.standard_normal(rows)
        if i % 4 == 3:
            col[rng.random(rows) < 0.05] = np.nan
        if drifted and i < 4:
            col = col + 0.02
        elif drifted and i < 6:
            col = col * 1.3 + 0.5
        data[f"n{i}"] = col
    for j in range(N_CATEGORICAL):
        levels = np.array([f"level{k}" for k in range(5 + 10 * j)], dtype=object)
        probs = np.linspace(2.0, 1.0, levels.size)
        if drifted and j == 0:
            probs = probs[::-1]
        data[f"c{j}"] = levels[rng.choice(levels.size, rows, p=probs / probs.sum())]
    return pd.DataFrame(data)


def best_of(repeats: int, func: Callable[[], object]) -> float:
    """Smallest wall time of ``repeats`` calls, in seconds.

    Args:
        repeats: Number of calls.
        func: The work to time.

    Returns:
        The best time.
    """
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    """Build the frames, time each approach and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    numeric = [f"n{i}" for i in range(N_NUMERIC)]
    categorical = [f"c{j}" for j in range(N_CATEGORICAL)]
    reference = make_frame(args.rows, 1, drifted=False)
    batch = make_frame(args.rows, 2, drifted=True)

    start = time.perf_counter()
    profile = build_reference(reference, numeric, categorical)
    build_time = time.perf_counter() - start
    ref_values = {name: reference[name].dropna().to_numpy() for name in numeric}
    batch_values = {name: batch[name].to_numpy() for name in numeric}

    def bare_sort() -> None:
        for name in numeric:
            np.sort(batch_values[name])

    def scipy_loop() -> None:
        for name in numeric:
            cur = batch_values[name]
            stats.ks_2samp(ref_values[name], cur[~np.isnan(cur)])

    timings = {
        "np.sort, 20 numeric columns": best_of(args.repeats, bare_sort),
        "compute_drift, workers=1": best_of(
            args.repeats, lambda: compute_drift(profile, batch, workers=1)
        ),
        "compute_drift, workers=2": best_of(
            args.repeats, lambda: compute_drift(profile, batch, workers=2)
        ),
        "scipy ks_2samp loop, 20 numeric": best_of(args.repeats, scipy_loop),
    }
    baseline = timings["np.sort, 20 numeric columns"]
    result = compute_drift(profile, batch)

    print(f"rows: {args.rows:,} reference + {args.rows:,} batch, {N_NUMERIC} numeric + "
          f"{N_CATEGORICAL} categorical, best of {args.repeats}")  # fmt: skip
    print(f"build_reference (once per model): {build_time * 1e3:8.1f} ms")
    print(f"{'approach':<34}{'ms':>10}{'x np.sort':>12}")
    for label, seconds in timings.items():
        print(f"{label:<34}{seconds * 1e3:>10.1f}{seconds / baseline:>12.2f}")
    print(result.summary())


if __name__ == "__main__":
    main()
