"""Batch files: listing, reading, atomic writes, window selection and dataset collection."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pandas as pd
import pytest

from retraining_assets.core.batches import (
    BatchError,
    Window,
    batch_path,
    collect_dataset,
    list_batches,
    overlapping_batches,
    read_batch,
    select_window,
    write_parquet_atomic,
)
from retraining_assets.core.synthetic import SYNTHETIC_SCHEMA, make_batch, make_history
from retraining_assets.settings import BATCH_COLUMN, SPLIT_COLUMN

START = pd.Timestamp("2024-01-01")
IDS = ["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22", "2024-01-29"]


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def history() -> dict[str, pd.DataFrame]:
    return make_history(4, 60, seed=7)


# --- list_batches / batch_path ---------------------------------------------------------------


def test_list_batches_sorted_and_ignores_hidden_temp_and_other_files(tmp_path: Path) -> None:
    for name in [
        "2024-01-15.parquet",
        "2024-01-01.csv",
        "2024-01-08.parquet",
        "2024-01-08.csv",  # same id in two formats: listed once
        ".2024-01-22.parquet",  # hidden
        ".2024-01-29.parquet.abc123.tmp",  # temp file of write_parquet_atomic
        "_2024-02-05.parquet",  # partial
        "2024-02-12.json",  # not a batch format
        "notes.txt",
    ]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "2024-03-01.parquet").mkdir()  # a folder, not a file
    assert list_batches(tmp_path) == ["2024-01-01", "2024-01-08", "2024-01-15"]


def test_list_batches_missing_or_empty_folder(tmp_path: Path) -> None:
    assert list_batches(tmp_path / "absent") == []
    assert list_batches(tmp_path) == []


def test_batch_path_prefers_parquet_then_csv(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x\n1\n")
    assert batch_path(tmp_path, "a") == tmp_path / "a.csv"
    (tmp_path / "a.parquet").write_bytes(b"x")
    assert batch_path(tmp_path, "a") == tmp_path / "a.parquet"
    with pytest.raises(BatchError, match="'b'"):
        batch_path(tmp_path, "b")


# --- read_batch --------------------------------------------------------------------------------


def test_read_batch_parquet_roundtrip_and_projection(tmp_path: Path) -> None:
    frame = make_batch(50, START, seed=1)
    path = write_parquet_atomic(frame, tmp_path / "b.parquet")
    assert read_batch(path).equals(frame)
    projected = read_batch(path, columns=["x1", "label"])
    assert list(projected.columns) == ["x1", "label"]
    assert projected.equals(frame[["x1", "label"]])


def test_read_batch_csv_projection(tmp_path: Path) -> None:
    frame = make_batch(30, START, seed=2)
    path = tmp_path / "b.csv"
    frame.to_csv(path, index=False)
    full = read_batch(path)
    assert list(full.columns) == SYNTHETIC_SCHEMA.columns
    assert len(full) == 30
    projected = read_batch(path, columns=["c0", "x0"])
    assert list(projected.columns) == ["c0", "x0"]
    assert projected["c0"].tolist() == frame["c0"].tolist()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_read_batch_missing_column_raises_batch_error(tmp_path: Path, suffix: str) -> None:
    frame = make_batch(20, START, seed=3)
    path = tmp_path / f"b{suffix}"
    if suffix == ".parquet":
        write_parquet_atomic(frame, path)
    else:
        frame.to_csv(path, index=False)
    with pytest.raises(BatchError, match=re.escape(f"b{suffix}")):
        read_batch(path, columns=["x0", "no_such_column"])


def test_read_batch_corrupt_parquet_raises_batch_error(tmp_path: Path) -> None:
    good = write_parquet_atomic(make_batch(20, START, seed=4), tmp_path / "good.parquet")
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])  # truncated
    with pytest.raises(BatchError, match=re.escape("corrupt.parquet")):
        read_batch(corrupt)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"this is not parquet at all")
    with pytest.raises(BatchError, match=re.escape("garbage.parquet")):
        read_batch(garbage)


def test_read_batch_missing_file_raises_batch_error(tmp_path: Path) -> None:
    with pytest.raises(BatchError):
        read_batch(tmp_path / "absent.parquet")


# --- write_parquet_atomic ----------------------------------------------------------------------


def test_write_parquet_atomic_leaves_no_temp_file(tmp_path: Path) -> None:
    frame = make_batch(40, START, seed=5)
    out = write_parquet_atomic(frame, tmp_path / "sub" / "b.parquet")
    assert out == tmp_path / "sub" / "b.parquet"
    assert sorted(p.name for p in out.parent.iterdir()) == ["b.parquet"]
    assert pd.read_parquet(out).equals(frame)


def test_write_parquet_atomic_replaces_by_rename(tmp_path: Path) -> None:
    path = tmp_path / "b.parquet"
    old = make_batch(40, START, seed=6)
    new = make_batch(70, START, seed=8)
    write_parquet_atomic(old, path)
    old_inode = path.stat().st_ino
    # A reader that opened the old file keeps seeing the complete old bytes.
    with path.open("rb") as reader:
        write_parquet_atomic(new, path)
        assert pd.read_parquet(reader).equals(old)
    assert path.stat().st_ino != old_inode  # a new file was renamed over, not rewritten in place
    assert pd.read_parquet(path).equals(new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.parquet"]


def test_write_parquet_atomic_failure_keeps_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "b.parquet"
    old = make_batch(10, START, seed=9)
    write_parquet_atomic(old, path)
    before = _md5(path)
    unwritable = pd.DataFrame({"x": [object()]})  # pyarrow cannot convert a bare object
    with pytest.raises(ValueError):  # pyarrow.ArrowInvalid
        write_parquet_atomic(unwritable, path)
    assert _md5(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.parquet"]


# --- select_window -----------------------------------------------------------------------------


def test_select_window_latest_by_default() -> None:
    window = select_window(list(reversed(IDS)), None, window_batches=3)
    assert window == Window(train_batches=tuple(IDS[1:4]), test_batches=(IDS[4],))
    assert window.all_batches == tuple(IDS[1:])


def test_select_window_as_of_cuts_the_future() -> None:
    window = select_window(IDS, "2024-01-15", window_batches=8)
    assert window.train_batches == ("2024-01-01", "2024-01-08")
    assert window.test_batches == ("2024-01-15",)
    assert "2024-01-22" not in window.all_batches


def test_select_window_size_and_test_batches() -> None:
    window = select_window(IDS, None, window_batches=2, test_batches=2)
    assert window.train_batches == ("2024-01-08", "2024-01-15")
    assert window.test_batches == ("2024-01-22", "2024-01-29")
    one = select_window(IDS, "2024-01-22", window_batches=1)
    assert one.train_batches == ("2024-01-15",)
    assert one.test_batches == ("2024-01-22",)


def test_select_window_uses_what_exists_when_window_is_larger() -> None:
    window = select_window(IDS[:2], None, window_batches=8, test_batches=1)
    assert window.train_batches == (IDS[0],)
    assert window.test_batches == (IDS[1],)


def test_select_window_unknown_as_of() -> None:
    with pytest.raises(BatchError, match="2023-12-25"):
        select_window(IDS, "2023-12-25", window_batches=2)


@pytest.mark.parametrize(
    ("available", "as_of", "test_batches"),
    [
        ([], None, 1),
        (IDS[:1], None, 1),
        (IDS, "2024-01-01", 1),  # as_of leaves only one batch
        (IDS[:2], None, 2),  # no batch left for training
    ],
)
def test_select_window_too_few_batches(
    available: list[str], as_of: str | None, test_batches: int
) -> None:
    with pytest.raises(BatchError, match="need at least"):
        select_window(available, as_of, window_batches=4, test_batches=test_batches)


@pytest.mark.parametrize(("window_batches", "test_batches"), [(0, 1), (2, 0)])
def test_select_window_rejects_non_positive_sizes(window_batches: int, test_batches: int) -> None:
    with pytest.raises(BatchError, match="at least 1"):
        select_window(IDS, None, window_batches=window_batches, test_batches=test_batches)


# --- collect_dataset ---------------------------------------------------------------------------


def test_collect_dataset_split_column_and_order(history: dict[str, pd.DataFrame]) -> None:
    ids = list(history)
    window = Window(train_batches=tuple(ids[:3]), test_batches=(ids[3],))
    # Shuffle rows and add a stray column: the dataset must not depend on either.
    frames = {k: v.sample(frac=1.0, random_state=1).assign(extra=1.0) for k, v in history.items()}
    dataset = collect_dataset(frames, window, SYNTHETIC_SCHEMA)
    assert list(dataset.columns) == [*SYNTHETIC_SCHEMA.columns, SPLIT_COLUMN, BATCH_COLUMN]
    assert len(dataset) == 4 * 60
    assert dataset.index.equals(pd.RangeIndex(len(dataset)))
    split = dataset[SPLIT_COLUMN]
    assert split.tolist() == ["train"] * 180 + ["test"] * 60
    train, test = dataset[split == "train"], dataset[split == "test"]
    assert set(test["row_id"]) == set(history[ids[3]]["row_id"])
    assert set(test[BATCH_COLUMN]) == {ids[3]}
    for batch_id in ids[:3]:
        rows = train.loc[train[BATCH_COLUMN] == batch_id, "row_id"]
        assert set(rows) == set(history[batch_id]["row_id"])
    assert set(train["row_id"]) == set(pd.concat([history[i] for i in ids[:3]])["row_id"])
    for part in (train, test):
        assert part["ts"].is_monotonic_increasing
        assert list(part[["ts", "row_id"]].itertuples(index=False)) == sorted(
            part[["ts", "row_id"]].itertuples(index=False)
        )


def test_collect_dataset_test_rows_after_train_even_if_earlier(
    history: dict[str, pd.DataFrame],
) -> None:
    ids = list(history)
    # A test batch older than the training batches still comes last.
    window = Window(train_batches=(ids[2], ids[3]), test_batches=(ids[0],))
    dataset = collect_dataset(history, window, SYNTHETIC_SCHEMA)
    assert dataset[SPLIT_COLUMN].tolist() == ["train"] * 120 + ["test"] * 60
    assert set(dataset.loc[dataset[SPLIT_COLUMN] == "test", "row_id"]) == set(
        history[ids[0]]["row_id"]
    )


def test_collect_dataset_is_byte_deterministic(
    history: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    ids = list(history)
    window = Window(train_batches=tuple(ids[:3]), test_batches=(ids[3],))
    first = collect_dataset(history, window, SYNTHETIC_SCHEMA)
    shuffled = {k: v.sample(frac=1.0, random_state=3) for k, v in reversed(history.items())}
    second = collect_dataset(shuffled, window, SYNTHETIC_SCHEMA)
    a = write_parquet_atomic(first, tmp_path / "a.parquet")
    b = write_parquet_atomic(second, tmp_path / "b.parquet")
    c = write_parquet_atomic(first, tmp_path / "c.parquet")
    assert _md5(a) == _md5(b) == _md5(c)
    other = Window(train_batches=tuple(ids[1:3]), test_batches=(ids[3],))
    d = write_parquet_atomic(collect_dataset(history, other, SYNTHETIC_SCHEMA), tmp_path / "d.pq")
    assert _md5(d) != _md5(a)


def test_collect_dataset_names_missing_columns(history: dict[str, pd.DataFrame]) -> None:
    ids = list(history)
    frames = dict(history)
    frames[ids[1]] = history[ids[1]].drop(columns=["x3", "c1"])
    window = Window(train_batches=tuple(ids[:3]), test_batches=(ids[3],))
    with pytest.raises(BatchError) as info:
        collect_dataset(frames, window, SYNTHETIC_SCHEMA)
    message = str(info.value)
    assert ids[1] in message
    assert "x3" in message and "c1" in message
    assert "x2" not in message


# --- overlapping_batches ------------------------------------------------------------------------


def _overlap_history() -> dict[str, pd.DataFrame]:
    """Four distinct weekly batches of the synthetic generator (ids unique across batches)."""
    history = make_history(4, 300, seed=11)
    return {batch_id: frame.copy() for batch_id, frame in history.items()}


def test_overlapping_batches_keeps_distinct_batches() -> None:
    frames = _overlap_history()
    assert overlapping_batches(frames, list(frames), SYNTHETIC_SCHEMA) == {}


def test_overlapping_batches_refuses_the_later_batch_with_repeated_ids() -> None:
    frames = _overlap_history()
    first, second, third, fourth = list(frames)
    id_col = SYNTHETIC_SCHEMA.id_column
    assert id_col is not None
    clash = frames[fourth].copy()
    clash.loc[clash.index[5:8], id_col] = frames[second][id_col].iloc[:3].to_numpy()
    frames[fourth] = clash
    out = overlapping_batches(frames, [first, second, third, fourth], SYNTHETIC_SCHEMA)
    example = frames[second][id_col].tolist()[0]
    assert out == {
        fourth: f"3 of its {id_col!r} values are already in batch {second} (e.g. {example!r})"
    }
    # The order decides which one is kept: the earlier one.
    out = overlapping_batches(frames, [fourth, first, second, third], SYNTHETIC_SCHEMA)
    assert list(out) == [second]


def test_overlapping_batches_refuses_a_copy_under_new_ids_but_not_a_few_equal_rows() -> None:
    frames = _overlap_history()
    first, second, third, _ = list(frames)
    id_col = SYNTHETIC_SCHEMA.id_column
    assert id_col is not None
    offset = 10**9
    copy = frames[first].assign(**{id_col: frames[first][id_col] + offset})
    # Three rows alike (1% of 300): real data has a handful of identical rows.
    few = frames[third].copy()
    data = [c for c in SYNTHETIC_SCHEMA.columns if c != id_col]
    few.loc[few.index[:3], data] = frames[second][data].iloc[:3].to_numpy()
    frames = {first: frames[first], second: frames[second], third: few, "copy": copy}
    out = overlapping_batches(frames, [first, second, third, "copy"], SYNTHETIC_SCHEMA)
    assert out == {
        "copy": (f"300 of its 300 rows repeat rows of batch {first} in every column but the id")
    }


def test_overlapping_batches_a_refused_batch_does_not_count_as_seen() -> None:
    frames = _overlap_history()
    first, second, third, _ = list(frames)
    id_col = SYNTHETIC_SCHEMA.id_column
    assert id_col is not None
    # ``second`` repeats ids of ``first`` and is refused; ``third`` shares rows with ``second``
    # only, so it stays.
    second_frame = frames[second].copy()
    second_frame.loc[second_frame.index[:1], id_col] = frames[first][id_col].iloc[0]
    third_frame = frames[third].copy()
    third_frame.loc[third_frame.index[:50], id_col] = second_frame[id_col].iloc[1:51].to_numpy()
    frames = {first: frames[first], second: second_frame, third: third_frame, "missing": None}
    out = overlapping_batches(
        {k: v for k, v in frames.items() if v is not None},
        [first, second, "missing", third],
        SYNTHETIC_SCHEMA,
    )
    assert list(out) == [second]


def test_overlapping_batches_string_ids_and_missing_ids() -> None:
    frames = _overlap_history()
    first, second, *_ = list(frames)
    id_col = SYNTHETIC_SCHEMA.id_column
    assert id_col is not None
    a = frames[first].assign(**{id_col: [f"r{i}" for i in range(len(frames[first]))]})
    b = frames[second].assign(**{id_col: [f"s{i}" for i in range(len(frames[second]))]})
    assert overlapping_batches({"a": a, "b": b}, ["a", "b"], SYNTHETIC_SCHEMA) == {}
    b.loc[b.index[7], id_col] = "r3"
    out = overlapping_batches({"a": a, "b": b}, ["a", "b"], SYNTHETIC_SCHEMA)
    assert out == {"b": f"1 of its {id_col!r} values are already in batch a (e.g. 'r3')"}


def test_overlapping_batches_unhashable_values_skip_the_row_check_of_that_batch_only() -> None:
    frames = _overlap_history()
    first, second, third, _ = list(frames)
    id_col = SYNTHETIC_SCHEMA.id_column
    assert id_col is not None
    odd = frames[second].astype({"c0": object})
    odd["c0"] = [[v] for v in odd["c0"]]  # lists cannot be hashed
    copy = frames[first].assign(**{id_col: frames[first][id_col] + 10**9})
    out = overlapping_batches(
        {first: frames[first], second: odd, third: copy}, [first, second, third], SYNTHETIC_SCHEMA
    )
    assert list(out) == [third]
