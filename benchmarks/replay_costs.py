"""Where a replay's CPU goes: the cost of each Dagster run and step, by policy, cold and warm.

Replays the given policies one after another in this process, sharing one training cache as
``retraining replay`` does, and times every ``execute_in_process`` (whole run) and every step in
it (STEP_START to STEP_SUCCESS in the run's events; what the run takes outside its steps is
Dagster's run set-up and tear-down). The first policy pays the cold costs (GE validation of each
batch and window, LightGBM training, the monitoring profiles of each new model); a later policy
that retrains on the same windows finds them in the caches, so its runs show the warm costs.
Then a cost model: those per-run costs times the number of runs a full replay makes, against the
CPU the replay measured.

    .venv/bin/python benchmarks/replay_costs.py [--policies weekly,combined] [--periods 10]
        [--source data/batches] [--replay-json /tmp/replay-speed/flights-after-all-full/replay.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _timed_runs(stats: dict[tuple[str, str, str], list[float]], policy: list[str]) -> None:
    """Wrap ``JobDefinition.execute_in_process``: seconds per run and step into ``stats``."""
    from dagster._core.definitions.job_definition import JobDefinition

    original = JobDefinition.execute_in_process

    def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        result = original(self, *args, **kwargs)
        total = time.perf_counter() - started
        starts: dict[str, float] = {}
        in_steps = 0.0
        for entry in kwargs["instance"].all_logs(result.run_id):
            event = entry.dagster_event
            if event is None:
                continue
            if event.event_type_value == "STEP_START":
                starts[event.step_key] = entry.timestamp
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
                seconds = entry.timestamp - starts.get(event.step_key, entry.timestamp)
                in_steps += seconds
                stats[(policy[0], self.name, event.step_key)].append(seconds)
        stats[(policy[0], self.name, "(outside steps)")].append(total - in_steps)
        stats[(policy[0], self.name, "RUN")].append(total)
        return result

    JobDefinition.execute_in_process = execute  # type: ignore[method-assign]


def _model(stats: dict[tuple[str, str, str], list[float]], replay_json: Path, cold: str) -> None:
    """Per-run costs times the runs of a full replay, against its measured CPU."""
    report = json.loads(replay_json.read_text())
    policies = report["policies"]
    periods = max(len(p["periods"]) for p in policies.values())
    initial = report.get("initial_batches", 9)
    warm = [p for (p, job, step) in stats if p != cold and step == "RUN"]
    warm_policy = warm[0] if warm else cold

    def mean(policy: str, job: str) -> float:
        values = stats.get((policy, job, "RUN"), [])
        return sum(values) / len(values) if values else float("nan")

    monitoring = len(policies) * (initial + periods)
    retrainings = sum(p["retrainings"] + 1 for p in policies.values())
    # Every window is trained and validated once (the cache holds it for the others: one per
    # period, plus the initial one), and every batch is validated cold once; the rest is warm.
    distinct = periods + 1
    cold_mon, warm_mon = mean(cold, "monitoring_job"), mean(warm_policy, "monitoring_job")
    cold_ret, warm_ret = mean(cold, "retraining_job"), mean(warm_policy, "retraining_job")
    batches = initial + periods
    estimate = (
        batches * cold_mon
        + (monitoring - batches) * warm_mon
        + distinct * cold_ret
        + max(retrainings - distinct, 0) * warm_ret
    )
    cpu = sum(p["compute_seconds"] for p in policies.values())
    print(f"\ncost model for {replay_json} ({len(policies)} policies, {periods} periods):")
    print(
        f"  monitoring runs {monitoring}: {batches} cold x {cold_mon:.2f} s + warm x {warm_mon:.2f}"
    )
    print(
        f"  retraining runs {retrainings}: {distinct} cold x {cold_ret:.2f} s"
        f" + warm x {warm_ret:.2f}"
    )
    print(f"  estimated run seconds {estimate:.0f}; measured compute_seconds {cpu:.0f}")
    print(f"  of which Dagster outside the steps: {_outside(stats, monitoring, retrainings):.0f} s")


def _outside(
    stats: dict[tuple[str, str, str], list[float]], monitoring: int, retraining: int
) -> float:
    """Seconds of run set-up and tear-down (outside every step) for that many runs."""
    out = 0.0
    for job, runs in (("monitoring_job", monitoring), ("retraining_job", retraining)):
        values = [
            v for (p, j, s), vs in stats.items() if j == job and s == "(outside steps)" for v in vs
        ]
        out += runs * (sum(values) / len(values)) if values else 0.0
    return out


def main() -> None:
    """Replay, print the per-run and per-step table, and the cost model if a replay is given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", default="weekly,combined")
    parser.add_argument("--periods", type=int, default=10)
    parser.add_argument("--source", type=Path, default=ROOT / "data" / "batches")
    parser.add_argument("--replay-json", type=Path, default=None, help="a full replay's result")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.path.insert(0, str(ROOT))
    from retraining_assets.replay import make_mlflow_template, replay_policy

    stats: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    current = [""]
    _timed_runs(stats, current)
    names = args.policies.split(",")
    with tempfile.TemporaryDirectory(prefix="replay-costs-") as tmp:
        work = Path(tmp)
        template = make_mlflow_template(work)
        for policy in names:
            current[0] = policy
            started = time.perf_counter()
            replay_policy(
                args.source,
                policy,
                work_dir=work / policy,
                mlflow_template=template,
                training_cache=work / "cache",
                max_periods=args.periods,
                progress=lambda line: None,
            )
            print(f"{policy}: {time.perf_counter() - started:.1f} s", flush=True)
    print(f"\n{'policy':10} {'job':15} {'step':29} {'runs':>5} {'mean s':>7} {'sum s':>7}")
    for (policy, job, step), values in sorted(
        stats.items(), key=lambda kv: (names.index(kv[0][0]), kv[0][1:])
    ):
        print(
            f"{policy:10} {job:15} {step:29} {len(values):5d}"
            f" {sum(values) / len(values):7.3f} {sum(values):7.2f}"
        )
    if args.replay_json:
        _model(stats, args.replay_json, names[0])


if __name__ == "__main__":
    main()
