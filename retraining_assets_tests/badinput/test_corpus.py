"""Every case of the bad-input corpus is refused at ingestion with its clear message.

Fast: the pure ingestion path (``check_batch``: read once, parse, GE suite + pandas rules) and
the training read (``read_validated_batch``), no Dagster. The chain runs are in ``test_chain``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from retraining_assets.core import batches as batch_io
from retraining_assets.core.validation import check_batch
from retraining_assets.storage import LocalStore
from retraining_assets_tests.badinput.corpus import CASES, SCHEMA, Case, clean

BATCH = "2024-03-04"


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "batches"
    folder.mkdir()
    return folder


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [c for c in CASES if c.kind == "batch"], ids=lambda c: c.name)
def test_bad_batch_is_refused_with_a_clear_message_and_quarantined(
    case: Case, tmp_path: Path
) -> None:
    folder = _folder(tmp_path)
    case.write(folder, BATCH, clean())
    before = sorted(p.name for p in tmp_path.iterdir())

    verdict = check_batch(folder, BATCH, SCHEMA)

    assert not verdict.ok
    message = verdict.message()
    assert re.search(case.expect, message), message
    assert "Traceback" not in message
    moved = batch_io.quarantine(folder, verdict.key, verdict.reason())
    assert batch_io.list_batches(folder) == []

    reasons = batch_io.quarantined(folder)
    assert len(reasons) == 1 and reasons[0]["batch_id"] == BATCH
    assert reasons[0]["quarantined_as"] == moved and reasons[0]["reason"] == message
    assert reasons[0]["md5"] == verdict.md5
    assert (folder / moved).is_symlink() or (folder / moved).is_file()
    # Nothing was written outside the batch folder (a link target is never touched).
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("case", [c for c in CASES if c.kind == "feedback"], ids=lambda c: c.name)
def test_bad_feedback_is_refused_by_the_training_read(case: Case, tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    case.write(folder, BATCH, clean())
    verdict = check_batch(folder, BATCH, SCHEMA)
    assert verdict.ok and not verdict.labelled, verdict.message()
    assert verdict.md5 is not None
    with pytest.raises(batch_io.FeedbackError) as caught:
        batch_io.read_validated_batch(folder, BATCH, verdict.md5, SCHEMA)
    assert re.search(case.expect, str(caught.value)), str(caught.value)


def test_valid_feedback_labels_the_batch(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    frame = clean()
    frame.drop(columns=["label"]).to_parquet(folder / f"{BATCH}.parquet", index=False)
    (folder / "feedback").mkdir()
    frame[["row_id", "label"]].sample(frac=1.0, random_state=1).to_parquet(
        folder / "feedback" / f"{BATCH}.parquet", index=False
    )
    verdict = check_batch(folder, BATCH, SCHEMA)
    assert verdict.ok and verdict.md5
    labelled = batch_io.read_validated_batch(folder, BATCH, verdict.md5, SCHEMA)
    assert labelled["label"].tolist() == frame["label"].tolist()


@pytest.mark.parametrize("key", ["../../x", "/abs/path", "..", "a/b", "", "x\x00y", "a b"])
def test_unsafe_partition_keys_touch_nothing(key: str, tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (tmp_path / "x.parquet").write_bytes(b"outside")
    with pytest.raises(batch_io.InvalidBatchId, match="invalid batch id"):
        check_batch(folder, key, SCHEMA)
    with pytest.raises(batch_io.InvalidBatchId):
        batch_io.batch_path(folder, key)
    with pytest.raises(batch_io.InvalidBatchId):
        batch_io.read_labelled_batch(folder, key, SCHEMA)
    with pytest.raises(batch_io.InvalidBatchId):
        batch_io.feedback_key(key)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batches", "x.parquet"]
    assert list(folder.iterdir()) == []


def test_listing_refuses_links_and_unsafe_names(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    clean().to_parquet(folder / "2024-03-04.parquet", index=False)
    (folder / "2024-03-11.parquet").symlink_to("/etc/passwd")
    (folder / "week 3.parquet").write_bytes(b"x")
    (folder / "_quarantine").mkdir()
    (folder / "_quarantine" / "2024-03-18.parquet").write_bytes(b"x")
    listing = batch_io.scan_batches(folder)
    assert listing.ids == ["2024-03-04"]
    assert "symbolic link" in listing.refused["2024-03-11.parquet"]
    assert "invalid batch id 'week 3'" in listing.refused["week 3.parquet"]


def test_well_formed_csv_batches_pass(tmp_path: Path) -> None:
    """CSV is advertised: its timestamps are parsed, its categories stay text (BOM, offsets ok)."""
    folder = _folder(tmp_path)
    frame = clean()
    frame.to_csv(folder / "2024-03-04.csv", index=False)
    frame.to_csv(folder / "2024-03-11-bom.csv", index=False, encoding="utf-8-sig")
    later = clean(pd.Timestamp("2024-03-18"))
    with_offsets = later.assign(ts=later["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00"))
    with_offsets.to_csv(folder / "2024-03-18.csv", index=False)
    for batch_id, start in (("2024-03-04", None), ("2024-03-18", None)):
        verdict = check_batch(folder, batch_id, SCHEMA)
        assert verdict.ok, verdict.message()
        assert verdict.frame is not None
        assert str(verdict.frame["ts"].dtype) == "datetime64[ns]"
        assert start is None
    parsed = check_batch(folder, "2024-03-04", SCHEMA).frame
    assert parsed is not None
    pd.testing.assert_series_equal(parsed["ts"], frame["ts"])
    assert parsed["c0"].map(type).eq(str).all()
    # The BOM file's id does not name its week: its period is the data's own week.
    bom = check_batch(folder, "2024-03-11-bom", SCHEMA)
    assert not bom.ok and "not within the batch period [2024-03-11, 2024-03-18)" in bom.message()


def test_file_replaced_after_validation_is_refused(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    frame = clean()
    frame.to_parquet(folder / f"{BATCH}.parquet", index=False)
    verdict = check_batch(folder, BATCH, SCHEMA)
    assert verdict.ok and verdict.md5
    frame.assign(label=1 - frame["label"]).to_parquet(folder / f"{BATCH}.parquet", index=False)
    with pytest.raises(batch_io.BatchChanged, match="changed since it passed validation"):
        batch_io.read_validated_batch(folder, BATCH, verdict.md5, SCHEMA)


def test_quarantine_on_an_object_store_moves_the_object(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "batches")
    store.put(f"{BATCH}.parquet", b"not parquet")
    verdict = check_batch(store, BATCH, SCHEMA)
    moved = batch_io.quarantine(store, verdict.key, verdict.reason())
    assert not store.exists(f"{BATCH}.parquet") and store.get(moved) == b"not parquet"


def test_undated_batch_takes_its_period_from_its_data(tmp_path: Path) -> None:
    """A file named to sort last is ordered by its data's week, not by its name."""
    folder = _folder(tmp_path)
    clean().to_parquet(folder / "zz-final.parquet", index=False)
    verdict = check_batch(folder, "zz-final", SCHEMA)
    assert verdict.ok, verdict.message()
    assert verdict.period == (pd.Timestamp("2024-03-04"), pd.Timestamp("2024-03-11"))
    order = batch_io.time_order(
        ["2024-03-11", "zz-final", "2024-02-26"],
        {"2024-03-11": "2024-03-11", "zz-final": str(verdict.period[0]), "2024-02-26": None},
    )
    assert order == ["2024-02-26", "zz-final", "2024-03-11"]
    window = batch_io.select_window(order, None, 5, 1, times={"zz-final": "2024-03-04"})
    assert window.test_batches == ("2024-03-11",)
