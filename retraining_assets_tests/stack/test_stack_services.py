"""The project's resources against the loopback stack: Dagster on Postgres, MLflow on Postgres + S3,
DVC with an S3 remote, and what happens when a service goes away and comes back."""

from __future__ import annotations

import shutil
import socket
import uuid
from pathlib import Path

import numpy as np
import pytest

from retraining_assets_tests.stack.conftest import ROOT, Stack

pytestmark = pytest.mark.stack


def _instance_dir(tmp_path: Path) -> Path:
    """A DAGSTER_HOME holding the shipped deploy/stack/dagster.yaml (Postgres from env)."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copyfile(ROOT / "deploy" / "stack" / "dagster.yaml", home / "dagster.yaml")
    return home


def _small_job():  # type: ignore[no-untyped-def]
    import dagster as dg

    @dg.asset
    def numbers() -> list[int]:
        return [1, 2, 3]

    @dg.asset
    def total(numbers: list[int]) -> int:
        return sum(numbers)

    return [numbers, total]


def _materialize(instance, run_tag: str) -> str:  # type: ignore[no-untyped-def]
    import dagster as dg

    result = dg.materialize(_small_job(), instance=instance, tags={"stack_test": run_tag})
    assert result.success
    assert result.output_for_node("total") == 6
    return result.run_id


def test_dagster_instance_on_postgres_records_runs_and_events(stack: Stack, tmp_path: Path) -> None:
    import dagster as dg
    from dagster_postgres import PostgresRunStorage

    home = _instance_dir(tmp_path)
    tag = uuid.uuid4().hex
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        run_id = _materialize(instance, tag)
    # A second instance object (another process would do the same) reads it back from Postgres.
    with dg.DagsterInstance.from_config(str(home)) as reader:
        run = reader.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["stack_test"] == tag
        events = {e.dagster_event.event_type for e in reader.all_logs(run_id) if e.dagster_event}
        kinds = dg.DagsterEventType
        assert {kinds.RUN_SUCCESS, kinds.STEP_SUCCESS, kinds.ASSET_MATERIALIZATION} <= events
        record = reader.get_latest_materialization_event(dg.AssetKey("total"))
        assert record is not None and record.run_id == run_id


def test_postgres_restart_between_two_runs(
    stack: Stack, services_back: Stack, tmp_path: Path
) -> None:
    import dagster as dg

    home = _instance_dir(tmp_path)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        first = _materialize(instance, "before-restart")
        stack.run("restart", "pg")
        # Same instance object, so a pooled connection from before the restart would show here.
        second = _materialize(instance, "after-restart")
        assert instance.get_run_by_id(second).status == dg.DagsterRunStatus.SUCCESS
        assert first != second


def _mlflow(stack: Stack, **fields: str):  # type: ignore[no-untyped-def]
    from retraining_assets.defs.resources import MlflowResource

    return MlflowResource(
        tracking_uri=stack.env["RETRAINING_MLFLOW_TRACKING_URI"],
        experiment_name=f"stack-{uuid.uuid4().hex[:10]}",
        registered_model_name=f"stack-model-{uuid.uuid4().hex[:10]}",
        **fields,
    )


def _booster():  # type: ignore[no-untyped-def]
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + 0.1 * rng.normal(size=200) > 0).astype(int)
    params = {"objective": "binary", "num_threads": 1, "verbose": -1, "seed": 0}
    return lgb.train(params, lgb.Dataset(x, y), num_boost_round=5), x


def test_mlflow_run_and_model_on_postgres_and_s3(stack: Stack) -> None:
    import mlflow

    resource = _mlflow(stack, ui_url="http://mlflow.example:8080/")
    assert resource.artifacts() == stack.env["RETRAINING_MLFLOW_ARTIFACTS"]
    booster, x = _booster()
    with resource.start_run("stack-run", tags={"stack": "yes"}) as run:
        mlflow.log_metric("auc", 0.75)
        info = mlflow.lightgbm.log_model(
            booster, name="model", registered_model_name=resource.registered_model_name
        )
    run_id = run.info.run_id
    resource.log_to_run(run_id, {"late_metric": 1.5}, {"promotion": "challenger"})

    client = resource.client()
    stored = client.get_run(run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.metrics == {"auc": 0.75, "late_metric": 1.5}
    assert stored.data.tags["promotion"] == "challenger"
    assert stored.info.artifact_uri.startswith(stack.env["RETRAINING_MLFLOW_ARTIFACTS"])
    version = client.get_model_version(
        resource.registered_model_name, info.registered_model_version
    )
    assert version.run_id == run_id

    # The artifacts are objects in the bucket, and the model loads back from there.
    bucket, prefix = stack.env["RETRAINING_MLFLOW_ARTIFACTS"].removeprefix("s3://").split("/", 1)
    listed = stack.s3().list_objects_v2(Bucket=bucket, Prefix=prefix)
    assert any(obj["Key"].endswith("model.lgb") for obj in listed.get("Contents", []))
    loaded = mlflow.lightgbm.load_model(info.model_uri)
    np.testing.assert_allclose(loaded.predict(x), booster.predict(x, num_threads=1))

    url = resource.run_url(run_id)
    assert (
        url == f"http://mlflow.example:8080/#/experiments/{resource.experiment_id()}/runs/{run_id}"
    )


def _dvc(stack: Stack, repo: Path, remote: str):  # type: ignore[no-untyped-def]
    from retraining_assets.defs.resources import DvcResource

    return DvcResource(repo_dir=str(repo), remote_url=remote)


def test_dvc_push_to_s3_and_restore_into_a_fresh_repo(stack: Stack, tmp_path: Path) -> None:
    remote = f"{stack.env['RETRAINING_DVC_REMOTE']}/{uuid.uuid4().hex[:10]}"
    writer = _dvc(stack, tmp_path / "writer", remote)
    assert writer.remote_options() == {"endpointurl": stack.endpoint}
    data = tmp_path / "writer" / "data.bin"
    data.parent.mkdir(parents=True)
    payload = np.random.default_rng(1).bytes(50_000)
    data.write_bytes(payload)
    tracked = writer.store().track(data)

    bucket, prefix = remote.removeprefix("s3://").split("/", 1)
    key = f"{prefix}/files/md5/{tracked.md5[:2]}/{tracked.md5[2:]}"
    assert stack.s3().head_object(Bucket=bucket, Key=key)["ContentLength"] == len(payload)

    # A repository that never saw the file: its cache is empty, the bytes come from S3.
    reader = _dvc(stack, tmp_path / "reader", remote).store()
    assert not reader.cache_path(tracked.md5).exists()
    restored = reader.restore(tracked.md5, tmp_path / "out" / "data.bin")
    assert restored.read_bytes() == payload

    from retraining_assets.core.versioning import VersioningError

    with pytest.raises(VersioningError, match=r"no copy of 0{32}"):
        reader.restore("0" * 32, tmp_path / "out" / "missing.bin")


def _one_line(text: str) -> str:
    assert "\n" not in text.strip(), text
    assert "Traceback" not in text
    return text


def test_s3_down_fails_with_one_line_naming_the_endpoint_then_recovers(
    stack: Stack, services_back: Stack, tmp_path: Path
) -> None:
    import dagster as dg
    import mlflow

    from retraining_assets.core.versioning import VersioningError
    from retraining_assets.services import ServiceUnreachable, check_s3

    remote = f"{stack.env['RETRAINING_DVC_REMOTE']}/{uuid.uuid4().hex[:10]}"
    dvc = _dvc(stack, tmp_path / "repo", remote)
    store = dvc.store()
    resource = _mlflow(stack)
    resource.client()  # experiment created while S3 is up
    booster, _ = _booster()
    data = tmp_path / "repo" / "a.bin"
    data.write_bytes(b"abc" * 1000)

    stack.run("down", "s3")
    port = stack.endpoint.rsplit(":", 1)[1]

    with pytest.raises(ServiceUnreachable) as probe:
        check_s3(stack.env["RETRAINING_STATE_URL"])
    assert stack.endpoint in _one_line(str(probe.value))

    with pytest.raises(VersioningError) as pushed:
        store.track(data)
    assert port in _one_line(str(pushed.value)) and remote in str(pushed.value)

    with pytest.raises(dg.Failure) as logged, resource.start_run("s3-down", tags={}):
        mlflow.lightgbm.log_model(booster, name="model")
    message = _one_line(logged.value.description or "")
    assert "MLflow artifacts" in message and stack.endpoint in message
    failed = resource.client().search_runs([resource.experiment_id()])
    assert [r.info.status for r in failed] == ["FAILED"]

    stack.run("up", "s3")
    check_s3(stack.env["RETRAINING_STATE_URL"])
    assert store.track(data).md5
    with resource.start_run("s3-back", tags={}) as run:
        mlflow.lightgbm.log_model(booster, name="model")
    assert resource.client().get_run(run.info.run_id).info.status == "FINISHED"


def test_postgres_down_fails_fast_with_one_line_then_recovers(
    stack: Stack, services_back: Stack
) -> None:
    import dagster as dg

    resource = _mlflow(stack)
    resource.client()
    stack.run("down", "pg")
    with pytest.raises(dg.Failure) as failure:
        resource.client()
    message = _one_line(failure.value.description or "")
    port = stack.env["DAGSTER_PG_PORT"]
    assert f"127.0.0.1:{port}" in message
    assert ":***@" in message and f":{stack.env['DAGSTER_PG_PASSWORD']}@" not in message
    stack.run("up", "pg")
    assert resource.client().get_experiment_by_name(resource.experiment_name) is not None


def _free_port() -> int:
    for port in range(56050, 56100):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 56050-56099")


def test_up_is_idempotent_and_a_taken_port_is_named(stack: Stack, tmp_path: Path) -> None:
    again = stack.run("up")
    assert "already running" in again.stdout
    assert stack.run("status").returncode == 0

    with socket.socket() as squatter:
        port = _free_port()
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        for service, variable in (("s3", "RETRAINING_S3_PORT"), ("pg", "RETRAINING_PG_PORT")):
            taken = stack.run(
                "up",
                service,
                check=False,
                RETRAINING_STACK_DIR=str(tmp_path),
                **{variable: str(port)},
            )
            assert taken.returncode != 0
            line = _one_line(taken.stderr)
            assert f"port {port}" in line and "taken by another process" in line
    assert stack.run("status").returncode == 0  # our own services were not disturbed


def _doctor(stack: Stack, tmp_path: Path) -> tuple[int, str]:
    import subprocess
    import sys

    home = _instance_dir(tmp_path)
    env = {
        **stack.env,
        "DAGSTER_HOME": str(home),
        "RETRAINING_HOME": str(tmp_path / "var"),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "retraining_assets.cli", "doctor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    # Only the backend report (the lines before it list package versions).
    return done.returncode, done.stdout.split("\nbackends\n", 1)[1]


def test_doctor_names_each_backend_and_fails_on_an_unreachable_one(
    stack: Stack, services_back: Stack, tmp_path: Path
) -> None:
    code, out = _doctor(stack, tmp_path)
    assert code == 0, out
    password = stack.env["DAGSTER_PG_PASSWORD"]
    dagster_line = next(line for line in out.splitlines() if line.split()[:1] == ["dagster"])
    assert "postgres postgresql+psycopg2://retraining:***@127.0.0.1" in dagster_line
    assert f":{password}@" not in out
    mlflow_line = next(line for line in out.splitlines() if line.split()[:1] == ["mlflow"])
    assert stack.env["RETRAINING_MLFLOW_ARTIFACTS"] in mlflow_line and mlflow_line.endswith("ok")
    assert f"remote {stack.env['RETRAINING_DVC_REMOTE']} at {stack.endpoint}" in out

    stack.run("down", "s3")
    code, out = _doctor(stack, tmp_path)
    assert code == 1
    failures = [line for line in out.splitlines() if line.startswith("!! ")]
    # Every resource whose state is on S3 (production too, once it lives in the state store).
    assert {line.split()[1] for line in failures} >= {"dvc", "mlflow", "state"}, out
    assert not {line.split()[1] for line in failures} & {"dagster", "batch_source"}, out
    assert all(stack.endpoint in line and "UNREACHABLE" in line for line in failures), failures


def _failure_line(result, proxy_url: str) -> str:  # type: ignore[no-untyped-def]
    """The one line a failed run says about S3 (a dg.Failure or the step error's root cause)."""
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    data = failure.event_specific_data
    if data.user_failure_data:
        message = str(data.user_failure_data.description)
    else:
        error = data.error
        while error.cause is not None:
            error = error.cause
        assert error.context is None, "no client-library traceback under the cause"
        message = error.message
    message = message.strip()
    assert "\n" not in message and proxy_url in message, message
    return failure.step_key


@pytest.mark.slow
def test_retraining_chain_on_the_stack_survives_s3_outages(
    project, stack: Stack, s3_proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real chain with the project's default resources, pointed at the stack by its
    environment only: Dagster on Postgres, MLflow on Postgres + S3, DVC remote and production
    state on S3. S3 down before a run, and S3 down just before production_model: each run fails
    with one line naming the endpoint, production is untouched, and the next run succeeds."""
    import dagster as dg

    from retraining_assets.defs.resources import DvcResource, MlflowResource
    from retraining_assets_tests.dagster.helpers import (
        CHAIN,
        RESOURCES,
        ingest,
        production_versions,
        run_chain,
        served,
        write_batches,
    )

    unique = uuid.uuid4().hex[:10]
    monkeypatch.setenv("RETRAINING_STATE_URL", f"s3://{stack.bucket}/state-{unique}")
    monkeypatch.setenv("RETRAINING_DVC_REMOTE", f"s3://{stack.bucket}/dvc-{unique}")
    assert MlflowResource().uri() == stack.env["RETRAINING_MLFLOW_TRACKING_URI"]
    assert DvcResource().remote_options() == {"endpointurl": s3_proxy.url}
    batch_ids = write_batches(project, n_batches=5, rows=400)
    with dg.DagsterInstance.from_config(str(_instance_dir(tmp_path))) as instance:
        assert all(ingest(instance, batch_ids).values())
        assert run_chain(instance, window=3).success
        run_id = served()["mlflow_run_id"]
        artifact_uri = MlflowResource().client().get_run(run_id).info.artifact_uri
        assert artifact_uri.startswith(stack.env["RETRAINING_MLFLOW_ARTIFACTS"])
        assert served()["version"] == 1
        before = production_versions()

        # S3 down for a whole run.
        s3_proxy.stop()
        failed = run_chain(instance, window=3, raise_on_error=False)
        assert not failed.success
        _failure_line(failed, s3_proxy.url)
        s3_proxy.start()
        assert production_versions() == before

        # S3 down between evaluation and production_model.
        upstream = [a for a in CHAIN if dg.AssetKey("production_model") not in a.keys]
        ops = {"training_dataset": {"config": {"as_of_batch": "", "window_batches": 3}}}
        ops["evaluation_report"] = {"config": {"latency_calls": 100}}
        evaluated = dg.materialize(
            CHAIN,
            selection=upstream,
            instance=instance,
            resources=RESOURCES,
            run_config={"ops": ops},
        )
        assert evaluated.success
        s3_proxy.stop()
        late = dg.materialize(
            CHAIN,
            selection=["production_model"],
            instance=instance,
            resources=RESOURCES,
            raise_on_error=False,
        )
        assert not late.success
        assert _failure_line(late, s3_proxy.url) == "production_model"
        s3_proxy.start()
        assert production_versions() == before

        assert run_chain(instance, window=3).success
        assert served()["version"] >= 1
