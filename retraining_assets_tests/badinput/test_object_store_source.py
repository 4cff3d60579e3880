"""Batches arriving as objects under an S3 prefix: listed, validated, quarantined, read back."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from retraining_assets.core import batches as batch_io
from retraining_assets.core.validation import check_batch
from retraining_assets.defs.resources import BatchSourceResource
from retraining_assets.storage import S3Store
from retraining_assets_tests.badinput.corpus import SCHEMA, clean


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def test_s3_prefix_is_a_batch_source(s3_env: str, tmp_path: Path) -> None:
    bucket = f"batches{abs(hash(str(tmp_path))) % 10**9}"
    source = BatchSourceResource(directory=f"s3://{bucket}/incoming", dataset="synthetic")
    store = source.store()
    assert isinstance(store, S3Store)
    store.client.create_bucket(Bucket=bucket)
    good = clean()
    store.put("2024-03-04.parquet", _parquet(good))
    store.put("2024-03-11.csv", clean(pd.Timestamp("2024-03-11")).to_csv(index=False).encode())
    store.put("2024-03-18.parquet", b"not parquet at all")
    # Dropped by another tool: the store itself would refuse such a key.
    store.client.put_object(Bucket=bucket, Key="incoming/week 4.parquet", Body=b"x")
    store.put("feedback/2024-03-04.parquet", _parquet(good[["row_id", "label"]]))

    listing = batch_io.scan_batches(store)
    assert listing.ids == ["2024-03-04", "2024-03-11", "2024-03-18"]
    assert "week 4.parquet" in listing.refused
    assert batch_io.list_feedback(store) == ["2024-03-04"]

    verdicts = {b: check_batch(store, b, SCHEMA) for b in listing.ids}
    assert verdicts["2024-03-04"].ok and verdicts["2024-03-11"].ok
    bad = verdicts["2024-03-18"]
    assert not bad.ok and "not a parquet file" in bad.message()
    moved = batch_io.quarantine(store, bad.key, bad.reason())
    assert batch_io.list_batches(store) == ["2024-03-04", "2024-03-11"]
    assert store.get(moved) == b"not parquet at all"
    assert [r["batch_id"] for r in batch_io.quarantined(store)] == ["2024-03-18"]

    md5 = verdicts["2024-03-04"].md5
    assert md5 is not None
    frame = batch_io.read_validated_batch(store, "2024-03-04", md5, SCHEMA)
    assert frame["label"].tolist() == good["label"].tolist()
    store.put("2024-03-04.parquet", _parquet(good.assign(label=1 - good["label"])))
    with pytest.raises(batch_io.BatchChanged):
        batch_io.read_validated_batch(store, "2024-03-04", md5, SCHEMA)
    with pytest.raises(batch_io.InvalidBatchId):
        check_batch(store, "../incoming/2024-03-04", SCHEMA)
