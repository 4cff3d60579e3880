"""A content-addressed cache of trained boosters: the same inputs never train twice.

The key is what decides the booster: the training set's DVC md5, the hyper-parameters, the
training strategy and the code version of the training step. LightGBM is deterministic for a
given seed and thread count (``deterministic: true``), so a hit returns the very model a new
training would produce. A replay shares one cache between its policies (``weekly``, ``drift``
and ``combined`` often retrain on byte-identical windows) and can keep it across replays of the
same data. Entries are written atomically, so parallel replay workers may share a folder, and
each key is trained by one process at a time: a worker that misses an entry another one is
training waits for it and hits (:func:`~retraining_assets.fileio.single_flight`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from retraining_assets.core.training import TrainedModel, TrainParams
from retraining_assets.fileio import single_flight, write_atomic
from retraining_assets.libraries import preload

#: Bumped when the layout of an entry changes.
CACHE_VERSION = 1


def training_key(
    *,
    dataset_md5: str,
    params: Mapping[str, Any],
    strategy: str,
    code_version: str,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The sha256 naming one training: its inputs as canonical JSON."""
    parts = {
        "cache": CACHE_VERSION,
        "dataset_md5": dataset_md5,
        "params": dict(params),
        "strategy": strategy,
        "code_version": code_version,
        "extra": dict(extra or {}),
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def load_cached(root: Path, key: str, params: TrainParams) -> TrainedModel | None:
    """The model stored under ``key``, or ``None`` (a missing or unreadable entry is a miss)."""
    preload("lightgbm")
    import lightgbm as lgb

    model, meta = root / f"{key}.txt", root / f"{key}.json"
    try:
        info = json.loads(meta.read_text())
        booster = lgb.Booster(model_str=model.read_text())
    except (OSError, ValueError, lgb.basic.LightGBMError):
        return None
    return TrainedModel(
        booster=booster,
        params=params,
        best_iteration=int(info["best_iteration"]),
        train_seconds=float(info["train_seconds"]),
        n_train=int(info["n_train"]),
        n_valid=int(info["n_valid"]),
        feature_names=list(info["feature_names"]),
        valid_auc=info["valid_auc"],
        extra={**info["extra"], "training_cache": "hit"},
    )


def store_cached(root: Path, key: str, trained: TrainedModel) -> None:
    """Keep ``trained`` under ``key`` (every tree, so a hit saves the same file as a training)."""
    root.mkdir(parents=True, exist_ok=True)
    write_atomic(root / f"{key}.txt", trained.booster.model_to_string())
    meta = {
        "best_iteration": trained.best_iteration,
        "train_seconds": trained.train_seconds,
        "n_train": trained.n_train,
        "n_valid": trained.n_valid,
        "feature_names": trained.feature_names,
        "valid_auc": trained.valid_auc,
        "extra": trained.extra,
    }
    # The metadata last: an entry is complete once its .json exists.
    write_atomic(root / f"{key}.json", json.dumps(meta, default=str))


def train_cached(
    root: str | Path | None, key: str, params: TrainParams, train: Callable[[], TrainedModel]
) -> TrainedModel:
    """The model for ``key`` from the cache in ``root``, else ``train()`` stored there.

    ``root`` ``None`` or empty: no cache, always ``train()``. While one process trains a key,
    another asking for it waits, then gets the stored model (a hit).
    """
    if not root:
        return train()
    folder = Path(root)

    def train_and_store() -> TrainedModel:
        trained = train()
        store_cached(folder, key, trained)
        return trained

    return single_flight(
        folder / f".{key}.lock", lambda: load_cached(folder, key, params), train_and_store
    )
