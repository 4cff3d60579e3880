"""The JSON IO manager in real runs: per-run objects, no pickle read, lineage under concurrency."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from retraining_assets.definitions import defs
from retraining_assets.defs.assets import production_model
from retraining_assets.defs.io import StateJsonIOManager
from retraining_assets.defs.resources import ProductionResource
from retraining_assets_tests.dagster.helpers import (
    CHAIN,
    RESOURCES,
    ingest,
    latest_metadata,
    run_chain,
    write_batches,
)

UP_TO_REPORT = [a for a in CHAIN if a.key != production_model.key]
GATE = {"latency_calls": 50}


def test_every_asset_uses_the_json_io_manager() -> None:
    assert isinstance((defs.resources or {})["io_manager"], StateJsonIOManager)
    for assets in defs.assets or []:
        assert isinstance(assets, dg.AssetsDefinition)
        for key in assets.keys:
            assert assets.get_io_manager_key_for_asset_key(key) == "io_manager"


def test_package_never_pickles() -> None:
    """No module of the package pickles or unpickles, or lets numpy do it."""
    package = Path(__file__).resolve().parents[2] / "retraining_assets"
    forbidden = re.compile(
        r"\bimport (pickle|cloudpickle|dill|joblib|shelve)\b|\bpickle\.|allow_pickle=True"
        r"|fs_io_manager|FilesystemIOManager|PickledObject"
    )
    offenders = [
        f"{path.relative_to(package)}:{n}"
        for path in package.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if forbidden.search(line)
    ]
    assert offenders == []


class _Planted:
    """Unpickling this creates ``marker``: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _plant_pickles(instance: dg.DagsterInstance, marker: Path) -> list[Path]:
    storage = Path(instance.storage_directory())
    planted = []
    for asset in CHAIN:
        path = storage.joinpath(*asset.key.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(_Planted(marker)))
        planted.append(path)
    return planted


@pytest.mark.slow
def test_outputs_are_per_run_json_and_a_planted_pickle_is_never_read(project, tmp_path) -> None:
    batch_ids = write_batches(project, n_batches=5, rows=600)
    marker = tmp_path / "pickle_was_executed"
    with dg.instance_for_test() as instance:
        assert all(ingest(instance, batch_ids).values())
        # Pickles where the default IO manager kept (and loaded) every asset's single output.
        _plant_pickles(instance, marker)
        first = dg.materialize(
            UP_TO_REPORT,
            instance=instance,
            resources=RESOURCES,
            run_config={"ops": {"evaluation_report": {"config": GATE}}},
        )
        assert first.success
        run_id = first.run_id
        for asset in UP_TO_REPORT:
            md = latest_metadata(instance, asset.key.to_user_string())
            key = f"io/{asset.key.to_user_string()}/_/{run_id}.json"
            assert md["io/key"] == key
            envelope = json.loads((project.home / key).read_text())
            assert envelope["type"] == md["io/type"]
            assert envelope["sha256"] == md["io/sha256"]

        # production_model alone: its inputs are not in this run, so they come from the latest
        # materializations' JSON, never from the planted pickles.
        second = dg.materialize(
            CHAIN, selection=[production_model], instance=instance, resources=RESOURCES
        )
        assert second.success
        loaded = [
            e.event_specific_data.metadata
            for e in second.all_events
            if e.event_type == dg.DagsterEventType.LOADED_INPUT
        ]
        assert {md["io/source_run_id"].value for md in loaded} == {run_id}
        prod = latest_metadata(instance, "production_model")
        cand = latest_metadata(instance, "candidate_model")
        assert prod["mlflow/run_id"] == cand["mlflow/run_id"]
        assert prod["lineage/dagster_run_id"] == second.run_id
        assert prod["io/key"] == f"io/production_model/_/{second.run_id}.json"
    assert not marker.exists()


@pytest.mark.slow
def test_tampered_or_truncated_output_fails_clearly_and_leaves_production(
    project, tmp_path
) -> None:
    batch_ids = write_batches(project, n_batches=5, rows=600)
    with dg.instance_for_test() as instance:
        assert all(ingest(instance, batch_ids).values())
        first = dg.materialize(
            UP_TO_REPORT,
            instance=instance,
            resources=RESOURCES,
            run_config={"ops": {"evaluation_report": {"config": GATE}}},
        )
        assert first.success
        key = f"io/evaluation_report/_/{first.run_id}.json"
        stored = project.home / key
        original = stored.read_bytes()
        envelope = json.loads(original)
        envelope["payload"]["promote"] = not envelope["payload"]["promote"]
        cases = {
            "tampered": (json.dumps(envelope).encode(), "fails its sha256 check"),
            "truncated": (original[: len(original) // 3], "is not valid JSON"),
            "pickled": (pickle.dumps(_Planted(tmp_path / "x")), "is not valid JSON"),
        }
        for what, (data, why) in cases.items():
            stored.write_bytes(data)
            result = dg.materialize(
                CHAIN,
                selection=[production_model],
                instance=instance,
                resources=RESOURCES,
                raise_on_error=False,
            )
            assert not result.success, what
            failure = next(
                e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE
            )
            data_ = failure.step_failure_data
            message = data_.user_failure_data.description if data_.user_failure_data else ""
            assert key in message and why in message, (what, message)
            assert ProductionResource().store().current() is None, what
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_two_concurrent_runs_each_use_their_own_outputs(project, tmp_path) -> None:
    """Run B's training_dataset is written between run A's steps; each keeps its own lineage.

    With one object per asset shared by all runs (Dagster's default), A's validated_dataset read
    B's dataset here and A promoted a model under the wrong run.
    """
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    batch_ids = write_batches(project, n_batches=6, rows=600)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert all(ingest(instance, batch_ids).values())

    def start(role: str, window: int, *extra: str) -> subprocess.Popen:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "retraining_assets_tests.dagster.chain_process",
                role,
                str(window),
                *extra,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    a = start("a", 4, "--wait-for-other")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        deadline = time.monotonic() + 300
        while not _runs_of(instance, "a", "training_dataset"):
            assert a.poll() is None, a.communicate()[0]
            assert time.monotonic() < deadline, "run A never materialized training_dataset"
            time.sleep(0.2)
        b = start("b", 3)
        outputs = {role: proc.communicate(timeout=600)[0] for role, proc in (("a", a), ("b", b))}

        lineage = {role: _lineage(instance, role) for role in ("a", "b")}
    for role, found in lineage.items():
        # Every input of every step was read from the run's own objects.
        assert found["loaded_from"] == {found["run_id"]}, (role, outputs[role])
        assert found["validated_md5"] == found["training_md5"], role
        assert found["candidate_dataset_md5"] == found["training_md5"], role
        if "report_mlflow_run_id" in found:
            assert found["report_mlflow_run_id"] == found["candidate_mlflow_run_id"], role
    assert lineage["a"]["training_md5"] != lineage["b"]["training_md5"]
    # B's dataset really was written between A's training_dataset and validated_dataset steps.
    assert lineage["a"]["training_at"] < lineage["b"]["training_at"] < lineage["a"]["validated_at"]

    history = ProductionResource().store().history()
    assert history, outputs
    promoted_by = {h.extra["dagster_run_id"]: h for h in history}
    for role, found in lineage.items():
        record = promoted_by.get(found["run_id"])
        if record is not None:
            assert record.mlflow_run_id == found["candidate_mlflow_run_id"], role
            assert record.model_md5 == found["candidate_md5"], role
            assert record.dataset_md5 == found["training_md5"], role
        else:  # gated: rejected, or production moved while it was evaluating
            moved = re.search(r"production (changed|moved)", outputs[role])
            assert moved or found.get("report_verdict") == "reject", outputs[role]


def _runs_of(instance: dg.DagsterInstance, role: str, asset: str) -> list:
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"test/role": role}))
    if not runs:
        return []
    return [
        r
        for r in instance.fetch_materializations(dg.AssetKey(asset), limit=20).records
        if r.run_id == runs[0].run_id
    ]


def _lineage(instance: dg.DagsterInstance, role: str) -> dict:
    (run,) = instance.get_runs(filters=dg.RunsFilter(tags={"test/role": role}))
    found: dict = {"run_id": run.run_id, "loaded_from": set()}
    for entry in instance.all_logs(run.run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.LOADED_INPUT:
            found["loaded_from"].add(event.event_specific_data.metadata["io/source_run_id"].value)
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            mat = event.event_specific_data.materialization
            md = {k: v.value for k, v in mat.metadata.items()}
            name = mat.asset_key.to_user_string()
            if name == "training_dataset":
                found |= {"training_md5": md["dvc/md5"], "training_at": entry.timestamp}
            elif name == "validated_dataset":
                found |= {"validated_md5": md["dvc/md5"], "validated_at": entry.timestamp}
            elif name == "candidate_model":
                found |= {
                    "candidate_md5": md["dvc/md5"],
                    "candidate_dataset_md5": md["dvc/dataset_md5"],
                    "candidate_mlflow_run_id": md["mlflow/run_id"],
                }
            elif name == "evaluation_report":
                found |= {
                    "report_mlflow_run_id": md["mlflow/run_id"],
                    "report_verdict": md["verdict"],
                }
    return found


@pytest.mark.slow
def test_outputs_live_on_s3_when_the_state_is_there(project, s3_env, monkeypatch) -> None:
    import boto3

    boto3.client("s3").create_bucket(Bucket="io-state")
    monkeypatch.setenv("RETRAINING_STATE_URL", "s3://io-state/loop")
    batch_ids = write_batches(project, n_batches=5, rows=600)
    with dg.instance_for_test() as instance:
        assert all(ingest(instance, batch_ids).values())
        result = run_chain(instance, window=3)
        assert result.success
        keys = {
            o["Key"]
            for o in boto3.client("s3").list_objects_v2(Bucket="io-state", Prefix="loop/io/")[
                "Contents"
            ]
        }
        expected = {f"loop/io/{a.key.to_user_string()}/_/{result.run_id}.json" for a in CHAIN}
        # production_model stores a record only when the gate promoted.
        assert expected - keys <= {f"loop/io/production_model/_/{result.run_id}.json"}
        assert not (project.home / "io").exists()
        # A later run of production_model alone reads the report and model back from S3.
        again = dg.materialize(
            CHAIN,
            selection=[production_model],
            instance=instance,
            resources=RESOURCES,
            raise_on_error=False,
        )
        loaded = {
            e.event_specific_data.metadata["io/key"].value
            for e in again.all_events
            if e.event_type == dg.DagsterEventType.LOADED_INPUT
        }
        assert loaded == {
            f"io/evaluation_report/_/{result.run_id}.json",
            f"io/candidate_model/_/{result.run_id}.json",
        }
