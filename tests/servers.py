"""Serve an ASGI app under a real uvicorn server on loopback, for the tests that need real
sockets (the API, the sandbox, a webhook receiver)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served(
    app: Any, port: int | None = None, log_level: str = "warning", what: str = "server"
) -> Iterator[str]:
    """Run ``app`` on ``port`` (a free one if None) until the block ends; yields its base URL.
    Raises if it has not started within 10 s, so a test never talks to a port nobody holds."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"{what} did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
