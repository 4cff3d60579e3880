"""Shared scores: a model's scores of some rows computed once, read back bit-identical."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retraining_assets.core.score_cache import (
    predict_cached,
    scores_from_bytes,
    scores_key,
    scores_to_bytes,
)
from retraining_assets.core.synthetic import SYNTHETIC_SCHEMA, make_history
from retraining_assets.core.training import Scorer, TrainParams, train_model
from retraining_assets.defs.monitoring import _scores
from retraining_assets.defs.state import MonitoringStoreResource

MD5 = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def batch() -> pd.DataFrame:
    return next(iter(make_history(1, 400, seed=5, start="2024-03-04").values()))


@pytest.fixture(scope="module")
def scorer(batch: pd.DataFrame) -> Scorer:
    train = next(iter(make_history(1, 600, seed=4).values()))
    params = TrainParams(seed=7, num_boost_round=8, early_stopping_rounds=0)
    return Scorer(train_model(train, SYNTHETIC_SCHEMA, params).booster, SYNTHETIC_SCHEMA)


class Cache(dict):
    """The ``get``/``put`` pair over a dict, counting writes."""

    puts = 0

    def put(self, key: str, data: bytes) -> None:
        self.puts += 1
        self[key] = data


def _cached(scorer: Scorer, frame: pd.DataFrame, cache: Cache, md5: str = MD5) -> np.ndarray:
    return predict_cached(
        scorer, frame, model_md5=md5, code_version="v1", get=cache.get, put=cache.put
    )


def test_a_miss_scores_and_keeps_a_hit_reads_back_the_same_bits(scorer, batch) -> None:
    cache = Cache()
    plain = scorer.predict(batch)
    first = _cached(scorer, batch, cache)
    assert first.tobytes() == plain.tobytes() and cache.puts == 1 and len(cache) == 1
    second = _cached(scorer, batch, cache)
    assert second.tobytes() == plain.tobytes() and cache.puts == 1
    # A hit is what the entry holds (here replaced by other numbers of the right shape).
    (key,) = cache
    cache[key] = scores_to_bytes(plain / 2)
    assert np.array_equal(_cached(scorer, batch, cache), plain / 2)


def test_key_follows_the_model_the_rows_the_code_and_the_threads(scorer, batch) -> None:
    matrix = scorer.encode(batch)
    base = dict(model_md5=MD5, matrix=matrix, code_version="v1", num_threads=1)
    key = scores_key(**base)
    assert key == scores_key(**{**base, "matrix": matrix.copy()})
    others = [
        {"model_md5": "f" * 32},
        {"matrix": matrix[:-1]},
        {"matrix": matrix[::-1]},
        {"code_version": "v2"},
        {"num_threads": 2},
    ]
    changed = matrix.copy()
    changed[0, 0] += 1e-9
    others.append({"matrix": changed})
    assert len({key, *(scores_key(**{**base, **o}) for o in others)}) == len(others) + 1
    # Other rows of the same batch (e.g. only the labelled ones) are another entry.
    cache = Cache()
    _cached(scorer, batch, cache)
    part = _cached(scorer, batch.iloc[::2], cache)
    assert len(cache) == 2 and part.tobytes() == scorer.predict(batch.iloc[::2]).tobytes()


def test_a_torn_or_foreign_entry_is_scored_again_and_replaced(scorer, batch) -> None:
    cache = Cache()
    _cached(scorer, batch, cache)
    (key,) = cache
    plain = scorer.predict(batch)
    for bad in (
        b"torn",
        scores_to_bytes(plain[:-1]),
        scores_to_bytes(plain).replace(b"<f8", b"<f4"),
    ):
        cache[key] = bad
        assert _cached(scorer, batch, cache).tobytes() == plain.tobytes()
        assert cache[key] == scores_to_bytes(plain)
    with pytest.raises(ValueError, match="3 float64"):
        scores_from_bytes(scores_to_bytes(np.zeros(2)), 3)
    # An object array would need unpickling: refused, never loaded.
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="unreadable"):
        scores_from_bytes(buffer.getvalue(), 1)


def test_policies_share_scores_through_the_shared_area_only(scorer, batch, tmp_path: Path) -> None:
    """Two policies' monitoring stores with one shared area: the second reads the first's scores;
    neither policy's own area holds them; without a shared area scoring is plain."""
    shared = tmp_path / "shared"
    first = MonitoringStoreResource(url=str(tmp_path / "a"), shared_url=str(shared)).open()
    second = MonitoringStoreResource(url=str(tmp_path / "b"), shared_url=str(shared)).open()
    plain = scorer.predict(batch)
    assert _scores(first, scorer, batch, MD5).tobytes() == plain.tobytes()
    entries = first.shared.list("predictions") if first.shared else []
    assert len(entries) == 1 and entries[0].startswith(f"predictions/{MD5}/")
    assert _scores(second, scorer, batch, MD5).tobytes() == plain.tobytes()
    assert second.shared is not None and second.shared.list("predictions") == entries
    assert first.store.list() == [] and second.store.list() == []
    alone = MonitoringStoreResource(url=str(tmp_path / "c")).open()
    assert not alone.shares_scores and alone.get_shared_scores(MD5, "k" * 64) is None
    alone.put_shared_scores(MD5, "k" * 64, b"ignored")
    assert _scores(alone, scorer, batch, MD5).tobytes() == plain.tobytes()
    assert alone.store.list() == []
