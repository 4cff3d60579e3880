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


def test_feedback_under_an_s3_prefix_is_sensed_once_and_again_when_rewritten(
    s3_env: str, tmp_path: Path
) -> None:
    import dagster as dg

    from retraining_assets.defs.sensors import new_batch_sensor

    bucket = f"feedback{abs(hash(str(tmp_path))) % 10**9}"
    source = BatchSourceResource(directory=f"s3://{bucket}/incoming", dataset="synthetic")
    store = source.store()
    store.client.create_bucket(Bucket=bucket)
    good = clean()
    store.put("2024-03-04.parquet", _parquet(good.drop(columns=["label"])))

    def tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"batch_source": source}
        )
        result = new_batch_sensor(context)
        assert isinstance(result, dg.SensorResult)
        return result

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("batches", ["2024-03-04"])
        quiet = tick(instance, None)
        assert not quiet.run_requests
        store.put("feedback/2024-03-04.parquet", _parquet(good[["row_id", "label"]]))
        fed = tick(instance, quiet.cursor)
        assert [(r.job_name, r.partition_key) for r in fed.run_requests] == [
            ("performance_job", "2024-03-04")
        ]
        assert not tick(instance, fed.cursor).run_requests
        # Corrected labels replace the file: measured again (new ETag and size).
        fixed = good[["row_id", "label"]].assign(label=1 - good["label"]).head(len(good) - 1)
        store.put("feedback/2024-03-04.parquet", _parquet(fixed))
        again = tick(instance, fed.cursor)
        assert [r.partition_key for r in again.run_requests] == ["2024-03-04"]
        assert again.run_requests[0].run_key != fed.run_requests[0].run_key
