"""The training window: a refused batch is left out with its reason and the window chosen again."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from retraining_assets.core.dataset_build import (
    ValidatedBatch,
    WindowError,
    WindowRequest,
    build_training_set,
)
from retraining_assets.core.synthetic import SYNTHETIC_SCHEMA, make_history
from retraining_assets.settings import BATCH_COLUMN, SPLIT_COLUMN
from retraining_assets.storage import open_store

ROLLING = WindowRequest(
    strategy="rolling", as_of=None, window_batches=2, test_batches=1, half_life_days=28.0
)


def _write(tmp_path: Path, n: int) -> dict[str, ValidatedBatch]:
    validated = {}
    for order, (batch_id, frame) in enumerate(make_history(n, 80, seed=3).items()):
        path = tmp_path / f"{batch_id}.parquet"
        frame.to_parquet(path, index=False)
        md5 = hashlib.md5(path.read_bytes()).hexdigest()
        validated[batch_id] = ValidatedBatch(md5, labelled=True, start=batch_id, order=order)
    return validated


def test_window_of_the_latest_batches(tmp_path: Path) -> None:
    validated = _write(tmp_path, 4)
    files = sorted(validated)
    built = build_training_set(
        open_store(str(tmp_path)), SYNTHETIC_SCHEMA, files, validated, set(), ROLLING
    )
    assert built.plan.window.test_batches == (files[-1],)
    assert built.plan.window.train_batches == tuple(files[1:3])
    assert set(built.dataset[BATCH_COLUMN]) == set(files[1:])
    assert (built.dataset[SPLIT_COLUMN] == "test").sum() == 80
    assert built.refused == {} and built.rejected == set()


def test_a_changed_batch_is_refused_and_the_window_moves_past_it(tmp_path: Path) -> None:
    validated = _write(tmp_path, 4)
    files = sorted(validated)
    changed = files[2]
    pd.read_parquet(tmp_path / f"{changed}.parquet").head(10).to_parquet(
        tmp_path / f"{changed}.parquet", index=False
    )
    warned: list[str] = []
    built = build_training_set(
        open_store(str(tmp_path)),
        SYNTHETIC_SCHEMA,
        files,
        validated,
        {"gone"},
        ROLLING,
        warn=lambda batch_id, why: warned.append(batch_id),
    )
    assert warned == [changed] and "changed since it passed validation" in built.refused[changed]
    assert built.plan.window.train_batches == (files[0], files[1])
    assert changed not in set(built.dataset[BATCH_COLUMN])
    assert built.rejected == {"gone"}


def test_no_window_left_names_the_refused_batches(tmp_path: Path) -> None:
    validated = _write(tmp_path, 2)
    files = sorted(validated)
    (tmp_path / f"{files[0]}.parquet").write_bytes(b"not parquet")
    with pytest.raises(
        WindowError, match=rf"cannot build a training window: .*refused: {files[0]}"
    ):
        build_training_set(
            open_store(str(tmp_path)), SYNTHETIC_SCHEMA, files, validated, set(), ROLLING
        )
