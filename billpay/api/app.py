"""The FastAPI app: routers, problem+json errors, health. ``create_app(runtime)`` takes the
composition root (``billpay.app.App``) so tests and ``billpay api`` share one wiring."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI

from billpay.api import catalogue, deps, orders, problems, webhooks
from billpay.app import App

DESCRIPTION = """Create and follow Nigerian bill payments paid in cNGN.

Every `/api` route takes `Authorization: Bearer <key>` (a key from `billpay apikey create`).
Money is a decimal string, never a number. Errors are `application/problem+json` (RFC 9457).
"""


def create_app(runtime: App) -> FastAPI:
    app = FastAPI(title="billpay", version="1", description=DESCRIPTION)
    app.state.runtime = runtime
    app.state.rate_limit = deps.RateLimit.parse(runtime.settings.api_rate_limit)  # per process
    problems.install(app)
    # Fixed paths (types, providers, history, stats) before /api/bills/{reference}.
    app.include_router(catalogue.router)
    app.include_router(orders.router)
    app.include_router(webhooks.router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        """200 when the database answers; 503 otherwise."""
        try:
            with runtime.db.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any failure is "not healthy"
            raise problems.Problem(
                503, "the database is not reachable", code="database_unavailable"
            ) from exc
        return {"status": "ok", "database": "ok"}

    return app
