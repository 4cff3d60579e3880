"""Run-time knobs, changeable per run from the launchpad; defaults come from ``settings``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from retraining_assets.settings import DEFAULT_POLICY

if TYPE_CHECKING:
    from retraining_assets.core.training import TrainParams


class TrainingDatasetConfig(dg.Config):
    """Which batches form the training dataset."""

    window_batches: int = Field(
        default=DEFAULT_POLICY.window_weeks,
        description="Rolling window: number of batches (weeks for the demo) to train on.",
    )
    test_batches: int = Field(
        default=DEFAULT_POLICY.test_batches,
        description="Most recent batches held out as the shared test set.",
    )
    as_of_batch: str = Field(
        default="",
        description="Build the dataset as of this batch id (the last test batch); empty: latest.",
    )


class CandidateModelConfig(dg.Config):
    """LightGBM hyper-parameters (logged to MLflow)."""

    seed: int = DEFAULT_POLICY.seed
    num_threads: int = Field(
        default=DEFAULT_POLICY.num_threads,
        description="LightGBM threads. Keep explicit: its OpenMP threads spin and starve others.",
    )
    num_boost_round: int = DEFAULT_POLICY.num_boost_round
    early_stopping_rounds: int = DEFAULT_POLICY.early_stopping_rounds
    learning_rate: float = DEFAULT_POLICY.learning_rate
    num_leaves: int = DEFAULT_POLICY.num_leaves
    min_data_in_leaf: int = DEFAULT_POLICY.min_data_in_leaf
    feature_fraction: float = DEFAULT_POLICY.feature_fraction
    bagging_fraction: float = DEFAULT_POLICY.bagging_fraction
    bagging_freq: int = DEFAULT_POLICY.bagging_freq
    lambda_l2: float = DEFAULT_POLICY.lambda_l2

    def train_params(self) -> TrainParams:
        """The pure-core parameter object."""
        from retraining_assets.core.training import TrainParams

        return TrainParams(**self.model_dump())


class GateConfig(dg.Config):
    """Promotion rules applied by ``evaluation_report`` and enforced by ``production_model``."""

    min_relative_auc: float = Field(
        default=DEFAULT_POLICY.min_relative_auc,
        description="Candidate AUC must be >= this x production AUC on the same test set.",
    )
    max_p95_latency_ms: float = Field(
        default=DEFAULT_POLICY.max_p95_latency_ms,
        description="Ceiling on p95 single-row inference latency (ms).",
    )
    min_baseline_auc_margin: float = Field(
        default=DEFAULT_POLICY.min_baseline_auc_margin,
        description="First model only: AUC must beat the constant baseline by this margin.",
    )
    latency_calls: int = Field(
        default=DEFAULT_POLICY.latency_rows, description="Single-row predictions timed per model."
    )
