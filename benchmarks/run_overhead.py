"""Dagster's fixed cost of one run on the project's SQLite instance: many no-op runs, timed.

Runs the retraining chain's shape (5 assets, each taking the one before it, empty bodies) ``--runs``
times in one process on an instance with the storage ``var/dagster/dagster.yaml`` configures, and
times each ``execute_in_process``; also the first opening of a new run's event database (the
shard every run's events go to) through the storage alone. Run it once per code tree with that
tree first on ``PYTHONPATH`` to compare two commits side by side:

    PYTHONPATH=/tmp/base .venv/bin/python benchmarks/run_overhead.py
    .venv/bin/python benchmarks/run_overhead.py
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
import warnings
from pathlib import Path

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
STORAGE = {"module": "retraining_assets.defs.sqlite_storage", "class": "SqliteStorage"}


def _chain_job():
    """The 5-asset chain with empty bodies, in process."""
    import dagster as dg

    @dg.asset
    def training_dataset() -> int:
        return 0

    @dg.asset
    def validated_dataset(training_dataset: int) -> int:
        return training_dataset

    @dg.asset
    def candidate_model(validated_dataset: int) -> int:
        return validated_dataset

    @dg.asset
    def evaluation_report(candidate_model: int) -> int:
        return candidate_model

    @dg.asset
    def production_model(evaluation_report: int) -> int:
        return evaluation_report

    assets = [training_dataset, validated_dataset, candidate_model, evaluation_report]
    return dg.Definitions(
        assets=[*assets, production_model],
        jobs=[dg.define_asset_job("chain", executor_def=dg.in_process_executor)],
    ).resolve_job_def("chain")


def main() -> None:
    """Print the median and spread of a no-op run and of a new run database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import dagster as dg

    from retraining_assets.defs.sqlite_storage import ClaimSafeSqliteEventLogStorage

    job = _chain_job()
    with tempfile.TemporaryDirectory() as tmp:
        overrides = {"storage": {"custom": {**STORAGE, "config": {"base_dir": tmp}}}}
        with dg.instance_for_test(overrides=overrides, temp_dir=tmp) as instance:
            runs = []
            for _ in range(args.runs + 1):
                started = time.perf_counter()
                job.execute_in_process(instance=instance, run_config=QUIET)
                runs.append(time.perf_counter() - started)
        storage = ClaimSafeSqliteEventLogStorage(str(Path(tmp) / "shards"))
        shards = []
        for _ in range(args.runs):
            started = time.perf_counter()
            with storage.run_connection(str(uuid.uuid4())):
                pass
            shards.append(time.perf_counter() - started)
        storage.dispose()
    runs = runs[1:]  # the first run also builds the job's snapshot once
    for name, values in (("no-op 5-asset run", runs), ("new run database", shards)):
        quartiles = statistics.quantiles(values, n=4)
        print(
            f"{name:20} median {statistics.median(values) * 1000:6.1f} ms"
            f"  (quartiles {quartiles[0] * 1000:.1f}-{quartiles[2] * 1000:.1f}, n={len(values)})"
        )


if __name__ == "__main__":
    main()
