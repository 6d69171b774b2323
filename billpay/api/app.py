"""The FastAPI app: routers, problem+json errors, health. ``create_app(runtime)`` takes the
composition root (``billpay.app.App``) so tests and ``billpay api`` share one wiring."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from billpay.api import catalogue, orders, problems, ratelimit, webhooks
from billpay.api.guard import RequestGuard
from billpay.api.schemas import Health
from billpay.app import App

DESCRIPTION = """Create and follow Nigerian bill payments paid in cNGN.

Every `/api` route takes `Authorization: Bearer <key>` (a key from `billpay apikey create`).
Money is a decimal string, never a number. Errors are `application/problem+json` (RFC 9457).
"""


def create_app(runtime: App) -> FastAPI:
    # No trailing-slash redirects: `/api/bills/types/` is a 404 problem like any unknown route
    # (a 307 would echo the Host header back as its Location).
    app = FastAPI(title="billpay", version="1", description=DESCRIPTION, redirect_slashes=False)
    app.state.runtime = runtime
    # Shared by every API process on the database, unless BILLPAY_API_RATE_LIMIT_STORAGE=memory.
    app.state.rate_limit = ratelimit.RateLimit.for_settings(runtime.settings, runtime.db)
    app.state.validate_guard = catalogue.validate_guard(runtime)
    app.router.on_shutdown.append(app.state.rate_limit.close)
    problems.install(app)
    app.add_middleware(RequestGuard)
    # Fixed paths (types, providers, history, stats) before /api/bills/{reference}.
    app.include_router(catalogue.router)
    app.include_router(orders.router)
    app.include_router(webhooks.router)

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    @app.get("/healthz", tags=["health"], response_model=Health)
    def healthz() -> dict[str, Any]:
        """200 when the database answers; 503 otherwise."""
        try:
            runtime.db.ping()
        except Exception as exc:  # noqa: BLE001 - any failure is "not healthy"
            raise problems.Problem(
                503, "the database is not reachable", code="database_unavailable"
            ) from exc
        return {"status": "ok", "database": "ok"}

    return app


# The problem answers each route can give besides its success, as the OpenAPI document says.
_API_ERRORS = ("401", "422", "429")
_BODY_ERRORS = ("413", "415")
_EXTRA_ERRORS = {
    "/api/bills/validate": ("503",),
    "/api/bills/{reference}": ("404",),
    "/healthz": ("503",),
    "/webhooks/flutterwave": ("401", "503"),
    "/webhooks/vtpass": ("503",),
}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, with every error documented as the problem+json it really is (FastAPI
    would say 422 is its own ``HTTPValidationError`` as application/json) and the Flutterwave
    webhook's ``verif-hash`` header declared."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Problem"] = problems.PROBLEM_SCHEMA
    problem = {problems.PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            codes = list(_EXTRA_ERRORS.get(path, ()))
            if path.startswith("/api/"):
                codes += _API_ERRORS + (_BODY_ERRORS if method == "post" else ())
            responses = operation.setdefault("responses", {})
            for code in {*codes, *(c for c in responses if c[0] in "45")}:
                title = problems.TITLES.get(int(code), "Error")
                responses[code] = {"description": title, "content": problem}
    flutterwave = schema.get("paths", {}).get("/webhooks/flutterwave", {}).get("post")
    if flutterwave is not None:
        flutterwave.setdefault("parameters", []).append(
            {
                "name": "verif-hash",
                "in": "header",
                "required": True,
                "description": "the secret hash set on the Flutterwave dashboard",
                "schema": {"type": "string"},
            }
        )
    app.openapi_schema = schema
    return schema
