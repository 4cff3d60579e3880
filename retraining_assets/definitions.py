"""The one ``dg.Definitions`` of the project, built from explicit lists."""

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
from retraining_assets.defs.jobs import ingest_job, retraining_job
from retraining_assets.defs.resources import (
    BatchSourceResource,
    DvcResource,
    MlflowResource,
    ProductionResource,
)

defs = dg.Definitions(
    assets=[
        raw_batches,
        training_dataset,
        validated_dataset,
        candidate_model,
        evaluation_report,
        production_model,
    ],
    jobs=[retraining_job, ingest_job],
    resources={
        "batch_source": BatchSourceResource(),
        "dvc": DvcResource(),
        "mlflow": MlflowResource(),
        "production": ProductionResource(),
    },
)
