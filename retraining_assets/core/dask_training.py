"""LightGBM training on a Dask cluster: the workers read the training window, the driver plans.

The same model as :func:`retraining_assets.core.training.train_model`, trained data-parallel with
``lightgbm.DaskLGBMClassifier``:

- **Reading.** The workers read the training dataset's parquet file by partitions (one per row
  group, ``dask.dataframe.read_parquet``) and keep only its ``train`` rows; the driver reads the
  file's footer and receives per-partition row counts, time ranges and category levels, never
  the rows. A file with fewer row groups than workers is split on the workers. Each worker then
  trains on a seeded random share of the fit rows of each partition, so each holds the whole
  window, as one partition (its rows in time order).
- **Split.** The most recent ``valid_fraction`` of the train rows (by time, as
  :func:`~retraining_assets.core.training.split_train_valid`) is held out for early stopping:
  the file is sorted by time, so the split is a global row position, cut per partition.
- **Categories.** Every partition gets the same categorical dtype: the levels of the fit rows,
  sorted, as ``prepare_features`` gives on the whole frame (aligned with the init model's levels
  for an incremental run), so category codes agree across workers and with the local trainer.
- **Early stopping.** ``lightgbm.dask`` gives each worker a slice of the validation rows, so the
  workers would judge different scores and could stop at different iterations (training then
  hangs: LightGBM issues #3712, #6351). :class:`EarlyStoppingOnAllRows` scores the *whole*
  validation set on every worker (each worker builds its own copy before training), so all of
  them compute the same AUC of the same model and stop at the same iteration, by the rule of
  ``lightgbm.early_stopping`` on the first metric (AUC).

- **Determinism.** The same file, seed and number of workers give the same model: which rows
  each worker holds, in which order, and each worker's LightGBM rank (worker addresses sorted:
  the first is rank 0) are fixed, not left to task placement, ``who_has`` order or Python's
  string hashes (:class:`_RankedClient`). Each worker reports the rank and row count LightGBM
  used (``extra["dask_ranks"]``).

Dask, distributed and LightGBM are imported inside the functions (seconds to import).
"""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from retraining_assets.core.training import (
    TrainedModel,
    TrainParams,
    _init_booster,
    prepare_features,
)
from retraining_assets.libraries import preload
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


def _owners(n_rows: int, n_workers: int, seed: int, index: int) -> np.ndarray:
    """Which worker (position in the sorted worker list) trains on each fit row of a partition.

    Drawn at random (seeded by the run's seed and the partition's index, so the same on the
    driver and on every worker, run after run), not every k-th row: LightGBM bags each worker's
    rows with the same ``bagging_seed`` by local row number, so with interleaved rows the
    workers' i-th rows (global rows ``k*i .. k*i+k-1``, neighbours) were always in or out of
    the bag together. Random owners still spread every worker over the whole window.
    """
    return np.random.default_rng([seed, index]).integers(n_workers, size=n_rows)


def _worker_rows(
    part: pd.DataFrame, stop: int, rank: int, n_workers: int, seed: int, index: int
) -> pd.DataFrame:
    """This worker's fit rows of one partition (time order kept)."""
    return part.iloc[:stop][_owners(stop, n_workers, seed, index) == rank]


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


def _prepare_all(
    schema: DatasetSchema, dtypes: dict[str, pd.CategoricalDtype], *pieces: pd.DataFrame
) -> pd.DataFrame:
    """One worker's whole training frame: its pieces of every partition, in partition order.

    One partition per worker, concatenated here, because ``lightgbm.dask`` would concatenate a
    worker's parts in an order that changes from one driver process to the next (below).
    """
    return _prepare(pd.concat(pieces), schema, dtypes)


class _RankedClient:
    """The Dask client, except that ``who_has`` lists keys in a fixed worker order.

    ``lightgbm.dask`` ranks the LightGBM machines in the order it meets the workers in
    ``client.who_has(parts)`` (the first is rank 0 and returns the model), and
    ``distributed.Client.who_has`` builds that dict from a ``set`` of keys, so the order follows
    Python's per-process string hashes. The rank decides which worker's rows bin which features
    (LightGBM's distributed bin finding), so the same data and seed gave different models from
    one driver process to the next. Listing the keys (and each key's holders) in the order of
    ``workers`` makes worker ``i`` rank ``i``. Everything else goes to the real client.
    """

    def __init__(self, client: distributed.Client, workers: Sequence[str]) -> None:
        self._client = client
        self._rank = {w: i for i, w in enumerate(workers)}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def _of(self, worker: str) -> int:
        return self._rank.get(worker, len(self._rank))

    def who_has(self, futures: Any = None, **kwargs: Any) -> dict[Any, list[str]]:
        """``Client.who_has`` with the keys sorted by the rank of their first holder."""
        found = self._client.who_has(futures, **kwargs)
        holders = {key: sorted(ws, key=self._of) for key, ws in found.items()}
        last = len(self._rank)
        return dict(sorted(holders.items(), key=lambda kv: self._of(kv[1][0]) if kv[1] else last))


#: Topic of the scheduler events in which each worker reports its LightGBM rank.
RANK_TOPIC = "retraining-lightgbm-rank"


def _report_rank(env: Any, run: str) -> None:
    """Log this worker's LightGBM rank and row count as a scheduler event (for the driver)."""
    from urllib.parse import urlparse

    from distributed import get_worker

    worker = get_worker()
    machines = str(env.params.get("machines", "")).split(",")
    port = str(env.params.get("local_listen_port", ""))
    host = urlparse(worker.address).hostname
    matches = [i for i, m in enumerate(machines) if m.rsplit(":", 1)[-1] == port]
    exact = [i for i in matches if machines[i].rsplit(":", 1)[0] == host]
    rank = (exact or matches or [-1])[0]
    rows = int(env.model.train_set.num_data()) if env.model.train_set is not None else -1
    worker.log_event(RANK_TOPIC, {"run": run, "worker": worker.address, "rank": rank, "rows": rows})


def _encode_valid(
    schema: DatasetSchema, dtypes: dict[str, pd.CategoricalDtype], *parts: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """The validation rows as the model's float matrix, labels and weights (on a worker).

    Categories become their codes in the training dtypes (unseen levels missing), which is what
    LightGBM does to a validation Dataset built with the training set as reference. ``None``
    without both classes: the local trainer then does not stop early either.
    """
    valid = pd.concat(parts, ignore_index=True)
    if valid[schema.target].nunique() < 2:
        return None
    x = np.empty((len(valid), len(schema.features)), dtype="float64")
    numeric = list(schema.numeric_features)
    x[:, : len(numeric)] = prepare_features(valid, schema)[numeric].to_numpy(dtype="float64")
    for j, col in enumerate(schema.categorical_features, start=len(numeric)):
        codes = pd.Categorical(valid[col].astype("string"), dtype=dtypes[col]).codes
        x[:, j] = np.where(codes < 0, np.nan, codes)
    y = valid[schema.target].to_numpy()
    w = valid[WEIGHT_COLUMN].to_numpy(dtype="float64") if WEIGHT_COLUMN in valid else None
    return x, y, w


def _local_copy(valid: Any) -> Any:
    """The validation data: given, or this worker's own copy (``{worker address: key}``).

    Read from the worker's memory, not fetched: a training task that waited on the cluster for
    data could stall its peers inside LightGBM's collective calls.
    """
    if isinstance(valid, dict):
        from distributed import get_worker

        worker = get_worker()
        return worker.data[valid[worker.address]]
    return valid


def _is_present(value: object) -> bool:
    return value is not None


class EarlyStoppingOnAllRows:
    """``lightgbm.early_stopping`` on the AUC of the whole validation set, for data-parallel runs.

    ``lightgbm.dask`` gives each worker a slice of the validation rows, so the workers would
    judge different scores and could stop at different iterations (then training hangs). This
    callback scores the complete validation set on every worker instead: the data-parallel model
    is the same on all of them, so every worker computes the same AUC and stops at the same
    iteration. Same rule as LightGBM's: strictly better (``min_delta=0``), ``patience`` rounds,
    best iteration kept, also when the last round is reached.

    Args:
        valid: ``(x, y, w)`` from :func:`_encode_valid`, or ``{worker address: key}`` of one
            copy computed on each worker (the rows never pass through the driver).
        patience: ``early_stopping_rounds``.
        run: Tag of this training: each worker then reports its LightGBM rank and row count
            as a scheduler event under :data:`RANK_TOPIC` (``None``: no report).
    """

    order = 30
    before_iteration = False

    def __init__(self, valid: Any, patience: int, run: str | None = None) -> None:
        self.valid = valid
        self.patience = patience
        self.run = run
        self.best_iteration = -1
        self.best_score = float("-inf")
        self._data: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
        self._raw: np.ndarray | None = None

    def __call__(self, env: Any) -> None:
        """Score the newest tree; raise ``EarlyStopException`` when training should stop."""
        preload("lightgbm")
        import lightgbm as lgb
        from sklearn.metrics import roc_auc_score

        if self._data is None:
            self._data = _local_copy(self.valid)
            if self.run is not None:
                _report_rank(env, self.run)
        x, y, w = self._data
        if self._raw is None:
            # Trees so far, an init model's included (its raw score is the starting point).
            self._raw = env.model.predict(
                x, num_iteration=env.iteration + 1, raw_score=True, num_threads=1
            )
        else:
            self._raw = self._raw + env.model.predict(
                x, start_iteration=env.iteration, num_iteration=1, raw_score=True, num_threads=1
            )
        score = float(roc_auc_score(y, self._raw, sample_weight=w))
        if score > self.best_score:
            self.best_iteration, self.best_score = env.iteration, score
        last = env.iteration == env.end_iteration - 1
        if last or env.iteration - self.best_iteration >= self.patience:
            raise lgb.callback.EarlyStopException(
                self.best_iteration, [("valid", "auc", self.best_score, True)]
            )


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
    params = params or TrainParams()
    init_booster = _init_booster(init_model, schema) if init_model is not None else None
    started = time.perf_counter()
    n_workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
    read = _read_train_rows(client, source, schema, storage_options, n_workers)
    cut, n_valid = _split_sizes(read.stats, source, schema, params.valid_fraction)
    placed = _place_rows(client, read, cut, params.seed)
    dtypes = _category_dtypes(client, placed.fit_parts(), schema, init_booster)
    prepared = _prepared(client, read, placed, schema, dtypes)
    run = uuid.uuid4().hex
    copies, callbacks = _valid_copies(client, schema, dtypes, placed, params, run)
    model = _classifier(client, placed.training(), params)
    fit_seconds = _fit(model, prepared, read.weighted, schema, init_booster, callbacks)
    del copies
    booster = model.booster_
    # As lgb.train: the booster is cut at the best iteration; without early stopping, all trees.
    best = int(booster.best_iteration or booster.current_iteration())
    extra: dict[str, Any] = {
        "trainer": "dask",
        "dask_workers": n_workers,
        "dask_partitions": len(read.parts),
        "dask_machines": sum(1 for rows in placed.load.values() if rows),
        "fit_seconds": fit_seconds,
        # {worker: {"rank", "rows"}} as LightGBM saw them (empty without early stopping).
        "dask_ranks": _reported_ranks(client, run),
    }
    if init_booster is not None:
        init_trees = int(init_booster.current_iteration())
        extra.update({"init_trees": init_trees, "new_trees": best - init_trees})
    return TrainedModel(
        booster=booster,
        params=params,
        best_iteration=best,
        train_seconds=time.perf_counter() - started,
        n_train=cut,
        n_valid=n_valid,
        feature_names=list(schema.features),
        valid_auc=float(booster.best_score["valid"]["auc"]) if callbacks else None,
        extra=extra,
    )


@dataclass(frozen=True)
class _TrainRows:
    """The train rows of the file as read by the workers: one future and its stats per part."""

    frame: Any  # dask DataFrame: its ``_meta`` gives the prepared partitions' schema
    weighted: bool
    parts: list[Any]
    stats: list[PartitionStats]


def _read_train_rows(
    client: distributed.Client,
    source: str | Path,
    schema: DatasetSchema,
    storage_options: dict[str, Any] | None,
    n_workers: int,
) -> _TrainRows:
    """Read the ``train`` split's columns on the workers, at least one partition per worker."""
    import dask.dataframe as dd

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
    return _TrainRows(train, WEIGHT_COLUMN in columns, parts, stats)


@dataclass(frozen=True)
class _Placement:
    """Where the rows went: each worker's fit pieces (and row count), the validation parts."""

    workers: list[str]
    load: dict[str, int]
    pieces: dict[str, list[Any]]
    valid_parts: list[Any]

    def fit_parts(self) -> list[tuple[Any, str]]:
        """``(piece, worker)`` for every fit piece, worker by worker."""
        return [(p, w) for w in self.workers for p in self.pieces[w]]

    def training(self) -> list[str]:
        """The workers that hold fit rows, in sorted order (their LightGBM ranks)."""
        return [w for w in self.workers if self.pieces[w]]


def _place_rows(client: distributed.Client, read: _TrainRows, cut: int, seed: int) -> _Placement:
    """Deal the first ``cut`` rows (fit) to the workers; the rest are validation parts."""
    # Every worker gets a random share (seeded) of the fit rows of every partition, not a
    # contiguous stretch: the file is in time order, and in a data-parallel run each worker bins
    # some of the features from its own rows only (LightGBM's distributed bin finding). With
    # contiguous halves one worker would bin `month` from January-June alone; spread rows cover
    # the whole window on every worker, so the bins match the local trainer's. See _owners for
    # why not every k-th row.
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    k = len(workers)
    placed = _Placement(workers, dict.fromkeys(workers, 0), {w: [] for w in workers}, [])
    offset = 0
    for index, (part, s) in enumerate(zip(read.parts, read.stats, strict=True)):
        stop = min(max(cut - offset, 0), s.n_rows)
        if stop:
            counts = np.bincount(_owners(stop, k, seed, index), minlength=k)
            for rank, worker in enumerate(workers):
                if counts[rank]:
                    placed.load[worker] += int(counts[rank])
                    placed.pieces[worker].append(
                        client.submit(
                            _worker_rows, part, stop, rank, k, seed, index, workers=[worker]
                        )
                    )
        if stop < s.n_rows:
            placed.valid_parts.append(client.submit(_rows, part, stop, s.n_rows))
        offset += s.n_rows
    return placed


def _category_dtypes(
    client: distributed.Client,
    fit_parts: Sequence[tuple[Any, str]],
    schema: DatasetSchema,
    init_booster: lgb.Booster | None,
) -> dict[str, pd.CategoricalDtype]:
    """Each categorical's levels: the init model's first (if any), then the fit rows' sorted."""
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
    return dtypes


def _prepared(
    client: distributed.Client,
    read: _TrainRows,
    placed: _Placement,
    schema: DatasetSchema,
    dtypes: dict[str, pd.CategoricalDtype],
) -> Any:
    """The fit rows as a dask DataFrame of model inputs, one partition per training worker."""
    import dask.dataframe as dd

    meta = _prepare(read.frame._meta, schema, dtypes)
    # One partition per worker, its rows in a fixed order (bagging draws by local row number).
    prepared = dd.from_delayed(
        [
            client.submit(_prepare_all, schema, dtypes, *placed.pieces[w], workers=[w])
            for w in placed.training()
        ],
        meta=meta,
        verify_meta=False,
    )
    return prepared


def _valid_copies(
    client: distributed.Client,
    schema: DatasetSchema,
    dtypes: dict[str, pd.CategoricalDtype],
    placed: _Placement,
    params: TrainParams,
    run: str,
) -> tuple[dict[str, Any], list[EarlyStoppingOnAllRows]]:
    """A copy of the validation set on every worker and the callback that stops on it.

    The futures must be held until training is done (they keep the copies in memory); no
    callback when there are no validation rows or a copy could not be made.
    """
    if not placed.valid_parts:
        return {}, []
    # One copy of the whole validation set on each worker; the futures keep them in memory
    # until training is done, and only their keys travel with the callback.
    copies = {
        w: client.submit(
            _encode_valid, schema, dtypes, *placed.valid_parts, workers=[w], pure=False
        )
        for w in placed.load
    }
    if not all(client.gather([client.submit(_is_present, f) for f in copies.values()])):
        return copies, []
    keys = {w: f.key for w, f in copies.items()}
    return copies, [EarlyStoppingOnAllRows(keys, params.early_stopping_rounds, run=run)]


def _split_sizes(
    stats: Sequence[PartitionStats],
    source: str | Path,
    schema: DatasetSchema,
    valid_fraction: float,
) -> tuple[int, int]:
    """Fit and validation row counts, after checking the labels and the time order."""
    _check_labels(stats, schema.target)
    _check_time_order(stats, schema.timestamp)
    n_rows = sum(s.n_rows for s in stats)
    if n_rows == 0:
        raise ValueError(f"{source} has no train rows")
    n_valid = int(n_rows * valid_fraction)
    return n_rows - n_valid, n_valid


def _classifier(
    client: distributed.Client, training: list[str], params: TrainParams
) -> lgb.DaskLGBMClassifier:
    """The ``lightgbm.dask`` classifier with ``params``, ranking ``training`` in their order."""
    preload("lightgbm")
    import lightgbm as lgb

    lgb_params = params.lightgbm_params()
    # lightgbm.dask sets each worker's num_threads to its Dask thread count.
    lgb_params.pop("num_threads")
    return lgb.DaskLGBMClassifier(
        # Duck-typed: lightgbm.dask only calls the client's methods.
        client=cast("distributed.Client", _RankedClient(client, training)),
        n_estimators=params.num_boost_round,
        **lgb_params,
    )


def _fit(
    model: lgb.DaskLGBMClassifier,
    prepared: Any,
    weighted: bool,
    schema: DatasetSchema,
    init_booster: lgb.Booster | None,
    callbacks: list[EarlyStoppingOnAllRows],
) -> float:
    """Fit ``model`` on the prepared rows (with their sample weights, if the file has them).

    Returns:
        The seconds the fit took.
    """
    fit_started = time.perf_counter()
    with warnings.catch_warnings():
        # The sklearn wrapper always passes n_jobs; lightgbm.dask drops it (threads per worker).
        warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
        model.fit(
            prepared[list(schema.features)],
            prepared[_LABEL],
            sample_weight=prepared[_WEIGHT] if weighted else None,
            categorical_feature=list(schema.categorical_features),
            init_model=init_booster,
            callbacks=callbacks,
        )
    return time.perf_counter() - fit_started


def _reported_ranks(client: distributed.Client, run: str) -> dict[str, dict[str, int]]:
    """``{worker: {"rank", "rows"}}`` the workers reported for ``run``, by rank."""
    ranks = {
        msg["worker"]: {"rank": msg["rank"], "rows": msg["rows"]}
        for _, msg in client.get_events(RANK_TOPIC)
        if isinstance(msg, dict) and msg.get("run") == run
    }
    return dict(sorted(ranks.items(), key=lambda kv: kv[1]["rank"]))
