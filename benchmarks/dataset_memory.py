"""Peak memory of building ``training_dataset`` vs the in-memory size of the frame it builds.

For an 8-week rolling window and the full 52-week history of the flights demo, a fresh subprocess
imports Dagster and the project, then materializes only ``training_dataset`` through Dagster
(``dg.materialize`` on a temporary instance and ``RETRAINING_HOME``: list batches, read the
window's parquet files with labels, collect, weight, write parquet, ``dvc add`` + push). It reports

- ``baseline``: current RSS (``VmRSS``) right before ``materialize``, after the imports, including
  the libraries the step imports lazily (pandas, pyarrow, dvc), so their code is not counted as
  data;
- ``peak``: ``ru_maxrss`` at the end; the high-water mark is reset (``/proc/self/clear_refs``)
  right before ``materialize``, so import-time peaks do not count;
- ``frame``: ``df.memory_usage(deep=True).sum()`` of the resulting dataset (read back from the
  parquet file the step wrote, after the peak was recorded).

Target: ``peak - baseline <= 3 x frame``. Window sizes are run alternately (A, B, A, B, ...) and
medians are printed. A second part repeats the asset's work stage by stage without Dagster, in a
fresh subprocess per window, with the RSS high-water mark reset before each stage, and tracemalloc
(Python and numpy allocations) and pyarrow's pool counters, to show where the memory goes; then the
top tracemalloc allocation sites retained at the end of the collect stage.

    .venv/bin/python benchmarks/dataset_memory.py [--repeats 3]
"""

from __future__ import annotations

import argparse
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
CASES = {
    "rolling 8": {"strategy": "rolling", "window_batches": 8},
    "full 52": {"strategy": "full"},
}
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


def frame_size(path: Path) -> dict[str, int]:
    """Rows and in-memory size (deep and shallow) of the parquet file at ``path``."""
    import pandas as pd

    frame = pd.read_parquet(path)
    return {
        "rows": len(frame),
        "frame_deep": int(frame.memory_usage(deep=True).sum()),
        "frame_shallow": int(frame.memory_usage(deep=False).sum()),
    }


def child_dagster(config: dict[str, Any]) -> dict[str, Any]:
    """Materialize only ``training_dataset`` through Dagster; RSS figures in bytes."""
    started_rss = current_rss()
    import dagster as dg

    after_dagster = current_rss()
    import dvc.repo  # noqa: F401  (the step imports these lazily: keep their code out of the delta)
    import pandas as pd  # noqa: F401
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
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        os.environ["RETRAINING_HOME"] = str(Path(tmp) / "var")
        baseline = current_rss()
        was_reset = reset_peak()
        result = dg.materialize(
            [training_dataset],
            instance=instance,
            resources=resources,
            run_config={"ops": {"training_dataset": {"config": config}}},
        )
        peak = peak_rss()
        end = current_rss()
        ref = result.output_for_node("training_dataset")
        sizes = frame_size(Path(ref.path))
    return {
        "start": started_rss,
        "after_dagster": after_dagster,
        "baseline": baseline,
        "peak": peak,
        "end": end,
        "reset": was_reset,
        **sizes,
    }


def child_stages(config: dict[str, Any]) -> dict[str, Any]:
    """The asset's work stage by stage, without Dagster: memory per stage and top allocators."""
    import tracemalloc

    import pandas as pd  # noqa: F401
    import pyarrow as pa
    import pyarrow.parquet  # noqa: F401
    from dvc.repo import Repo  # noqa: F401

    from retraining_assets.core import batches as batch_io
    from retraining_assets.core.strategies import apply_weights, plan_training
    from retraining_assets.core.versioning import DvcStore
    from retraining_assets.settings import FLIGHTS_SCHEMA as schema

    pool = pa.default_memory_pool()
    stages: list[dict[str, Any]] = []
    tracemalloc.start(25)
    state: dict[str, Any] = {}

    def stage(name: str, fn) -> Any:
        tracemalloc.reset_peak()
        before_traced = tracemalloc.get_traced_memory()[0]
        before_rss = current_rss()
        before_arrow = pool.bytes_allocated()
        reset_peak()
        value = fn()
        traced, traced_peak = tracemalloc.get_traced_memory()
        stages.append(
            {
                "stage": name,
                "rss_before": before_rss,
                "rss_after": current_rss(),
                "rss_peak": peak_rss(),
                "traced_retained": traced - before_traced,
                "traced_peak_extra": traced_peak - before_traced,
                "arrow_after": pool.bytes_allocated() - before_arrow,
            }
        )
        return value

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        store = DvcStore(home / "store", str(home / "dvc-remote")).ensure()
        baseline = current_rss()
        files = stage("list + has_labels", lambda: _labelled(batch_io, schema))
        plan = plan_training(files, as_of=None, **{"window_batches": 8, **config})
        window = plan.window
        state["frames"] = stage(
            "read_labelled_batch x%d" % len(window.all_batches),
            lambda: {
                b: batch_io.read_labelled_batch(BATCHES, b, schema, columns=schema.columns)
                for b in window.all_batches
            },
        )
        collected = stage(
            "collect_dataset", lambda: batch_io.collect_dataset(state["frames"], window, schema)
        )
        top = tracemalloc.take_snapshot().statistics("lineno")[:8]
        dataset = stage("apply_weights", lambda: apply_weights(collected, plan, schema))
        del collected
        path = stage(
            "write_parquet_atomic",
            lambda: batch_io.write_parquet_atomic(
                dataset, store.repo_dir / "artifacts" / "training_dataset.parquet"
            ),
        )
        stage("dvc add + push", lambda: store.track(path))
        frame_deep = int(dataset.memory_usage(deep=True).sum())
        read_deep = sum(int(f.memory_usage(deep=True).sum()) for f in state["frames"].values())
    tracemalloc.stop()
    return {
        "baseline": baseline,
        "frame_deep": frame_deep,
        "frames_read_deep": read_deep,
        "stages": stages,
        "top": [
            {"where": f"{s.traceback[0].filename}:{s.traceback[0].lineno}", "size": s.size}
            for s in top
        ],
    }


def _labelled(batch_io, schema) -> list[str]:
    files = batch_io.list_batches(BATCHES)
    return [b for b in files if batch_io.has_labels(BATCHES, b, schema)]


def _run_child(mode: str, case: str) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GX_ANALYTICS_ENABLED": "false"}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--case", case],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mb(value: float) -> str:
    return f"{value / MB:8.1f}"


def main() -> None:
    """Run the children alternately and print the tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=["dagster", "stages"])
    parser.add_argument("--case", choices=list(CASES))
    args = parser.parse_args()
    if args.child:
        fn = child_dagster if args.child == "dagster" else child_stages
        print(json.dumps(fn(CASES[args.case])))
        return
    if not any(BATCHES.glob("*.parquet")):
        sys.exit(f"no batches in {BATCHES}: run `.venv/bin/retraining prepare-data` first")

    runs: dict[str, list[dict[str, Any]]] = {case: [] for case in CASES}
    for _ in range(args.repeats):
        for case in CASES:  # alternate: A, B, A, B, ...
            runs[case].append(_run_child("dagster", case))

    def med(case: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[case])

    print(f"training_dataset through dg.materialize, fresh process, {args.repeats} runs each (MB)")
    print(
        f"{'window':10} {'rows':>7} {'dagster':>8} {'baseline':>8} {'peak':>8} {'peak-base':>9}"
        f" {'frame':>8} {'shallow':>8} {'(peak-base)/frame':>18} {'end RSS':>8}"
    )
    for case in CASES:
        delta = [r["peak"] - r["baseline"] for r in runs[case]]
        ratio = statistics.median(d / r["frame_deep"] for d, r in zip(delta, runs[case]))
        print(
            f"{case:10} {int(med(case, 'rows')):7d} {_mb(med(case, 'after_dagster'))}"
            f" {_mb(med(case, 'baseline'))} {_mb(med(case, 'peak'))}"
            f" {_mb(statistics.median(delta)):>9} {_mb(med(case, 'frame_deep'))}"
            f" {_mb(med(case, 'frame_shallow'))} {ratio:18.2f} {_mb(med(case, 'end'))}"
        )
    print("target: (peak - baseline) / frame <= 3; 'dagster' = RSS after `import dagster`;")
    print("baseline also holds pandas, pyarrow, dvc and the project; high-water mark reset before")
    print(f"materialize: {all(r['reset'] for rs in runs.values() for r in rs)}")

    for case in CASES:
        detail = _run_child("stages", case)
        print()
        print(
            f"{case}: stages without Dagster (MB; baseline {_mb(detail['baseline']).strip()},"
            f" frame {_mb(detail['frame_deep']).strip()}, frames as read"
            f" {_mb(detail['frames_read_deep']).strip()})"
        )
        print(
            f"{'stage':26} {'rss before':>10} {'rss peak':>9} {'peak-before':>11}"
            f" {'rss after':>9} {'traced kept':>11} {'traced peak+':>12} {'arrow kept':>10}"
        )
        for s in detail["stages"]:
            print(
                f"{s['stage']:26} {_mb(s['rss_before']):>10} {_mb(s['rss_peak']):>9}"
                f" {_mb(s['rss_peak'] - s['rss_before']):>11} {_mb(s['rss_after']):>9}"
                f" {_mb(s['traced_retained']):>11} {_mb(s['traced_peak_extra']):>12}"
                f" {_mb(s['arrow_after']):>10}"
            )
        print("tracemalloc: live allocations after collect_dataset (frames, collected), top sites")
        for t in detail["top"]:
            where = t["where"].split("site-packages/")[-1]
            print(f"  {_mb(t['size'])}  {where}")


if __name__ == "__main__":
    main()
