"""LightGBM training on a Dask cluster: the workers read the training window, the driver plans.

The same model as :func:`retraining_assets.core.training.train_model`, trained data-parallel with
``lightgbm.DaskLGBMClassifier``:

- **Reading.** The workers read the training dataset's parquet file by partitions (one per row
  group, ``dask.dataframe.read_parquet``) and keep only its ``train`` rows; the driver reads the
  file's footer and receives per-partition row counts, time ranges and category levels, never
  the rows. A file with fewer row groups than workers is split on the workers.
- **Split.** The most recent ``valid_fraction`` of the train rows (by time, as
  :func:`~retraining_assets.core.training.split_train_valid`) is held out for early stopping:
  the file is sorted by time, so the split is a global row position, cut per partition.
- **Categories.** Every partition gets the same categorical dtype: the levels of the fit rows,
  sorted, as ``prepare_features`` gives on the whole frame (aligned with the init model's levels
  for an incremental run), so category codes agree across workers and with the local trainer.
- **Early stopping.** ``lightgbm.dask`` does not support it (each worker would judge its own
  slice of the validation rows and could stop at another iteration than its peers: training then
  hangs, LightGBM issues #3712 and #6351). Here the workers train ``num_boost_round`` trees, then
  one worker scores the whole validation set tree by tree and the rule of
  ``lightgbm.early_stopping`` (first metric, AUC, patience ``early_stopping_rounds``) picks the
  best iteration; the model is truncated there. The trees before the stopping point do not
  depend on whether training went on, so the choice is the local trainer's, at the cost of the
  extra trees trained after it.

Dask, distributed and LightGBM are imported inside the functions (seconds to import).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retraining_assets.core.training import (
    Scorer,
    TrainedModel,
    TrainParams,
    _init_booster,
    prepare_features,
)
from retraining_assets.settings import SPLIT_COLUMN, WEIGHT_COLUMN, DatasetSchema

if TYPE_CHECKING:
    import distributed
    import lightgbm as lgb

#: Column names used inside the prepared partitions (features keep their own names).
_LABEL = "__label__"
_WEIGHT = "__w__"


@dataclass(frozen=True)
class PartitionStats:
    """What the driver learns about one partition of train rows (never the rows themselves)."""

    n_rows: int
    ts_min: Any
    ts_max: Any
    sorted_by_time: bool
    labels: frozenset[Any]
    n_missing_labels: int


def best_iteration_by_early_stopping(scores: Sequence[float], patience: int) -> int:
    """The 0-based iteration ``lightgbm.early_stopping`` keeps, given one score per iteration.

    A score counts as better only if strictly greater (AUC, ``min_delta=0``); training stops once
    ``patience`` iterations passed without improvement, and the best iteration so far is kept.

    Args:
        scores: Validation score after each iteration (higher is better), in order.
        patience: ``early_stopping_rounds``.

    Returns:
        Index into ``scores`` of the kept iteration.

    Raises:
        ValueError: if ``scores`` is empty.
    """
    if not scores:
        raise ValueError("no validation scores")
    best, best_score = 0, float("-inf")
    for i, score in enumerate(scores):
        if score > best_score:
            best, best_score = i, score
        elif i - best >= patience:
            break
    return best


def _partition_stats(part: pd.DataFrame, schema: DatasetSchema) -> PartitionStats:
    ts = part[schema.timestamp]
    y = part[schema.target]
    return PartitionStats(
        n_rows=len(part),
        ts_min=ts.min() if len(part) else None,
        ts_max=ts.max() if len(part) else None,
        sorted_by_time=bool(ts.is_monotonic_increasing),
        labels=frozenset(pd.unique(y.dropna()).tolist()),
        n_missing_labels=int(y.isna().sum()),
    )


def _rows(part: pd.DataFrame, start: int, stop: int) -> pd.DataFrame:
    return part.iloc[start:stop]


def _levels(part: pd.DataFrame, columns: Sequence[str]) -> dict[str, set[str]]:
    return {c: set(part[c].dropna().astype("string").unique().tolist()) for c in columns}


def _prepare(
    part: pd.DataFrame, schema: DatasetSchema, dtypes: dict[str, pd.CategoricalDtype]
) -> pd.DataFrame:
    """Features as the local trainer prepares them, with the shared categorical dtypes."""
    out = prepare_features(part, schema)
    for col, dtype in dtypes.items():
        out[col] = part[col].astype("string").astype(dtype)
    out[_LABEL] = part[schema.target].to_numpy()
    out[_WEIGHT] = (
        part[WEIGHT_COLUMN].to_numpy(dtype="float64")
        if WEIGHT_COLUMN in part
        else np.ones(len(part), dtype="float64")
    )
    return out


def _validation_curve(
    model_str: str,
    schema: DatasetSchema,
    start_iteration: int,
    patience: int,
    *parts: pd.DataFrame,
) -> list[float]:
    """Validation AUC after each tree from ``start_iteration`` on, stopping as early stopping would.

    Runs on one worker, which receives the validation slices; the driver gets the scores only.
    """
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score

    booster = lgb.Booster(model_str=model_str)
    valid = pd.concat(parts, ignore_index=True)
    if valid[schema.target].nunique() < 2:
        return []
    x = Scorer(booster, schema).encode(valid)
    y = valid[schema.target].to_numpy()
    w = valid[WEIGHT_COLUMN].to_numpy(dtype="float64") if WEIGHT_COLUMN in valid else None
    raw = np.zeros(len(valid), dtype="float64")
    if start_iteration:
        raw += booster.predict(x, num_iteration=start_iteration, raw_score=True, num_threads=1)
    scores: list[float] = []
    best = 0
    for i in range(start_iteration, booster.current_iteration()):
        raw += booster.predict(x, start_iteration=i, num_iteration=1, raw_score=True, num_threads=1)
        score = float(roc_auc_score(y, raw, sample_weight=w))
        scores.append(score)
        if score > scores[best]:
            best = len(scores) - 1
        elif len(scores) - 1 - best >= patience:
            break
    return scores


def _check_labels(stats: Sequence[PartitionStats], target: str) -> None:
    classes: set[Any] = set().union(*(s.labels for s in stats))
    missing = sum(s.n_missing_labels for s in stats)
    if missing or not classes <= {0, 1} or len(classes) < 2:
        raise ValueError(
            f"target {target!r} must be 0/1 with both classes present, got {sorted(classes)}"
            f" and {missing} missing"
        )


def _check_time_order(stats: Sequence[PartitionStats], timestamp: str) -> None:
    """The split is positional: rows must be in time order within and across partitions."""
    previous = None
    for i, s in enumerate(stats):
        if not s.n_rows:
            continue
        if not s.sorted_by_time or (previous is not None and s.ts_min < previous):
            raise ValueError(
                f"train rows are not sorted by {timestamp!r} (partition {i}): the dataset file "
                "must be written in time order, as collect_dataset does"
            )
        previous = s.ts_max


def read_example_rows(
    source: str | Path,
    schema: DatasetSchema,
    n: int = 5,
    storage_options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """The first ``n`` train rows of the dataset file, as model input (for a model signature).

    Reads record batches from the start of the file until ``n`` train rows are found, not the
    whole file.
    """
    import fsspec
    import pyarrow.parquet as pq

    found: list[pd.DataFrame] = []
    count = 0
    with fsspec.open(str(source), "rb", **(storage_options or {})) as handle:
        reader = pq.ParquetFile(handle)
        for batch in reader.iter_batches(
            batch_size=max(n, 1024), columns=[*schema.features, SPLIT_COLUMN]
        ):
            part = batch.to_pandas()
            part = part[part[SPLIT_COLUMN] == "train"].head(n - count)
            found.append(part)
            count += len(part)
            if count >= n:
                break
    frame = pd.concat(found, ignore_index=True) if found else pd.DataFrame()
    return prepare_features(frame, schema)


def train_model_dask(
    client: distributed.Client,
    source: str | Path,
    schema: DatasetSchema,
    params: TrainParams | None = None,
    *,
    init_model: lgb.Booster | Path | str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> TrainedModel:
    """Train the binary LightGBM classifier on the train rows of ``source`` with ``lightgbm.dask``.

    Same contract as :func:`retraining_assets.core.training.train_model` (split, categories,
    sample weights from the file's ``WEIGHT_COLUMN``, ``init_model`` continuation, iteration
    bookkeeping), except that the rows are read by the workers: ``source`` is the training
    dataset's parquet file (``__split__`` column, sorted by time), at a path or URL every worker
    can open. See the module docstring for how early stopping is reproduced.

    Args:
        client: Client of the Dask cluster to train on; each worker trains with its own thread
            count (``num_threads`` is set by ``lightgbm.dask`` to the worker's threads).
        source: Parquet file (local path or fsspec URL) written by ``training_dataset``.
        schema: Dataset schema.
        params: Hyper-parameters (defaults if ``None``).
        init_model: Booster, or path to a LightGBM text model, to continue (``incremental``).
        storage_options: fsspec options for a URL ``source`` (e.g. S3 endpoint and keys).

    Returns:
        The trained model truncated to the early-stopping iteration; ``extra`` records the
        trainer, the workers and partitions used, and the trees trained in total.

    Raises:
        ValueError: if the target is not binary or has a single class, the rows are not in time
            order, there are no train rows, or the init model does not match.
    """
    import dask.dataframe as dd
    import lightgbm as lgb

    params = params or TrainParams()
    init_booster = _init_booster(init_model, schema) if init_model is not None else None
    started = time.perf_counter()
    n_workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))

    columns = [schema.timestamp, *schema.features, schema.target]
    frame = dd.read_parquet(
        str(source),
        filters=[(SPLIT_COLUMN, "==", "train")],
        split_row_groups=True,
        storage_options=storage_options or {},
    )
    if WEIGHT_COLUMN in frame.columns:
        columns.append(WEIGHT_COLUMN)
    train = frame[columns]
    if train.npartitions < n_workers:
        # One row group (pyarrow writes up to 1 Mi rows per group): split it on the workers.
        train = train.repartition(npartitions=n_workers)
    # One future per partition, in order: the rows stay on the workers that read them.
    parts = client.compute(train.to_delayed())
    stats: list[PartitionStats] = client.gather(
        [client.submit(_partition_stats, p, schema) for p in parts]
    )
    _check_labels(stats, schema.target)
    _check_time_order(stats, schema.timestamp)
    n_rows = sum(s.n_rows for s in stats)
    if n_rows == 0:
        raise ValueError(f"{source} has no train rows")
    n_valid = int(n_rows * params.valid_fraction)
    cut = n_rows - n_valid

    # Every worker must hold fit rows, or LightGBM trains on fewer machines (a row group split on
    # the worker that read it stays there): each slice goes to the worker that holds its
    # partition unless that worker already has its share, then to the least loaded one.
    holders = client.who_has(parts)
    load = dict.fromkeys(client.scheduler_info(n_workers=-1)["workers"], 0)
    share = -(-cut // len(load))
    fit_parts: list[tuple[Any, str]] = []
    valid_parts: list[Any] = []
    offset = 0
    for part, s in zip(parts, stats, strict=True):
        stop = min(max(cut - offset, 0), s.n_rows)
        if stop > 0:
            held = [w for w in holders.get(part.key, ()) if w in load]
            worker = (
                held[0]
                if held and load[held[0]] + stop <= share
                else min(load, key=load.__getitem__)
            )
            load[worker] += stop
            fit_parts.append((client.submit(_rows, part, 0, stop, workers=[worker]), worker))
        if stop < s.n_rows:
            valid_parts.append(client.submit(_rows, part, stop, s.n_rows))
        offset += s.n_rows

    categorical = list(schema.categorical_features)
    present: dict[str, set[str]] = {c: set() for c in categorical}
    for found in client.gather([client.submit(_levels, p, categorical) for p, _ in fit_parts]):
        for col, values in found.items():
            present[col] |= values
    known: list[list[str]] = [[] for _ in categorical]
    if init_booster is not None:
        pandas_categorical = init_booster.pandas_categorical or []
        if len(pandas_categorical) != len(categorical):
            raise ValueError(
                f"init model has {len(pandas_categorical)} categorical features, schema "
                f"{len(categorical)}"
            )
        known = [[str(v) for v in levels] for levels in pandas_categorical]
    dtypes = {}
    for col, first in zip(categorical, known, strict=True):
        # prepare_features sorts the levels; align_categories keeps the init model's first.
        new = sorted(v for v in present[col] if v not in set(first))
        dtypes[col] = pd.CategoricalDtype(pd.Index([*first, *new], dtype="string"))

    meta = _prepare(train._meta, schema, dtypes)
    prepared = dd.from_delayed(
        [client.submit(_prepare, p, schema, dtypes, workers=[w]) for p, w in fit_parts],
        meta=meta,
        verify_meta=False,
    )
    weighted = WEIGHT_COLUMN in columns
    lgb_params = params.lightgbm_params()
    # lightgbm.dask sets each worker's num_threads to its Dask thread count.
    lgb_params.pop("num_threads")
    model = lgb.DaskLGBMClassifier(client=client, n_estimators=params.num_boost_round, **lgb_params)
    fit_started = time.perf_counter()
    with warnings.catch_warnings():
        # The sklearn wrapper always passes n_jobs; lightgbm.dask drops it (threads per worker).
        warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
        model.fit(
            prepared[list(schema.features)],
            prepared[_LABEL],
            sample_weight=prepared[_WEIGHT] if weighted else None,
            categorical_feature=categorical,
            init_model=init_booster,
        )
    fit_seconds = time.perf_counter() - fit_started
    booster = model.booster_
    trained_trees = int(booster.current_iteration())
    init_trees = int(init_booster.current_iteration()) if init_booster is not None else 0

    valid_auc = None
    best = trained_trees
    if valid_parts:
        scores = client.submit(
            _validation_curve,
            booster.model_to_string(),
            schema,
            init_trees,
            params.early_stopping_rounds,
            *valid_parts,
        ).result()
        # As the local trainer: no early stopping without both classes among the validation
        # rows (no AUC), then every tree is kept.
        if scores:
            kept = best_iteration_by_early_stopping(scores, params.early_stopping_rounds)
            best = init_trees + kept + 1
            valid_auc = float(scores[kept])
    final = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    final.best_iteration = best
    extra: dict[str, Any] = {
        "trainer": "dask",
        "dask_workers": n_workers,
        "dask_partitions": len(fit_parts),
        "dask_machines": sum(1 for rows in load.values() if rows),
        "trained_trees": trained_trees,
        "fit_seconds": fit_seconds,
    }
    if init_booster is not None:
        extra.update({"init_trees": init_trees, "new_trees": best - init_trees})
    return TrainedModel(
        booster=final,
        params=params,
        best_iteration=best,
        train_seconds=time.perf_counter() - started,
        n_train=cut,
        n_valid=n_valid,
        feature_names=list(schema.features),
        valid_auc=valid_auc,
        extra=extra,
    )
