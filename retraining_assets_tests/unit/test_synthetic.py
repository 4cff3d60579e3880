"""Synthetic drift generator: determinism and the effect of each kind of drift."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retraining_assets.core.batches import list_batches
from retraining_assets.core.synthetic import (
    SYNTHETIC_SCHEMA,
    DriftSpec,
    make_batch,
    make_history,
    positive_probability,
    write_history,
)

START = pd.Timestamp("2024-01-01")
N = 4000


def _corr(frame: pd.DataFrame, column: str) -> float:
    return float(np.corrcoef(frame[column], frame[SYNTHETIC_SCHEMA.target])[0, 1])


def test_batch_matches_schema() -> None:
    batch = make_batch(500, START, seed=0, first_row_id=100)
    assert list(batch.columns) == SYNTHETIC_SCHEMA.columns
    assert str(batch["row_id"].dtype) == "int64"
    assert str(batch["label"].dtype) == "int64"
    assert str(batch["ts"].dtype) == "datetime64[ns]"
    for column in SYNTHETIC_SCHEMA.numeric_features:
        assert str(batch[column].dtype) == "float64", column
    for column in SYNTHETIC_SCHEMA.categorical_features:
        assert batch[column].dtype == object
        assert batch[column].map(lambda v: isinstance(v, str)).all()
    assert set(batch["c0"]) == {"a", "b", "c", "d", "e"}
    assert set(batch["c1"]) == {"u", "v", "w"}
    assert set(batch["label"]) == {0, 1}
    assert batch["row_id"].tolist() == list(range(100, 600))
    assert batch["ts"].is_monotonic_increasing
    assert batch["ts"].min() >= START
    assert batch["ts"].max() < START + pd.Timedelta(days=7)
    for column, (low, high) in SYNTHETIC_SCHEMA.numeric_ranges.items():
        assert batch[column].between(low, high).all(), column
    assert batch[list(SYNTHETIC_SCHEMA.required_non_null)].notna().all().all()


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    a = make_batch(300, START, seed=5)
    assert a.equals(make_batch(300, START, seed=5))
    assert not a.equals(make_batch(300, START, seed=6))


def test_history_is_deterministic_and_written_by_batch_id(tmp_path: Path) -> None:
    history = make_history(4, 200, seed=3, start="2024-01-01")
    assert list(history) == ["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22"]
    all_rows = pd.concat(history.values(), ignore_index=True)
    assert all_rows["row_id"].is_unique
    assert all_rows["ts"].is_monotonic_increasing
    paths_a = write_history(history, tmp_path / "a")
    paths_b = write_history(make_history(4, 200, seed=3), tmp_path / "b")
    assert list_batches(tmp_path / "a") == list(history)
    md5 = [hashlib.md5(p.read_bytes()).hexdigest() for p in paths_a]
    assert md5 == [hashlib.md5(p.read_bytes()).hexdigest() for p in paths_b]
    assert pd.read_parquet(paths_a[1]).equals(history["2024-01-08"])


def test_drift_applies_from_drift_from() -> None:
    drift = DriftSpec(covariate_shift=2.0)
    clean = make_history(4, 300, seed=1)
    drifted = make_history(4, 300, seed=1, drift_from=2, drift=drift)
    ids = list(clean)
    assert clean[ids[0]].equals(drifted[ids[0]])
    assert clean[ids[1]].equals(drifted[ids[1]])
    for batch_id in ids[2:]:
        shift = drifted[batch_id]["x0"] - clean[batch_id]["x0"]
        assert np.allclose(shift, 2.0)


def test_covariate_shift_moves_x_but_not_the_concept() -> None:
    clean = make_batch(N, START, seed=11)
    shifted = make_batch(N, START, seed=11, drift=DriftSpec(covariate_shift=1.0))
    assert clean["x0"].mean() == pytest.approx(0.0, abs=0.1)
    assert shifted["x0"].mean() == pytest.approx(1.0, abs=0.1)
    assert shifted["x1"].mean() == pytest.approx(1.0, abs=0.1)
    assert shifted["x2"].equals(clean["x2"])
    assert _corr(shifted, "x0") > 0.2


def test_concept_flip_changes_p_y_given_x_but_not_x() -> None:
    clean = make_batch(N, START, seed=12)
    flipped = make_batch(N, START, seed=12, drift=DriftSpec(concept_flip=1.0))
    for column in SYNTHETIC_SCHEMA.features:
        assert flipped[column].equals(clean[column]), column
    assert _corr(clean, "x0") > 0.3
    assert _corr(flipped, "x0") < -0.3
    # The base rate stays about the same: this is concept drift, not label shift.
    assert abs(flipped["label"].mean() - clean["label"].mean()) < 0.05
    half = make_batch(N, START, seed=12, drift=DriftSpec(concept_flip=0.5))
    assert abs(_corr(half, "x0")) < 0.1


def test_label_shift_changes_base_rate() -> None:
    clean = make_batch(N, START, seed=13)
    up = make_batch(N, START, seed=13, drift=DriftSpec(label_shift=1.5))
    down = make_batch(N, START, seed=13, drift=DriftSpec(label_shift=-1.5))
    assert 0.25 < clean["label"].mean() < 0.4
    assert up["label"].mean() > clean["label"].mean() + 0.15
    assert down["label"].mean() < clean["label"].mean() - 0.1
    assert up["x0"].equals(clean["x0"])


def test_noise_blurs_the_label() -> None:
    sharp = make_batch(N, START, seed=14, drift=DriftSpec(noise=0.0))
    clean = make_batch(N, START, seed=14)
    blurred = make_batch(N, START, seed=14, drift=DriftSpec(noise=3.0))
    assert _corr(sharp, "x0") > _corr(clean, "x0") > _corr(blurred, "x0") > 0


@pytest.mark.parametrize("kwargs", [{"concept_flip": 1.5}, {"concept_flip": -0.1}, {"noise": -1.0}])
def test_drift_spec_rejects_out_of_range(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DriftSpec(**kwargs)


@pytest.mark.parametrize(
    "drift",
    [DriftSpec(), DriftSpec(covariate_shift=1.0, label_shift=-0.5, concept_flip=0.5, noise=2.0)],
)
def test_positive_probability_matches_the_labels(drift: DriftSpec) -> None:
    # The true probabilities are what the labels are drawn from: their mean is the share of
    # positives, and within deciles of p the share of positives follows p.
    batch = make_batch(20_000, START, seed=3, drift=drift)
    p = positive_probability(batch, drift)
    y = batch[SYNTHETIC_SCHEMA.target].to_numpy()
    assert abs(p.mean() - y.mean()) < 0.01
    deciles = np.quantile(p, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(deciles, p, side="right") - 1, 0, 9)
    for b in range(10):
        assert abs(p[bins == b].mean() - y[bins == b].mean()) < 0.03


def test_positive_probability_without_noise_is_the_label() -> None:
    drift = DriftSpec(noise=0.0)
    batch = make_batch(1000, START, seed=4, drift=drift)
    assert np.array_equal(positive_probability(batch, drift), batch[SYNTHETIC_SCHEMA.target])
