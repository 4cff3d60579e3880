"""Pin what users rely on: asset keys, groups, kinds, checks, jobs; and the antlr trap."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
import pytest

from retraining_assets.definitions import defs

CHAIN = [
    "training_dataset",
    "validated_dataset",
    "candidate_model",
    "evaluation_report",
    "production_model",
]


MONITORING = ["batch_drift", "batch_performance", "batch_estimated_performance"]
ANALYSIS = ["degradation_analysis"]


def _graph() -> dg.AssetGraph:
    return defs.resolve_asset_graph()


def test_asset_keys_groups_and_metadata() -> None:
    graph = _graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"raw_batches", *CHAIN, *MONITORING, *ANALYSIS}
    for key in keys:
        node = graph.get(dg.AssetKey(key))
        monitoring = key in MONITORING or key in ANALYSIS
        assert node.group_name == ("monitoring" if monitoring else "retraining")
        assert node.owners == ["team:ml-platform"]
        assert node.kinds, key
        assert node.description, key
    assert {"lightgbm", "mlflow", "dvc"} <= set(graph.get(dg.AssetKey("candidate_model")).kinds)


def test_lineage_is_a_chain() -> None:
    graph = _graph()
    parents = {
        key: {p.to_user_string() for p in graph.get(dg.AssetKey(key)).parent_keys} for key in CHAIN
    }
    assert parents == {
        "training_dataset": {"raw_batches"},
        "validated_dataset": {"training_dataset"},
        "candidate_model": {"validated_dataset"},
        "evaluation_report": {"validated_dataset", "candidate_model"},
        "production_model": {"evaluation_report", "candidate_model"},
    }


def test_validation_checks_are_blocking() -> None:
    graph = _graph()
    checks = {c.name: graph.get_check_spec(c) for c in graph.asset_check_keys}
    gate = checks.pop("gate_passed")
    assert set(checks) == {
        f"ge_{g}" for g in ("schema", "types", "nulls", "ranges", "label", "row_count")
    }
    assert all(spec.blocking for spec in checks.values())
    assert {spec.asset_key.to_user_string() for spec in checks.values()} == {"validated_dataset"}
    # The gate's verdict as a check: a rejection warns, it does not block or fail the run.
    assert gate.asset_key.to_user_string() == "evaluation_report"
    assert not gate.blocking


def test_code_version_on_every_asset_and_pool_on_the_chain() -> None:
    graph = _graph()
    for key in graph.get_all_asset_keys():
        version = graph.get(key).code_version
        assert version and len(version) == 12, key
    for key in CHAIN:
        assert graph.get(dg.AssetKey(key)).pools == {"retraining"}, key
    policy = graph.get(dg.AssetKey("production_model")).freshness_policy
    assert policy is not None and policy.fail_window.to_timedelta().days == 15


def test_every_launch_path_runs_in_process() -> None:
    # "Materialize all" in the UI builds an implicit job from the Definitions' executor; every
    # job uses the same in-process executor (which first frees dead runs' pool slots).
    from retraining_assets.defs.executor import local_in_process_executor

    assert defs.executor is local_in_process_executor
    assert local_in_process_executor.name == dg.in_process_executor.name
    for job in defs.resolve_all_job_defs():
        if not job.name.startswith("__"):
            assert job.executor_def is local_in_process_executor, job.name


def test_jobs() -> None:
    job = defs.resolve_job_def("retraining_job")
    assert {n.name for n in job.nodes_in_topological_order} == set(CHAIN)
    ingest = defs.resolve_job_def("ingest_job")
    assert ingest.partitions_def is not None
    assert isinstance(ingest.partitions_def, dg.DynamicPartitionsDefinition)


def test_monitoring_is_partitioned_by_batch() -> None:
    graph = _graph()
    for key in ["raw_batches", *MONITORING]:
        partitions = graph.get(dg.AssetKey(key)).partitions_def
        assert isinstance(partitions, dg.DynamicPartitionsDefinition)
        assert partitions.name == "batches"
    for key in MONITORING:
        parents = {p.to_user_string() for p in graph.get(dg.AssetKey(key)).parent_keys}
        assert parents == {"raw_batches"}


def test_automation_names_and_targets() -> None:
    sensors = {s.name: s for s in defs.sensors or []}
    assert set(sensors) == {
        "new_batch_sensor",
        "data_drift_sensor",
        "performance_drift_sensor",
        "concept_drift_sensor",
        "estimated_performance_sensor",
        "shadow_sensor",
        "alert_on_run_failure",
        "health_alert_sensor",
    }
    assert sensors["shadow_sensor"].job_name == "shadow_decision_job"
    for name in (
        "data_drift_sensor",
        "performance_drift_sensor",
        "concept_drift_sensor",
        "estimated_performance_sensor",
    ):
        assert sensors[name].job_name == "retraining_job"
    assert {j.name for j in sensors["new_batch_sensor"].jobs} == {
        "monitoring_job",
        "performance_job",
    }
    schedule = defs.resolve_schedule_def("weekly_retraining_schedule")
    assert schedule.cron_schedule == "0 3 * * 1"
    assert schedule.job_name == "retraining_job"
    # The instance's concurrency limit keys on this tag: one production-changing run at a time.
    for name in ("retraining_job", "rollback_job", "shadow_decision_job"):
        assert defs.resolve_job_def(name).tags["retraining"] == "true"


def test_instance_allows_one_retraining_at_a_time() -> None:
    import yaml

    from retraining_assets.settings import project_root

    config = yaml.safe_load((project_root() / "var" / "dagster" / "dagster.yaml").read_text())
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": "retraining", "value": "true", "limit": 1} in limits
    # Every launch path: the chain's steps share a pool of one slot.
    assert config["concurrency"]["pools"]["default_limit"] == 1


def test_string_asset_selection_regression() -> None:
    """antlr4-python3-runtime 4.9 (pulled by DVC) breaks string selections with TypeError: ord()."""
    from importlib.metadata import version

    assert version("antlr4-python3-runtime").startswith("4.13")
    probe = dg.Definitions(
        assets=list(defs.assets or []),
        jobs=[
            dg.define_asset_job("everything", selection="*"),
            dg.define_asset_job("downstream", selection="training_dataset*"),
        ],
        resources=defs.resources,
    )
    assert len(probe.resolve_job_def("everything").nodes_in_topological_order) == 10
    downstream = probe.resolve_job_def("downstream").nodes_in_topological_order
    assert {n.name for n in downstream} == set(CHAIN)


def test_import_is_light() -> None:
    """Loading the code location must not import the heavy ML libraries."""
    code = (
        "import sys, retraining_assets.definitions\n"
        "heavy = [m for m in ('lightgbm', 'mlflow', 'great_expectations', 'dvc', 'pandas',"
        " 'matplotlib', 'sklearn') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(("preset", "expected"), [(None, "system"), ("mimalloc", "mimalloc")])
def test_package_picks_arrow_system_pool_unless_user_chose(
    preset: str | None, expected: str
) -> None:
    """Importing the package before pyarrow selects Arrow's system allocator; a set value wins.

    mimalloc keeps freed pages: ``training_dataset`` then peaks well above 3x its frame.
    """
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if preset:
        env["ARROW_DEFAULT_MEMORY_POOL"] = preset
    code = (
        "import retraining_assets.definitions, pyarrow\n"
        "print(pyarrow.default_memory_pool().backend_name)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == expected
