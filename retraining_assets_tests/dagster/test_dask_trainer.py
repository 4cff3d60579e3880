"""The retraining chain with ``trainer: dask``: the in-process LocalCluster, the same lineage."""

from __future__ import annotations

import hashlib

import dagster as dg
import pytest

from retraining_assets.defs.dask_resource import DASK_SCHEDULER_ENV, DaskResource
from retraining_assets.defs.resources import MlflowResource
from retraining_assets_tests.dagster.helpers import (
    RESOURCES,
    ingest,
    latest_metadata,
    run_chain,
    served,
    served_bytes,
    write_batches,
)


@pytest.mark.slow
def test_chain_trains_on_dask_and_promotes_with_dask_lineage(project, monkeypatch) -> None:
    # No scheduler configured: the run starts its own LocalCluster (2 workers) and closes it.
    monkeypatch.delenv(DASK_SCHEDULER_ENV, raising=False)
    batch_ids = write_batches(project)
    with dg.instance_for_test() as instance:
        assert all(ingest(instance, batch_ids).values())
        assert run_chain(instance, model={"trainer": "dask"}).success

        model_md = latest_metadata(instance, "candidate_model")
        data_md = latest_metadata(instance, "training_dataset")
        report_md = latest_metadata(instance, "evaluation_report")
        prod_md = latest_metadata(instance, "production_model")
        assert model_md["trainer"] == "dask"
        assert model_md["dvc/dataset_md5"] == data_md["dvc/md5"]
        assert 0.7 < model_md["valid_auc"] < 1.0
        assert report_md["verdict"] == "promote"
        assert report_md["auc"] > 0.7
        assert prod_md["model_version"] == 1
        assert prod_md["dvc/md5"] == model_md["dvc/md5"]

    # The served bytes are the dask model's LightGBM text, and the lineage names the trainer.
    pointer = served()
    model = served_bytes(pointer)
    assert hashlib.md5(model).hexdigest() == model_md["dvc/md5"] == pointer["model_md5"]
    assert model.startswith(b"tree")
    assert b"[tree_learner: data]" in model and b"[num_machines: 2]" in model
    assert pointer["extra"]["params"]["trainer"] == "dask"

    run = MlflowResource().client().get_run(model_md["mlflow/run_id"])
    assert run.data.params["trainer"] == "dask"
    assert run.data.params["num_threads"] == "1"
    assert run.data.tags["promotion"] == "production v1"


def test_dask_resource_reads_the_scheduler_at_run_time(monkeypatch) -> None:
    monkeypatch.setenv(DASK_SCHEDULER_ENV, "tcp://127.0.0.1:58790")
    assert DaskResource().address() == "tcp://127.0.0.1:58790"
    assert DaskResource(scheduler_address="").address() == ""
    assert "LocalCluster" in DaskResource(scheduler_address="").backend()
    monkeypatch.delenv(DASK_SCHEDULER_ENV)
    assert DaskResource().address() == ""
    assert isinstance(RESOURCES["dask"], DaskResource)


def test_unreachable_scheduler_fails_with_the_address(monkeypatch) -> None:
    # Nothing listens on this port of the test range: one clear failure naming the endpoint.
    resource = DaskResource(scheduler_address="tcp://127.0.0.1:58791", connect_timeout_s=2)
    with pytest.raises(dg.Failure, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1"):
        resource.check()
