"""Local trainer vs ``trainer: dask`` on the flights 51-week window: AUC, wall time, driver memory.

The parent builds the training dataset exactly as ``training_dataset`` does with
``window_batches=51`` (rolling: the 51 weeks before the latest week, which is the test set) and
writes it with the same writer. Then each trainer runs in a fresh subprocess, alternating
(local, dask, local, dask, ...):

- ``local``: what ``candidate_model`` does today: read the whole parquet file, keep the train rows,
  ``train_model`` (LightGBM, 1 thread).
- ``dask``: start ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` on
  127.0.0.1, then ``train_model_dask``: the workers read the file, the driver plans.

Each child saves its model (LightGBM text) and reports its wall times and its driver process's
RSS: after imports (and cluster start), and the peak (``getrusage(RUSAGE_SELF).ru_maxrss``, this
process only, not the Dask workers, whose own peaks are printed beside). The parent then scores
every model on the same test week and prints AUC, the difference, times and memory, with the
load average during each child (the machine is shared: run it under ``flock /tmp/bench.lock``).

    PYTHONPATH=$PWD python -m retraining_assets.cli build-batches --out data/batches   # ~1 min
    PYTHONPATH=$PWD flock /tmp/bench.lock python benchmarks/dask_trainer.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from retraining_assets.settings import FLIGHTS_SCHEMA, SPLIT_COLUMN, WEIGHT_COLUMN

SCHEMA = FLIGHTS_SCHEMA


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def build_dataset(batches: Path, out: Path, window: int, test_batches: int = 1) -> dict[str, Any]:
    """The dataset ``training_dataset`` builds (rolling, ``window`` weeks), written the same way.

    ``test_batches``: the latest weeks held out as the test set (``training_dataset`` uses 1).
    """
    from retraining_assets.core import batches as batch_io
    from retraining_assets.core.strategies import apply_weights, plan_training

    ids = [b for b in batch_io.list_batches(batches) if batch_io.has_labels(batches, b, SCHEMA)]
    plan = plan_training(
        ids, "rolling", as_of=None, window_batches=window, test_batches=test_batches
    )
    frames = {
        b: batch_io.read_labelled_batch(batches, b, SCHEMA, columns=SCHEMA.columns)
        for b in plan.window.all_batches
    }
    dataset = apply_weights(batch_io.collect_dataset(frames, plan.window, SCHEMA), plan, SCHEMA)
    batch_io.write_parquet_atomic(dataset, out)
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(out).metadata
    return {
        "train_batches": f"{plan.window.train_batches[0]} .. {plan.window.train_batches[-1]}"
        f" ({len(plan.window.train_batches)})",
        "test_batches": f"{plan.window.test_batches[0]} .. {plan.window.test_batches[-1]}"
        f" ({len(plan.window.test_batches)})",
        "rows": len(dataset),
        "train_rows": int((dataset[SPLIT_COLUMN] == "train").sum()),
        "test_rows": int((dataset[SPLIT_COLUMN] == "test").sum()),
        "row_groups": meta.num_row_groups,
        "file_mb": out.stat().st_size / 2**20,
    }


def child(trainer: str, dataset: Path, model_out: Path, seed: int | None) -> dict[str, Any]:
    """Train once with ``trainer`` in this (fresh) process and report times and memory."""
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    import lightgbm  # noqa: F401  (imported up front by both, so the baseline counts it)
    import pandas as pd

    from retraining_assets.core.training import TrainParams, train_model

    params = TrainParams() if seed is None else TrainParams(seed=seed)
    report: dict[str, Any] = {"trainer": trainer}
    if trainer == "local":
        report["import_s"] = time.perf_counter() - started
        report["baseline_rss_mb"] = _rss_mb()
        t0 = time.perf_counter()
        frame = pd.read_parquet(dataset)
        train = frame[frame[SPLIT_COLUMN] == "train"]
        weights = train[WEIGHT_COLUMN].to_numpy() if WEIGHT_COLUMN in train else None
        trained = train_model(train, SCHEMA, params, weights=weights)
        report["train_s"] = time.perf_counter() - t0
    else:
        from distributed import Client, LocalCluster

        from retraining_assets.core.dask_training import train_model_dask

        report["import_s"] = time.perf_counter() - started
        t0 = time.perf_counter()
        with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                scheduler_port=0,
                dashboard_address=None,
                # No dashboard; its HTTP routes on a free loopback port, not 8787.
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
            ) as cluster,
            Client(cluster) as client,
        ):
            report["cluster_start_s"] = time.perf_counter() - t0
            report["baseline_rss_mb"] = _rss_mb()
            t1 = time.perf_counter()
            trained = train_model_dask(client, dataset, SCHEMA, params)
            report["train_s"] = time.perf_counter() - t1
            report["fit_s"] = trained.extra["fit_seconds"]
            report["worker_peak_rss_mb"] = sorted(
                v / 1024
                for v in client.run(
                    lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                ).values()
            )
            report["extra"] = {k: v for k, v in trained.extra.items() if k != "fit_seconds"}
    report["total_s"] = time.perf_counter() - started
    report["driver_peak_rss_mb"] = _peak_mb()
    report["best_iteration"] = trained.best_iteration
    report["valid_auc"] = trained.valid_auc
    report["n_train"], report["n_valid"] = trained.n_train, trained.n_valid
    report["load_avg"] = (load_before, os.getloadavg()[0])
    trained.save(model_out)
    return report


def _scores(model: Path, test) -> Any:
    from retraining_assets.core.training import Scorer, load_model

    return Scorer(load_model(model), SCHEMA).predict(test)


def _trees_md5(model: Path) -> str:
    """md5 of the trees of a model file (its parameters list the run's network ports)."""
    import hashlib

    text = model.read_text()
    return hashlib.md5(text[: text.index("end of trees")].encode()).hexdigest()[:8]


def _run_child(trainer: str, dataset: Path, model: Path, seed: int) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, __file__, "--child", trainer, "--dataset", str(dataset)]
    proc = subprocess.run(
        [*command, "--model-out", str(model), "--seed", str(seed)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        sys.exit(f"{trainer} child failed:\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    report["model"] = model
    report["seed"] = seed
    report["trees_md5"] = _trees_md5(model)
    return report


def compare(
    batches: Path, work: Path, window: int, test_batches: int, seeds: list[int], repeats: int
) -> None:
    """Train both trainers on one window for every seed (the first seed ``repeats`` times), print.

    Prints, per run, the test AUC, trees, times and memory; per seed, dask - local with a
    paired DeLong 95% CI on the test rows (same rows, so the AUCs are correlated); over the
    seeds, the mean of each trainer's test AUC and of the difference.
    """
    import numpy as np
    import pandas as pd

    from retraining_assets.core.delong import delong_test
    from retraining_assets.core.evaluation import compute_metrics

    name = f"w{window}t{test_batches}"
    dataset = work / f"{name}.parquet"
    info = build_dataset(batches, dataset, window, test_batches)
    print(f"\n=== window {window} weeks, test {test_batches} week(s): {json.dumps(info)}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    runs: list[dict[str, Any]] = []
    for seed in seeds:
        for i in range(repeats if seed == seeds[0] else 1):
            for trainer in ("local", "dask"):
                report = _run_child(
                    trainer, dataset, work / f"{name}-{trainer}-s{seed}-{i}.txt", seed
                )
                report["repeat"] = i
                runs.append(report)
                print(
                    f"seed {seed} run {i} {trainer}: "
                    + json.dumps({k: v for k, v in report.items() if k != "model"}, default=str),
                    flush=True,
                )
    test = pd.read_parquet(dataset, filters=[(SPLIT_COLUMN, "==", "test")])
    y = test[SCHEMA.target].to_numpy()
    for r in runs:
        r["scores"] = _scores(r["model"], test)
        r["test_auc"] = compute_metrics(y, r["scores"]).auc
    print(f"\ntest {info['test_batches']}: {len(test)} rows, {int(y.sum())} delayed")
    print(
        f"{'seed':>4} {'run':>3} {'trainer':7} {'test AUC':>9} {'valid AUC':>9} {'trees':>5}"
        f" {'trees md5':>9} {'train s':>8} {'total s':>8} {'base MB':>8} {'peak MB':>8}"
    )
    for r in runs:
        print(
            f"{r['seed']:>4} {r['repeat']:>3} {r['trainer']:7} {r['test_auc']:9.4f}"
            f" {r['valid_auc']:9.4f} {r['best_iteration']:5d} {r['trees_md5']:>9}"
            f" {r['train_s']:8.1f} {r['total_s']:8.1f} {r['baseline_rss_mb']:8.0f}"
            f" {r['driver_peak_rss_mb']:8.0f}"
        )
    for trainer in ("local", "dask"):
        first = [r for r in runs if r["trainer"] == trainer and r["seed"] == seeds[0]]
        same = len({r["trees_md5"] for r in first}) == 1
        print(
            f"{trainer}: {len(first)} runs of seed {seeds[0]} "
            + ("identical" if same else "DIFFER: " + ", ".join(r["trees_md5"] for r in first))
        )
    diffs = []
    for seed in seeds:
        local = next(r for r in runs if r["trainer"] == "local" and r["seed"] == seed)
        dask = next(r for r in runs if r["trainer"] == "dask" and r["seed"] == seed)
        d = delong_test(y, dask["scores"], local["scores"])
        diffs.append(d.difference)
        print(
            f"seed {seed}: AUC dask {d.auc_a:.4f} - local {d.auc_b:.4f} = {d.difference:+.4f},"
            f" paired DeLong 95% CI [{d.ci_low:+.4f}, {d.ci_high:+.4f}], p = {d.p_value:.2f}"
            f" (|diff| <= 0.005: {'met' if abs(d.difference) <= 0.005 else 'MISSED'})"
        )
    for trainer in ("local", "dask"):
        aucs = [
            r["test_auc"]
            for r in runs
            if r["trainer"] == trainer and r["repeat"] == 0 and r["seed"] in seeds
        ]
        print(
            f"{trainer}: mean test AUC over seeds {seeds}: {np.mean(aucs):.4f}"
            f" (min {min(aucs):.4f}, max {max(aucs):.4f})"
        )
    if len(seeds) > 1:
        sd = float(np.std(diffs, ddof=1))
        print(
            f"mean dask - local over {len(seeds)} seeds: {np.mean(diffs):+.4f}"
            f" (sd {sd:.4f}, standard error {sd / np.sqrt(len(seeds)):.4f})"
        )
    # The seed-averaged score of each trainer (mean over the seeds' predictions), paired.
    mean_dask = np.mean(
        [r["scores"] for r in runs if r["trainer"] == "dask" and r["repeat"] == 0], 0
    )
    mean_local = np.mean(
        [r["scores"] for r in runs if r["trainer"] == "local" and r["repeat"] == 0], 0
    )
    d = delong_test(y, mean_dask, mean_local)
    print(
        f"seed-averaged predictions: AUC dask {d.auc_a:.4f} - local {d.auc_b:.4f}"
        f" = {d.difference:+.4f}, paired DeLong 95% CI [{d.ci_low:+.4f}, {d.ci_high:+.4f}]"
    )


def main() -> None:
    """Build the dataset, run the children alternately, print the comparison."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=["local", "dask"])
    parser.add_argument("--dataset", type=Path)
    parser.add_argument("--model-out", type=Path)
    parser.add_argument("--batches", type=Path, default=Path("data/batches"))
    parser.add_argument(
        "--windows",
        default="51:1,47:4",
        help="comma-separated WEEKS:TEST_WEEKS datasets (51:1 is what training_dataset builds;"
        " 47:4 holds out the last 4 weeks, a larger test set)",
    )
    parser.add_argument("--seeds", default="42,1,2", help="LightGBM seeds, both trainers")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of the first seed on the first window"
    )
    parser.add_argument("--seed", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.dataset, args.model_out, args.seed)))
        return

    work = Path(tempfile.mkdtemp(prefix="dask-trainer-bench-"))
    print(f"cpus {os.cpu_count()}; files in {work}")
    seeds = [int(x) for x in args.seeds.split(",") if x]
    for i, spec in enumerate(args.windows.split(",")):
        window, test_batches = (int(x) for x in spec.split(":"))
        compare(args.batches, work, window, test_batches, seeds, args.repeats if i == 0 else 1)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
