"""A webhook receiver on loopback for the tests of our outgoing webhooks: it records each POST
(path, headers, raw body) and answers the status the test set for its path."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    """Webhook endpoints on one loopback server: records each POST, answers ``status[path]``
    (200 for a path not set)."""

    base: str = ""
    status: dict[str, int] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def at(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.received if r["path"].split("?")[0] == path]


def signed_with(request: dict[str, Any], secret: str) -> bool:
    """Whether ``request`` carries our HMAC-SHA256 signature of its raw body under ``secret``."""
    expected = hmac.new(secret.encode(), request["raw"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(request["headers"]["X-Billpay-Signature"], expected)


@contextmanager
def receiving() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.lock:
                state.received.append(
                    {"path": self.path, "headers": dict(self.headers), "raw": raw}
                )
                status = state.status.get(self.path.split("?")[0], 200)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
