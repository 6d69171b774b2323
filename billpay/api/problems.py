"""RFC 9457 problem details: every error the API answers is ``application/problem+json``.

Bad input is 422 with ``errors`` naming each bad field; unknown routes and methods are 404/405;
anything unexpected is a bare 500 (logged here, never a stack trace, SQL or secret in the body).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from billpay.intake import IntakeError
from billpay.tokens import mask_text

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


# The problem document in the OpenAPI schema (every 4xx/5xx answer has this shape).
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "examples": ["https://billpay.dev/problems/invalid_input"]},
        "title": {"type": "string", "examples": ["Invalid request"]},
        "status": {"type": "integer", "examples": [422]},
        "detail": {"type": "string"},
        "code": {"type": "string", "examples": ["invalid_input"]},
        "instance": {"type": "string", "examples": ["/api/bills/pay"]},
        "errors": {
            "type": "array",
            "description": "each bad field (422)",
            "items": {
                "type": "object",
                "required": ["field", "message", "code"],
                "properties": {
                    "field": {"type": "string", "examples": ["account"]},
                    "message": {"type": "string"},
                    "code": {"type": "string", "examples": ["invalid_meter_number"]},
                },
            },
        },
    },
}


# Routes whose body intake checks too (``check_body_with``): when pydantic refuses some fields,
# intake still checks the others, so one 422 names every bad field.
BodyCheck = Callable[[dict[str, Any], Any], None]  # (the fields pydantic took, the runtime)
BODY_CHECKS: dict[str, BodyCheck] = {}


def check_body_with(path: str, model: type[BaseModel], check: Callable[[Any, Any], object]) -> None:
    """Register ``check(body, runtime)`` (the route's intake, raising IntakeError) for ``path``:
    it gets a ``model`` built unvalidated from the fields pydantic accepted, the refused ones
    absent ("" when required, None otherwise), so their errors are not reported twice."""

    def run(fields: dict[str, Any], runtime: Any) -> None:
        values = {
            name: fields.get(name, "" if info.is_required() else None)
            for name, info in model.model_fields.items()
        }
        check(model.model_construct(**values), runtime)

    BODY_CHECKS[path] = run


class Problem(Exception):
    """Raise from a route to answer a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code
        self.errors = errors
        self.headers = headers


def problem_response(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    instance: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://billpay.dev/problems/{code}" if code else "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if code:
        body["code"] = code
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def field_error(field: str, message: str, code: str = "invalid_input") -> dict[str, str]:
    return {"field": field, "message": message, "code": code}


def _location(error: dict[str, Any]) -> str:
    """The field an error names: ``account``, ``Idempotency-Key``; ``body`` for a body that is
    not JSON at all (pydantic's location then holds the parse position, not a field)."""
    if error.get("type") == "json_invalid":
        return "body"
    parts = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _intake_errors(request: Request, body: object, named: set[str]) -> list[dict[str, str]]:
    """Intake's errors for the body fields pydantic accepted (the refused ones read as absent
    and are named already): a bad amount does not hide a bad phone."""
    check = BODY_CHECKS.get(request.url.path)
    if check is None or not isinstance(body, dict):
        return []
    fields = {k: v for k, v in body.items() if k not in named and isinstance(v, str)}
    try:
        check(fields, request.app.state.runtime)
    except IntakeError as exc:
        return [
            field_error(e.field, e.message, e.code)
            for e in exc.all
            if e.field not in named and e.code != "not_configured"
        ]
    except Exception:  # noqa: BLE001 - pydantic's errors are answered either way
        log.warning("intake of a refused %s body raised", request.url.path, exc_info=False)
    return []


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.detail,
            code=exc.code,
            errors=exc.errors,
            headers=exc.headers,
            instance=request.url.path,
        )

    @app.exception_handler(IntakeError)
    async def _intake(request: Request, exc: IntakeError) -> JSONResponse:
        status = 503 if exc.code == "not_configured" else 422
        errors = [field_error(e.field, e.message, e.code) for e in exc.all]
        return problem_response(
            status,
            "; ".join(f"{e.field}: {e.message}" for e in exc.all),
            code=exc.code if len(errors) == 1 else "invalid_input",
            errors=errors,
            instance=request.url.path,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            field_error(
                _location(e),
                str(e.get("msg", "is invalid")).removeprefix("Value error, "),
                str(e.get("type", "invalid_input")),
            )
            for e in exc.errors()
        ]
        # Intake reads the catalogue (a database round trip at times): not on the event loop.
        named = {e["field"] for e in errors}
        errors += await run_in_threadpool(_intake_errors, request, exc.body, named)
        names = ", ".join(sorted({e["field"] for e in errors}))
        return problem_response(
            422,
            f"invalid fields: {names}",
            code="invalid_input",
            errors=errors,
            instance=request.url.path,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "Error")
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        codes = {404: "not_found", 405: "method_not_allowed"}
        return problem_response(
            exc.status_code,
            detail,
            code=codes.get(exc.status_code),
            headers=getattr(exc, "headers", None),
            instance=request.url.path,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "API %s %s failed: %s",
            request.method,
            request.url.path,
            mask_text(f"{type(exc).__name__}: {exc}"),
        )
        return problem_response(500, "the request could not be completed", code="internal_error")
