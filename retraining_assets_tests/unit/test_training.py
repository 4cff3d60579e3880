"""LightGBM training: determinism, behaviour tests (Made-With-ML style) and the serving scorer."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from retraining_assets.core.synthetic import SYNTHETIC_SCHEMA, make_history
from retraining_assets.core.training import (
    Scorer,
    TrainedModel,
    TrainParams,
    load_model,
    predict_proba,
    prepare_features,
    split_train_valid,
    train_model,
)

if TYPE_CHECKING:
    import lightgbm as lgb

SCHEMA = SYNTHETIC_SCHEMA
TARGET = SCHEMA.target


@pytest.fixture(scope="module")
def history() -> dict[str, pd.DataFrame]:
    return make_history(4, 1500, seed=2024)


@pytest.fixture(scope="module")
def train_frame(history: dict[str, pd.DataFrame]) -> pd.DataFrame:
    ids = list(history)
    return pd.concat([history[i] for i in ids[:3]], ignore_index=True)


@pytest.fixture(scope="module")
def test_frame(history: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return history[list(history)[-1]]


@pytest.fixture(scope="module")
def trained(train_frame: pd.DataFrame) -> TrainedModel:
    return train_model(train_frame, SCHEMA, TrainParams(seed=7))


@pytest.fixture(scope="module")
def saved(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained.save(tmp_path_factory.mktemp("model") / "model.txt")


def _predict(trained: TrainedModel, frame: pd.DataFrame) -> np.ndarray:
    return Scorer(trained.booster, SCHEMA).predict(frame)


# --- training bookkeeping ----------------------------------------------------------------------


def test_trained_model_records_split_and_iterations(
    trained: TrainedModel, train_frame: pd.DataFrame
) -> None:
    assert trained.n_valid == int(len(train_frame) * trained.params.valid_fraction)
    assert trained.n_train + trained.n_valid == len(train_frame)
    assert trained.feature_names == SCHEMA.features
    assert 1 <= trained.best_iteration <= trained.params.num_boost_round
    assert trained.valid_auc is not None and 0.7 < trained.valid_auc < 1.0
    assert trained.train_seconds > 0


def test_split_train_valid_holds_out_the_latest_rows(train_frame: pd.DataFrame) -> None:
    shuffled = train_frame.sample(frac=1.0, random_state=0)
    fit, valid = split_train_valid(shuffled, SCHEMA, 0.2)
    assert len(valid) == int(len(train_frame) * 0.2)
    assert len(fit) + len(valid) == len(train_frame)
    assert fit["ts"].max() <= valid["ts"].min()
    fit_all, none = split_train_valid(train_frame.head(3), SCHEMA, 0.2)
    assert len(fit_all) == 3 and len(none) == 0


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_gives_identical_model_bytes(
    trained: TrainedModel, saved: Path, train_frame: pd.DataFrame, tmp_path: Path
) -> None:
    again = train_model(train_frame, SCHEMA, TrainParams(seed=7)).save(tmp_path / "again.txt")
    assert again.read_bytes() == saved.read_bytes()
    other = train_model(train_frame, SCHEMA, TrainParams(seed=8)).save(tmp_path / "other.txt")
    assert other.read_bytes() != saved.read_bytes()  # the seed matters (bagging, features)


# --- behaviour ---------------------------------------------------------------------------------


def test_beats_dummy_baseline_on_a_later_batch(
    trained: TrainedModel, train_frame: pd.DataFrame, test_frame: pd.DataFrame
) -> None:
    y = test_frame[TARGET].to_numpy()
    proba = _predict(trained, test_frame)
    dummy = np.full(len(y), train_frame[TARGET].mean())
    assert roc_auc_score(y, dummy) == 0.5
    assert roc_auc_score(y, proba) > 0.7
    assert log_loss(y, proba) < log_loss(y, dummy) - 0.05


def test_invariance_to_the_irrelevant_feature_x4(
    trained: TrainedModel, test_frame: pd.DataFrame
) -> None:
    rng = np.random.default_rng(0)
    base = _predict(trained, test_frame)
    permuted_x4 = test_frame.assign(x4=rng.permutation(test_frame["x4"].to_numpy()))
    shifted_x4 = test_frame.assign(x4=test_frame["x4"] + 1.0)
    permuted_x0 = test_frame.assign(x0=rng.permutation(test_frame["x0"].to_numpy()))
    x4_effect = np.abs(_predict(trained, permuted_x4) - base).mean()
    x4_shift_effect = np.abs(_predict(trained, shifted_x4) - base).mean()
    x0_effect = np.abs(_predict(trained, permuted_x0) - base).mean()
    # x4 plays no part in the label: scrambling it barely moves the predictions, while the same
    # scrambling of the most important feature moves them several times more.
    assert x4_effect < 0.03
    assert x4_shift_effect < 0.03
    assert x0_effect > 4 * x4_effect
    assert x0_effect > 0.1


def test_direction_higher_x0_raises_probability(
    trained: TrainedModel, test_frame: pd.DataFrame
) -> None:
    base = _predict(trained, test_frame)
    up = _predict(trained, test_frame.assign(x0=test_frame["x0"] + 0.5))
    down = _predict(trained, test_frame.assign(x0=test_frame["x0"] - 0.5))
    assert (up - base).mean() > 0.05
    assert (base - down).mean() > 0.05
    assert (up >= base).mean() > 0.8  # trees are not monotone, but the bulk of rows must follow


# --- bad targets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_target",
    [
        pytest.param(lambda y: np.zeros(len(y), dtype="int64"), id="single-class-0"),
        pytest.param(lambda y: np.ones(len(y), dtype="int64"), id="single-class-1"),
        pytest.param(lambda y: np.where(np.arange(len(y)) == 3, np.nan, y), id="one-nan"),
        pytest.param(lambda y: y * 2, id="not-0-1"),
    ],
)
def test_bad_target_raises_value_error(history: dict[str, pd.DataFrame], make_target) -> None:
    frame = history[next(iter(history))].head(300)
    bad = frame.assign(label=make_target(frame[TARGET].to_numpy()))
    with pytest.raises(ValueError, match="label"):
        train_model(bad, SCHEMA, TrainParams(num_boost_round=3))


# --- model file ----------------------------------------------------------------------------------


def test_saved_file_is_lightgbm_text_not_pickle(saved: Path, trained: TrainedModel) -> None:
    raw = saved.read_bytes()
    assert raw.startswith(b"tree\n")
    assert not raw.startswith(b"\x80")  # pickle protocol 2+ header
    text = raw.decode("utf-8")  # plain text throughout
    assert "pandas_categorical:" in text
    assert '["a", "b", "c", "d", "e"]' in text and '["u", "v", "w"]' in text
    assert "feature_names=x0 x1 x2 x3 x4 c0 c1" in text
    # Truncated to the best iteration: exactly that many trees are stored.
    assert text.count("\nTree=") == trained.best_iteration


def test_loaded_model_predicts_like_the_trained_one(
    saved: Path, trained: TrainedModel, test_frame: pd.DataFrame
) -> None:
    loaded = load_model(saved)
    assert loaded.num_trees() == trained.best_iteration
    assert loaded.pandas_categorical == [["a", "b", "c", "d", "e"], ["u", "v", "w"]]
    np.testing.assert_allclose(
        Scorer(loaded, SCHEMA).predict(test_frame), _predict(trained, test_frame), atol=1e-12
    )


# --- Scorer --------------------------------------------------------------------------------------


def _awkward_rows(test_frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with unseen categories, missing categories and missing numeric values."""
    frame = test_frame.head(40).copy()
    frame.loc[frame.index[0:5], "c0"] = "zzz"  # never seen in training
    frame.loc[frame.index[5:8], "c1"] = "unknown"
    frame.loc[frame.index[8:10], "c0"] = None
    frame.loc[frame.index[10:13], "x0"] = np.nan
    frame.loc[frame.index[13:15], "x2"] = np.nan
    frame.loc[frame.index[15], ["x1", "x3", "c1"]] = [np.nan, np.nan, None]
    return frame


def test_scorer_matches_booster_predict_on_prepared_features(
    trained: TrainedModel, saved: Path, test_frame: pd.DataFrame
) -> None:
    frame = _awkward_rows(test_frame)
    for booster in (trained.booster, load_model(saved)):
        expected = booster.predict(prepare_features(frame, SCHEMA))
        got = Scorer(booster, SCHEMA).predict(frame)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            predict_proba(booster, frame, SCHEMA, num_threads=2), expected, rtol=0, atol=1e-12
        )


def test_scorer_maps_unseen_categories_to_missing(
    trained: TrainedModel, test_frame: pd.DataFrame
) -> None:
    scorer = Scorer(trained.booster, SCHEMA)
    frame = _awkward_rows(test_frame)
    encoded = scorer.encode(frame)
    c0, c1 = SCHEMA.features.index("c0"), SCHEMA.features.index("c1")
    assert np.isnan(encoded[0:5, c0]).all() and np.isnan(encoded[8:10, c0]).all()
    assert np.isnan(encoded[5:8, c1]).all() and np.isnan(encoded[15, c1])
    assert np.isnan(encoded[10:13, SCHEMA.features.index("x0")]).all()
    known = frame["c0"].iloc[20:]
    assert encoded[20:, c0].tolist() == [float("abcde".index(v)) for v in known]
    # An unseen level scores like a missing one, not like whichever level shares its code.
    probe = frame.iloc[[20, 20, 20]].copy()
    probe["c0"] = ["zzz", None, "a"]
    p = scorer.predict(probe)
    assert p[0] == p[1]


def test_scorer_on_a_small_frame_with_few_levels(
    trained: TrainedModel, test_frame: pd.DataFrame
) -> None:
    # A frame holding only some levels: pandas codes differ from the model's, the scorer must not.
    frame = test_frame[test_frame["c0"].isin(["d", "e"]) & (test_frame["c1"] == "w")].head(10)
    assert len(frame) > 2
    expected = trained.booster.predict(prepare_features(frame, SCHEMA))
    np.testing.assert_allclose(Scorer(trained.booster, SCHEMA).predict(frame), expected, atol=1e-12)
    one_row = frame.iloc[[0]]
    np.testing.assert_allclose(
        Scorer(trained.booster, SCHEMA).predict(one_row), expected[:1], atol=1e-12
    )


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"categorical_features": ("c0",)}, id="fewer-categoricals"),
        pytest.param({"numeric_features": ("x0", "x1", "x2", "x3", "x5")}, id="renamed-numeric"),
        pytest.param({"numeric_features": ("x1", "x0", "x2", "x3", "x4")}, id="reordered"),
        pytest.param({"categorical_features": ("c1", "c0")}, id="reordered-categoricals"),
    ],
)
def test_scorer_rejects_a_schema_that_does_not_match(
    trained: TrainedModel, changes: dict[str, tuple[str, ...]]
) -> None:
    schema = dataclasses.replace(SCHEMA, **changes)
    with pytest.raises(ValueError):
        Scorer(trained.booster, schema)


# --- threads -------------------------------------------------------------------------------------


def test_num_threads_is_passed_to_lightgbm(
    trained: TrainedModel, train_frame: pd.DataFrame
) -> None:
    assert TrainParams(num_threads=3).lightgbm_params()["num_threads"] == 3
    assert trained.booster.params["num_threads"] == 1
    assert "[num_threads: 1]" in trained.booster.model_to_string()
    small = train_model(
        train_frame.head(600), SCHEMA, TrainParams(num_threads=2, num_boost_round=3)
    )
    assert small.booster.params["num_threads"] == 2
    assert "[num_threads: 2]" in small.booster.model_to_string()
    assert small.params.as_dict()["num_threads"] == 2


# --- incremental training (init_model) -----------------------------------------------------------

# No validation rows, so no early stopping: a known number of trees.
FIXED = {"seed": 7, "valid_fraction": 0.0}


def _tree_blocks(path: Path) -> list[str]:
    """The text of each ``Tree=`` block of a LightGBM model file, in order."""
    body = path.read_text().split("end of trees")[0]
    return re.findall(r"^Tree=\d+\n.*?(?=\n\n)", body, flags=re.S | re.M)


@pytest.fixture(scope="module")
def init_model(history: dict[str, pd.DataFrame]) -> TrainedModel:
    ids = list(history)
    frame = pd.concat([history[i] for i in ids[:2]], ignore_index=True)
    return train_model(frame, SCHEMA, TrainParams(num_boost_round=20, **FIXED))


@pytest.fixture(scope="module")
def init_path(init_model: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_model.save(tmp_path_factory.mktemp("init") / "init.txt")


@pytest.fixture(scope="module")
def new_batch(history: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return history[list(history)[2]]


def test_continued_model_keeps_the_init_trees_and_adds_new_ones(
    init_model: TrainedModel,
    init_path: Path,
    new_batch: pd.DataFrame,
    test_frame: pd.DataFrame,
    tmp_path: Path,
) -> None:
    before = init_model.booster.model_to_string()
    continued = train_model(
        new_batch, SCHEMA, TrainParams(num_boost_round=15, **FIXED), init_model=init_path
    )
    assert continued.extra == {"init_trees": 20, "new_trees": 15}
    assert continued.best_iteration == continued.booster.num_trees() == 35
    saved = continued.save(tmp_path / "continued.txt")
    old_blocks, new_blocks = _tree_blocks(init_path), _tree_blocks(saved)
    assert len(old_blocks) == 20 and len(new_blocks) == 35
    assert new_blocks[:20] == old_blocks  # the first trees are the init model's, byte for byte
    assert load_model(saved).num_trees() == 35
    assert not np.allclose(_predict(continued, test_frame), _predict(init_model, test_frame))
    # The same continuation from the in-memory booster: identical bytes, booster left untouched.
    again = train_model(
        new_batch, SCHEMA, TrainParams(num_boost_round=15, **FIXED), init_model=init_model.booster
    )
    assert again.save(tmp_path / "again.txt").read_bytes() == saved.read_bytes()
    assert init_model.booster.model_to_string() == before


def test_early_stopping_counts_init_trees_and_save_keeps_them(
    init_path: Path, new_batch: pd.DataFrame, tmp_path: Path
) -> None:
    params = TrainParams(seed=7, num_boost_round=200, early_stopping_rounds=10)
    continued = train_model(new_batch, SCHEMA, params, init_model=init_path)
    # LightGBM numbers the continued iterations from the init model's last one, so the best
    # iteration is a total: all 20 init trees plus at least one new tree.
    assert continued.extra["init_trees"] == 20
    assert continued.extra["new_trees"] >= 1
    assert continued.best_iteration == 20 + continued.extra["new_trees"]
    assert continued.best_iteration < 20 + params.num_boost_round  # it did stop early
    assert continued.valid_auc is not None and continued.valid_auc > 0.7
    saved = continued.save(tmp_path / "continued.txt")
    blocks = _tree_blocks(saved)
    assert len(blocks) == continued.best_iteration
    assert blocks[:20] == _tree_blocks(init_path)


def _raw(model: lgb.Booster, frame: pd.DataFrame, num_iteration: int | None = None) -> np.ndarray:
    encoded = Scorer(model, SCHEMA).encode(frame)
    return model.predict(encoded, raw_score=True, num_iteration=num_iteration)


def test_continued_model_keeps_the_init_category_codes(
    init_model: TrainedModel, init_path: Path, new_batch: pd.DataFrame, test_frame: pd.DataFrame
) -> None:
    # New rows without level "a" (pandas alone would code b..e as 0..3, shifting every code by
    # one for the init trees) and with a level the init model never saw.
    shifted = new_batch[new_batch["c0"] != "a"].copy()
    shifted.loc[shifted.index[::5], ["c1", TARGET]] = ["zz", 1]  # a new level, all positive
    continued = train_model(
        shifted, SCHEMA, TrainParams(num_boost_round=10, **FIXED), init_model=init_path
    )
    booster = continued.booster
    assert booster.pandas_categorical == [["a", "b", "c", "d", "e"], ["u", "v", "w", "zz"]]
    # The init trees inside the continued model score known categories exactly as before ...
    rows = test_frame.head(400)
    assert set(rows["c0"]) == set("abcde")
    np.testing.assert_allclose(_raw(booster, rows, 20), _raw(init_model.booster, rows), atol=1e-12)
    # ... an unseen level like a missing one ...
    unseen = rows.assign(c1="zz")
    missing = rows.assign(c1=None)
    np.testing.assert_allclose(
        _raw(booster, unseen, 20), _raw(init_model.booster, missing), atol=1e-12
    )
    # ... and the new trees learnt the new level (codes appended after the init model's).
    assert (_raw(booster, unseen) > _raw(booster, missing) + 0.1).all()


def test_naive_continuation_would_shift_category_codes(
    init_model: TrainedModel, new_batch: pd.DataFrame, test_frame: pd.DataFrame
) -> None:
    """The hazard align_categories guards against, shown with LightGBM directly."""
    import lightgbm as lgb

    shifted = new_batch[new_batch["c0"] != "a"]
    naive = lgb.train(
        TrainParams(seed=7).lightgbm_params(),
        lgb.Dataset(prepare_features(shifted, SCHEMA), label=shifted[TARGET].to_numpy()),
        num_boost_round=1,
        init_model=init_model.booster,
    )
    assert naive.pandas_categorical[0] == ["b", "c", "d", "e"]
    rows = test_frame.head(400)
    assert not np.allclose(_raw(naive, rows, 20), _raw(init_model.booster, rows))


def test_init_model_must_match_the_schema(init_path: Path, new_batch: pd.DataFrame) -> None:
    schema = dataclasses.replace(SCHEMA, numeric_features=("x0", "x1", "x2", "x3"))
    with pytest.raises(ValueError, match="init model features"):
        train_model(new_batch, schema, TrainParams(num_boost_round=2), init_model=init_path)


# --- sample weights ------------------------------------------------------------------------------


def test_weights_change_the_model_and_uniform_weights_do_not(
    new_batch: pd.DataFrame, tmp_path: Path
) -> None:
    params = TrainParams(num_boost_round=15, **FIXED)
    plain = train_model(new_batch, SCHEMA, params).save(tmp_path / "plain.txt")
    ones = np.ones(len(new_batch))
    uniform = train_model(new_batch, SCHEMA, params, weights=ones).save(tmp_path / "ones.txt")
    assert uniform.read_bytes() == plain.read_bytes()  # mean-1 constant weights = unweighted
    ramp = np.linspace(0.2, 1.8, len(new_batch))
    weighted = train_model(new_batch, SCHEMA, params, weights=ramp).save(tmp_path / "ramp.txt")
    assert weighted.read_bytes() != plain.read_bytes()
    with pytest.raises(ValueError, match="weights"):
        train_model(new_batch, SCHEMA, params, weights=ones[:-1])
