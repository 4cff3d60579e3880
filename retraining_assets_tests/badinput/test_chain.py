"""The real chain with bad files present: every one refused clearly, production untouched.

One Dagster history: six good batches (one of them CSV) give a first model; then the corpus's bad
files arrive (unreadable, linked, wrong types, inf, 1e308, 1900/2200, duplicates, bad late labels,
a copy named to sort last, a file replaced after validation, unsafe partition keys, a
``_schema.json`` with relaxed rules among the batches). Each ``raw_batches`` run fails with its
case's message and quarantines the file; the next retraining runs on the good batches only,
chooses the same window, trains the same model, and the gate leaves production byte-for-byte as
it was.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from retraining_assets.core import batches as batch_io
from retraining_assets.defs.assets import raw_batches
from retraining_assets.defs.monitoring import batch_drift, batch_performance
from retraining_assets_tests.badinput.corpus import CASES, clean, schema_override_file
from retraining_assets_tests.dagster.helpers import (
    RESOURCES,
    ingest,
    latest_metadata,
    production_versions,
    run_chain,
    served,
    served_bytes,
    write_batches,
)

pytestmark = pytest.mark.slow

CHAIN_CASES = [
    "empty_parquet",
    "truncated_parquet",
    "csv_renamed_parquet",
    "symlink_etc_passwd",
    "garbage_between_magic",
    "csv_header_only",
    "csv_bad_timestamps",
    "missing_feature",
    "numbers_as_strings",
    "timestamp_as_text",
    "nan_only_label",
    "plus_inf",
    "huge_1e308",
    "all_inf",
    "out_of_range",
    "timestamps_1900",
    "timestamps_2200",
    "previous_week",
    "duplicate_ids",
    "duplicated_rows_new_ids",
    "feedback_empty",
    "feedback_symlink",
    "feedback_label_three",
]
BY_NAME = {case.name: case for case in CASES}


def _failures(instance: dg.DagsterInstance, run_id: str) -> str:
    text = []
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        data = record.dagster_event.step_failure_data  # type: ignore[union-attr]
        user = data.user_failure_data
        text.append(user.description if user and user.description else data.error.message)
    return " | ".join(text)


def test_bad_inputs_never_reach_the_model(project, tmp_path: Path) -> None:
    started = time.perf_counter()
    good = write_batches(project, n_batches=6, rows=500, seed=11)
    csv_batch = good[2]
    frame = pd.read_parquet(project.batches / f"{csv_batch}.parquet")
    (project.batches / f"{csv_batch}.parquet").unlink()
    frame.to_csv(project.batches / f"{csv_batch}.csv", index=False)  # CSV works end to end

    with dg.instance_for_test() as instance:
        assert ingest(instance, good) == dict.fromkeys(good, True)
        first = run_chain(instance)
        assert first.success
        first_md = latest_metadata(instance, "training_dataset")
        assert csv_batch in first_md["train_batches"]
        assert latest_metadata(instance, "production_model")["model_version"] == 1
        production = production_versions()
        serving = served()
        model = served_bytes(serving)
        assert serving["version"] == 1

        # --- the bad files arrive -----------------------------------------------------------
        schema_override_file(project.batches)  # must change nothing
        bad_ids = {}
        for index, name in enumerate(CHAIN_CASES):
            batch_id = f"2024-03-04_{name}"
            BY_NAME[name].write(project.batches, batch_id, clean(first_row_id=50_000 * (index + 1)))
            bad_ids[batch_id] = BY_NAME[name]
        copy = "zz-final"  # a copy of week 2 named to sort last (same ids, same rows)
        shutil.copyfile(project.batches / f"{good[1]}.parquet", project.batches / f"{copy}.parquet")
        replaced = "2024-03-04_replaced"
        clean(first_row_id=9_000_000).to_parquet(
            project.batches / f"{replaced}.parquet", index=False
        )
        outside_before = sorted(p.name for p in tmp_path.iterdir())

        outcome = ingest(instance, [*bad_ids, copy, replaced])
        feedback_cases = {b for b, c in bad_ids.items() if c.kind == "feedback"}
        assert outcome == {
            **{b: b in feedback_cases for b in bad_ids},  # unlabelled batches pass ingestion
            copy: True,
            replaced: True,
        }
        runs = {r.tags.get("dagster/partition"): r.run_id for r in instance.get_runs()}
        for batch_id, case in bad_ids.items():
            if case.kind == "feedback":
                continue
            message = _failures(instance, runs[batch_id])
            assert f"batch {batch_id} rejected and quarantined" in message, message
            assert re.search(case.expect, message), (case.name, message)
            assert "Traceback" not in message
        # Quarantined with a reason each; the folder's readable set holds no bad file.
        reasons = {r["batch_id"]: r for r in batch_io.quarantined(project.batches)}
        rejected = {b for b, c in bad_ids.items() if c.kind == "batch"}
        assert set(reasons) == rejected
        for batch_id in rejected:
            record = reasons[batch_id]
            assert record["reason"] and record["quarantined_as"].startswith("_quarantine/")
            assert record.get("failed_expectations") or record.get("error")
        assert set(batch_io.list_batches(project.batches)) == {
            *good,
            *feedback_cases,
            copy,
            replaced,
        }

        # Unsafe partition keys: a clear failure, nothing read or written outside the store.
        for key in ("../../x", "/abs/path"):
            instance.add_dynamic_partitions("batches", [key])
            result = dg.materialize(
                [raw_batches, batch_drift, batch_performance],
                instance=instance,
                partition_key=key,
                resources=RESOURCES,
                raise_on_error=False,
            )
            assert not result.success
            assert "invalid batch id" in _failures(instance, result.run_id)
        assert sorted(p.name for p in tmp_path.iterdir()) == outside_before

        # A validated file replaced afterwards is refused by training.
        frame = pd.read_parquet(project.batches / f"{replaced}.parquet")
        frame.assign(label=1 - frame["label"]).to_parquet(
            project.batches / f"{replaced}.parquet", index=False
        )

        # --- the next retraining ---------------------------------------------------------------
        second = run_chain(instance)
        assert second.success
        md = latest_metadata(instance, "training_dataset")
        assert (md["train_batches"], md["test_batches"]) == (
            first_md["train_batches"],
            first_md["test_batches"],
        )
        assert md["dvc/md5"] == first_md["dvc/md5"]
        refused = str(md["excluded_refused_batches"])
        assert f"{replaced}: " in refused and "changed since it passed validation" in refused
        assert f"{copy}: " in refused and "already in batch" in refused
        for batch_id in feedback_cases:
            assert f"{batch_id}: feedback feedback/{batch_id}.parquet quarantined" in refused
        assert all(b in md["excluded_rejected_batches"] for b in rejected)
        report = latest_metadata(instance, "evaluation_report")
        assert report["verdict"] == "reject"
        # Production byte-for-byte as it was: same version objects, same serving model.
        assert production_versions() == production
        assert served() == serving and served_bytes(served()) == model
    print(
        f"\n{len(CHAIN_CASES) + 4} bad inputs through the chain in "
        f"{time.perf_counter() - started:.0f} s"
    )
