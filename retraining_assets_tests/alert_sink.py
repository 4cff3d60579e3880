"""A local HTTP sink on 127.0.0.1 that records webhook POSTs (for the alert tests)."""

from __future__ import annotations

import json
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


def _serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A server bound to the first free port of :data:`PORTS`.

    The server's own bind is the test: a port probed free and bound later could be taken in
    between by another pytest-xdist worker starting its sink at the same moment.
    """
    for port in PORTS:
        try:
            return ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError:
            continue
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

    server = _serve(Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
