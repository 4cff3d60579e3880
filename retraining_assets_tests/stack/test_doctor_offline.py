"""The doctor's report and the one-line service errors, without any service running."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from retraining_assets.doctor import BackendLine, dagster_instance_line, environment_lines
from retraining_assets.services import (
    ServiceUnreachable,
    check_postgres,
    check_s3,
    mask_url,
    unreachable_message,
)


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_mask_url_hides_only_the_password() -> None:
    assert (
        mask_url("postgresql+psycopg2://dagster:s3cr3t@db.internal:5432/dagster")
        == "postgresql+psycopg2://dagster:***@db.internal:5432/dagster"
    )
    assert mask_url("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"
    assert mask_url("s3://bucket/prefix") == "s3://bucket/prefix"


def test_unreachable_postgres_is_one_line_naming_the_endpoint() -> None:
    port = _closed_port()
    with pytest.raises(ServiceUnreachable) as info:
        check_postgres(f"postgresql://u:pw@127.0.0.1:{port}/db", timeout=2)
    message = str(info.value)
    assert "\n" not in message
    assert f"postgres at 127.0.0.1:{port} unreachable" in message
    assert "u:***@" in message and ":pw@" not in message


def test_unreachable_s3_is_one_line_naming_the_endpoint() -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ServiceUnreachable) as info:
        check_s3("s3://bucket/state", endpoint, timeout=2)
    assert str(info.value).startswith(f"s3 endpoint {endpoint} unreachable: ")
    assert "\n" not in str(info.value)


def test_unreachable_message_walks_the_cause_chain() -> None:
    class OperationalError(Exception):
        pass

    try:
        try:
            raise OperationalError("connection refused\nDETAIL: more lines")
        except OperationalError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        message = unreachable_message(outer, "MLflow store X")
    assert message == "MLflow store X unreachable: connection refused"
    assert unreachable_message(ValueError("bad value"), "X") is None


def test_doctor_lines_for_instance_and_environment(tmp_path: Path) -> None:
    port = _closed_port()
    (tmp_path / "dagster.yaml").write_text(
        "storage:\n  postgres:\n    postgres_db:\n"
        "      hostname: 127.0.0.1\n      port: " + str(port) + "\n"
        "      username: u\n      password: {env: DOCTOR_TEST_PG_PASSWORD}\n"
        "      db_name: dagster\n      scheme: postgresql+psycopg2\n"
    )
    unset = dagster_instance_line(str(tmp_path))
    assert not unset.ok and "DOCTOR_TEST_PG_PASSWORD" in unset.detail

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DOCTOR_TEST_PG_PASSWORD", "pw")
        down = dagster_instance_line(str(tmp_path))
    assert not down.ok
    assert down.backend == f"postgres postgresql+psycopg2://u:***@127.0.0.1:{port}/dagster"
    assert down.render().startswith("!! dagster")

    lines = environment_lines(
        {
            "RETRAINING_STATE_URL": "s3://bucket/state",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "RETRAINING_DASK_SCHEDULER": f"tcp://127.0.0.1:{port}",
        }
    )
    assert [(line.name, line.ok) for line in lines] == [("state", False), ("dask", False)]
    assert all(f"127.0.0.1:{port}" in line.detail for line in lines)
    assert BackendLine("x", "local folder /a", True, "exists").render() == (
        "   x              local folder /a  ok (exists)"
    )


def test_doctor_describes_a_state_store_resource(tmp_path: Path) -> None:
    from retraining_assets.defs.state import StateStoreResource
    from retraining_assets.doctor import resource_line

    local = resource_line("state_store", StateStoreResource(url=str(tmp_path / "state")))
    assert local.ok and local.backend == f"local folder {tmp_path / 'state'}"

    endpoint = f"http://127.0.0.1:{_closed_port()}"
    remote = resource_line(
        "state_store", StateStoreResource(url="s3://bucket/state", endpoint_url=endpoint)
    )
    assert not remote.ok
    assert remote.backend.startswith("s3 s3://bucket/state") and endpoint in remote.backend
    assert "\n" not in remote.detail
