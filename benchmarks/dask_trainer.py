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


def build_dataset(batches: Path, out: Path, window: int) -> dict[str, Any]:
    """The dataset ``training_dataset`` builds (rolling, ``window`` weeks), written the same way."""
    from retraining_assets.core import batches as batch_io
    from retraining_assets.core.strategies import apply_weights, plan_training

    ids = [b for b in batch_io.list_batches(batches) if batch_io.has_labels(batches, b, SCHEMA)]
    plan = plan_training(ids, "rolling", as_of=None, window_batches=window, test_batches=1)
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
        "test_batch": plan.window.test_batches[-1],
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


def _score(model: Path, test) -> float:
    from retraining_assets.core.evaluation import compute_metrics
    from retraining_assets.core.training import Scorer, load_model

    scores = Scorer(load_model(model), SCHEMA).predict(test)
    return compute_metrics(test[SCHEMA.target].to_numpy(), scores).auc


def main() -> None:
    """Build the dataset, run the children alternately, print the comparison."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=["local", "dask"])
    parser.add_argument("--dataset", type=Path)
    parser.add_argument("--model-out", type=Path)
    parser.add_argument("--batches", type=Path, default=Path("data/batches"))
    parser.add_argument("--window", type=int, default=51)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--local-seeds",
        default="",
        help="also train the local model with these seeds (e.g. 1,2,3): how far the test AUC"
        " moves with the seed alone, for scale",
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.dataset, args.model_out, args.seed)))
        return

    import pandas as pd

    work = Path(tempfile.mkdtemp(prefix="dask-trainer-bench-"))
    dataset = work / "training_dataset.parquet"
    info = build_dataset(args.batches, dataset, args.window)
    print("dataset:", json.dumps(info))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average at start: {load}, cpus {os.cpu_count()}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs: list[dict[str, Any]] = []
    for i in range(args.repeats):
        for trainer in ("local", "dask"):
            model = work / f"{trainer}-{i}.txt"
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    trainer,
                    "--dataset",
                    str(dataset),
                    "--model-out",
                    str(model),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode:
                sys.exit(f"{trainer} child failed:\n{proc.stderr[-3000:]}")
            report = json.loads(proc.stdout.strip().splitlines()[-1])
            report["model"] = model
            runs.append(report)
            print(
                f"run {i} {trainer}: "
                + json.dumps({k: v for k, v in report.items() if k != "model"}, default=str)
            )

    test = pd.read_parquet(dataset, filters=[(SPLIT_COLUMN, "==", "test")])
    for r in runs:
        r["test_auc"] = _score(r["model"], test)
    seeds = [int(x) for x in args.local_seeds.split(",") if x]
    for seed in seeds:
        model = work / f"local-seed{seed}.txt"
        command = [sys.executable, __file__, "--child", "local", "--dataset", str(dataset)]
        subprocess.run(
            [*command, "--model-out", str(model), "--seed", str(seed)],
            env=env,
            capture_output=True,
            check=True,
        )
        print(f"local trainer, seed {seed}: test AUC {_score(model, test):.4f}")
    positives = int(test[SCHEMA.target].sum())
    print(f"\ntest week {info['test_batch']}: {len(test)} rows, {positives} delayed")
    header = (
        f"{'run':>3} {'trainer':7} {'test AUC':>9} {'valid AUC':>9} {'trees':>5} {'train s':>8}"
        f" {'total s':>8} {'base MB':>8} {'peak MB':>8} {'load':>11}"
    )
    print(header)
    for i, r in enumerate(runs):
        print(
            f"{i // 2:>3} {r['trainer']:7} {r['test_auc']:9.4f} {r['valid_auc']:9.4f}"
            f" {r['best_iteration']:5d} {r['train_s']:8.1f} {r['total_s']:8.1f}"
            f" {r['baseline_rss_mb']:8.0f} {r['driver_peak_rss_mb']:8.0f}"
            f" {r['load_avg'][0]:5.2f}-{r['load_avg'][1]:<5.2f}"
        )
    for i in range(args.repeats):
        local, dask = runs[2 * i], runs[2 * i + 1]
        diff = dask["test_auc"] - local["test_auc"]
        print(
            f"run {i}: AUC dask - local = {diff:+.4f} (target |diff| <= 0.005: "
            f"{'met' if abs(diff) <= 0.005 else 'MISSED'}); dask workers' peak RSS "
            f"{', '.join(f'{m:.0f}' for m in dask['worker_peak_rss_mb'])} MB"
        )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; files in {work}")


if __name__ == "__main__":
    main()
