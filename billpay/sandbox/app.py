"""The sandbox ASGI app: providers under /flutterwave/v3 and /vtpass/api, Horizon under /horizon.

Each simulator mounts its routes on one FastAPI app and appends to one shared call log, readable
at ``GET /_sandbox/calls``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from billpay.sandbox.horizon import horizon_env, mount_horizon
from billpay.sandbox.options import SandboxOptions
from billpay.sandbox.providers import mount_account_reads, mount_providers, provider_env

__all__ = ["SandboxOptions", "create_app", "sandbox_env"]


def create_app(options: SandboxOptions | None = None) -> FastAPI:
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
    mount_account_reads(app, options)  # the doctor's balance reads
    mount_horizon(app, options)
    return app


def sandbox_env(port: int, host: str = "127.0.0.1") -> dict[str, str]:
    """The BILLPAY_* settings that point the pipeline at a sandbox on ``host:port``."""
    base = f"http://{host}:{port}"
    env = provider_env(base)
    env.update(horizon_env(base))
    return env
