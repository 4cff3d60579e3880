"""Peak memory of building ``training_dataset`` vs the in-memory size of the frame it builds.

Part 1 (the measure). For an 8-week rolling window and the full 52-week history of the flights
demo, a fresh subprocess imports Dagster and the project, then materializes only
``training_dataset`` through Dagster (``dg.materialize`` on a temporary instance and
``RETRAINING_HOME``: list batches, read the window's parquet files with labels, collect, weight,
write parquet, ``dvc add`` + push). It records

- ``baseline``: current RSS (``VmRSS``) right before ``materialize``, after the imports, including
  the libraries the step imports lazily (pandas, pyarrow, ``dvc.repo``), so their code does not
  count as data;
- ``peak``: ``ru_maxrss`` at the end; the high-water mark is reset (``/proc/self/clear_refs``)
  right before ``materialize``, so import-time peaks do not count;
- ``frame``: ``df.memory_usage(deep=True).sum()`` of the resulting dataset (read back from the
  parquet file the step wrote, after the peak was recorded), its shallow size, and its real size
  (shallow + each distinct string object once: ``deep=True`` counts a shared string once per row).

Two controls run the same way: an empty asset (Dagster's own cost of one run) and an asset that
``dvc add``s and pushes a one-row parquet file into a fresh store (Dagster + DVC fixed cost); a
1-week window gives a third size for a linear fit (fixed + slope x frame); the 8- and 52-week
windows are repeated with ``ARROW_DEFAULT_MEMORY_POOL=mimalloc`` (pyarrow's own default, which
keeps freed pages; the package sets ``system`` unless the variable is already set). All cases
alternate (A, B, C, ..., A, B, C, ...) and medians are printed.
Target: ``peak - baseline <= 3 x frame``.

Part 2 (where it goes). The asset's work stage by stage without Dagster, in a fresh subprocess per
window: RSS high-water mark reset before each stage, tracemalloc (Python and numpy buffers) peak
and retained per stage, then the project lines holding the most memory at the end of
``collect_dataset``. The same is run for a "lean" variant of the collect + weight stages (what the
asset could do instead, written here, not in the project) and the written files are compared.

    .venv/bin/python benchmarks/dataset_memory.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BATCHES = Path(__file__).resolve().parent.parent / "data" / "batches"
MIMALLOC_POOL = {"ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}
#: name -> (training_dataset config or None for a control asset, extra environment).
CASES: dict[str, tuple[dict[str, Any] | None, dict[str, str]]] = {
    "empty asset": (None, {}),
    "dvc 1-row": (None, {}),
    "rolling 1": ({"strategy": "rolling", "window_batches": 1}, {}),
    "rolling 8": ({"strategy": "rolling", "window_batches": 8}, {}),
    "full 52": ({"strategy": "full"}, {}),
    "rolling 8 mi": ({"strategy": "rolling", "window_batches": 8}, MIMALLOC_POOL),
    "full 52 mi": ({"strategy": "full"}, MIMALLOC_POOL),
}
WINDOWS = ("rolling 8", "full 52")
MB = 1024 * 1024


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def current_rss() -> int:
    """Current resident set size of this process, bytes (``VmRSS``)."""
    return _status_kb("VmRSS") * 1024


def reset_peak() -> bool:
    """Reset this process's RSS high-water mark (Linux ``clear_refs`` 5); False if not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss() -> int:
    """``ru_maxrss`` of this process, bytes (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def malloc_free() -> int:
    """Bytes glibc malloc holds free in its arenas (``mallinfo2().fordblks``); -1 if unknown."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return -1
    return int(libc.mallinfo2().fordblks)


def frame_sizes(frame) -> dict[str, int]:
    """Rows and in-memory size of ``frame``: deep, shallow, and real (shared strings once)."""
    shallow = int(frame.memory_usage(deep=False).sum())
    seen: set[int] = set()
    strings = 0
    for col in frame.select_dtypes(include="object").columns:
        for value in frame[col].to_numpy():
            if id(value) not in seen:
                seen.add(id(value))
                strings += sys.getsizeof(value)
    return {
        "rows": len(frame),
        "frame_deep": int(frame.memory_usage(deep=True).sum()),
        "frame_shallow": shallow,
        "frame_real": shallow + strings,
    }


def _control_assets(dg):
    @dg.asset(name="empty_asset")
    def empty_asset() -> None:
        """Nothing: Dagster's own cost of a one-step run."""

    @dg.asset(name="dvc_one_row", required_resource_keys={"dvc"})
    def dvc_one_row(context) -> None:
        """Create the DVC store, write a one-row parquet file, dvc add + push it."""
        import pandas as pd

        store = context.resources.dvc.store()
        path = store.repo_dir / "artifacts" / "one_row.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"x": [1.0]}).to_parquet(path)
        store.track(path)

    return {"empty asset": empty_asset, "dvc 1-row": dvc_one_row}


def child_dagster(case: str) -> dict[str, Any]:
    """Materialize one asset (``training_dataset`` or a control) through Dagster; bytes."""
    started_rss = current_rss()
    import dagster as dg

    after_dagster = current_rss()
    # The package first, as in a run worker (the code location loads before any step runs): its
    # __init__ picks Arrow's memory pool, which pyarrow reads once, when it is imported.
    import retraining_assets  # noqa: F401  # isort: skip
    import dvc.repo  # noqa: F401  (the step imports these lazily: keep their code out of the delta)
    import pandas as pd
    import pyarrow.parquet  # noqa: F401

    from retraining_assets.core import batches, strategies  # noqa: F401
    from retraining_assets.defs.assets import training_dataset
    from retraining_assets.defs.resources import (
        BatchSourceResource,
        DvcResource,
        MlflowResource,
        ProductionResource,
        TriggerPolicyResource,
    )

    resources = {
        "batch_source": BatchSourceResource(directory=str(BATCHES), dataset="flights"),
        "dvc": DvcResource(),
        "mlflow": MlflowResource(),
        "production": ProductionResource(),
        "triggers": TriggerPolicyResource(),
    }
    config = CASES[case][0]
    asset = training_dataset if config else _control_assets(dg)[case]
    run_config = {"ops": {"training_dataset": {"config": config}}} if config else None
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        os.environ["RETRAINING_HOME"] = str(Path(tmp) / "var")
        baseline = current_rss()
        was_reset = reset_peak()
        result = dg.materialize(
            [asset], instance=instance, resources=resources, run_config=run_config
        )
        peak = peak_rss()
        end = current_rss()
        sizes = {"rows": 0, "frame_deep": 0, "frame_shallow": 0, "frame_real": 0}
        if config:
            sizes = frame_sizes(pd.read_parquet(result.output_for_node("training_dataset").path))
    return {
        "start": started_rss,
        "after_dagster": after_dagster,
        "baseline": baseline,
        "peak": peak,
        "end": end,
        "reset": was_reset,
        **sizes,
    }


def _lean_dataset(frames: dict, plan, schema):
    """Collect + weight with one live copy at a time: same rows, order, dtypes and bytes.

    The read frames are consumed (popped) and labelled in place, concatenated once, ordered with
    one ``take`` (lexsort on test flag, timestamp, id, which is the order the two stable sorts
    of ``collect_dataset`` give), and weighted in place.
    """
    import numpy as np
    import pandas as pd

    from retraining_assets.settings import BATCH_COLUMN, SPLIT_COLUMN, WEIGHT_COLUMN

    assert plan.strategy != "weighted", "the lean variant covers rolling and full"
    parts = []
    for split, ids in (("train", plan.window.train_batches), ("test", plan.window.test_batches)):
        for batch_id in ids:
            part = frames.pop(batch_id)
            part[SPLIT_COLUMN] = split
            part[BATCH_COLUMN] = batch_id
            parts.append(part)
    dataset = pd.concat(parts, ignore_index=True)
    del parts, part
    keys = [dataset[schema.id_column].to_numpy()] if schema.id_column else []
    order = np.lexsort(
        [*keys, dataset[schema.timestamp].to_numpy(), (dataset[SPLIT_COLUMN] == "test").to_numpy()]
    )
    dataset = dataset.take(order)
    dataset.reset_index(drop=True, inplace=True)
    dataset[WEIGHT_COLUMN] = np.ones(len(dataset), dtype="float64")
    return dataset


def child_stages(case: str, variant: str) -> dict[str, Any]:
    """The asset's work stage by stage, without Dagster: memory per stage and top allocators."""
    import tracemalloc

    import retraining_assets  # noqa: F401  # isort: skip  (first: it picks Arrow's memory pool)
    import pandas as pd
    import pyarrow
    import pyarrow.parquet
    from dvc.repo import Repo  # noqa: F401

    from retraining_assets.core import batches as batch_io
    from retraining_assets.core.strategies import apply_weights, plan_training
    from retraining_assets.core.versioning import DvcStore, file_md5
    from retraining_assets.settings import FLIGHTS_SCHEMA as schema

    config = CASES[case][0]
    assert config is not None
    pool = pyarrow.default_memory_pool()
    stages: list[dict[str, Any]] = []
    tracemalloc.start(10)

    def stage(name: str, fn) -> Any:
        tracemalloc.reset_peak()
        before_traced = tracemalloc.get_traced_memory()[0]
        before_rss = current_rss()
        reset_peak()
        value = fn()
        traced, traced_peak = tracemalloc.get_traced_memory()
        stages.append(
            {
                "stage": name,
                "rss_before": before_rss,
                "rss_after": current_rss(),
                "rss_peak": max(peak_rss(), current_rss()),
                "traced_retained": traced - before_traced,
                "traced_peak_extra": traced_peak - before_traced,
                "arrow_live": pool.bytes_allocated(),
                "arrow_peak": pool.max_memory(),
                "malloc_free": malloc_free(),
            }
        )
        return value

    top: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        baseline = current_rss()
        store = stage(
            "DvcStore.ensure (init)",
            lambda: DvcStore(home / "store", str(home / "dvc-remote")).ensure(),
        )
        files = stage("list + has_labels", lambda: _labelled(batch_io, schema))
        plan = plan_training(files, as_of=None, **{"window_batches": 8, **config})
        window = plan.window
        frames = stage(
            f"read_labelled_batch x{len(window.all_batches)}",
            lambda: {
                b: batch_io.read_labelled_batch(BATCHES, b, schema, columns=schema.columns)
                for b in window.all_batches
            },
        )
        if variant == "asset":
            collected = stage(
                "collect_dataset", lambda: batch_io.collect_dataset(frames, window, schema)
            )
            top = _top_project_lines(tracemalloc.take_snapshot())
            dataset = stage("apply_weights", lambda: apply_weights(collected, plan, schema))
            del collected
        else:
            dataset = stage("lean collect + weights", lambda: _lean_dataset(frames, plan, schema))
        path = stage(
            "write_parquet_atomic",
            lambda: batch_io.write_parquet_atomic(
                dataset, store.repo_dir / "artifacts" / "training_dataset.parquet"
            ),
        )
        stage("dvc add + push", lambda: store.track(path))
        tracemalloc.stop()
        md5 = file_md5(path)
        sizes = frame_sizes(dataset)
        csum = hashlib.md5(
            pd.util.hash_pandas_object(dataset, index=True).to_numpy().tobytes(),
            usedforsecurity=False,
        ).hexdigest()
    return {
        "baseline": baseline,
        "peak": max(s["rss_peak"] for s in stages),
        "md5": md5,
        "frame_hash": csum,
        "stages": stages,
        "top": top,
        **sizes,
    }


def _top_project_lines(snapshot) -> list[dict[str, Any]]:
    """Live allocations grouped by the innermost ``retraining_assets`` frame (or benchmark)."""
    totals: dict[str, int] = {}
    for stat in snapshot.statistics("traceback"):
        where = "other (imports, interpreter)"
        for frame in reversed(stat.traceback):  # most recent call last: search innermost first
            if "retraining_assets" in frame.filename or frame.filename == __file__:
                where = f"{frame.filename.split('/work/main/')[-1]}:{frame.lineno}"
                break
        totals[where] = totals.get(where, 0) + stat.size
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:6]
    return [{"where": where, "size": size} for where, size in ranked]


def _labelled(batch_io, schema) -> list[str]:
    files = batch_io.list_batches(BATCHES)
    return [b for b in files if batch_io.has_labels(BATCHES, b, schema)]


def _run_child(*args: str, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "GX_ANALYTICS_ENABLED": "false",
        **(extra_env or {}),
    }
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mb(value: float, width: int = 8) -> str:
    return f"{value / MB:{width}.1f}"


def _print_stages(case: str, variant: str, detail: dict[str, Any]) -> None:
    delta = detail["peak"] - detail["baseline"]
    print()
    print(
        f"{case}, {variant}: stages without Dagster (MB; baseline {_mb(detail['baseline'], 0)},"
        f" peak {_mb(detail['peak'], 0)}, peak-baseline {_mb(delta, 0)}"
        f" = {delta / detail['frame_deep']:.2f}x deep frame,"
        f" {delta / detail['frame_real']:.2f}x real frame)"
    )
    print(
        f"  {'stage':26} {'rss before':>10} {'rss peak':>9} {'peak-before':>11}"
        f" {'rss after':>9} {'traced kept':>11} {'traced peak+':>12} {'arrow live':>10}"
        f" {'arrow peak':>10} {'malloc free':>11}"
    )
    for s in detail["stages"]:
        print(
            f"  {s['stage']:26} {_mb(s['rss_before'], 10)} {_mb(s['rss_peak'], 9)}"
            f" {_mb(s['rss_peak'] - s['rss_before'], 11)} {_mb(s['rss_after'], 9)}"
            f" {_mb(s['traced_retained'], 11)} {_mb(s['traced_peak_extra'], 12)}"
            f" {_mb(s['arrow_live'], 10)} {_mb(s['arrow_peak'], 10)} {_mb(s['malloc_free'], 11)}"
        )
    if detail["top"]:
        print("  live tracemalloc allocations after collect_dataset, by innermost project line:")
        for t in detail["top"]:
            print(f"    {_mb(t['size'])}  {t['where']}")


def main() -> None:
    """Run the children alternately and print the tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, case, *rest = args.child
        result = child_dagster(case) if mode == "dagster" else child_stages(case, rest[0])
        print(json.dumps(result))
        return
    if not any(BATCHES.glob("*.parquet")):
        sys.exit(f"no batches in {BATCHES}: run `.venv/bin/retraining prepare-data` first")

    runs: dict[str, list[dict[str, Any]]] = {case: [] for case in CASES}
    for _ in range(args.repeats):
        for case in CASES:  # alternate: A, B, C, D, A, B, ...
            runs[case].append(_run_child("dagster", case, extra_env=CASES[case][1]))

    def med(case: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[case])

    print(f"one asset through dg.materialize, fresh process, {args.repeats} alternating runs (MB)")
    print(
        f"{'case':12} {'rows':>7} {'dagster':>8} {'baseline':>8} {'peak':>8} {'peak-base':>9}"
        f" {'end RSS':>8} {'frame':>8} {'shallow':>8} {'real':>8} {'x frame':>8} {'x real':>7}"
    )
    for case in CASES:
        delta = [r["peak"] - r["baseline"] for r in runs[case]]
        line = (
            f"{case:12} {int(med(case, 'rows')):7d} {_mb(med(case, 'after_dagster'))}"
            f" {_mb(med(case, 'baseline'))} {_mb(med(case, 'peak'))}"
            f" {_mb(statistics.median(delta), 9)} {_mb(med(case, 'end'))}"
        )
        if CASES[case][0]:
            ratio = statistics.median(
                d / r["frame_deep"] for d, r in zip(delta, runs[case], strict=True)
            )
            real = statistics.median(
                d / r["frame_real"] for d, r in zip(delta, runs[case], strict=True)
            )
            line += (
                f" {_mb(med(case, 'frame_deep'))} {_mb(med(case, 'frame_shallow'))}"
                f" {_mb(med(case, 'frame_real'))} {ratio:8.2f} {real:7.2f}"
            )
        print(line)
    fixed = statistics.median(r["peak"] - r["baseline"] for r in runs["dvc 1-row"])
    print(
        "x frame = (peak - baseline) / frame (deep=True); target <= 3. 'dagster' = RSS after"
        " `import dagster`;\nbaseline also holds pandas, pyarrow, dvc.repo and the project;"
        " high-water mark reset before materialize:"
        f" {all(r['reset'] for rs in runs.values() for r in rs)}"
    )
    for case in WINDOWS:
        delta = statistics.median(r["peak"] - r["baseline"] for r in runs[case])
        print(
            f"{case}: minus the Dagster+DVC fixed cost ({_mb(fixed, 0)} MB):"
            f" {_mb(delta - fixed, 0)} MB = {(delta - fixed) / med(case, 'frame_deep'):.2f}x"
            f" deep frame, {(delta - fixed) / med(case, 'frame_real'):.2f}x real frame"
        )
    pools = (("", "Arrow system pool (the package's default)"), (" mi", "Arrow mimalloc pool"))
    for suffix, label in pools:
        names = ["rolling 1", "rolling 8", "full 52"] if not suffix else []
        names = names or [f"rolling 8{suffix}", f"full 52{suffix}"]
        xs = [med(n, "frame_deep") for n in names]
        ys = [statistics.median(r["peak"] - r["baseline"] for r in runs[n]) for n in names]
        slope, intercept = statistics.linear_regression(xs, ys)
        print(
            f"fit over {', '.join(names)} ({label}): peak-base = {_mb(intercept, 0)} MB"
            f" + {slope:.2f} x deep frame (= {slope * xs[-1] / med(names[-1], 'frame_real'):.2f}"
            " x real frame)"
        )
    print(
        "'mi' rows: same work with ARROW_DEFAULT_MEMORY_POOL=mimalloc (pyarrow's own default; the"
        " package sets 'system' when the variable is unset)"
    )

    for case in WINDOWS:
        details = {v: _run_child("stages", case, v) for v in ("asset", "lean")}
        for variant, detail in details.items():
            _print_stages(case, variant, detail)
        same = details["asset"]["frame_hash"] == details["lean"]["frame_hash"]
        print(
            f"  lean vs asset: same frame {same}, same parquet bytes"
            f" {details['asset']['md5'] == details['lean']['md5']}, peak saved"
            f" {_mb(details['asset']['peak'] - details['lean']['peak'], 0)} MB"
        )


if __name__ == "__main__":
    main()
