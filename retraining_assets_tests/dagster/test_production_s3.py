"""Production on object storage: the real chain with the state store on an S3 endpoint.

The state URL points at a bucket on the loopback S3 endpoint; the local state folder must stay
free of production state. Covers the alias repair after a promotion killed before the alias
moved, a promotion that loses its race to another run, and S3 down during a run.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from retraining_assets.core.registry import ProductionStore
from retraining_assets.defs.resources import MlflowResource, ProductionResource
from retraining_assets_tests.conftest import free_port
from retraining_assets_tests.dagster.helpers import (
    CHAIN,
    RESOURCES,
    ingest,
    production_store,
    production_versions,
    run_chain,
    served,
    served_bytes,
    write_batches,
)

pytestmark = pytest.mark.slow

WEAK = {"num_boost_round": 2, "num_leaves": 2, "learning_rate": 0.05, "early_stopping_rounds": 1}


def _messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [record.user_message for record in instance.all_logs(run_id)]


class _OtherRunPromotesFirst(ProductionResource):
    """The production store as two runs see it when another run promotes first.

    The other run's promotion is a real one, through its own store handle, made between this
    run's check of the current version and its create of the next version object.
    """

    def store(self) -> ProductionStore:
        """A store whose next model write is preceded by the other run's promotion."""
        other = super().store()

        class Racing(ProductionStore):
            def _store_model(self, data: bytes) -> str:
                current = other.current()
                assert current is not None
                other.promote(
                    other.model_bytes(current),  # a real model: later runs score it
                    expected_current=current.version,
                    reason="the other run",
                    changed_by="other-run",
                )
                return super()._store_model(data)

        return Racing(other.store)


def test_production_model_on_s3_state(project, s3_env: str, monkeypatch) -> None:
    import boto3

    boto3.client("s3").create_bucket(Bucket="retraining-state")
    monkeypatch.setenv("RETRAINING_STATE_URL", "s3://retraining-state/state")
    batch_ids = write_batches(project, n_batches=5, rows=600, seed=51)
    client = MlflowResource().client()
    with dg.instance_for_test() as instance:
        assert all(ingest(instance, batch_ids).values())

        # v1 lands in the bucket, nowhere on the local disk.
        assert run_chain(instance, model=WEAK).success
        store = production_store()
        assert store.location.startswith("s3://retraining-state/state")
        v1 = served()
        keys = boto3.client("s3").list_objects_v2(Bucket="retraining-state")["Contents"]
        assert {k["Key"] for k in keys} >= {
            "state/production/versions/000001.json",
            f"state/production/models/{v1['model_md5']}.txt",
        }
        assert not project.production.exists()
        alias = client.get_model_version_by_alias("retraining_model", "champion")
        assert str(alias.version) == v1["registered_version"]

        # A promotion killed after its version object was created, before the alias moved.
        source = client.get_model_version("retraining_model", v1["registered_version"]).source
        orphan = client.create_model_version("retraining_model", source=source)
        store.promote(
            served_bytes(v1),
            expected_current=1,
            reason="killed before the alias moved",
            registered_version=str(orphan.version),
        )
        # The next run repairs the alias at its start, whatever its gate says.
        result = run_chain(instance, model=WEAK, gate={"min_test_positives": 10_000})
        assert result.success
        alias = client.get_model_version_by_alias("retraining_model", "champion")
        assert str(alias.version) == str(orphan.version)
        assert any(
            "MLflow alias 'champion' pointed at" in m and "moved it" in m
            for m in _messages(instance, result.run_id)
        )

        # Another run promotes between this run's evaluation and its commit: this one fails
        # with a clear conflict, and production is exactly what the other run made it.
        racing = dg.materialize(
            CHAIN,
            instance=instance,
            resources={**RESOURCES, "production": _OtherRunPromotesFirst()},
            run_config={"ops": {"evaluation_report": {"config": {"latency_calls": 50}}}},
            raise_on_error=False,
        )
        assert not racing.success
        failure = next(e for e in racing.all_events if e.event_type_value == "STEP_FAILURE")
        assert failure.step_key == "production_model"
        text = str(failure.event_specific_data.user_failure_data.description)  # type: ignore[union-attr]
        assert "production moved to v3 (run other-run) while this run evaluated against v2" in text
        now = served()
        assert now["version"] == 3 and now["reason"] == "the other run"
        assert list(production_versions()) == [f"versions/00000{n}.json" for n in (1, 2, 3)]
        before = production_versions()

        # S3 unreachable: the run fails at the first step that reads production, naming the
        # endpoint in one line; the next run after it returns goes through.
        dead = f"http://127.0.0.1:{free_port()}"
        monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
        down = run_chain(instance, raise_on_error=False)
        assert not down.success
        failure = next(e for e in down.all_events if e.event_type_value == "STEP_FAILURE")
        data: Any = failure.event_specific_data
        if data.user_failure_data:
            message = data.user_failure_data.description
        else:  # an unwrapped StoreError: Dagster reports it as the cause of the step error
            error = data.error
            while error.cause is not None:
                error = error.cause
            message = error.message
        assert dead in message.strip().splitlines()[-1], message
        assert "StoreError" in message or data.user_failure_data, message
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env)
        assert production_versions() == before
        assert run_chain(instance).success
        assert served()["version"] == 4
    assert not project.production.exists()
