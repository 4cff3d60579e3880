"""Fixtures of the stack tests: the services started by ``scripts/stack`` (``make test-stack``).

Tests marked ``stack`` need the stack's environment (``eval "$(scripts/stack env)"``); without it
they skip, unless ``RETRAINING_STACK_REQUIRED=1`` (set by ``make test-stack``) turns that into a
failure so a broken stack can never pass as skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "stack"
NEEDED = (
    "DAGSTER_PG_HOST",
    "RETRAINING_MLFLOW_TRACKING_URI",
    "AWS_ENDPOINT_URL",
    "RETRAINING_STATE_URL",
)


@dataclass
class Stack:
    """The running stack: its environment and a handle on ``scripts/stack``."""

    env: dict[str, str]

    @property
    def pg_url(self) -> str:
        e = self.env
        return (
            f"postgresql://{e['DAGSTER_PG_USER']}:{e['DAGSTER_PG_PASSWORD']}"
            f"@{e['DAGSTER_PG_HOST']}:{e['DAGSTER_PG_PORT']}"
        )

    @property
    def endpoint(self) -> str:
        return self.env["AWS_ENDPOINT_URL"]

    @property
    def bucket(self) -> str:
        return self.env["RETRAINING_STATE_URL"].removeprefix("s3://").split("/", 1)[0]

    def run(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``scripts/stack ARGS`` with this interpreter (for moto_server and boto3)."""
        return subprocess.run(
            ["bash", str(SCRIPT), *args],
            env={**os.environ, "RETRAINING_PYTHON": sys.executable, **env},
            capture_output=True,
            text=True,
            timeout=180,
            check=check,
        )

    def s3(self):  # type: ignore[no-untyped-def]
        """A boto3 S3 client on the stack's endpoint."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint)


@pytest.fixture
def stack() -> Stack:
    """The stack's environment; skip (or fail under ``make test-stack``) when it is not up."""
    missing = [name for name in NEEDED if not os.environ.get(name)]
    if missing:
        message = f"stack environment missing ({', '.join(missing)}): run `make test-stack`"
        if os.environ.get("RETRAINING_STACK_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return Stack(env={k: v for k, v in os.environ.items() if k.isupper()})


@pytest.fixture
def services_back(stack: Stack):  # type: ignore[no-untyped-def]
    """Bring every service back up after a test that stops one, even when it fails."""
    yield stack
    stack.run("up")
