"""AUC of each training-data strategy on the same later weeks of the flights demo, side by side.

For each test week t (default weeks 16, 24, 32, 40, 48), all strategies are scored on week t:
- rolling: the 8 weeks before t;
- full: every week before t;
- weighted: every week before t, weights halving every 28 days;
- incremental: the rolling model as it was 4 weeks earlier (trained on t-12 .. t-5), continued
  with LightGBM's init_model on weeks t-4 .. t-1;
- stale: that 4-week-old model unchanged (what serving would have without retraining).

    .venv/bin/python benchmarks/strategies_flights.py   # needs `retraining prepare-data` first
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from retraining_assets.core.batches import collect_dataset, list_batches, read_batch
from retraining_assets.core.evaluation import compute_metrics
from retraining_assets.core.strategies import apply_weights, plan_training
from retraining_assets.core.training import Scorer, TrainParams, train_model
from retraining_assets.settings import FLIGHTS_SCHEMA, WEIGHT_COLUMN, project_root

SCHEMA = FLIGHTS_SCHEMA


def _dataset(frames, ids, plan) -> pd.DataFrame:
    data = collect_dataset({b: frames[b] for b in plan.window.all_batches}, plan.window, SCHEMA)
    return apply_weights(data, plan, SCHEMA)


def _fit(data: pd.DataFrame, init=None):
    train = data[data["__split__"] == "train"]
    return train_model(
        train, SCHEMA, TrainParams(), weights=train[WEIGHT_COLUMN].to_numpy(), init_model=init
    )


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--weeks", default="16,24,32,40,48")
    args = parser.parse_args()
    directory = project_root() / "data" / "batches"
    ids = list_batches(directory)
    frames = {b: read_batch(directory / f"{b}.parquet") for b in ids}
    rows = []
    started = time.perf_counter()
    for t in (int(w) for w in args.weeks.split(",")):
        as_of = ids[t]
        test = frames[as_of]
        y = test[SCHEMA.target].to_numpy()
        scores: dict[str, float] = {}
        for strategy in ("rolling", "full", "weighted"):
            plan = plan_training(ids, strategy, as_of=as_of, window_batches=8)
            model = _fit(_dataset(frames, ids, plan))
            scores[strategy] = compute_metrics(y, Scorer(model.booster, SCHEMA).predict(test)).auc
        old_plan = plan_training(ids, "rolling", as_of=ids[t - 4], window_batches=8)
        old = _fit(_dataset(frames, ids, old_plan))
        scores["stale"] = compute_metrics(y, Scorer(old.booster, SCHEMA).predict(test)).auc
        plan = plan_training(
            ids,
            "incremental",
            as_of=as_of,
            window_batches=8,
            trained_through=old_plan.window.train_batches[-1],
        )
        inc = _fit(_dataset(frames, ids, plan), init=old.booster)
        scores["incremental"] = compute_metrics(y, Scorer(inc.booster, SCHEMA).predict(test)).auc
        rows.append((as_of, len(test), scores))
    names = ["rolling", "full", "weighted", "incremental", "stale"]
    print(f"{'test week':12} {'rows':>6} " + " ".join(f"{n:>11}" for n in names))
    for as_of, n, scores in rows:
        print(f"{as_of:12} {n:6d} " + " ".join(f"{scores[k]:11.4f}" for k in names))
    means = {k: sum(r[2][k] for r in rows) / len(rows) for k in names}
    print(f"{'mean':12} {'':6} " + " ".join(f"{means[k]:11.4f}" for k in names))
    print(f"({time.perf_counter() - started:.0f}s)")


if __name__ == "__main__":
    main()
