"""Fixtures of the stack tests: the services started by ``scripts/stack`` (``make test-stack``).

Tests marked ``stack`` need the stack's environment (``eval "$(scripts/stack env)"``); without it
they skip, unless ``RETRAINING_STACK_REQUIRED=1`` (set by ``make test-stack``) turns that into a
failure so a broken stack can never pass as skipped.
"""

from __future__ import annotations

import contextlib
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
# The shell's environment as `make test-stack` set it, taken before any fixture runs: the
# `project` fixture removes RETRAINING_STATE_URL from the process (so ordinary tests never share
# state through a URL from the shell), and a stack test may ask for `project` first.
SHELL_ENV = {k: v for k, v in os.environ.items() if k.isupper()}


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
    missing = [name for name in NEEDED if not SHELL_ENV.get(name)]
    if missing:
        message = f"stack environment missing ({', '.join(missing)}): run `make test-stack`"
        if os.environ.get("RETRAINING_STACK_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return Stack(env=dict(SHELL_ENV))


@pytest.fixture
def services_back(stack: Stack):  # type: ignore[no-untyped-def]
    """Bring every service back up after a test that stops one, even when it fails."""
    yield stack
    stack.run("up")


class TcpProxy:
    """A loopback TCP forwarder in front of the stack's S3 endpoint.

    Stopping it makes the endpoint unreachable (connection refused) while the server behind it
    keeps its objects, as a real S3 outage would; moto_server itself keeps state only in memory.
    """

    def __init__(self, target_port: int) -> None:
        import socket

        self.target_port = target_port
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._listener: object | None = None
        self._open: list[object] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import socket
        import threading

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (src, dst):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

        def serve() -> None:
            while True:
                try:
                    client, _ = listener.accept()
                except OSError:
                    return  # stopped
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                self._open += [client, upstream]
                threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
                threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()

    def stop(self) -> None:
        import socket

        if self._listener is not None:
            self._listener.close()  # type: ignore[attr-defined]
            self._listener = None
        for sock in self._open:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # type: ignore[attr-defined]
                sock.close()  # type: ignore[attr-defined]
            except OSError:
                pass
        self._open = []


@pytest.fixture
def s3_proxy(stack: Stack, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Every S3 client of the test talks to the stack's S3 through a proxy it can stop."""
    proxy = TcpProxy(int(stack.endpoint.rsplit(":", 1)[1]))
    proxy.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", proxy.url)
    yield proxy
    proxy.stop()
