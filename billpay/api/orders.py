"""Order routes: create (idempotent), this client's history, read one.

A client sees only the orders it created: another client's reference is the same 404 as a
missing one, and never shows in its history. Account numbers and phones are masked in every
answer (``******1212``): the client sent them, echoing them back in full only widens where they
end up (logs, caches, support screenshots) while the last four digits are enough to tell orders
apart. The token is answered in full: it is what the customer paid for.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from starlette.convertors import Convertor, register_url_convertor
from stellar_sdk import Asset, Network, TextMemo
from stellar_sdk.sep.stellar_uri import PayStellarUri

from billpay import accounts
from billpay.api import problems
from billpay.api.deps import Client, CurrentClient, Runtime
from billpay.api.problems import Problem, field_error
from billpay.api.schemas import History, OrderDetail, PayAnswer
from billpay.app import App
from billpay.config import Settings
from billpay.intake import IntakeError, OrderRequest, ValidOrder, order_fields
from billpay.intake import payment_instructions as instructions_for
from billpay.intake import validate as validate_order
from billpay.money import format_cngn, kobo_to_naira
from billpay.orders import REFERENCE_LENGTH
from billpay.states import BillState
from billpay.store import api_orders, bills
from billpay.tokens import format_token, is_valid_token, mask_account, mask_text

router = APIRouter(prefix="/api/bills", tags=["orders"])

# No control characters (a NUL cannot be stored in PostgreSQL text and means nothing here).
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
Text = Annotated[
    str, StringConstraints(strict=True, min_length=1, max_length=64, pattern=_PRINTABLE)
]
MONEY = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")
REFERENCE = re.compile(r"[A-Za-z0-9]{1,40}")
CURSOR = re.compile(r"v1:([1-9][0-9]{0,18})")
# The body names the fields `order create` takes; intake names some by their column.
_BODY_FIELD = {"account_number": "account", "product_code": "product"}


class PayRequest(BaseModel):
    """The order fields of ``billpay order create``."""

    model_config = ConfigDict(extra="forbid")

    bill_type: Text = Field(description="electricity, airtime, data, cable_tv or water")
    biller: Text = Field(description="a biller code from /api/bills/providers/{bill_type}")
    account: Text = Field(description="meter, phone, smart card or water account number")
    amount: str = Field(
        description='naira as a decimal string, at most 2 decimals: "5000" or "5000.50"',
        examples=["5000"],
    )
    phone: Text = Field(description="the customer's phone, for receipts")
    account_type: Text | None = Field(default=None, description="prepaid or postpaid")
    product: Text | None = Field(default=None, description="data plan or bouquet code")
    network: Text | None = Field(default=None, description="the network of a ported number")
    email: (
        Annotated[str, StringConstraints(strict=True, max_length=254, pattern=_PRINTABLE)] | None
    ) = None

    @field_validator("amount", mode="before")
    @classmethod
    def _money_string(cls, value: object) -> object:
        # A JSON number may already have lost digits in some client's float: only text is money.
        if not isinstance(value, str) or not MONEY.fullmatch(value):
            raise ValueError('must be a decimal string of naira, e.g. "5000" or "5000.50"')
        return value


IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x20-\x7e]+$",
        description="1-255 printable ASCII characters, unique per order you mean to create; "
        "a retry with the same key and body answers the same order",
    ),
]


_PAY_HEADERS = {
    "Location": {"description": "the order's URL", "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": "`true` when this answers an earlier request with the same key and body",
        "schema": {"type": "string", "enum": ["true"]},
    },
}


@router.post(
    "/pay",
    status_code=201,
    response_model=PayAnswer,
    responses={
        201: {"description": "the order, and where and what to pay", "headers": _PAY_HEADERS}
    },
)
def pay(
    body: PayRequest,
    idempotency_key: IdempotencyKey,
    client: CurrentClient,
    runtime: Runtime,
    response: Response,
) -> dict[str, Any]:
    """Create an order: 201 with where and what to pay, and a SEP-0007 ``web+stellar:pay`` URI.

    A replay (same key, same body, even concurrently) answers the same order with the same 201
    and body, plus ``Idempotent-Replayed: true``: a client that lost the first answer gets the
    very answer it missed, and no second order exists. The same key with another body is 422
    ``idempotency_key_reused``.
    """
    settings = runtime.settings
    body_hash = _body_hash(body)
    try:
        order = _validated(body, runtime)
    except IntakeError:
        # Today's rules refuse the body; a replay of a body that did make an order still
        # answers that order (its price may have changed since, or its biller gone).
        earlier = api_orders.replay_of(
            runtime.db, client_id=client.id, key=idempotency_key, body_hash=body_hash
        )
        if earlier is None:
            raise
        row, warnings, replayed = *earlier, True
    else:
        row, warnings, replayed = _create_once(order, body_hash, idempotency_key, client, runtime)
    response.headers["Location"] = f"{router.prefix}/{row['reference']}"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return _instructions(row, settings) | {"warnings": warnings}


def _create_once(
    order: ValidOrder, body_hash: str, key: str, client: Client, runtime: App
) -> tuple[dict[str, Any], list[str], bool]:
    try:
        return api_orders.create_once(
            runtime.db,
            client_id=client.id,
            key=key,
            request_hash=_request_hash(order),
            body_hash=body_hash,
            warnings=list(order.warnings),
            fields=order_fields(order, runtime.settings),
            actor=f"api:{client.name}",
        )
    except api_orders.IdempotencyKeyReused:
        raise Problem(
            422,
            "this Idempotency-Key was used for a different order; use a new key",
            code="idempotency_key_reused",
            errors=[
                field_error(
                    "Idempotency-Key", "used before with another body", "idempotency_key_reused"
                )
            ],
        ) from None


def _validated(body: PayRequest, runtime: App) -> ValidOrder:
    request = OrderRequest(**body.model_dump())
    try:
        return validate_order(request, runtime.settings, catalogue=runtime.catalogue.current())
    except IntakeError as exc:
        raise exc.renamed(_BODY_FIELD) from None


problems.check_body_with(f"{router.prefix}/pay", PayRequest, _validated)


def _body_hash(body: PayRequest) -> str:
    """The body as sent (parsed, keys sorted): what recognises a replay before validation."""
    canonical = json.dumps(body.model_dump(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _request_hash(order: ValidOrder) -> str:
    """The canonical body: the validated, normalised order ("MTN" and "mtn", "5000" and
    "5000.00" are one order), so only a different order counts as a different body."""
    canonical = json.dumps(order.columns(), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _instructions(row: dict[str, Any], settings: Settings) -> dict[str, Any]:
    out = instructions_for(row, settings)
    out["sep7_uri"] = sep7_uri(out, settings)
    return out


def sep7_uri(instructions: dict[str, Any], settings: Settings) -> str:
    """``web+stellar:pay?destination=..&amount=..&asset_code=..&asset_issuer=..&memo=..
    &memo_type=MEMO_TEXT`` (SEP-0007; the network passphrase too, off the public network)."""
    passphrase = settings.network_passphrase
    return PayStellarUri(
        destination=instructions["destination"],
        amount=instructions["amount_cngn"],
        asset=Asset(instructions["asset_code"], instructions["asset_issuer"]),
        memo=TextMemo(instructions["memo"]),
        network_passphrase=None if passphrase == Network.PUBLIC_NETWORK_PASSPHRASE else passphrase,
    ).to_uri()


@router.get("/history", response_model=History)
def history(
    client: CurrentClient,
    runtime: Runtime,
    phone: Annotated[str | None, Query(max_length=32, description="customer phone")] = None,
    account: Annotated[str | None, Query(max_length=64, description="account number")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=64, description="next_cursor")] = None,
) -> dict[str, Any]:
    """This client's orders, newest first: ``items`` and ``next_cursor`` (null on the last
    page; pass it back as ``cursor`` for the next)."""
    rows = api_orders.history(
        runtime.db,
        client.id,
        limit=limit + 1,
        before_id=_decode_cursor(cursor),
        phone=_phone_filter(phone),
        accounts=_account_filter(account),
    )
    page = rows[:limit]
    more = len(rows) > limit
    return {
        "items": [_summary(row) for row in page],
        "next_cursor": _encode_cursor(page[-1]["id"]) if more else None,
    }


def _encode_cursor(bill_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{bill_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        text = ""
    match = CURSOR.fullmatch(text)
    if match is None or int(match.group(1)) >= 2**63:
        raise _bad_query("cursor", "is not a next_cursor this API gave", "invalid_cursor")
    return int(match.group(1))


def _phone_filter(phone: str | None) -> str | None:
    if phone is None:
        return None
    try:
        return accounts.parse_phone(phone).local
    except accounts.ValidationError as exc:
        raise _bad_query("phone", exc.message, exc.code) from None


def _account_filter(account: str | None) -> list[str] | None:
    """The spellings an account is stored under: as given without separators, and a phone's
    local form (airtime and data accounts are phones, stored as 0803...)."""
    if account is None:
        return None
    compact = re.sub(r"[\s\-]", "", account)
    if not re.fullmatch(r"[A-Za-z0-9/]{1,64}", compact):
        raise _bad_query("account", "use letters and digits", "invalid_account_number")
    spellings = [compact]
    try:
        spellings.append(accounts.parse_phone(compact).local)
    except accounts.ValidationError:
        pass
    return spellings


def _bad_query(field: str, message: str, code: str) -> Problem:
    return Problem(
        422, f"{field}: {message}", code="invalid_input", errors=[field_error(field, message, code)]
    )


class _ReferenceConvertor(Convertor[str]):
    """Only an order reference's shape routes to the one-order answer, so ``GET
    /api/bills/pay`` is the 405 of the POST route, not "no order 'pay'"."""

    regex = f"[A-Za-z0-9]{{{REFERENCE_LENGTH}}}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("reference", _ReferenceConvertor())


@router.get("/{reference:reference}", response_model=OrderDetail)
def order(reference: str, client: CurrentClient, runtime: Runtime) -> dict[str, Any]:
    """One of this client's orders: status, amounts, timestamps and events; the payment
    instructions while it waits for payment; the token and units once completed; the refund
    and its transaction hash once there is one. 404 for a reference it did not create."""
    row = None
    if REFERENCE.fullmatch(reference):
        row = api_orders.order_of_client(runtime.db, client.id, reference.upper())
    if row is None:
        raise Problem(404, f"no order {reference[:40]!r} of this client", code="order_not_found")
    out = _summary(row)
    status = BillState(row["status"])
    out["fee"] = str(kobo_to_naira(row["fee_kobo"]))
    for name in ("paid_at", "completed_at", "refunded_at", "expires_at"):
        out[name] = _utc(row[name])
    out["token"] = out["units"] = out["refund"] = out["payment"] = None
    if status is BillState.COMPLETED:
        token = row["token"]
        out["token"] = format_token(token) if is_valid_token(token) else token
        out["units"] = row["units"]
    if status is BillState.PENDING_PAYMENT:
        out["payment"] = _instructions(row, runtime.settings)
    refund = api_orders.latest_refund(runtime.db, row["id"])
    if refund is not None:
        out["refund"] = _refund(refund)
    out["events"] = [
        {
            "from": e["from_state"],
            "to": e["to_state"],
            "at": _utc(e["at"]),
            **_public_event(e["actor"] or "", e["detail"] or ""),
        }
        for e in bills.events_for(runtime.db, row["id"])
    ]
    return out


def _public_event(actor: str, detail: str) -> dict[str, str]:
    """Who moved the order, as a client may see it: ``api``, ``provider webhook``,
    ``operator`` or ``billpay`` (the pipeline), never our hosts, processes or staff names; an
    operator's note stays with us."""
    if actor.startswith("operator"):
        return {"actor": "operator", "detail": "settled by our operations team"}
    if actor.startswith("api:") or actor == "order-intake":
        who = "api"
    elif actor.startswith("webhook"):
        who = "provider webhook"
    else:
        who = "billpay"
    return {"actor": who, "detail": mask_text(detail)}


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    """What a history line shows (and the head of the one-order answer)."""
    return {
        "reference": row["reference"],
        "status": row["status"],
        "bill_type": row["bill_type"],
        "biller": row["biller"],
        "product": row["product_code"],
        "network": row["network"],
        "account": mask_account(row["account_number"]),
        "phone": mask_account(row["customer_phone"]),
        "amount": str(kobo_to_naira(row["amount_kobo"])),
        "amount_cngn": format_cngn(row["amount_cngn"]),
        "created_at": _utc(row["created_at"]),
        "updated_at": _utc(row["updated_at"]),
    }


def _refund(refund: dict[str, Any]) -> dict[str, Any]:
    native = refund["asset_type"] == "native"
    return {
        "status": refund["status"],
        "reason": refund["reason"],
        "amount": format_cngn(refund["amount"]),
        "asset": "native" if native else f"{refund['asset_code']}:{refund['asset_issuer']}",
        "tx_hash": refund["tx_hash"],
    }


def _utc(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None
