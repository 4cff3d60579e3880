"""Jobs: the retraining cycle, and the ingestion of one batch partition."""

from __future__ import annotations

import dagster as dg

from retraining_assets.defs.assets import (
    candidate_model,
    evaluation_report,
    production_model,
    raw_batches,
    training_dataset,
    validated_dataset,
)
from retraining_assets.defs.executor import local_in_process_executor
from retraining_assets.defs.monitoring import batch_drift, batch_performance
from retraining_assets.defs.partitions import batch_partitions

RETRAINING_ASSETS = [
    training_dataset,
    validated_dataset,
    candidate_model,
    evaluation_report,
    production_model,
]

# Steps run one after the other anyway; a single process avoids paying LightGBM, MLflow and GE
# imports once per step, and guarantees one training at a time per run.
retraining_job = dg.define_asset_job(
    "retraining_job",
    selection=dg.AssetSelection.assets(*RETRAINING_ASSETS),
    executor_def=local_in_process_executor,
    description="Collect, validate, train, evaluate and (if the gate agrees) promote a model.",
    tags={"retraining": "true"},
)

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets(raw_batches),
    partitions_def=batch_partitions,
    executor_def=local_in_process_executor,
    description="Validate and register one incoming batch file (one partition).",
)


monitoring_job = dg.define_asset_job(
    "monitoring_job",
    # The estimated-performance asset by key: defs/estimated.py builds its sensor from
    # defs/sensors.py, which imports this module.
    selection=dg.AssetSelection.assets(
        raw_batches, batch_drift, batch_performance, dg.AssetKey("batch_estimated_performance")
    ),
    partitions_def=batch_partitions,
    executor_def=local_in_process_executor,
    description="Ingest one new batch: validate it, measure its drift, estimate the production"
    " model's AUC without labels (and measure it if labelled).",
)

performance_job = dg.define_asset_job(
    "performance_job",
    selection=dg.AssetSelection.assets(batch_performance),
    partitions_def=batch_partitions,
    executor_def=local_in_process_executor,
    description="Measure the production model on a batch whose labels just arrived.",
)
