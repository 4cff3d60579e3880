"""Drive the real definitions in tests: write batches, ingest them, run the retraining chain."""

from __future__ import annotations

import json
from typing import Any

import dagster as dg
import pandas as pd

from retraining_assets.core import synthetic
from retraining_assets.core.registry import ProductionStore
from retraining_assets.definitions import defs
from retraining_assets.defs.assets import raw_batches
from retraining_assets.defs.jobs import RETRAINING_ASSETS
from retraining_assets.defs.monitoring import batch_drift, batch_performance
from retraining_assets.defs.resources import BatchSourceResource, ProductionResource

CHAIN = RETRAINING_ASSETS
# The project's own resources; only the schema differs (tests use the synthetic generator).
RESOURCES: dict[str, Any] = {
    **(defs.resources or {}),
    "batch_source": BatchSourceResource(dataset="synthetic"),
}


def write_batches(project, n_batches: int = 7, rows: int = 800, seed: int = 3, **kw) -> list[str]:
    history = synthetic.make_history(n_batches, rows, seed=seed, **kw)
    synthetic.write_history(history, project.batches)
    return sorted(history)


def write_frame(project, batch_id: str, frame: pd.DataFrame) -> None:
    frame.to_parquet(project.batches / f"{batch_id}.parquet", index=False)


def ingest(instance: dg.DagsterInstance, batch_ids: list[str]) -> dict[str, bool]:
    instance.add_dynamic_partitions("batches", batch_ids)
    outcome = {}
    for batch_id in batch_ids:
        result = dg.materialize(
            [raw_batches],
            instance=instance,
            partition_key=batch_id,
            resources=RESOURCES,
            raise_on_error=False,
        )
        outcome[batch_id] = result.success
    return outcome


def monitor(instance: dg.DagsterInstance, batch_ids: list[str]) -> None:
    """What monitoring_job does for each new batch: validate, drift, quality."""
    instance.add_dynamic_partitions("batches", batch_ids)
    for batch_id in batch_ids:
        result = dg.materialize(
            [raw_batches, batch_drift, batch_performance],
            instance=instance,
            partition_key=batch_id,
            resources=RESOURCES,
        )
        assert result.success


def run_chain(
    instance: dg.DagsterInstance,
    *,
    model: dict | None = None,
    gate: dict | None = None,
    as_of: str = "",
    window: int = 6,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    ops: dict = {"training_dataset": {"config": {"as_of_batch": as_of, "window_batches": window}}}
    if model:
        ops["candidate_model"] = {"config": model}
    ops["evaluation_report"] = {"config": {"latency_calls": 100, **(gate or {})}}
    return dg.materialize(
        CHAIN,
        instance=instance,
        resources=RESOURCES,
        run_config={"ops": ops},
        raise_on_error=raise_on_error,
    )


def latest_metadata(instance: dg.DagsterInstance, key: str, partition: str | None = None) -> dict:
    """Metadata of the newest materialization of ``key`` (of one partition if given)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(key), asset_partitions=[partition] if partition else None
        ),
        limit=1,
    ).records
    assert records, f"{key} {partition or ''} was never materialized"
    mat = records[0].asset_materialization
    assert mat is not None
    return {k: v.value for k, v in mat.metadata.items()}


def production_store() -> ProductionStore:
    """The production registry the project's resources use (the state URL in the environment)."""
    return ProductionResource().store()


def served() -> dict:
    """The serving production version as a plain dict (as its version object stores it)."""
    current = production_store().current()
    assert current is not None, "nothing is in production"
    return json.loads(current.to_json())


def served_bytes(record: dict) -> bytes:
    """The verified model bytes of a production version given as a dict."""
    store = production_store()
    return store.model_bytes(store.record(record["version"]))


def production_versions() -> dict[str, bytes]:
    """Every version object's bytes: equal before and after means production is untouched."""
    store = production_store().store
    return {key: store.get(key) for key in store.list("versions")}
