"""Quick wall-time check of :func:`compute_drift` against a bare sort and a scipy KS loop.

Usage::

    .venv/bin/python benchmarks/drift_quick.py [--rows 100000] [--repeats 5] [--baseline REF]

Reference and batch both have ``rows`` rows of 20 numeric columns (normal, exponential,
integer-valued and 5%-missing ones; four drift slightly, two clearly) and 5 categorical string
columns (5 to 50 levels). Each timing is the best of ``repeats`` runs, all in this process:

* ``np.sort``: sorting the batch's 20 numeric columns, one thread (the floor any exact KS needs);
* ``compute_drift``: the full per-batch work (KS D and p-value, PSI, chi-square, missing rates,
  corrections, verdict) against a profile built once, with 1 and 2 worker threads;
* ``scipy ks_2samp loop``: ``scipy.stats.ks_2samp`` per numeric column (statistic and p-value,
  no PSI, no categoricals), as a per-column scipy approach would do;
* ``baseline compute_drift``: the same calls on the drift code (``core/drift.py``, since issue 14
  the package ``core/drift/``) as it was at git ``--baseline`` (``git show REF:...``, loaded
  as a separate module), for a before/after measured side by side. Pass ``--baseline ''`` to
  skip it;
* ``category_counts``: the categorical part alone (counting the 5 object-string columns), new
  and baseline.

The contenders run in turn within every repeat (sort, ours, baseline, ...), so a load spike from
other jobs hits all of them alike. Each is reported by wall time and by the process's CPU time
(``time.process_time``, all threads): on a machine shared with other jobs the CPU time of the
one-thread contenders hardly moves with the load, so the non-sort share is computed from it.
The output starts with the CPU's SIMD flags and numpy's runtime SIMD report, because ``np.sort``
of float64 is SIMD-accelerated (AVX-512 / AVX2), which sets the floor the other work is
compared with.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
from scipy import stats

from retraining_assets.core.drift import build_reference, category_counts, compute_drift

N_NUMERIC = 20
N_CATEGORICAL = 5
# drift.py before issue 15 part 3 (the non-sort work made cheap).
DEFAULT_BASELINE = "0bd516c"
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl")


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


def cpu_report() -> str:
    """The CPU model, its SIMD flags and numpy's runtime SIMD dispatch, as a few lines.

    Returns:
        Text to print before the timings.
    """
    model, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:  # not Linux
        pass
    present = [flag for flag in SIMD_FLAGS if flag in flags]
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        np.show_runtime()
    # np.show_runtime pretty-prints a list of dicts over several lines: keep the SIMD entry.
    found = re.search(r"'simd_extensions': \{.*?\}\}", buffer.getvalue(), re.S)
    simd = " ".join(found.group(0).split()) if found else ""
    return "\n".join(
        [
            f"cpu: {model}",
            f"cpu SIMD flags: {' '.join(present) or 'none found'}",
            f"numpy {np.__version__} runtime: {simd}".rstrip(),
        ]
    )


def load_baseline(ref: str) -> ModuleType:
    """Import the drift code as of git ``ref`` under another module name, ``drift_baseline``.

    Up to issue 14 it was one file, ``retraining_assets/core/drift.py``; since then it is the
    package ``retraining_assets/core/drift/``, whose modules import each other by their full
    name: those imports are pointed at the copy.

    Args:
        ref: A git revision of this repository.

    Returns:
        The module or package (its ``build_reference``, ``compute_drift`` and
        ``category_counts`` are the old code).
    """
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], check=True, capture_output=True, text=True, cwd=here
        ).stdout

    names = git(
        "ls-tree", "--full-tree", "-r", "--name-only", ref, "retraining_assets/core"
    ).split()
    root = Path(tempfile.mkdtemp(prefix="drift-baseline-"))
    if "retraining_assets/core/drift.py" in names:
        path = root / "drift_baseline.py"
        path.write_text(git("show", f"{ref}:retraining_assets/core/drift.py"))
        spec = importlib.util.spec_from_file_location("drift_baseline", path)
    else:
        package = root / "drift_baseline"
        package.mkdir()
        for name in names:
            if name.startswith("retraining_assets/core/drift/") and name.endswith(".py"):
                source = git("show", f"{ref}:{name}")
                source = source.replace("retraining_assets.core.drift.", "drift_baseline.")
                (package / Path(name).name).write_text(source)
        spec = importlib.util.spec_from_file_location(
            "drift_baseline", package / "__init__.py", submodule_search_locations=[str(package)]
        )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["drift_baseline"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def best_of_alternating(
    repeats: int, funcs: dict[str, Callable[[], object]]
) -> dict[str, tuple[float, float]]:
    """Smallest wall and CPU time of each function over ``repeats`` rounds, taking turns.

    Args:
        repeats: Number of rounds.
        funcs: The work to time, by label.

    Returns:
        The best wall time and the best CPU time (this process, all threads) of each label, in
        seconds; each minimum is taken on its own.
    """
    wall = dict.fromkeys(funcs, float("inf"))
    cpu = dict.fromkeys(funcs, float("inf"))
    for _ in range(repeats):
        for label, func in funcs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            func()
            cpu[label] = min(cpu[label], time.process_time() - start_cpu)
            wall[label] = min(wall[label], time.perf_counter() - start)
    return {label: (wall[label], cpu[label]) for label in funcs}


def main() -> None:
    """Build the frames, time each approach and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--baseline", default=DEFAULT_BASELINE, help="git revision of the old drift.py ('' = none)"
    )
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

    def count_categories(count: Callable[[pd.Series], object]) -> None:
        for name in categorical:
            count(batch[name])

    funcs: dict[str, Callable[[], object]] = {
        "np.sort, 20 numeric columns": bare_sort,
        "compute_drift, workers=1": lambda: compute_drift(profile, batch, workers=1),
        "compute_drift, workers=2": lambda: compute_drift(profile, batch, workers=2),
        "category_counts, 5 columns": lambda: count_categories(category_counts),
    }
    old_result = None
    if args.baseline:
        old = load_baseline(args.baseline)
        old_profile = old.build_reference(reference, numeric, categorical)
        funcs[f"baseline {args.baseline}, workers=1"] = lambda: old.compute_drift(
            old_profile, batch, workers=1
        )
        funcs[f"baseline {args.baseline}, workers=2"] = lambda: old.compute_drift(
            old_profile, batch, workers=2
        )
        funcs[f"baseline {args.baseline}, category_counts"] = lambda: count_categories(
            old.category_counts
        )
        old_result = old.compute_drift(old_profile, batch)
    timings = best_of_alternating(args.repeats, funcs)
    timings["scipy ks_2samp loop, 20 numeric"] = best_of_alternating(
        min(args.repeats, 2), {"scipy": scipy_loop}
    )["scipy"]
    sort_wall, sort_cpu = timings["np.sort, 20 numeric columns"]
    result = compute_drift(profile, batch)

    print(cpu_report())
    print(f"rows: {args.rows:,} reference + {args.rows:,} batch, {N_NUMERIC} numeric + "
          f"{N_CATEGORICAL} categorical, best of {args.repeats} (alternating)")  # fmt: skip
    print(f"build_reference (once per model): {build_time * 1e3:8.1f} ms")
    print(f"{'approach':<36}{'ms':>10}{'x np.sort':>11}{'cpu ms':>10}{'x np.sort':>11}"
          f"{'non-sort x':>12}")  # fmt: skip
    for label, (seconds, cpu) in timings.items():
        extra = ""
        if label.endswith("workers=1"):
            # Everything but the sort, from CPU time (workers=1: the sort is part of the same
            # thread's work, and CPU time hardly moves with other jobs' load).
            extra = f"{(cpu - sort_cpu) / sort_cpu:>12.2f}"
        print(f"{label:<36}{seconds * 1e3:>10.1f}{seconds / sort_wall:>11.2f}"
              f"{cpu * 1e3:>10.1f}{cpu / sort_cpu:>11.2f}{extra}")  # fmt: skip
    if old_result is not None:
        same = [
            (new.name, new.ks_d == prev.ks_d, new.ks_pvalue, prev.ks_pvalue)
            for new, prev in zip(result.features, old_result.features, strict=True)
        ]
        d_equal = all(equal for _, equal, _, _ in same)
        worst = max(
            (abs(a - b) / max(abs(b), 1e-300) for _, _, a, b in same if a is not None and b),
            default=0.0,
        )
        same_verdict = result.drifted_features() == old_result.drifted_features()
        print(f"same KS D as baseline: {d_equal}; largest relative p-value change: {worst:.1e}; "
              f"same verdict: {same_verdict}")  # fmt: skip
    print(result.summary())


if __name__ == "__main__":
    main()
