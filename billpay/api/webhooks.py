"""Provider webhooks in: hints that make a bill's requery due now; the requery decides.

Neither provider signs its body in a way that proves what it says (VTpass documents no
signature at all; Flutterwave's ``verif-hash`` is a shared secret, not an HMAC of the body), so
a webhook never changes a state or moves money. It names one of our pay attempts; the bill
waiting on that attempt is requeried at once (``bill_provider_hint``, sql/0018), and for a
VTpass reversal of a delivered bill its reversal re-check is due at once.

Bodies are hostile input: at most ``MAX_BODY_BYTES`` are read, any JSON shape is accepted, and
whatever cannot be read, or names no attempt of ours, is logged (masked) and acknowledged with
200, because a provider retries an error answer again and again. Only a wrong Flutterwave hash
is refused (401), and a database that cannot be reached is a 503 (the provider's retry then
delivers the hint when we are back).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from billpay.api.deps import Runtime
from billpay.api.problems import Problem
from billpay.api.schemas import FlutterwaveAck, VtpassAck
from billpay.app import App
from billpay.providers.base import text_field
from billpay.store import reversals as reversal_store
from billpay.tokens import mask_text

log = logging.getLogger(__name__)

router = APIRouter(prefix="/webhooks", tags=["provider webhooks"])

# Real webhook bodies are a few hundred bytes; anything far larger is not one.
MAX_BODY_BYTES = 64 * 1024
FLUTTERWAVE_HASH_HEADER = "verif-hash"
FLUTTERWAVE_EVENT = "singlebillpayment.status"
VTPASS_ACK = {"response": "success"}
FLUTTERWAVE_ACK = {"status": "success"}
# Our attempt references (billpay.providers.base.make_attempt_reference) are alphanumeric;
# allow the few separators a provider might add, nothing else.
_REFERENCE = re.compile(r"[A-Za-z0-9_-]{1,100}")


@dataclass(frozen=True, slots=True)
class WebhookHint:
    """What a webhook says, as far as we listen: which attempt, and whether it is a reversal."""

    provider: str
    reference: str
    reversal: bool
    status: str  # the provider's own word for it, for the audit note only


class Unreadable(ValueError):
    """The body names no attempt we could look up (its text is safe to log)."""


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _reference(value: object) -> str:
    text = text_field(value, 101)  # one more than allowed: a longer one is cut, then refused
    if text is None or not _REFERENCE.fullmatch(text):
        raise Unreadable("no readable reference")
    return text


def parse_json(raw: bytes) -> object:
    """The body as JSON, or ``Unreadable`` (bad UTF-8, bad JSON, NaN, deep nesting...)."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Unreadable(f"not JSON: {type(exc).__name__}") from None


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def vtpass_hint(body: object) -> WebhookHint:
    """``{"type": "transaction-update", "data": {...the requery shape...}}``: the request id is
    ``data.requestId`` (or the transaction's); a reversal says code 040 or status reversed."""
    payload = _mapping(body)
    data = _mapping(payload.get("data"))
    tx = _mapping(_mapping(data.get("content")).get("transactions"))
    raw = next(
        (
            value
            for value in (
                data.get("requestId"),
                data.get("request_id"),
                tx.get("requestId"),
                tx.get("request_id"),
            )
            if value not in (None, "")
        ),
        None,
    )
    reference = _reference(raw)
    status = (text_field(tx.get("status"), 40) or text_field(data.get("status"), 40) or "").lower()
    code = text_field(data.get("code"), 10) or ""
    kind = (text_field(payload.get("type"), 60) or "").lower()
    reversal = code.zfill(3) == "040" or status == "reversed" or "revers" in kind
    return WebhookHint("vtpass", reference, reversal, status or code or kind or "update")


def flutterwave_hint(body: object) -> WebhookHint:
    """``{"event": "singlebillpayment.status", "data": {"customer_reference": <ours>, "status":
    "success" | "fail"}}``. Flutterwave documents no reversal of a bill payment."""
    payload = _mapping(body)
    event = (text_field(payload.get("event"), 60) or "").lower()
    if event != FLUTTERWAVE_EVENT:
        raise Unreadable(f"event {event or 'missing'} is not {FLUTTERWAVE_EVENT}")
    data = _mapping(payload.get("data"))
    reference = _reference(data.get("customer_reference"))
    status = (text_field(data.get("status"), 40) or "update").lower()
    return WebhookHint("flutterwave", reference, False, status)


async def read_limited(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, or ``Unreadable`` when it is longer than ``limit`` (never read past it)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Unreadable(f"body of {declared} bytes is over {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Unreadable(f"body over {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise Unreadable("the sender hung up") from None
    return b"".join(chunks)


def flutterwave_hash_ok(sent: str | None, expected: str) -> bool:
    """The ``verif-hash`` header against the configured hash, in constant time; an unset hash
    accepts nothing."""
    if not expected or sent is None:
        return False
    return hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode("utf-8"))


# The words a webhook's status may put in a bill's audit trail (which the client app reads):
# anything else the sender wrote is "update", so a forged body cannot write "refund sent".
STATUS_WORDS = frozenset(
    {"delivered", "pending", "initiated", "failed", "reversed", "success", "successful", "fail"}
)


def status_word(status: str) -> str:
    return status if status in STATUS_WORDS else "update"


def apply_hint(runtime: App, hint: WebhookHint) -> str:
    """Make the named attempt's requery (or a reversal re-check) due now; returns what was done."""
    status = status_word(hint.status)
    detail = f"{hint.provider} webhook ({status}): requery due now"
    if hint.reversal:
        detail = f"{hint.provider} webhook reports a reversal ({status}): re-check due now"
    return reversal_store.provider_hint(
        runtime.db,
        hint.provider,
        hint.reference,
        reversal=hint.reversal,
        actor=f"webhook:{hint.provider}",
        detail=detail[:200],
    )


async def _receive(request: Request, runtime: App, provider: str) -> None:
    """Read, parse and apply one webhook; never raises for what the body says."""
    try:
        raw = await read_limited(request)
        body = parse_json(raw)
        hint = vtpass_hint(body) if provider == "vtpass" else flutterwave_hint(body)
    except Unreadable as why:
        log.warning("%s webhook ignored: %s", provider, mask_text(str(why)))
        return
    try:
        done = await run_in_threadpool(apply_hint, runtime, hint)
    except Exception as exc:  # noqa: BLE001 - the provider retries a 503, so the hint is not lost
        log.error("%s webhook not applied: %s", provider, mask_text(type(exc).__name__))
        raise Problem(503, "try again later", code="database_unavailable") from None
    level = logging.INFO
    if done in ("unknown_reference", "closed_attempt", "hint_ignored"):
        level = logging.WARNING
    log.log(
        level,
        "%s webhook for %s (%s%s): %s",
        provider,
        mask_text(hint.reference),
        status_word(hint.status),  # the sender's text is never logged as it came
        ", reversal" if hint.reversal else "",
        done,
    )


@router.post(
    "/vtpass",
    summary="VTpass transaction-update and reversal webhook",
    response_model=VtpassAck,
)
async def vtpass_webhook(request: Request, runtime: Runtime) -> JSONResponse:
    """A hint only: the named attempt's requery is due now. Always ``{"response": "success"}``
    (VTpass retries anything else), also for bodies we cannot read or do not know."""
    await _receive(request, runtime, "vtpass")
    return JSONResponse(VTPASS_ACK)


@router.post(
    "/flutterwave",
    summary="Flutterwave singlebillpayment.status webhook",
    response_model=FlutterwaveAck,
)
async def flutterwave_webhook(request: Request, runtime: Runtime) -> JSONResponse:
    """Checked against ``BILLPAY_FLUTTERWAVE_WEBHOOK_HASH`` (header ``verif-hash``, constant
    time; 401 otherwise), then a hint only: the named attempt's requery is due now."""
    expected = runtime.settings.flutterwave_webhook_hash.get_secret_value()
    if not flutterwave_hash_ok(request.headers.get(FLUTTERWAVE_HASH_HEADER), expected):
        raise Problem(401, "the verif-hash header is missing or wrong", code="unauthorized")
    await _receive(request, runtime, "flutterwave")
    return JSONResponse(FLUTTERWAVE_ACK)
