"""Wall time of ``retraining replay --policy never`` against ``--policy all``, before and after.

Each contender is a code tree (this checkout, and e.g. a clean ``git worktree`` of an older
commit); every replay runs in its own process with that tree first on ``PYTHONPATH`` and
``OMP_NUM_THREADS=1``, on the same batch files, and the script prints wall seconds, the
all/never ratio per tree, and whether the per-period tables (served model version and AUC of
every policy) are identical between the trees.

    git worktree add --detach /tmp/replay-base main~5
    .venv/bin/python benchmarks/replay_speed.py --before /tmp/replay-base            # both datasets
    .venv/bin/python benchmarks/replay_speed.py --datasets synthetic --periods 12     # quick

Results are kept in ``--results`` (JSON) and a run already there is not repeated (``--fresh``
repeats them), so a long flights baseline can be measured once and compared later.
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

ROOT = Path(__file__).resolve().parents[1]


def _flights(folder: Path) -> tuple[Path, Path | None]:
    batches = folder / "flights"
    if not any(batches.glob("*.parquet")):
        subprocess.run(
            [sys.executable, "-m", "retraining_assets.cli", "build-batches", "--out", str(batches)],
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    return batches, None


def _synthetic(folder: Path, periods: int = 40, rows: int = 2000) -> tuple[None, Path]:
    """A seeded weekly history, a covariate shift two thirds of the way in, as a configured dataset.

    A CSV plus a ``dataset:`` mapping (as a user brings data), so any tree replays it.
    """
    sys.path.insert(0, str(ROOT))
    import pandas as pd

    from retraining_assets.core.synthetic import DriftSpec, make_history

    source = folder / "synthetic.csv"
    if not source.exists():
        history = make_history(
            periods, rows, seed=7, drift_from=periods * 2 // 3, drift=DriftSpec(1.0, 0.0, 0.5)
        )
        pd.concat(history.values()).to_csv(source, index=False)
    config = folder / "synthetic.yaml"
    config.write_text(
        "dataset:\n  name: synthetic\n  source: synthetic.csv\n  timestamp: ts\n"
        "  target: label\n  id_column: row_id\n  categorical: [c0, c1]\n  frequency: weekly\n"
    )
    return None, config


def _run(
    tree: Path, source: Path | None, config: Path | None, policy: str, out: Path, extra: list[str]
):
    empty = out.parent / "empty.yaml"
    empty.write_text("{}\n")
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "OMP_NUM_THREADS": "1",
        # The user's own configuration must not change what is measured.
        "RETRAINING_CONFIG": str(config or empty),
        "RETRAINING_HOME": str(out.parent / "home"),
    }
    env.pop("RETRAINING_STATE_URL", None)
    args = [sys.executable, "-m", "retraining_assets.cli", "replay"]
    args += ["--source", str(source)] if source is not None else []
    args += ["--policy", policy, "--out", str(out), *extra]
    if config is not None:
        args += ["--config", str(config)]
    started, cpu_before = time.perf_counter(), _children_cpu()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False, cwd=tree)
    wall = time.perf_counter() - started
    # CPU seconds of the replay and its workers: less sensitive than wall time to other work on
    # the machine, and it counts work done twice (two workers training the same window).
    cpu = _children_cpu() - cpu_before
    if done.returncode != 0:
        raise RuntimeError(f"{tree} {policy}: {done.stderr[-3000:]}")
    report = json.loads((out / "replay.json").read_text())
    table = {
        name: [[p["period"], p["served_version"], p["auc"]] for p in data["periods"]]
        for name, data in report["policies"].items()
    }
    return {"wall": round(wall, 1), "cpu": round(cpu, 1), "table": table}


def _children_cpu() -> float:
    """User + system CPU seconds of this process's finished children (and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    """Measure, keep and print the wall times and the table comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="code tree of the baseline (a git worktree)")
    parser.add_argument("--after", type=Path, default=ROOT, help="code tree measured (this one)")
    parser.add_argument("--only-before", action="store_true", help="measure the baseline only")
    parser.add_argument("--datasets", default="flights,synthetic")
    parser.add_argument("--periods", type=int, default=None, help="replay at most N periods")
    parser.add_argument("--extra", default="", help="more replay arguments for the after tree")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "replay-speed")
    parser.add_argument("--results", type=Path, default=None, help="default: WORK/results.json")
    parser.add_argument("--fresh", action="store_true", help="measure again what is in results")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results_path = args.results or args.work / "results.json"
    results = (
        {} if args.fresh or not results_path.exists() else json.loads(results_path.read_text())
    )
    trees = [("before", args.before)] if args.before else []
    if not args.only_before:
        trees.append(("after", args.after))
    extra = ["--periods", str(args.periods)] if args.periods else []
    for dataset in args.datasets.split(","):
        source, config = _flights(args.work) if dataset == "flights" else _synthetic(args.work)
        for policy in ("never", "all"):
            for label, tree in trees:
                key = f"{dataset}/{label}/{policy}/{args.periods or 'full'}"
                if key in results:
                    continue
                more = extra + (args.extra.split() if label == "after" and args.extra else [])
                out = args.work / key.replace("/", "-")
                print(f"{key}: running ({tree}) ...", flush=True)
                results[key] = _run(tree, source, config, policy, out, more)
                print(f"{key}: {results[key]['wall']:.1f} s", flush=True)
                results_path.write_text(json.dumps(results, indent=1))
    print(
        "\n| dataset | tree | never s | all s | all / never | all CPU s | tables equal to before |"
    )
    print("|---|---|---|---|---|---|---|")
    for dataset in args.datasets.split(","):
        span = args.periods or "full"
        for label, _ in trees:
            never = results.get(f"{dataset}/{label}/never/{span}")
            every = results.get(f"{dataset}/{label}/all/{span}")
            if not never or not every:
                continue
            base = results.get(f"{dataset}/before/all/{span}")
            same = "n/a" if not base or label == "before" else str(base["table"] == every["table"])
            print(
                f"| {dataset} | {label} | {never['wall']:.0f} | {every['wall']:.0f} | "
                f"{every['wall'] / never['wall']:.2f}x | {every.get('cpu', 'n/a')} | {same} |"
            )


if __name__ == "__main__":
    main()
