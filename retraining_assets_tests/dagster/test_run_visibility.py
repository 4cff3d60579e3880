"""What a Dagster user sees of a cycle: code version, checks on the right materialization, the
gate's verdict on the run, tagged MLflow versions, the model card and links both ways."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from retraining_assets.cli import lineage_text
from retraining_assets.code_version import code_commit
from retraining_assets.defs.constants import GATE_TAG, VALIDATION_GROUPS
from retraining_assets.defs.resources import MlflowResource
from retraining_assets_tests.dagster.helpers import (
    ingest,
    latest_metadata,
    run_chain,
    write_batches,
)

pytestmark = pytest.mark.slow

WEAK = {"num_boost_round": 2, "num_leaves": 2, "learning_rate": 0.05, "early_stopping_rounds": 1}


def _check_target(instance: dg.DagsterInstance, check: str, asset: str) -> tuple[str, int]:
    """(run id, storage id) of the materialization the latest execution of ``check`` targeted."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey(asset), check), limit=1
    )
    assert records, check
    evaluation = records[0].event.dagster_event.event_specific_data  # type: ignore[union-attr]
    target = evaluation.target_materialization_data  # type: ignore[union-attr]
    assert target is not None, check
    return target.run_id, target.storage_id


def test_cycle_is_visible_to_a_dagster_user(project, monkeypatch) -> None:
    monkeypatch.setenv("RETRAINING_DAGSTER_UI_URL", "http://dagster.example:8080/")
    batch_ids = write_batches(project)
    client = MlflowResource().client()
    with dg.instance_for_test() as instance:
        assert all(ingest(instance, batch_ids).values())
        for attempt, model in enumerate((None, WEAK)):
            result = run_chain(instance, model=model)
            assert result.success
            # Each GE check result points at the validated_dataset materialization of its own run.
            mat = instance.fetch_materializations(dg.AssetKey("validated_dataset"), limit=1)
            (record,) = mat.records
            assert record.run_id == result.run_id
            for group in VALIDATION_GROUPS:
                target = _check_target(instance, f"ge_{group}", "validated_dataset")
                assert target == (result.run_id, record.storage_id), (attempt, group)

            # Code version and commit on every materialization of the run.
            for event in result.get_asset_materialization_events():
                md = event.materialization.metadata
                assert md["code/version"].value not in ("", "none"), event.asset_key
                assert md["code/commit"].value == code_commit(), event.asset_key

        # First run: promoted. The verdict is on the run, the version has its card.
        runs = {r.run_id: r for r in instance.get_runs()}
        prod_md = latest_metadata(instance, "production_model")
        promoted_run = runs[prod_md["lineage/dagster_run_id"]]
        assert promoted_run.tags[GATE_TAG] == "promote"
        assert "# Model card: production v1" in prod_md["model_card"]
        card = prod_md["model_card/json"]
        assert card["version"] == 1 and card["data"]["dataset_md5"] == prod_md["dvc/dataset_md5"]
        assert card["code"]["commit"] == code_commit()
        assert set(card["code"]["versions"]) >= {"candidate_model", "production_model"}
        assert prod_md["code/version"] == card["code"]["versions"]["production_model"]

        run = client.get_run(prod_md["mlflow/run_id"])
        assert run.data.tags["code/commit"] == code_commit()
        assert run.data.tags["code/version"] == card["code"]["versions"]["candidate_model"]
        assert run.data.tags["dagster/run_url"] == (
            f"http://dagster.example:8080/runs/{promoted_run.run_id}"
        )
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "model_card")}
        assert artifacts == {"model_card/model_card.md", "model_card/model_card.json"}
        path = client.download_artifacts(run.info.run_id, "model_card/model_card.json")
        logged = json.loads(Path(path).read_text())
        assert logged == card
        lineage = lineage_text(1)
        assert f"code commit:   {code_commit()}" in lineage
        assert f"candidate_model {card['code']['versions']['candidate_model']}" in lineage
        champion = client.get_model_version_by_alias("retraining_model", "champion")
        assert champion.tags["gate"] == "production v1"

        # Second run: rejected. The run says so, the check warns, the MLflow version is tagged.
        report = latest_metadata(instance, "evaluation_report")
        assert report["verdict"] == "reject"
        rejected_run = runs[result.run_id]
        assert rejected_run.tags[GATE_TAG] == "reject"
        gate = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("evaluation_report"), "gate_passed"), limit=1
        )[0]
        evaluation = gate.event.dagster_event.event_specific_data  # type: ignore[union-attr]
        assert evaluation.passed is False  # type: ignore[union-attr]
        assert evaluation.severity == dg.AssetCheckSeverity.WARN  # type: ignore[union-attr]
        rejected_run_id = report["mlflow/run_id"]
        (version,) = client.search_model_versions(f"run_id = '{rejected_run_id}'")
        assert version.tags["gate"] == "rejected"
        assert "Rejected by the gate" in version.description and "FAIL AUC" in version.description
