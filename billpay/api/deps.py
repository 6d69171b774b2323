"""Request dependencies: the composition root, and the client a bearer key belongs to (each key
held to its request rate: 429 with Retry-After past ``BILLPAY_API_RATE_LIMIT``; where it counts:
billpay/api/ratelimit.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from billpay.api import keys
from billpay.api.problems import Problem
from billpay.app import App
from billpay.store import api_clients

_bearer = HTTPBearer(auto_error=False, description="an API key from `billpay apikey create`")
UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Client:
    id: int
    name: str
    key_prefix: str
    webhook_url: str | None
    created_at: datetime


def get_runtime(request: Request) -> App:
    return request.app.state.runtime


def current_client(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    runtime: Annotated[App, Depends(get_runtime)],
) -> Client:
    """The live client of the bearer key; 401 for no key, a malformed one or a revoked one; 429
    (with Retry-After) once the key has made its ``api_rate_limit`` of requests in the window.
    Every /api route depends on it, so every route counts."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Problem(
            401, "send Authorization: Bearer <api key>", code="unauthorized", headers=UNAUTHORIZED
        )
    row = api_clients.by_key_hash(runtime.db, keys.key_hash(credentials.credentials))
    if row is None:
        raise Problem(401, "the API key is not valid", code="unauthorized", headers=UNAUTHORIZED)
    client = Client(
        id=int(row["id"]),
        name=row["name"],
        key_prefix=row["key_prefix"],
        webhook_url=row["webhook_url"],
        created_at=row["created_at"],
    )
    wait = request.app.state.rate_limit.retry_after(client.id)
    if wait is not None:
        raise Problem(
            429,
            f"this key made more than {runtime.settings.api_rate_limit} requests; "
            f"retry in {wait} s",
            code="rate_limited",
            headers={"Retry-After": str(wait)},
        )
    request.state.client = client
    return client


# Route parameters: ``def route(client: CurrentClient, runtime: Runtime)``.
Runtime = Annotated[App, Depends(get_runtime)]
CurrentClient = Annotated[Client, Depends(current_client)]
