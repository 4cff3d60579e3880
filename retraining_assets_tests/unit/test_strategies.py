"""Training-data strategies: which batches train and test, and the age weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retraining_assets.core.batches import BatchError, Window, collect_dataset, select_window
from retraining_assets.core.strategies import (
    STRATEGIES,
    StrategyError,
    TrainingPlan,
    age_weights,
    apply_weights,
    plan_training,
)
from retraining_assets.core.synthetic import SYNTHETIC_SCHEMA, make_history
from retraining_assets.settings import BATCH_COLUMN, SPLIT_COLUMN, WEIGHT_COLUMN

SCHEMA = SYNTHETIC_SCHEMA
# Ten weekly batches, deliberately unsorted: plans must not depend on the input order.
IDS = [str(d.date()) for d in pd.date_range("2024-01-01", periods=10, freq="7D")]
AVAILABLE = IDS[5:] + IDS[:5]


def _plan(strategy: str, **kwargs) -> TrainingPlan:
    kwargs.setdefault("as_of", None)
    kwargs.setdefault("window_batches", 3)
    return plan_training(AVAILABLE, strategy, **kwargs)


# --- which batches -------------------------------------------------------------------------------


def test_strategies_constant() -> None:
    assert STRATEGIES == ("rolling", "full", "incremental", "weighted")


def test_full_trains_on_all_history_before_the_test_set() -> None:
    plan = _plan("full")
    assert plan == TrainingPlan("full", Window(tuple(IDS[:9]), (IDS[9],)))
    assert plan.init_from is None and plan.half_life_days is None
    assert _plan("full", window_batches=1).window == plan.window  # window ignored
    assert _plan("full", as_of=IDS[6], test_batches=2).window == Window(
        tuple(IDS[:5]), (IDS[5], IDS[6])
    )


def test_rolling_is_select_window() -> None:
    for as_of, window, tests in [(None, 3, 1), (IDS[6], 2, 1), (IDS[8], 4, 2), (None, 50, 1)]:
        plan = _plan("rolling", as_of=as_of, window_batches=window, test_batches=tests)
        assert plan.window == select_window(AVAILABLE, as_of, window, tests)
    assert _plan("rolling").window == Window(tuple(IDS[6:9]), (IDS[9],))
    # A window larger than the history: everything before the test set.
    assert _plan("rolling", window_batches=50).window == _plan("full").window


def test_incremental_trains_only_on_batches_after_the_production_model() -> None:
    plan = _plan("incremental", trained_through=IDS[6])
    assert plan.window == Window((IDS[7], IDS[8]), (IDS[9],))
    assert plan.init_from == IDS[6] and plan.continues_model
    assert plan.half_life_days is None
    # The production model's own test batch (IDS[7] when trained through IDS[6]) is new data.
    assert _plan("incremental", trained_through=IDS[7]).window.train_batches == (IDS[8],)
    # as_of moves the test set, and with it the newest training batch.
    replay = _plan("incremental", trained_through=IDS[2], as_of=IDS[5], test_batches=2)
    assert replay.window == Window((IDS[3],), (IDS[4], IDS[5]))
    # trained_through need not be an available batch (e.g. a batch file removed since).
    assert _plan("incremental", trained_through="2024-02-20").window.train_batches == (IDS[8],)
    assert _plan("incremental", trained_through="2000-01-01").window == _plan("full").window


def test_incremental_without_a_production_model_is_an_error() -> None:
    for missing in (None, ""):
        with pytest.raises(StrategyError, match="incremental needs a production model to continue"):
            _plan("incremental", trained_through=missing)


@pytest.mark.parametrize(
    ("trained_through", "as_of"),
    [
        pytest.param(IDS[8], None, id="nothing-since"),
        pytest.param(IDS[9], None, id="trained-on-the-test-batch"),
        pytest.param(IDS[7], IDS[5], id="replay-before-production"),
    ],
)
def test_incremental_with_no_newer_batches_is_an_error(trained_through: str, as_of) -> None:
    with pytest.raises(StrategyError, match=f"no batches newer than {trained_through}"):
        _plan("incremental", trained_through=trained_through, as_of=as_of)


def test_weighted_uses_all_history_and_records_the_half_life() -> None:
    plan = _plan("weighted")
    assert plan.window == _plan("full").window
    assert plan.half_life_days == 28.0 and plan.init_from is None
    assert _plan("weighted", half_life_days=7).half_life_days == 7.0
    for bad in (0, -3.0, float("nan"), float("inf")):
        with pytest.raises(StrategyError, match="half_life_days"):
            _plan("weighted", half_life_days=bad)


def test_other_strategies_ignore_trained_through_and_half_life() -> None:
    for strategy in ("full", "rolling"):
        plan = _plan(strategy, trained_through=IDS[6], half_life_days=3.0)
        assert plan.init_from is None and plan.half_life_days is None
        assert not plan.continues_model


def test_unknown_strategy_lists_the_valid_ones() -> None:
    with pytest.raises(StrategyError, match="rolling, full, incremental, weighted") as info:
        _plan("everything")
    assert "'everything'" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_window_errors_are_batch_errors_for_every_strategy(strategy: str) -> None:
    kwargs = {"trained_through": IDS[0]}
    with pytest.raises(BatchError, match="not among"):
        _plan(strategy, as_of="1999-01-01", **kwargs)
    with pytest.raises(BatchError, match="need at least 2 batches"):
        plan_training(IDS[:1], strategy, as_of=None, window_batches=3, **kwargs)
    with pytest.raises(BatchError, match="at least 1"):
        _plan(strategy, test_batches=0, **kwargs)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_test_set_is_shared_by_all_strategies(strategy: str) -> None:
    plan = _plan(strategy, as_of=IDS[7], test_batches=2, trained_through=IDS[1])
    assert plan.window.test_batches == (IDS[6], IDS[7])
    assert plan.window.train_batches and max(plan.window.train_batches) < IDS[6]
    assert plan.trained_through == plan.window.train_batches[-1] == IDS[5]


def test_plan_as_dict_is_flat() -> None:
    info = _plan("incremental", trained_through=IDS[6]).as_dict()
    assert info == {
        "strategy": "incremental",
        "train_batches": f"{IDS[7]},{IDS[8]}",
        "test_batches": IDS[9],
        "n_train_batches": 2,
        "init_from": IDS[6],
        "half_life_days": "",
    }


# --- age weights ---------------------------------------------------------------------------------

REF = pd.Timestamp("2024-03-01")


def test_age_weights_halve_every_half_life() -> None:
    ts = pd.Series(REF - pd.to_timedelta([0, 7, 14, 28, 56, 3.5], unit="D"))
    w = age_weights(ts, REF, half_life_days=14)
    assert w.dtype == np.float64
    assert w.mean() == pytest.approx(1.0, abs=1e-12)
    assert w[2] / w[0] == pytest.approx(0.5, rel=1e-12)  # 14 days = one half-life
    assert w[4] / w[3] == pytest.approx(0.25, rel=1e-12)  # 28 days apart
    assert w[1] / w[0] == pytest.approx(2**-0.5, rel=1e-12)
    assert w[5] / w[0] == pytest.approx(2**-0.25, rel=1e-12)


def test_age_weights_decrease_with_age() -> None:
    rng = np.random.default_rng(0)
    ts = pd.Series(REF - pd.to_timedelta(rng.uniform(0, 200, 500), unit="D"))
    w = age_weights(ts, REF, half_life_days=28)
    order = np.argsort(ts.to_numpy())  # oldest first
    assert np.all(np.diff(w[order]) >= 0)
    assert w.mean() == pytest.approx(1.0, abs=1e-12)
    assert (w > 0).all()


def test_age_weights_edge_cases() -> None:
    # Rows after the reference count as age 0; constant ages give all ones.
    later = pd.Series([REF + pd.Timedelta(days=3), REF])
    np.testing.assert_array_equal(age_weights(later, REF, 28), [1.0, 1.0])
    assert age_weights(pd.Series([REF - pd.Timedelta(days=900)] * 4), REF, 1).tolist() == [1.0] * 4
    # Very old data with a short half-life: no underflow to 0/0.
    old = pd.Series(REF - pd.to_timedelta([3000, 4000], unit="D"))
    w = age_weights(old, REF, half_life_days=1)
    assert np.isfinite(w).all() and w.mean() == pytest.approx(1.0)
    assert age_weights(pd.Series([], dtype="datetime64[ns]"), REF, 28).shape == (0,)
    with pytest.raises(StrategyError, match="missing timestamps"):
        age_weights(pd.Series([REF, pd.NaT]), REF, 28)
    for bad in (0, -1):
        with pytest.raises(StrategyError, match="half_life_days"):
            age_weights(pd.Series([REF]), REF, bad)


# --- apply_weights on a collected dataset --------------------------------------------------------


@pytest.fixture(scope="module")
def history() -> dict[str, pd.DataFrame]:
    return make_history(6, 200, seed=3)


def _dataset(history: dict[str, pd.DataFrame], plan: TrainingPlan) -> pd.DataFrame:
    return collect_dataset(history, plan.window, SCHEMA)


def test_weighted_dataset_weights(history: dict[str, pd.DataFrame]) -> None:
    plan = plan_training(list(history), "weighted", as_of=None, window_batches=2, half_life_days=7)
    dataset = _dataset(history, plan)
    out = apply_weights(dataset, plan, SCHEMA)
    assert WEIGHT_COLUMN not in dataset.columns  # input untouched
    assert out.drop(columns=WEIGHT_COLUMN).equals(dataset)
    assert out[WEIGHT_COLUMN].dtype == np.float64
    train = out[out[SPLIT_COLUMN] == "train"]
    test = out[out[SPLIT_COLUMN] == "test"]
    assert (test[WEIGHT_COLUMN] == 1.0).all()
    assert train[WEIGHT_COLUMN].mean() == pytest.approx(1.0, abs=1e-12)
    # Monotone in age, and a batch one half-life (7 days) older weighs half on average.
    ordered = train.sort_values(SCHEMA.timestamp)
    assert ordered[WEIGHT_COLUMN].is_monotonic_increasing
    per_batch = train.groupby(BATCH_COLUMN)[WEIGHT_COLUMN]
    ratios = (per_batch.min() / per_batch.min().shift(-1)).dropna()
    assert len(ratios) == 4
    # Batch minima are each batch's oldest row, a few hours into its week: close to one half.
    np.testing.assert_allclose(ratios, 0.5, rtol=1e-2)
    # Exactly the formula, normalised over the train rows.
    reference = test[SCHEMA.timestamp].min()
    expected = 0.5 ** ((reference - train[SCHEMA.timestamp]) / pd.Timedelta(days=7))
    np.testing.assert_allclose(
        train[WEIGHT_COLUMN].to_numpy(), (expected / expected.mean()).to_numpy(), rtol=1e-12
    )


@pytest.mark.parametrize("strategy", ["full", "rolling", "incremental"])
def test_other_strategies_weigh_every_row_one(
    history: dict[str, pd.DataFrame], strategy: str
) -> None:
    ids = list(history)
    plan = plan_training(ids, strategy, as_of=None, window_batches=2, trained_through=ids[2])
    out = apply_weights(_dataset(history, plan), plan, SCHEMA)
    assert out[WEIGHT_COLUMN].dtype == np.float64
    assert (out[WEIGHT_COLUMN] == 1.0).all()


def test_apply_weights_rejects_a_dataset_from_another_plan(
    history: dict[str, pd.DataFrame],
) -> None:
    ids = list(history)
    full = plan_training(ids, "full", as_of=None, window_batches=2)
    rolling = plan_training(ids, "rolling", as_of=None, window_batches=2)
    with pytest.raises(StrategyError, match="outside the rolling plan"):
        apply_weights(_dataset(history, full), rolling, SCHEMA)
    weighted = plan_training(ids, "weighted", as_of=None, window_batches=2)
    no_test = _dataset(history, weighted).query(f"{SPLIT_COLUMN} == 'train'")
    with pytest.raises(StrategyError, match="no test rows"):
        apply_weights(no_test, weighted, SCHEMA)
    with pytest.raises(StrategyError, match=SPLIT_COLUMN):
        apply_weights(history[ids[0]], weighted, SCHEMA)


def test_test_set_is_the_latest_period_not_the_last_file_name() -> None:
    """A file named to sort last (``zz-final``) but holding an earlier week never becomes the test
    set: batches are ordered by their period start, then by id."""
    times = {
        "2024-03-04": pd.Timestamp("2024-03-04"),
        "2024-03-11": pd.Timestamp("2024-03-11"),
        "2024-03-18": pd.Timestamp("2024-03-18"),
        "zz-final": pd.Timestamp("2024-03-04"),
    }
    plan = plan_training(list(times), "full", as_of=None, window_batches=8, times=times)
    assert plan.window.test_batches == ("2024-03-18",)
    assert set(plan.window.train_batches) == {"2024-03-04", "zz-final", "2024-03-11"}
    by_name = plan_training(list(times), "full", as_of=None, window_batches=8)
    assert by_name.window.test_batches == ("zz-final",)  # what ordering by name alone would do
