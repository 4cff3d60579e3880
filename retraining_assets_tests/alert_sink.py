"""A local HTTP sink on 127.0.0.1 that records webhook POSTs (for the alert tests)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: The port range this project's tests may use for the sink (loopback only).
PORTS = range(57300, 57350)


class Sink:
    """What the sink received, and the status it answers with."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.status = 200
        self.url = ""

    def kinds(self) -> list[str]:
        """The alert kind named in each received payload's context block."""
        out = []
        for body in self.bodies:
            context = body["blocks"][-1]["elements"][0]["text"]
            out.append(context.split("`")[1])
        return out


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")


@contextmanager
def http_sink() -> Iterator[Sink]:
    """Run the sink in a thread for the duration of the block."""
    sink = Sink()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            sink.bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(sink.status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", _free_port()), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
