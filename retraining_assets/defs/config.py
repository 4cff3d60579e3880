"""Run-time knobs, changeable per run from the launchpad; defaults come from ``settings``."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import dagster as dg
from pydantic import Field

# The strategy catalogue lives beside the strategies (light to import: no pandas at module level).
from retraining_assets.core.strategies import STRATEGY_HELP, Strategy
from retraining_assets.settings import DEFAULT_POLICY, DEFAULT_TRAINING, PromotionMode, Trainer

if TYPE_CHECKING:
    from retraining_assets.core.training import TrainParams


class RawBatchesConfig(dg.Config):
    """Where passing batch validations are kept (``retraining replay`` sets it)."""

    validation_cache: str | None = Field(
        default=None,
        description="Folder of passing Great Expectations results by their inputs (batch md5,"
        " file name, period, schema, code version): a batch already validated is not validated"
        " again (its pandas rules still run). Empty: always validate.",
    )


class TrainingDatasetConfig(dg.Config):
    """Which batches form the training dataset."""

    window_batches: int = Field(
        default=DEFAULT_POLICY.window_batches,
        description="Rolling window: number of batches (weeks for the demo) to train on.",
    )
    test_batches: int = Field(
        default=DEFAULT_POLICY.test_batches,
        description="Most recent batches held out as the shared test set.",
    )
    strategy: Strategy = Field(
        # settings cannot import the catalogue (core imports settings); a test checks the name.
        default=cast(Strategy, DEFAULT_POLICY.strategy),
        description="; ".join(f"{name}: {text}" for name, text in STRATEGY_HELP.items()) + ".",
    )
    half_life_days: float = Field(
        default=DEFAULT_POLICY.half_life_days,
        description="weighted: age at which a row counts half as much.",
    )
    as_of_batch: str = Field(
        default="",
        description="Build the dataset as of this batch id (the last test batch); empty: latest.",
    )


class ValidatedDatasetConfig(dg.Config):
    """Where passing validation results are kept (``retraining replay`` sets it)."""

    validation_cache: str | None = Field(
        default=None,
        description="Folder of passing validation results by their inputs (dataset md5, schema,"
        " suite options, code version): a dataset already validated is not validated again."
        " Empty: always validate.",
    )


class ChartConfig(dg.Config):
    """Whether a monitoring asset draws its chart (``retraining replay``, which reads none, not)."""

    chart: bool = Field(
        default=True,
        description="Draw the chart into the metadata. Off: the same verdict and metadata,"
        " without the chart (saves ~0.2-0.3 s a batch).",
    )


class CandidateModelConfig(dg.Config):
    """LightGBM hyper-parameters and the trainer that runs them (all logged to MLflow)."""

    seed: int = DEFAULT_TRAINING.seed
    num_threads: int = Field(
        default=DEFAULT_TRAINING.num_threads,
        description="LightGBM threads. Keep explicit: its OpenMP threads spin and starve others.",
    )
    num_boost_round: int = DEFAULT_TRAINING.num_boost_round
    early_stopping_rounds: int = DEFAULT_TRAINING.early_stopping_rounds
    learning_rate: float = DEFAULT_TRAINING.learning_rate
    num_leaves: int = DEFAULT_TRAINING.num_leaves
    min_data_in_leaf: int = DEFAULT_TRAINING.min_data_in_leaf
    feature_fraction: float = DEFAULT_TRAINING.feature_fraction
    bagging_fraction: float = DEFAULT_TRAINING.bagging_fraction
    bagging_freq: int = DEFAULT_TRAINING.bagging_freq
    lambda_l2: float = DEFAULT_TRAINING.lambda_l2
    trainer: Trainer = Field(
        default=DEFAULT_POLICY.trainer,
        description="local: LightGBM in the run process. dask: lightgbm.dask on the DaskResource's"
        " cluster (workers read the dataset by partitions); same parameters, same text model.",
    )
    training_cache: str | None = Field(
        default=None,
        description="Folder of a content-addressed cache of trained boosters (key: dataset md5,"
        " parameters, strategy, code version): a training whose inputs already produced a model"
        " reuses it. Empty: always train. `retraining replay` sets one for its policies.",
    )

    def train_params(self) -> TrainParams:
        """The pure-core parameter object (hyper-parameters only, not where they run)."""
        from retraining_assets.core.training import TrainParams

        return TrainParams(**self.model_dump(exclude={"trainer", "training_cache"}))


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
    min_test_positives: int = Field(
        default=DEFAULT_POLICY.min_test_positives,
        description="Refuse to decide (reject) with fewer test positives or negatives than this.",
    )
    latency_calls: int = Field(
        default=DEFAULT_POLICY.latency_calls, description="Single-row predictions timed per model."
    )
    champion_latency: bool = Field(
        default=True,
        description="Also time the champion's single-row latency (shown beside the candidate's in"
        " the report and the model card; the gate reads only the candidate's). `retraining"
        " replay` turns it off.",
    )
    mode: PromotionMode = Field(
        default=DEFAULT_POLICY.mode,
        description="direct: a candidate that passes is promoted at once. shadow: it becomes the"
        " challenger, is scored beside the champion on the next live labelled batches, and is"
        " promoted only if it holds up there.",
    )
    shadow_batches: int = Field(
        default=DEFAULT_POLICY.shadow_batches,
        description="Shadow mode: labelled live batches before the decision.",
    )
    roc_plot: bool = Field(
        default=True,
        description="Draw the ROC plot (metadata and MLflow artifact). Off (``retraining replay``,"
        " which reads none): the same scores and verdict, without the plot.",
    )
