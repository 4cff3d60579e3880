"""Sensor tick cost with 5 and with 500 past batches, measured side by side in one run.

Each sensor is ticked at steady state: its cursor is past all history and one new batch arrived
(a new file, a new drift result, a new labelled-batch result). Prints the median tick time per
sensor and the ratio 500/5. Target: ratio <= 1.5 (the cost must not grow with history).

    .venv/bin/python benchmarks/sensor_tick.py
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from retraining_assets.defs.state import MonitoringStoreResource
from retraining_assets.monitoring_store import MonitoringStore

REPEATS = 15


def _history(
    instance: dg.DagsterInstance, batches: Path, monitoring: MonitoringStore, n: int
) -> list[str]:
    ids = [
        (pd.Timestamp("2020-01-06") + pd.Timedelta(weeks=i)).date().isoformat() for i in range(n)
    ]
    frame = pd.DataFrame({"x": [1.0]})
    for batch_id in ids:
        frame.to_parquet(batches / f"{batch_id}.parquet")
    instance.add_dynamic_partitions("batches", ids)
    for batch_id in ids:
        _report(instance, monitoring, batch_id)
    return ids


def _report(instance: dg.DagsterInstance, monitoring: MonitoringStore, batch_id: str) -> None:
    errors_key = monitoring.put_errors(
        batch_id, 1, np.random.default_rng(0).random(6000).astype("float32") * 0.2
    )
    from retraining_assets.core.verdicts import (
        DriftVerdict,
        PerformanceVerdict,
        verdict_metadata,
    )

    drift = DriftVerdict(
        status="no_drift",
        rule="any_psi",
        max_psi=0.05,
        max_psi_feature="x",
        summary="no drift",
        production_version=1,
    )
    perf = PerformanceVerdict(
        status="ok",
        reason="AUC 0.8000 >= floor 0.60",
        auc=0.8,
        production_version=1,
        errors_key=errors_key,
    )
    for key, record in (("batch_drift", drift), ("batch_performance", perf)):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=key, partition=batch_id, metadata=verdict_metadata(record)
            )
        )


def measure(n_past: int) -> dict[str, float]:
    """Median tick time (ms) of each sensor with ``n_past`` batches of history."""
    from retraining_assets.definitions import defs

    resources = dict(defs.resources or {})
    timings: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        root = Path(tmp)
        batches = root / "batches"
        batches.mkdir()
        os.environ["RETRAINING_HOME"] = str(root / "var")
        os.environ["RETRAINING_BATCHES_DIR"] = str(batches)
        # The monitoring store the definitions' resource resolves to (a folder under the home).
        monitoring = MonitoringStoreResource().open()
        ids = _history(instance, batches, monitoring, n_past)
        cursors: dict[str, str | None] = {}
        for name in ("data_drift_sensor", "performance_drift_sensor", "concept_drift_sensor"):
            # Catch up with the history once: steady state starts after it.
            sensor = defs.resolve_sensor_def(name)
            cursor = None
            while True:
                ctx = dg.build_sensor_context(
                    instance=instance, cursor=cursor, definitions=defs, resources=resources
                )
                data = sensor.evaluate_tick(ctx)
                if data.cursor == cursor:
                    break
                cursor = data.cursor
            cursors[name] = cursor
        cursors["new_batch_sensor"] = None
        for i in range(REPEATS):
            new_id = (pd.Timestamp(ids[-1]) + pd.Timedelta(weeks=i + 1)).date().isoformat()
            pd.DataFrame({"x": [1.0]}).to_parquet(batches / f"{new_id}.parquet")
            _report(instance, monitoring, new_id)
            for name in cursors:
                sensor = defs.resolve_sensor_def(name)
                ctx = dg.build_sensor_context(
                    instance=instance, cursor=cursors[name], definitions=defs, resources=resources
                )
                started = time.perf_counter()
                if name == "new_batch_sensor":
                    result = sensor(ctx)  # raw result: run requests target the new partition
                    cursor = result.cursor if isinstance(result, dg.SensorResult) else cursors[name]
                else:
                    cursor = sensor.evaluate_tick(ctx).cursor
                timings.setdefault(name, []).append((time.perf_counter() - started) * 1000)
                if name != "new_batch_sensor":
                    cursors[name] = cursor
            instance.add_dynamic_partitions("batches", [new_id])
    return {name: statistics.median(values) for name, values in timings.items()}


def main() -> None:
    """Print the table."""
    small = measure(5)
    large = measure(500)
    print(f"{'sensor':28} {'5 batches ms':>13} {'500 batches ms':>15} {'ratio':>7}")
    for name in small:
        ratio = large[name] / small[name]
        print(f"{name:28} {small[name]:13.2f} {large[name]:15.2f} {ratio:7.2f}")


if __name__ == "__main__":
    main()
