"""LightGBM training: seeded, explicit thread count, saved in LightGBM's text format.

``lightgbm`` takes seconds to import, so it is imported inside the functions that need it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retraining_assets.core.batches import split_rows
from retraining_assets.libraries import preload
from retraining_assets.settings import WEIGHT_COLUMN, DatasetSchema, TrainingDefaults

if TYPE_CHECKING:
    import lightgbm as lgb


@dataclass(frozen=True)
class TrainParams(TrainingDefaults):
    """Hyper-parameters of one training run (all logged to MLflow).

    The LightGBM fields and their defaults are ``settings.TrainingDefaults``'s.
    """

    valid_fraction: float = 0.15

    def lightgbm_params(self) -> dict[str, Any]:
        """The parameter dict LightGBM's ``train`` takes."""
        return {
            "objective": "binary",
            "metric": ["auc", "binary_logloss"],
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": self.bagging_freq,
            "lambda_l2": self.lambda_l2,
            "seed": self.seed,
            # Deterministic results for a given seed and thread count.
            "deterministic": True,
            "force_row_wise": True,
            # LightGBM's OpenMP threads spin-wait; an explicit count keeps one training from
            # starving everything else on a small host.
            "num_threads": self.num_threads,
            "verbosity": -1,
        }

    def as_dict(self) -> dict[str, Any]:
        """Flat dict for logging."""
        return asdict(self)


@dataclass
class TrainedModel:
    """A trained booster with what is needed to reproduce and describe it."""

    booster: lgb.Booster
    params: TrainParams
    best_iteration: int
    train_seconds: float
    n_train: int
    n_valid: int
    feature_names: list[str]
    valid_auc: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> Path:
        """Write the model in LightGBM's text format (never pickle) and return the path.

        The file holds the first ``best_iteration`` trees. For a continued (incremental) model
        that count includes the init model's trees (LightGBM numbers iterations from the init
        model's last one), so the file keeps every init tree plus the best new ones.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(path), num_iteration=self.best_iteration or None)
        return path


def prepare_features(frame: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """The model's input: schema features in order, numeric as float, categoricals as ``category``.

    LightGBM stores the training categories in the model file and re-maps new frames to them at
    prediction time, so unseen categories become missing instead of silently shifting codes.
    """
    missing = [c for c in schema.features if c not in frame.columns]
    if missing:
        raise KeyError(f"frame lacks feature columns {missing}")
    features = pd.DataFrame(index=frame.index)
    for col in schema.numeric_features:
        features[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    for col in schema.categorical_features:
        features[col] = frame[col].astype("string").astype("category")
    return features


def split_train_valid(
    frame: pd.DataFrame, schema: DatasetSchema, valid_fraction: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off the most recent ``valid_fraction`` of rows (by time) for early stopping.

    Time order, not a random split: the model is always asked to predict a later period, and the
    held-out test set is never used to choose the number of trees.
    """
    ordered = frame.sort_values(schema.timestamp, kind="stable")
    n_valid = int(len(ordered) * valid_fraction)
    if n_valid < 1:
        return ordered, ordered.iloc[0:0]
    return ordered.iloc[:-n_valid], ordered.iloc[-n_valid:]


def align_categories(
    features: pd.DataFrame, pandas_categorical: list[list[Any]], schema: DatasetSchema
) -> pd.DataFrame:
    """Give each categorical feature the init model's levels first, in the init model's order.

    LightGBM feeds categories to the trees as codes (positions in the level list). A continued
    model gets the level list of its *new* Dataset, which pandas derives from the new rows
    (sorted, only the levels present), so without this a level missing from, or added to, the
    new rows shifts every later code and the init model's trees silently read the wrong category.
    Here the init model's levels keep their codes and levels it never saw are appended after
    them: its trees send those codes to the same side as a missing value (as the scorer does with
    unseen levels), while the new trees can still learn them.

    Args:
        features: Output of :func:`prepare_features`.
        pandas_categorical: The init model's ``booster.pandas_categorical``.
        schema: Schema naming the categorical features (in model order).

    Returns:
        A copy of ``features`` whose categorical columns have the aligned levels.

    Raises:
        ValueError: if the init model has a different number of categorical features.
    """
    if len(pandas_categorical) != len(schema.categorical_features):
        raise ValueError(
            f"init model has {len(pandas_categorical)} categorical features, schema "
            f"{len(schema.categorical_features)}"
        )
    out = features.copy()
    for col, levels in zip(schema.categorical_features, pandas_categorical, strict=True):
        known = [str(v) for v in levels]
        present = out[col].dropna().astype(str).unique().tolist()
        seen = set(known)
        new = sorted(v for v in present if v not in seen)
        dtype = pd.CategoricalDtype(pd.Index([*known, *new], dtype="string"))
        out[col] = out[col].astype("string").astype(dtype)
    return out


def _init_booster(init_model: lgb.Booster | Path | str, schema: DatasetSchema) -> lgb.Booster:
    """A private copy of the model to continue, truncated to its best iteration, checked."""
    preload("lightgbm")
    import lightgbm as lgb

    if isinstance(init_model, lgb.Booster):
        # model_to_string() stops at best_iteration when one is set: trees past the early-stopping
        # point are not continued (the saved production model never has them either).
        booster = lgb.Booster(model_str=init_model.model_to_string())
    else:
        booster = lgb.Booster(model_file=str(init_model))
    if booster.feature_name() != list(schema.features):
        raise ValueError(
            f"init model features {booster.feature_name()} != schema {list(schema.features)}"
        )
    objective = str(booster.params.get("objective", "binary"))
    if objective.split()[0] != "binary":
        raise ValueError(f"init model objective is {objective!r}, expected 'binary'")
    return booster


def train_model(
    train: pd.DataFrame,
    schema: DatasetSchema,
    params: TrainParams | None = None,
    *,
    weights: np.ndarray | None = None,
    init_model: lgb.Booster | Path | str | None = None,
) -> TrainedModel:
    """Train a binary LightGBM classifier on ``train`` (features and target of ``schema``).

    The last ``params.valid_fraction`` of rows by time decide early stopping; the booster is
    truncated to its best iteration.

    With ``init_model`` the training continues that booster (LightGBM ``init_model``): its trees
    are kept as they are, its raw score is the starting point of every row, and up to
    ``params.num_boost_round`` new trees are added with ``params`` (the caller should pass the
    production model's parameters). Categorical levels are aligned with the init model's
    (:func:`align_categories`). Early stopping counts iterations from the init model's last one,
    so ``best_iteration`` is the *total* tree count (init trees plus the best new ones, at least
    one new tree), ``extra["init_trees"]`` / ``extra["new_trees"]`` split it, and ``valid_auc`` is
    the whole continued model's.

    Args:
        train: Rows with the schema's features, target and timestamp.
        schema: Dataset schema.
        params: Hyper-parameters (defaults if ``None``).
        weights: Optional per-row sample weights aligned with ``train`` (e.g. the dataset's
            ``WEIGHT_COLUMN``); also weigh the early-stopping rows.
        init_model: Booster, or path to a LightGBM text model, to continue; ``None`` trains
            from scratch. A Booster is copied (never modified) and truncated to its
            ``best_iteration``.

    Returns:
        The trained model and its bookkeeping.

    Raises:
        ValueError: if the target is not binary or has a single class, the weights do not match
            the rows, or the init model's features/objective do not match.
    """
    preload("lightgbm")
    import lightgbm as lgb

    params = params or TrainParams()
    init_booster = _init_booster(init_model, schema) if init_model is not None else None
    if weights is not None and len(weights) != len(train):
        raise ValueError(f"{len(weights)} weights for {len(train)} rows")
    _check_binary_target(train, schema.target)
    split = _time_split(train, schema.timestamp, weights, params.valid_fraction)
    fit_set, feature_names = _fit_dataset(split, schema, init_booster)
    valid_sets, callbacks = _early_stopping(split, schema, params, fit_set)
    started = time.perf_counter()
    booster = lgb.train(
        params.lightgbm_params(),
        fit_set,
        num_boost_round=params.num_boost_round,
        valid_sets=valid_sets,
        valid_names=["valid"] if valid_sets else None,
        callbacks=callbacks,
        init_model=init_booster,
    )
    seconds = time.perf_counter() - started
    # Absolute iteration counts: with an init model both include its trees.
    best = int(booster.best_iteration or booster.current_iteration())
    valid_auc = None
    if valid_sets:
        valid_auc = float(booster.best_score["valid"]["auc"])
    extra: dict[str, Any] = {}
    if init_booster is not None:
        init_trees = int(init_booster.current_iteration())
        extra = {"init_trees": init_trees, "new_trees": best - init_trees}
    return TrainedModel(
        booster=booster,
        params=params,
        best_iteration=best,
        train_seconds=seconds,
        n_train=len(split.fit),
        n_valid=len(split.valid),
        feature_names=feature_names,
        valid_auc=valid_auc,
        extra=extra,
    )


def _check_binary_target(train: pd.DataFrame, target: str) -> None:
    """Raise ValueError unless ``target`` is 0/1 with both classes and nothing missing."""
    y_all = train[target]
    classes = set(pd.unique(y_all.dropna()))
    if y_all.isna().any() or not classes <= {0, 1} or len(classes) < 2:
        raise ValueError(
            f"target {target!r} must be 0/1 with both classes present, got {sorted(classes)}"
            f" and {int(y_all.isna().sum())} missing"
        )


@dataclass(frozen=True)
class _TimeSplit:
    """The rows fitted on and the later rows that decide early stopping, with their weights."""

    fit: pd.DataFrame
    valid: pd.DataFrame
    w_fit: np.ndarray | None
    w_valid: np.ndarray | None


def _time_split(
    train: pd.DataFrame, timestamp: str, weights: np.ndarray | None, valid_fraction: float
) -> _TimeSplit:
    """The last ``valid_fraction`` of rows by time for validation (none if that is < 1 row)."""
    # Rows in time order without copying them: a dataset from collect_dataset is already
    # ordered, so the split is two slices (views); only an unordered frame is sorted (a copy).
    # The weights travel as an array beside the rows, not as a column of a copied frame.
    w_all = None if weights is None else np.asarray(weights, dtype="float64")
    stamps = pd.Index(train[timestamp])
    if stamps.is_monotonic_increasing:
        ordered, w_ordered = train, w_all
    else:
        order = np.argsort(stamps.to_numpy(), kind="stable")
        ordered = train.take(order)
        w_ordered = None if w_all is None else w_all[order]
    del stamps
    n_valid = int(len(ordered) * valid_fraction)
    n_fit = len(ordered) - n_valid if n_valid >= 1 else len(ordered)
    return _TimeSplit(
        fit=ordered.iloc[:n_fit],
        valid=ordered.iloc[n_fit:],
        w_fit=None if w_ordered is None else w_ordered[:n_fit],
        w_valid=None if w_ordered is None else w_ordered[n_fit:],
    )


def _fit_dataset(
    split: _TimeSplit, schema: DatasetSchema, init_booster: lgb.Booster | None
) -> tuple[lgb.Dataset, list[str]]:
    """The LightGBM Dataset of the fit rows (categories aligned with an init model), features."""
    preload("lightgbm")
    import lightgbm as lgb

    x_fit = prepare_features(split.fit, schema)
    if init_booster is not None:
        # The validation Dataset takes these levels from its reference (the fit Dataset).
        x_fit = align_categories(x_fit, init_booster.pandas_categorical or [], schema)
    # The Dataset is the only holder of the features once this returns: free_raw_data drops
    # them once LightGBM has binned them, before the first tree.
    fit_set = lgb.Dataset(
        x_fit,
        label=split.fit[schema.target].to_numpy(),
        weight=split.w_fit,
        categorical_feature=list(schema.categorical_features),
        free_raw_data=True,
    )
    return fit_set, list(x_fit.columns)


def _early_stopping(
    split: _TimeSplit, schema: DatasetSchema, params: TrainParams, fit_set: lgb.Dataset
) -> tuple[list[lgb.Dataset], list[Callable[..., Any]]]:
    """The validation Dataset and early-stopping callback (none unless both classes occur)."""
    preload("lightgbm")
    import lightgbm as lgb

    valid = split.valid
    if not (len(valid) and valid[schema.target].nunique() == 2):
        return [], []
    valid_set = lgb.Dataset(
        prepare_features(valid, schema),
        label=valid[schema.target].to_numpy(),
        weight=split.w_valid,
        reference=fit_set,
    )
    stop = lgb.early_stopping(params.early_stopping_rounds, first_metric_only=True, verbose=False)
    return [valid_set], [stop]


def train_candidate(
    dataset: pd.DataFrame,
    schema: DatasetSchema,
    params: TrainParams,
    *,
    init_model: lgb.Booster | None = None,
) -> TrainedModel:
    """Train on the training split of a built dataset (weighted if it has a weight column)."""
    train = split_rows(dataset, "train")
    weights = train[WEIGHT_COLUMN].to_numpy() if WEIGHT_COLUMN in train else None
    return train_model(train, schema, params, weights=weights, init_model=init_model)


def training_example(dataset: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """Five model inputs from the training split: the logged model's signature example."""
    return prepare_features(split_rows(dataset, "train").head(5), schema)


def load_model(path: Path) -> lgb.Booster:
    """Load a LightGBM text model file."""
    preload("lightgbm")
    import lightgbm as lgb

    return lgb.Booster(model_file=str(path))


def predict_proba(
    booster: lgb.Booster, frame: pd.DataFrame, schema: DatasetSchema, num_threads: int = 1
) -> np.ndarray:
    """Probability of the positive class for each row of ``frame`` (through ``Scorer``)."""
    return Scorer(booster, schema, num_threads=num_threads).predict(frame)


class Scorer:
    """Serving-path predictor: raw rows to probabilities without pandas' categorical machinery.

    LightGBM stores the training categories of each categorical feature in the model file
    (``pandas_categorical``); the scorer encodes categories to those codes once per call with a
    dict lookup and hands LightGBM a float matrix. Same predictions as ``predict_proba``, but a
    single row costs ~0.1 ms instead of ~5 ms, which is what a serving process would pay.
    """

    def __init__(self, booster: lgb.Booster, schema: DatasetSchema, num_threads: int = 1) -> None:
        self.booster = booster
        self.schema = schema
        self.num_threads = num_threads
        categories = booster.pandas_categorical or []
        if len(categories) != len(schema.categorical_features):
            raise ValueError(
                f"model has {len(categories)} categorical features, schema "
                f"{len(schema.categorical_features)}"
            )
        self._codes = [
            {value: float(code) for code, value in enumerate(levels)} for levels in categories
        ]
        expected = list(schema.features)
        if booster.feature_name() != expected:
            raise ValueError(f"model features {booster.feature_name()} != schema {expected}")

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """Float matrix of ``frame``'s features in model order (unknown categories -> NaN)."""
        numeric = frame.loc[:, list(self.schema.numeric_features)]
        out = np.empty((len(frame), len(self.schema.features)), dtype="float64")
        out[:, : numeric.shape[1]] = numeric.to_numpy(dtype="float64", na_value=np.nan)
        offset = numeric.shape[1]
        for j, (col, codes) in enumerate(
            zip(self.schema.categorical_features, self._codes, strict=True)
        ):
            out[:, offset + j] = [codes.get(v, np.nan) for v in frame[col].tolist()]
        return out

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class per row."""
        return self.predict_encoded(self.encode(frame))

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        """Probability of the positive class per row of an :meth:`encode`-d matrix."""
        return np.asarray(
            self.booster.predict(matrix, num_threads=self.num_threads), dtype="float64"
        )
