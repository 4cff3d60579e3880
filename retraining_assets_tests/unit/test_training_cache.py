"""The training cache returns the very model a training with the same inputs produces."""

from __future__ import annotations

import threading

import pandas as pd

from retraining_assets.core.synthetic import SYNTHETIC_SCHEMA, make_history
from retraining_assets.core.training import (
    TrainedModel,
    TrainParams,
    prepare_features,
    train_model,
)
from retraining_assets.core.training_cache import train_cached, training_key


def _key(**changes) -> str:
    parts = {
        "dataset_md5": "d41d8cd98f00b204e9800998ecf8427e",
        "params": TrainParams().as_dict(),
        "strategy": "rolling",
        "code_version": "abc",
    }
    return training_key(**{**parts, **changes})


def test_a_hit_is_the_trained_model_and_other_inputs_miss(tmp_path) -> None:
    frame = pd.concat(make_history(2, 400, seed=4).values())
    params = TrainParams(num_boost_round=10)
    calls: list[int] = []

    def train():
        calls.append(1)
        return train_model(frame, SYNTHETIC_SCHEMA, params)

    first = train_cached(tmp_path / "cache", _key(), params, train)
    again = train_cached(tmp_path / "cache", _key(), params, train)
    assert len(calls) == 1 and again.extra["training_cache"] == "hit"
    assert first.save(tmp_path / "a.txt").read_text() == again.save(tmp_path / "b.txt").read_text()
    features = prepare_features(frame, SYNTHETIC_SCHEMA)
    assert (first.booster.predict(features) == again.booster.predict(features)).all()
    assert (again.best_iteration, again.n_train, again.valid_auc) == (
        first.best_iteration,
        first.n_train,
        first.valid_auc,
    )
    for other in (_key(strategy="full"), _key(code_version="abd"), _key(dataset_md5="0" * 32)):
        train_cached(tmp_path / "cache", other, params, train)
    assert len(calls) == 4
    train_cached(None, _key(), params, train)  # no cache: always trains
    assert len(calls) == 5


def test_a_damaged_entry_is_a_miss(tmp_path) -> None:
    frame = pd.concat(make_history(2, 400, seed=5).values())
    params = TrainParams(num_boost_round=10)
    train = lambda: train_model(frame, SYNTHETIC_SCHEMA, params)  # noqa: E731
    train_cached(tmp_path, _key(), params, train)
    (tmp_path / f"{_key()}.txt").write_text("not a model")
    assert "training_cache" not in train_cached(tmp_path, _key(), params, train).extra


def test_a_key_being_trained_is_waited_for_and_hit(tmp_path, await_lock_waiter) -> None:
    # Two replay workers reaching the same window at once: one trains, the other waits and hits.
    frame = pd.concat(make_history(2, 400, seed=6).values())
    params = TrainParams(num_boost_round=10)
    calls: list[int] = []
    other: list[TrainedModel] = []

    def train() -> TrainedModel:
        calls.append(1)
        second.start()
        await_lock_waiter(tmp_path / f".{_key()}.lock")
        return train_model(frame, SYNTHETIC_SCHEMA, params)

    second = threading.Thread(
        target=lambda: other.append(train_cached(tmp_path, _key(), params, train))
    )
    first = train_cached(tmp_path, _key(), params, train)
    second.join(timeout=5)
    assert len(calls) == 1 and "training_cache" not in first.extra
    assert other[0].extra["training_cache"] == "hit"
    assert other[0].booster.model_to_string() == first.booster.model_to_string()
