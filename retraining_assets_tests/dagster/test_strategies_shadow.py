"""Training-data strategies, the DeLong gate and shadow evaluation, through the real chain."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from retraining_assets.core import synthetic
from retraining_assets.core.training import load_model
from retraining_assets.definitions import defs
from retraining_assets.defs.resources import MlflowResource
from retraining_assets_tests.dagster.helpers import (
    CHAIN,
    RESOURCES,
    ingest,
    latest_metadata,
    monitor,
    production_store,
    production_versions,
    run_chain,
    served,
    write_batches,
    write_frame,
)

pytestmark = pytest.mark.slow

WEAK = {"num_boost_round": 2, "num_leaves": 2, "learning_rate": 0.05, "early_stopping_rounds": 1}


def chain_with(instance, strategy: str, **kw) -> dg.ExecuteInProcessResult:
    config = {"strategy": strategy, "window_batches": 2, **kw}
    return dg.materialize(
        CHAIN,
        instance=instance,
        resources=RESOURCES,
        run_config={
            "ops": {
                "training_dataset": {"config": config},
                "evaluation_report": {"config": {"latency_calls": 50}},
            }
        },
    )


def test_strategies_choose_rows_and_incremental_continues_production(project) -> None:
    batch_ids = write_batches(project, n_batches=6, rows=500, seed=41)
    with dg.instance_for_test() as instance:
        ingest(instance, batch_ids)
        first = batch_ids[3]  # the first three cycles test on batch 3
        assert chain_with(
            instance, "rolling", as_of_batch=first
        ).success  # v1 trained on batches 1-2, tested on 3
        v1 = served()
        assert v1["extra"]["train_batches"] == batch_ids[1:3]

        assert chain_with(instance, "full", as_of_batch=first).success
        md = latest_metadata(instance, "training_dataset")
        assert md["strategy"] == "full" and md["train_batches"] == ", ".join(batch_ids[:3])

        assert chain_with(instance, "weighted", half_life_days=7.0, as_of_batch=first).success
        md = latest_metadata(instance, "training_dataset")
        assert md["strategy"] == "weighted" and md["train_batches"] == ", ".join(batch_ids[:3])

        # Incremental, as of the latest batch: only batches newer than production's training
        # data train, continuing production's booster.
        serving = served()
        result = chain_with(instance, "incremental")
        assert result.success
        data = latest_metadata(instance, "training_dataset")
        trained_through = serving["extra"]["train_batches"][-1]
        assert data["train_batches"] == ", ".join(b for b in batch_ids[:-1] if b > trained_through)
        assert data["continues_production_version"] == serving["version"]
        model_md = latest_metadata(instance, "candidate_model")
        run = MlflowResource().client().get_run(model_md["mlflow/run_id"])
        assert run.data.params["strategy"] == "incremental"
        assert run.data.params["init_from_version"] == str(serving["version"])
        init_trees = int(run.data.params["init_trees"])
        prod = production_store()
        base = prod.booster(prod.record(serving["version"]))
        assert init_trees == base.num_trees()
        candidate = load_model(project.home / "store" / "artifacts" / "candidate_model.txt")
        assert candidate.num_trees() > base.num_trees()
        base_text = base.model_to_string().split("Tree=")[1 : init_trees + 1]
        cand_text = candidate.model_to_string().split("Tree=")[1 : init_trees + 1]
        assert [t.split("\n\n")[0] for t in cand_text] == [t.split("\n\n")[0] for t in base_text]


def test_gate_reports_delong_and_refuses_tiny_test_sets(project) -> None:
    batch_ids = write_batches(project, n_batches=5, rows=600, seed=43)
    with dg.instance_for_test() as instance:
        ingest(instance, batch_ids)
        assert run_chain(instance, model=WEAK).success
        assert run_chain(instance).success
        report = latest_metadata(instance, "evaluation_report")
        assert report["delong/ci_low"] <= report["delong/difference"] <= report["delong/ci_high"]
        assert report["delong/difference"] == pytest.approx(
            report["auc"] - report["production_auc"], abs=1e-9
        )
        assert 0 <= report["delong/p_value"] <= 1 and "positives" in report["delong/summary"]
        before = production_versions()
        assert run_chain(instance, gate={"min_test_positives": 10_000}).success
        report = latest_metadata(instance, "evaluation_report")
        assert report["verdict"] == "reject" and "test set too small" in report["reasons"]
        assert production_versions() == before


def _shadow_setup(project, instance, champion: dict | None, challenger: dict | None) -> None:
    batch_ids = write_batches(project, n_batches=5, rows=700, seed=45)
    ingest(instance, batch_ids)
    assert run_chain(instance, model=champion).success
    result = run_chain(
        instance,
        model=challenger,
        gate={"mode": "shadow", "shadow_batches": 2, "min_relative_auc": 0.5},
    )
    assert result.success


def _live_batches(project, instance, seed: int) -> list[str]:
    live = synthetic.make_history(2, 700, seed=seed, start="2024-03-04")
    for i, (batch_id, frame) in enumerate(sorted(live.items())):
        frame = frame.assign(row_id=frame["row_id"] + 1_000_000 * (i + 1))
        write_frame(project, batch_id, frame)
    monitor(instance, sorted(live))
    return sorted(live)


def _decide(instance) -> dg.ExecuteInProcessResult:
    sensor = defs.resolve_sensor_def("shadow_sensor")
    context = dg.build_sensor_context(instance=instance, resources=RESOURCES, definitions=defs)
    data = sensor.evaluate_tick(context)
    assert data.run_requests, data.skip_message
    return defs.resolve_job_def("shadow_decision_job").execute_in_process(
        instance=instance, resources=RESOURCES
    )


def test_worse_challenger_is_retired_in_the_shadow(project) -> None:
    with dg.instance_for_test() as instance:
        _shadow_setup(project, instance, champion=None, challenger=WEAK)
        before = production_versions()
        challenger = json.loads((project.production / "challenger.json").read_text())
        observed = instance.fetch_observations(dg.AssetKey("production_model"), limit=1).records
        assert observed[0].asset_observation.metadata["verdict"].value == "challenger"  # type: ignore[union-attr]
        assert MlflowResource().client().get_model_version_by_alias(
            "retraining_model", "challenger"
        ).version == int(challenger["registered_version"])

        sensor = defs.resolve_sensor_def("shadow_sensor")
        ctx = dg.build_sensor_context(instance=instance, resources=RESOURCES, definitions=defs)
        assert "scored on 0 of 2 live batches" in (sensor.evaluate_tick(ctx).skip_message or "")
        live = _live_batches(project, instance, seed=46)
        md = latest_metadata(instance, "batch_performance", live[0])
        assert md["shadow/challenger_auc"] < md["auc"]

        assert _decide(instance).success
        assert production_versions() == before  # production untouched
        assert not (project.production / "challenger.json").exists()
        observed = instance.fetch_observations(dg.AssetKey("production_model"), limit=1).records
        meta = observed[0].asset_observation.metadata  # type: ignore[union-attr]
        assert meta["verdict"].value == "challenger retired"
        assert "FAIL shadow AUC" in str(meta["reason"].value)


def test_better_challenger_is_promoted_after_the_shadow(project) -> None:
    with dg.instance_for_test() as instance:
        _shadow_setup(project, instance, champion=WEAK, challenger=None)
        challenger = json.loads((project.production / "challenger.json").read_text())
        assert served()["version"] == 1
        _live_batches(project, instance, seed=47)
        assert _decide(instance).success
        now = served()
        assert now["version"] == 2 and now["model_md5"] == challenger["model_md5"]
        assert "PASS shadow AUC" in now["reason"]
        md = latest_metadata(instance, "production_model")
        assert md["model_version"] == 2
        champion = (
            MlflowResource().client().get_model_version_by_alias("retraining_model", "champion")
        )
        assert str(champion.version) == challenger["registered_version"]
