"""The sandbox ASGI app: providers under /flutterwave/v3 and /vtpass/api, Horizon under /horizon.

Each simulator mounts its routes on one FastAPI app and appends to one shared call log, readable
at ``GET /_sandbox/calls``.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI


@dataclass
class SandboxOptions:
    latency_ms: int = 0  # added to every provider call
    failure_rate: float = 0.0  # share of provider pay calls answered with a definitive failure
    seed: int = 0
    calls: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def log_call(self, provider: str, operation: str, **details: Any) -> None:
        entry = {"provider": provider, "operation": operation, "at": datetime.now(UTC).isoformat()}
        entry.update(details)
        with self.lock:
            self.calls.append(entry)


def create_app(options: SandboxOptions | None = None) -> FastAPI:
    from billpay.sandbox.horizon import mount_horizon
    from billpay.sandbox.providers import mount_providers

    options = options or SandboxOptions()
    app = FastAPI(title="billpay sandbox")
    app.state.options = options

    @app.get("/_sandbox/calls")
    def calls(provider: str | None = None, operation: str | None = None) -> list[dict[str, Any]]:
        with options.lock:
            rows = list(options.calls)
        return [
            row
            for row in rows
            if (provider is None or row["provider"] == provider)
            and (operation is None or row["operation"] == operation)
        ]

    mount_providers(app, options)
    mount_horizon(app, options)
    return app


def sandbox_env(port: int, host: str = "127.0.0.1") -> dict[str, str]:
    """The BILLPAY_* settings that point the pipeline at a sandbox on ``host:port``."""
    from billpay.sandbox.horizon import horizon_env
    from billpay.sandbox.providers import provider_env

    base = f"http://{host}:{port}"
    env = provider_env(base)
    env.update(horizon_env(base))
    return env
