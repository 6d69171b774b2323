"""What every /api request must get right before a route reads it, checked in front of the app
(pure ASGI, no body parsed): a bearer key is present (401 otherwise, even when the body is not
JSON: nothing about the body is answered to a caller with no key), a POST's body is JSON
(415) and small (413: an order is a few hundred bytes; nobody's 5 MB is read and parsed).
The key itself is checked by the route's ``CurrentClient`` dependency."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from billpay.api.deps import UNAUTHORIZED
from billpay.api.problems import problem_response

MAX_BODY_BYTES = 16 * 1024
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class RequestGuard:
    def __init__(self, app: ASGIApp, prefix: str = "/api/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            await self._refuse(scope, receive, send, 401, "send Authorization: Bearer <api key>")
            return
        if scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        media = headers.get("content-type", "").partition(";")[0].strip().lower()
        if media != "application/json":
            await self._refuse(scope, receive, send, 415, "send the body as application/json")
            return
        declared = headers.get("content-length", "")
        if declared and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            await self._refuse(
                scope, receive, send, 413, f"the body is over {MAX_BODY_BYTES} bytes"
            )
            return
        body = await _read(receive, MAX_BODY_BYTES)
        if body is None:
            await self._refuse(
                scope, receive, send, 413, f"the body is over {MAX_BODY_BYTES} bytes"
            )
            return
        await self.app(scope, _replay(body, receive), send)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, detail: str
    ) -> None:
        codes = {401: "unauthorized", 413: "body_too_large", 415: "unsupported_media_type"}
        response = problem_response(
            status,
            detail,
            code=codes[status],
            headers=UNAUTHORIZED if status == 401 else None,
            instance=scope["path"],
        )
        await response(scope, receive, send)


async def _read(receive: Receive, limit: int) -> bytes | None:
    """The whole body (a chunked one too), or None once it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: let the app see it
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the disconnect, when it comes

    return replay
