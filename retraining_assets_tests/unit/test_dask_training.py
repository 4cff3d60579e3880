"""LightGBM on Dask: the same model as the local trainer, read by partitions on 2 workers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from retraining_assets.core.batches import Window, collect_dataset
from retraining_assets.core.dask_training import (
    EarlyStoppingOnAllRows,
    _encode_valid,
    read_example_rows,
    train_model_dask,
)
from retraining_assets.core.synthetic import SYNTHETIC_SCHEMA, make_history
from retraining_assets.core.training import (
    Scorer,
    TrainedModel,
    TrainParams,
    prepare_features,
    split_train_valid,
    train_model,
)
from retraining_assets.settings import SPLIT_COLUMN, WEIGHT_COLUMN

if TYPE_CHECKING:
    import distributed

SCHEMA = SYNTHETIC_SCHEMA
PARAMS = TrainParams(seed=7)
#: Parameters only the distributed run has (LightGBM's network set-up).
NETWORK = {"tree_learner", "machines", "num_machines", "local_listen_port"}


def _dataset(n_batches: int = 5, rows: int = 1500, seed: int = 11) -> pd.DataFrame:
    history = make_history(n_batches, rows, seed=seed)
    ids = sorted(history)
    return collect_dataset(history, Window(tuple(ids[:-1]), (ids[-1],)), SCHEMA)


def _split(dataset: pd.DataFrame, split: str) -> pd.DataFrame:
    return dataset[dataset[SPLIT_COLUMN] == split]


def _test_auc(trained: TrainedModel, test: pd.DataFrame) -> float:
    return float(roc_auc_score(test[SCHEMA.target], Scorer(trained.booster, SCHEMA).predict(test)))


def _params_block(model_text: str) -> dict[str, str]:
    block = model_text[model_text.index("parameters:") : model_text.index("end of parameters")]
    return dict(line.strip("[]").split(": ", 1) for line in block.splitlines()[1:] if line)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path, index=False, row_group_size=1000)
    return path


# --- early stopping on the whole validation set ----------------------------------------------


@pytest.mark.slow
def test_whole_validation_set_callback_stops_where_lightgbm_early_stopping_does() -> None:
    """Same split, same trees: the callback picks LightGBM's own best iteration and score."""
    import lightgbm as lgb

    dataset = _dataset()
    train = _split(dataset, "train")
    for params in (PARAMS, TrainParams(seed=3, learning_rate=0.3, early_stopping_rounds=5)):
        local = train_model(train, SCHEMA, params)
        fit, valid = split_train_valid(train, SCHEMA, params.valid_fraction)
        x_fit = prepare_features(fit, SCHEMA)
        dtypes = {c: x_fit[c].dtype for c in SCHEMA.categorical_features}
        callback = EarlyStoppingOnAllRows(
            _encode_valid(SCHEMA, dtypes, valid), params.early_stopping_rounds
        )
        booster = lgb.train(
            params.lightgbm_params(),
            lgb.Dataset(
                x_fit,
                label=fit[SCHEMA.target].to_numpy(),
                categorical_feature=list(SCHEMA.categorical_features),
            ),
            num_boost_round=params.num_boost_round,
            callbacks=[callback],
        )
        assert booster.best_iteration == local.best_iteration < params.num_boost_round
        assert callback.best_score == pytest.approx(local.valid_auc, abs=1e-9)
        assert booster.model_to_string() == local.booster.model_to_string()


def test_encode_valid_needs_both_classes(dataset: pd.DataFrame) -> None:
    valid = _split(dataset, "train").tail(50).assign(**{SCHEMA.target: 1})
    dtypes = {c: pd.CategoricalDtype(["a"]) for c in SCHEMA.categorical_features}
    assert _encode_valid(SCHEMA, dtypes, valid) is None


# --- training on a LocalCluster ----------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            scheduler_port=0,
            dashboard_address=None,
            # No dashboard; its HTTP routes on a free loopback port, not 8787.
            scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
        ) as cluster,
        Client(cluster) as dask_client,
    ):
        yield dask_client


@pytest.fixture(scope="module")
def dataset() -> pd.DataFrame:
    return _dataset()


@pytest.fixture(scope="module")
def source(dataset: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Small row groups: several partitions, read by both workers.
    path = tmp_path_factory.mktemp("dask") / "training_dataset.parquet"
    dataset.to_parquet(path, index=False, row_group_size=1000)
    return path


@pytest.fixture(scope="module")
def local(dataset: pd.DataFrame) -> TrainedModel:
    return train_model(_split(dataset, "train"), SCHEMA, PARAMS)


@pytest.fixture(scope="module")
def on_dask(client: distributed.Client, source: Path) -> TrainedModel:
    return train_model_dask(client, source, SCHEMA, PARAMS)


@pytest.mark.slow
def test_dask_model_is_a_lightgbm_text_model_as_good_as_the_local_one(
    on_dask: TrainedModel, local: TrainedModel, dataset: pd.DataFrame, tmp_path: Path
) -> None:
    import lightgbm as lgb

    path = on_dask.save(tmp_path / "model.txt")
    assert path.read_text().startswith("tree")
    loaded = lgb.Booster(model_file=str(path))
    assert loaded.current_iteration() == on_dask.best_iteration
    test = _split(dataset, "test")
    reloaded = TrainedModel(loaded, PARAMS, on_dask.best_iteration, 0.0, 0, 0, SCHEMA.features)
    assert _test_auc(reloaded, test) == pytest.approx(_test_auc(on_dask, test), abs=1e-12)
    # 6000 training rows, test batch of 1500: the two trainers agree within 0.02 AUC.
    assert _test_auc(on_dask, test) > 0.75
    assert abs(_test_auc(on_dask, test) - _test_auc(local, test)) <= 0.02
    assert abs(on_dask.valid_auc - local.valid_auc) <= 0.02  # type: ignore[operator]


@pytest.mark.slow
def test_dask_trains_with_the_local_split_parameters_and_categories(
    on_dask: TrainedModel, local: TrainedModel
) -> None:
    # Same time split, both workers used, training stopped early on the validation rows.
    assert (on_dask.n_train, on_dask.n_valid) == (local.n_train, local.n_valid)
    assert on_dask.extra["trainer"] == "dask"
    assert on_dask.extra["dask_workers"] == 2 and on_dask.extra["dask_partitions"] >= 2
    assert on_dask.extra["dask_machines"] == 2
    assert 1 <= on_dask.best_iteration < PARAMS.num_boost_round
    # The same hyper-parameters reach LightGBM; only the network set-up differs.
    dask_params = _params_block(on_dask.booster.model_to_string())
    local_params = _params_block(local.booster.model_to_string())
    assert {k for k in dask_params if dask_params[k] != local_params.get(k)} <= NETWORK
    assert dask_params["tree_learner"] == "data" and dask_params["num_machines"] == "2"
    assert dask_params["num_threads"] == "1"
    # Categorical features stay categorical, with the local trainer's levels (same codes).
    assert on_dask.booster.pandas_categorical == local.booster.pandas_categorical
    assert on_dask.booster.pandas_categorical == [["a", "b", "c", "d", "e"], ["u", "v", "w"]]
    assert dask_params["categorical_feature"] == local_params["categorical_feature"] == "5,6"
    trees = on_dask.booster.dump_model()["tree_info"]

    def categorical_splits(node: dict) -> int:
        if "split_feature" not in node:
            return 0
        here = int(node["decision_type"] == "==")
        return (
            here + categorical_splits(node["left_child"]) + categorical_splits(node["right_child"])
        )

    assert sum(categorical_splits(t["tree_structure"]) for t in trees) > 0


@pytest.mark.slow
def test_one_row_group_is_split_across_both_workers(
    client: distributed.Client, dataset: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "one_group.parquet"
    dataset.to_parquet(path, index=False)
    trained = train_model_dask(client, path, SCHEMA, PARAMS)
    assert trained.extra["dask_partitions"] == 2
    # Both workers train: the split halves do not stay on the worker that read the file.
    assert trained.extra["dask_machines"] == 2
    assert _params_block(trained.booster.model_to_string())["num_machines"] == "2"
    assert trained.n_train + trained.n_valid == len(_split(dataset, "train"))


@pytest.mark.slow
def test_sample_weights_reach_the_workers(
    client: distributed.Client, dataset: pd.DataFrame, tmp_path: Path
) -> None:
    weighted = dataset.copy()
    # Rows of level 'a' weigh nothing: a model that sees the weights learns nothing about 'a'.
    weighted[WEIGHT_COLUMN] = np.where(weighted["c0"] == "a", 0.0, 1.0)
    path = tmp_path / "weighted.parquet"
    weighted.to_parquet(path, index=False, row_group_size=1000)
    trained = train_model_dask(client, path, SCHEMA, PARAMS)
    train = _split(weighted, "train")
    local = train_model(train, SCHEMA, PARAMS, weights=train[WEIGHT_COLUMN].to_numpy())
    test = _split(weighted, "test")
    assert abs(_test_auc(trained, test) - _test_auc(local, test)) <= 0.02
    assert trained.valid_auc == pytest.approx(local.valid_auc, abs=0.02)
    # The weights changed the trees: the same rows unweighted give another model.
    unweighted = train_model_dask(
        client, _write(dataset, tmp_path / "plain.parquet"), SCHEMA, PARAMS
    )
    assert trained.booster.model_to_string() != unweighted.booster.model_to_string()


@pytest.mark.slow
def test_incremental_continues_the_init_model(
    client: distributed.Client, local: TrainedModel, tmp_path: Path
) -> None:
    # New rows with a level the init model never saw: its codes must not shift.
    newer = _dataset(n_batches=3, rows=1500, seed=99)
    newer.loc[newer["c1"] == "w", "c1"] = "z"
    path = _write(newer, tmp_path / "newer.parquet")
    init_path = local.save(tmp_path / "init.txt")
    trained = train_model_dask(client, path, SCHEMA, PARAMS, init_model=init_path)
    init_trees = local.best_iteration
    assert trained.extra["init_trees"] == init_trees
    assert trained.extra["new_trees"] >= 1
    assert trained.best_iteration == init_trees + trained.extra["new_trees"]
    assert trained.booster.pandas_categorical == [["a", "b", "c", "d", "e"], ["u", "v", "w", "z"]]
    # The init model's trees are kept as they are.
    init_trees_text = local.booster.model_to_string().split("end of trees")[0].split("Tree=")[1:]
    new_text = trained.booster.model_to_string().split("end of trees")[0].split("Tree=")[1:]
    assert new_text[:init_trees] == init_trees_text
    # And the local trainer continues the same model to the same place, give or take.
    train = _split(newer, "train")
    cont = train_model(train, SCHEMA, PARAMS, init_model=init_path)
    test = _split(newer, "test")
    assert abs(_test_auc(trained, test) - _test_auc(cont, test)) <= 0.02


@pytest.mark.slow
def test_bad_inputs_raise_value_error(
    client: distributed.Client, dataset: pd.DataFrame, tmp_path: Path
) -> None:
    one_class = dataset.copy()
    one_class[SCHEMA.target] = 0
    with pytest.raises(ValueError, match="both classes"):
        train_model_dask(client, _write(one_class, tmp_path / "one.parquet"), SCHEMA, PARAMS)
    shuffled = dataset.sample(frac=1.0, random_state=0)
    with pytest.raises(ValueError, match="not sorted"):
        train_model_dask(client, _write(shuffled, tmp_path / "shuffled.parquet"), SCHEMA, PARAMS)


def test_example_rows_are_the_first_train_rows(dataset: pd.DataFrame, tmp_path: Path) -> None:
    path = _write(dataset, tmp_path / "d.parquet")
    example = read_example_rows(path, SCHEMA, n=5)
    expected = prepare_features(_split(dataset, "train").head(5), SCHEMA)
    pd.testing.assert_frame_equal(example.reset_index(drop=True), expected.reset_index(drop=True))


@pytest.mark.slow
def test_same_data_and_seed_give_the_same_model_with_fixed_ranks(
    client: distributed.Client, source: Path, on_dask: TrainedModel
) -> None:
    again = train_model_dask(client, source, SCHEMA, PARAMS)

    def trees(trained: TrainedModel) -> str:
        return trained.booster.model_to_string().split("end of trees")[0]

    assert trees(again) == trees(on_dask)
    assert again.best_iteration == on_dask.best_iteration
    assert again.valid_auc == on_dask.valid_auc
    # Worker i (addresses sorted) is LightGBM rank i, with its own share of the fit rows.
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    for trained in (on_dask, again):
        ranks = trained.extra["dask_ranks"]
        assert list(ranks) == workers
        assert [r["rank"] for r in ranks.values()] == [0, 1]
        assert sum(r["rows"] for r in ranks.values()) == trained.n_train
        assert min(r["rows"] for r in ranks.values()) > 0.4 * trained.n_train
    assert again.extra["dask_ranks"] == on_dask.extra["dask_ranks"]


@pytest.mark.slow
def test_ranked_client_lists_keys_in_worker_order(client: distributed.Client) -> None:
    from retraining_assets.core.dask_training import _RankedClient

    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    # Submitted to the last worker first: the plain who_has order is not the worker order.
    futures = [
        client.submit(np.arange, n, workers=[workers[n % 2]], pure=False) for n in (3, 2, 5, 4)
    ]
    client.gather(futures)
    for order in (workers, workers[::-1]):
        ranked = _RankedClient(client, order).who_has(futures)
        assert [holders[0] for holders in ranked.values()] == [order[0]] * 2 + [order[1]] * 2
        assert set(ranked) == {f.key for f in futures}
    # Everything else is the real client's.
    assert _RankedClient(client, workers).ncores() == client.ncores()
