"""The whole chain through Dagster on real components: GE, LightGBM, MLflow (SQLite), DVC."""

from __future__ import annotations

import hashlib
import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from retraining_assets.core.versioning import DvcStore, file_md5
from retraining_assets.defs.resources import MlflowResource
from retraining_assets_tests.dagster.helpers import (
    ingest,
    latest_metadata,
    production_store,
    production_versions,
    run_chain,
    served,
    served_bytes,
    write_batches,
)

pytestmark = pytest.mark.slow

# A deliberately weak model: two shallow trees.
WEAK = {"num_boost_round": 2, "num_leaves": 2, "learning_rate": 0.05, "early_stopping_rounds": 1}


def test_full_cycle_promotes_first_model_with_lineage(project) -> None:
    batch_ids = write_batches(project)
    with dg.instance_for_test() as instance:
        assert all(ingest(instance, batch_ids).values())
        result = run_chain(instance)
        assert result.success

        data_md = latest_metadata(instance, "training_dataset")
        model_md = latest_metadata(instance, "candidate_model")
        prod_md = latest_metadata(instance, "production_model")
        report_md = latest_metadata(instance, "evaluation_report")

        # Data versions are the DVC md5s.
        for key, md in (("training_dataset", data_md), ("candidate_model", model_md)):
            event = instance.get_latest_materialization_event(dg.AssetKey(key))
            tags = event.asset_materialization.tags  # type: ignore[union-attr]
            assert tags["dagster/data_version"] == md["dvc/md5"]
        assert model_md["dvc/dataset_md5"] == data_md["dvc/md5"]
        assert prod_md["model_version"] == 1
        assert prod_md["dvc/md5"] == model_md["dvc/md5"]
        assert prod_md["dvc/dataset_md5"] == data_md["dvc/md5"]
        assert prod_md["mlflow/run_id"] == model_md["mlflow/run_id"]
        assert report_md["verdict"] == "promote"
        assert report_md["auc"] > 0.7
        assert 0 < report_md["p95_latency_ms"] < 100
        assert np.isnan(report_md["production_auc"])
        assert data_md["test_batches"] == batch_ids[-1]

    # The served bytes are the candidate's bytes, named by one immutable version object.
    pointer = served()
    model = served_bytes(pointer)
    assert hashlib.md5(model).hexdigest() == model_md["dvc/md5"] == pointer["model_md5"]
    assert model.startswith(b"tree")
    assert list(production_versions()) == ["versions/000001.json"]
    assert (project.production / "versions" / "000001.json").is_file()  # embedded default folder

    # MLflow: one run with the data version, params, metrics, a registered version aliased champion.
    client = MlflowResource().client()
    run = client.get_run(model_md["mlflow/run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["data_version"] == data_md["dvc/md5"]
    assert run.data.params["num_threads"] == "1"
    assert {"training_seconds", "test_auc", "p95_latency_ms", "baseline_auc"} <= set(
        run.data.metrics
    )
    assert run.data.tags["promotion"] == "production v1"
    champion = client.get_model_version_by_alias("retraining_model", "champion")
    assert champion.run_id == run.info.run_id

    # DVC: the training data of the production model is restorable, byte for byte, by its md5.
    store = DvcStore(project.home / "store")
    restored = store.restore(data_md["dvc/md5"], project.home / "restored.parquet")
    assert file_md5(restored) == data_md["dvc/md5"]
    remote_copy = project.home / "dvc-remote" / "files" / "md5" / data_md["dvc/md5"][:2]
    assert (remote_copy / data_md["dvc/md5"][2:]).exists()


def test_gate_rejects_worse_and_promotes_better(project) -> None:
    batch_ids = write_batches(project)
    with dg.instance_for_test() as instance:
        ingest(instance, batch_ids)
        # v1: a weak model still beats the constant baseline.
        assert run_chain(instance, model=WEAK).success
        v1 = served()
        v1_model = served_bytes(v1)

        # A strong model beats it: promoted as v2.
        assert run_chain(instance).success
        v2 = served()
        assert v2["version"] == 2
        assert latest_metadata(instance, "evaluation_report")["verdict"] == "promote"

        # The weak model again is worse than v2: rejected, production byte-for-byte unchanged.
        v2_versions = production_versions()
        v2_model = served_bytes(v2)
        result = run_chain(instance, model=WEAK)
        assert result.success  # a rejection is a normal outcome, not a failed run
        report = latest_metadata(instance, "evaluation_report")
        assert report["verdict"] == "reject"
        assert "FAIL AUC" in report["reasons"]
        assert report["production_auc"] > report["auc"]
        assert served() == v2
        assert served_bytes(v2) == v2_model
        assert production_versions() == v2_versions
        assert v1_model != v2_model and v1 != v2
        # No new production materialization; an observation says why.
        assert latest_metadata(instance, "production_model")["model_version"] == 2
        mats = result.get_asset_materialization_events()
        assert dg.AssetKey("production_model") not in {m.asset_key for m in mats}
        observations = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
        assert observations and "FAIL AUC" in str(
            observations[-1].event_specific_data.asset_observation.metadata["reasons"].value  # type: ignore[union-attr]
        )


def test_latency_ceiling_rejects(project) -> None:
    batch_ids = write_batches(project, n_batches=4)
    with dg.instance_for_test() as instance:
        ingest(instance, batch_ids)
        result = run_chain(instance, gate={"max_p95_latency_ms": 0.0001})
        assert result.success
        report = latest_metadata(instance, "evaluation_report")
        assert report["verdict"] == "reject"
        assert "FAIL p95 latency" in report["reasons"]
        assert production_versions() == {}


def test_bad_batches_rejected_at_ingest_with_clear_message(project) -> None:
    batch_ids = write_batches(project, n_batches=5)
    nan_label = batch_ids[2]
    frame = pd.read_parquet(project.batches / f"{nan_label}.parquet")
    frame.loc[frame.index[:25], "label"] = np.nan
    frame.to_parquet(project.batches / f"{nan_label}.parquet", index=False)
    bad_bytes = (project.batches / f"{nan_label}.parquet").read_bytes()
    no_col = batch_ids[3]
    frame = pd.read_parquet(project.batches / f"{no_col}.parquet").drop(columns=["x1"])
    frame.to_parquet(project.batches / f"{no_col}.parquet", index=False)

    with dg.instance_for_test() as instance:
        outcome = ingest(instance, batch_ids)
        assert outcome == {b: b not in (nan_label, no_col) for b in batch_ids}
        failures = _failure_messages(instance)
        assert any("label" in m and "25" in m and nan_label in m for m in failures), failures
        assert any("x1" in m and no_col in m for m in failures), failures

        # The rejected batches are left out of the training window; the cycle still works.
        assert run_chain(instance).success
        md = latest_metadata(instance, "training_dataset")
        assert nan_label not in md["train_batches"] and no_col not in md["train_batches"]
        assert nan_label in md["excluded_rejected_batches"]
    # Nothing is lost: the bad files are moved aside, untouched, with the reason, to be fixed;
    # they are out of the batch folder's listing, so training never reads them again.
    assert not (project.batches / f"{nan_label}.parquet").exists()
    kept = list((project.batches / "_quarantine").glob(f"{nan_label}.*.parquet"))
    assert len(kept) == 1 and kept[0].read_bytes() == bad_bytes
    reason = json.loads(
        next((project.batches / "_quarantine").glob(f"{nan_label}.*.reason.json")).read_text()
    )
    assert reason["batch_id"] == nan_label and "label" in reason["reason"]


def _failure_messages(instance: dg.DagsterInstance) -> list[str]:
    messages = []
    for run in instance.get_runs():
        for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
            error = record.dagster_event.step_failure_data.error  # type: ignore[union-attr]
            messages.append(
                f"{error.message} {record.dagster_event.step_failure_data.user_failure_data}"
            )  # type: ignore[union-attr]
    return messages


def test_unvalidated_data_never_reaches_training(project) -> None:
    """A batch file overwritten after ingestion is refused by training_dataset (md5 changed).

    Training reads only the bytes that passed ``raw_batches``: the replaced file is left out with
    a clear reason, the window is chosen again without it, and the cycle still runs.
    """
    batch_ids = write_batches(project, n_batches=5)
    with dg.instance_for_test() as instance:
        ingest(instance, batch_ids)
        bad = batch_ids[1]
        frame = pd.read_parquet(project.batches / f"{bad}.parquet")
        frame.loc[frame.index[:10], "label"] = 2
        frame.to_parquet(project.batches / f"{bad}.parquet", index=False)

        result = run_chain(instance, raise_on_error=False)
        assert result.success
        md = latest_metadata(instance, "training_dataset")
        assert bad not in md["train_batches"] and bad not in md["test_batches"]
        refused = str(md["excluded_refused_batches"])
        assert bad in refused and "changed since it passed validation" in refused
        checks = {
            e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        }
        assert checks["ge_label"] is True and all(checks.values())
        dataset = pd.read_parquet(md["dvc/path"])
        assert set(dataset["label"].unique()) == {0, 1}
        assert bad not in set(dataset["__batch__"])


def test_rollback_job_restores_exact_bytes_and_lineage_cli(project, capsys, monkeypatch) -> None:
    from retraining_assets.cli import main
    from retraining_assets.definitions import defs
    from retraining_assets_tests.alert_sink import http_sink
    from retraining_assets_tests.dagster.helpers import RESOURCES

    batch_ids = write_batches(project)
    with dg.instance_for_test() as instance, http_sink() as sink:
        # The project's own alert resource, configured by the environment only.
        monkeypatch.setenv("RETRAINING_ALERT_WEBHOOK", sink.url)
        ingest(instance, batch_ids)
        assert run_chain(instance, model=WEAK).success
        assert run_chain(instance).success
        v1 = json.loads(production_store().record(1).to_json())
        v1_bytes = served_bytes(v1)

        job = defs.resolve_job_def("rollback_job")
        result = job.execute_in_process(
            instance=instance,
            resources=RESOURCES,
            run_config={"ops": {"rollback_production": {"config": {"reason": "v2 misbehaves"}}}},
        )
        assert result.success
        now = served()
        assert now["version"] == 3 and now["action"] == "rollback"
        assert served_bytes(now) == v1_bytes
        md = latest_metadata(instance, "production_model")
        assert md["action"] == "rollback" and md["reason"] == "v2 misbehaves"
        assert md["rollback/restores_version"] == 1 and md["model_version"] == 3
        assert md["dvc/dataset_md5"] == v1["dataset_md5"]
        champion = (
            MlflowResource().client().get_model_version_by_alias("retraining_model", "champion")
        )
        assert str(champion.version) == v1["registered_version"]
        # The rollback is alerted once, with the versions and the reason.
        assert sink.kinds() == ["rollback"]
        assert "v3" in sink.bodies[0]["text"] and "v1" in sink.bodies[0]["text"]
        assert "v2 misbehaves" in str(sink.bodies[0])

        # A refused rollback (unknown version) fails clearly and changes nothing.
        before = production_versions()
        bad = job.execute_in_process(
            instance=instance,
            resources=RESOURCES,
            raise_on_error=False,
            run_config={"ops": {"rollback_production": {"config": {"to_version": 42}}}},
        )
        assert not bad.success and production_versions() == before
        # Version 0 used to mean "the previous one" silently: now it is refused.
        zero = job.execute_in_process(
            instance=instance,
            resources=RESOURCES,
            raise_on_error=False,
            run_config={"ops": {"rollback_production": {"config": {"to_version": 0}}}},
        )
        assert not zero.success and production_versions() == before
        failure = next(e for e in zero.all_events if e.event_type_value == "STEP_FAILURE")
        assert "invalid production version 0" in str(
            failure.event_specific_data.user_failure_data.description  # type: ignore[union-attr]
        )
        # The target's bytes edited in the store: refused before anything changes.
        v2 = json.loads(production_store().record(2).to_json())
        (project.production / v2["model_file"]).write_bytes(b"tree\nedited by hand\n")
        edited = job.execute_in_process(
            instance=instance,
            resources=RESOURCES,
            raise_on_error=False,
            run_config={"ops": {"rollback_production": {"config": {"to_version": 2}}}},
        )
        assert not edited.success and production_versions() == before
        failure = next(e for e in edited.all_events if e.event_type_value == "STEP_FAILURE")
        assert "model bytes of v2 are missing or changed" in str(
            failure.event_specific_data.user_failure_data.description  # type: ignore[union-attr]
        )
        # The serving champion edited in the store: the gate refuses to score it.
        (project.production / v1["model_file"]).write_bytes(b"tree\nedited champion\n")
        gate = run_chain(instance, raise_on_error=False)
        assert not gate.success and production_versions() == before
        failure = next(e for e in gate.all_events if e.event_type_value == "STEP_FAILURE")
        assert failure.step_key == "evaluation_report"
        assert "model bytes of v3 are missing or changed" in str(
            failure.event_specific_data.user_failure_data.description  # type: ignore[union-attr]
        )

    # The lineage of v1 names its data and how to restore it; restoring gives identical bytes.
    assert main(["show-lineage", "1"]) == 0
    text = capsys.readouterr().out
    assert f"training data: DVC md5 {v1['dataset_md5']}" in text
    assert "strategy:      rolling" in text and v1["mlflow_run_id"] in text
    out = project.home / "restored.parquet"
    assert main(["restore-data", v1["dataset_md5"], "--out", str(out)]) == 0
    assert file_md5(out) == v1["dataset_md5"]


def test_raw_batches_shares_passing_validations_through_its_cache(
    project, tmp_path, suite_runs
) -> None:
    """Replay policies ingest identical copies: the suite runs once; a bad batch is never cached."""
    from retraining_assets.defs.assets import raw_batches
    from retraining_assets_tests.dagster.helpers import RESOURCES

    runs = suite_runs
    good, bad = write_batches(project, n_batches=2, rows=300)
    frame = pd.read_parquet(project.batches / f"{bad}.parquet")
    frame.loc[frame.index[:10], "label"] = 2
    frame.to_parquet(project.batches / f"{bad}.parquet", index=False)
    cache = tmp_path / "validation-cache"
    config = {"ops": {"raw_batches": {"config": {"validation_cache": str(cache)}}}}

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("batches", [good, bad])

        def materialize(batch_id: str) -> bool:
            return dg.materialize(
                [raw_batches],
                instance=instance,
                partition_key=batch_id,
                resources=RESOURCES,
                run_config=config,
                raise_on_error=False,
            ).success

        assert materialize(good) and materialize(good)
        assert runs == [300]
        assert not materialize(bad)
        assert len(runs) == 2 and len(list(cache.glob("*.json"))) == 1
