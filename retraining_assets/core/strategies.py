"""Training-data strategies: which labelled batches a retraining uses, and how much each row counts.

Every strategy shares the test set of :func:`~retraining_assets.core.batches.select_window`: the
latest ``test_batches`` labelled batches up to ``as_of``, latest by each batch's period (its
``times``), never by file name. They differ in the training side:

``full``
    All labelled history before the test set.
``rolling``
    The last ``window_batches`` batches before the test set (exactly ``select_window``).
``incremental``
    Only the batches newer than the production model's last training batch; the new model
    continues the production booster (LightGBM ``init_model``) instead of starting from scratch.
``weighted``
    All history, each row weighted ``0.5 ** (age_days / half_life_days)`` where the age is measured
    back from the start of the test set, so the recent past dominates without forgetting the rest.

Pure functions over batch ids and data frames (numpy/pandas only): no I/O, no LightGBM.

The catalogue (:data:`Strategy`, :data:`STRATEGY_HELP`) is the launchpad's list too, so adding a
strategy touches this module only: numpy, pandas and the batch helpers are imported inside the
functions, and ``defs/config.py`` imports the catalogue when the code location loads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from retraining_assets.settings import (
    BATCH_COLUMN,
    DEFAULT_POLICY,
    SPLIT_COLUMN,
    WEIGHT_COLUMN,
    DatasetSchema,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from retraining_assets.core.batches import Window

#: The strategies :func:`plan_training` knows (``training_dataset.strategy`` offers exactly these).
Strategy = Literal["rolling", "full", "incremental", "weighted"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
#: What each strategy trains on: the launchpad's help for ``strategy``.
STRATEGY_HELP: dict[Strategy, str] = {
    "rolling": "last window_batches",
    "full": "all history",
    "weighted": "all history, weights halving every half_life_days",
    "incremental": "continue the production model on the batches newer than its training data",
}

#: Default half-life of the ``weighted`` strategy: a row four weeks older counts half as much.
DEFAULT_HALF_LIFE_DAYS = DEFAULT_POLICY.half_life_days


class StrategyError(ValueError):
    """A strategy that cannot be applied to the available batches, with the reason."""


@dataclass(frozen=True)
class TrainingPlan:
    """What one training run uses: its batches and how to train on them.

    Attributes:
        strategy: One of :data:`STRATEGIES`.
        window: Train and test batch ids (test = latest labelled batches up to ``as_of``).
        init_from: For ``incremental``, the batch id the production model was trained through
            (the model to continue); ``None`` otherwise.
        half_life_days: For ``weighted``, the half-life of the age weights; ``None`` otherwise.
    """

    strategy: str
    window: Window
    init_from: str | None = None
    half_life_days: float | None = None

    @property
    def continues_model(self) -> bool:
        """Whether training must continue the production booster (``incremental``)."""
        return self.strategy == "incremental"

    @property
    def trained_through(self) -> str:
        """The last batch the resulting model is trained on (its ``trained_through`` later)."""
        return self.window.train_batches[-1]

    def as_dict(self) -> dict[str, Any]:
        """Flat, string-friendly description for logging (MLflow params, Dagster metadata)."""
        return {
            "strategy": self.strategy,
            "train_batches": ",".join(self.window.train_batches),
            "test_batches": ",".join(self.window.test_batches),
            "n_train_batches": len(self.window.train_batches),
            "init_from": self.init_from or "",
            "half_life_days": "" if self.half_life_days is None else self.half_life_days,
        }


def plan_training(
    available: Sequence[str],
    strategy: str,
    *,
    as_of: str | None,
    window_batches: int,
    test_batches: int = 1,
    trained_through: str | None = None,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    times: Mapping[str, object] | None = None,
) -> TrainingPlan:
    """Choose the training and test batches of one run under ``strategy``.

    Args:
        available: Labelled batch ids (any order; ids sort in time order).
        strategy: One of :data:`STRATEGIES`.
        as_of: Latest batch to consider (replays the past); ``None`` means the latest available.
        window_batches: Training batches of the ``rolling`` strategy (ignored by the others).
        test_batches: Latest batches (up to ``as_of``) that form the test set, for every strategy.
        trained_through: Last training batch of the production model; ``incremental`` trains on
            the batches after it, and ignores it otherwise.
        half_life_days: Half-life of the ``weighted`` strategy's age weights, in days.
        times: Each batch's period start: batches are ordered by it (then by id), so the test
            set is the latest period whatever the file names. Without it ids give the order.

    Returns:
        The plan; its window is what ``collect_dataset`` builds the dataset from.

    Raises:
        StrategyError: on an unknown strategy, a non-positive half-life, ``incremental`` without
            a production model or without batches newer than it.
        BatchError: as :func:`select_window` does: unknown ``as_of``, too few batches, or
            ``window_batches`` / ``test_batches`` below 1.
    """
    if strategy not in STRATEGIES:
        raise StrategyError(
            f"unknown training strategy {strategy!r}; valid strategies: {', '.join(STRATEGIES)}"
        )
    from retraining_assets.core.batches import Window, select_window, time_order

    if strategy == "rolling":
        return TrainingPlan(
            strategy, select_window(available, as_of, window_batches, test_batches, times)
        )
    # Every other strategy starts from all history before the test set.
    everything = select_window(available, as_of, max(1, len(available)), test_batches, times)
    if strategy == "full":
        return TrainingPlan(strategy, everything)
    if strategy == "weighted":
        return TrainingPlan(strategy, everything, half_life_days=_check_half_life(half_life_days))
    # incremental
    if not trained_through:
        raise StrategyError(
            "incremental needs a production model to continue (no trained_through batch given)"
        )
    ordered = time_order([*available, trained_through], times)
    position = {b: i for i, b in enumerate(ordered)}
    newer = tuple(b for b in everything.train_batches if position[b] > position[trained_through])
    if not newer:
        raise StrategyError(
            f"no batches newer than {trained_through} to continue training on (test set "
            f"{', '.join(everything.test_batches)})"
        )
    return TrainingPlan(
        strategy,
        Window(train_batches=newer, test_batches=everything.test_batches),
        init_from=trained_through,
    )


def _check_half_life(half_life_days: float) -> float:
    try:
        value = float(half_life_days)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise StrategyError(f"half_life_days must be a finite number > 0, got {half_life_days!r}")
    return value


def age_weights(
    timestamps: pd.Series, reference_time: pd.Timestamp, half_life_days: float
) -> np.ndarray:
    """Sample weights halving every ``half_life_days`` of age, normalised to a mean of 1.

    ``age_days = (reference_time - timestamp) / 1 day`` and the raw weight is
    ``0.5 ** (age_days / half_life_days)``: a row one half-life older than another weighs exactly
    half as much. Rows later than ``reference_time`` are treated as age 0 (never more than the
    freshest data).

    The weights are then scaled so that their mean is 1, i.e. they sum to the number of rows.
    Only ratios matter for what the model learns, but LightGBM's absolute thresholds are in
    weighted units: ``min_sum_hessian_in_leaf`` compares summed weighted hessians, ``lambda_l2``
    is added to them, and gradient statistics scale with the weights. With a mean of 1 a weighted
    dataset has the same total weight as an unweighted one of the same size, so these parameters
    (and ``min_data_in_leaf``, which counts rows) keep the meaning they have for the other
    strategies, and constant weights reduce exactly to unweighted training.

    Args:
        timestamps: Row times (naive datetimes, like the schema's timestamp column).
        reference_time: Time of age 0, normally the start of the test set.
        half_life_days: Days after which a row's weight halves; must be > 0.

    Returns:
        float64 weights in row order, mean 1 (an empty array for no rows).

    Raises:
        StrategyError: if ``half_life_days`` is not a positive finite number or a timestamp is
            missing.
    """
    import numpy as np
    import pandas as pd

    half_life = _check_half_life(half_life_days)
    times = pd.to_datetime(pd.Series(timestamps))
    if times.isna().any():
        raise StrategyError(f"{int(times.isna().sum())} missing timestamps: cannot weigh by age")
    if times.empty:
        return np.empty(0, dtype="float64")
    age_days = ((pd.Timestamp(reference_time) - times) / pd.Timedelta(days=1)).to_numpy(
        dtype="float64"
    )
    age_days = np.maximum(age_days, 0.0)
    # Relative to the youngest row so the largest raw weight is 1: no underflow to an all-zero
    # vector however old the data or short the half-life (ratios, hence the result, unchanged).
    exponent = -(age_days - age_days.min()) / half_life
    weights = np.exp2(exponent)
    return np.asarray(weights / weights.mean(), dtype="float64")


def apply_weights(dataset: pd.DataFrame, plan: TrainingPlan, schema: DatasetSchema) -> pd.DataFrame:
    """Return ``dataset`` with a float64 :data:`WEIGHT_COLUMN` for ``plan``'s strategy.

    Train rows get :func:`age_weights` (mean 1 over the train rows) under ``weighted`` and 1.0
    under every other strategy; test rows always get 1.0 (the test metric stays unweighted, so
    candidates trained under different strategies are compared on equal terms). Ages are measured
    from the earliest timestamp of the test split.

    Args:
        dataset: Output of ``collect_dataset`` for ``plan.window`` (with ``__split__``).
        plan: The plan the dataset was built from.
        schema: Schema naming the timestamp column.

    Returns:
        A copy of ``dataset`` with the weight column added (or replaced); rows keep their order.

    Raises:
        StrategyError: if the dataset has no split column or no test rows (weighted), or holds
            train rows of batches outside the plan.
    """
    import numpy as np
    import pandas as pd

    if SPLIT_COLUMN not in dataset.columns:
        raise StrategyError(f"dataset lacks the {SPLIT_COLUMN!r} column of collect_dataset")
    is_train = (dataset[SPLIT_COLUMN] == "train").to_numpy()
    if BATCH_COLUMN in dataset.columns:
        stray = set(dataset.loc[is_train, BATCH_COLUMN]) - set(plan.window.train_batches)
        if stray:
            raise StrategyError(
                f"dataset has train rows from batches {sorted(stray)} outside the "
                f"{plan.strategy} plan"
            )
    weights = np.ones(len(dataset), dtype="float64")
    if plan.strategy == "weighted" and is_train.any():
        is_test = (dataset[SPLIT_COLUMN] == "test").to_numpy()
        if not is_test.any():
            raise StrategyError(
                "no test rows: the weighted strategy measures age from the test set"
            )
        reference = pd.Timestamp(dataset.loc[is_test, schema.timestamp].min())
        weights[is_train] = age_weights(
            dataset.loc[is_train, schema.timestamp],
            reference,
            plan.half_life_days or DEFAULT_HALF_LIFE_DAYS,
        )
    # A shallow copy: the new column is the copy's own, the rows are shared, never written
    # (a deep copy doubled the dataset in memory at its largest).
    out = dataset.copy(deep=False)
    out[WEIGHT_COLUMN] = weights
    return out
