"""The documented answers of every route: the response models behind ``/openapi.json``.

Routes build their answers as before (dicts of strings, numbers and nulls) and declare one of
these as ``response_model``: FastAPI validates the answer against it and serialises it in the
model's field order, so each model lists its fields in the order the route writes them and the
JSON a client gets is byte for byte what it was without a model. Money stays a decimal string
(``Money`` and friends: a pattern, never a JSON number), times stay the ISO 8601 UTC strings the
routes write (``UtcTime``: checked to be UTC, documented as ``date-time``), and every model
forbids extra keys: a key a route adds without documenting it is an error in the tests, not a
key silently dropped from the answer.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from billpay.orders import BillType
from billpay.states import BillState

# A decimal string: digits, an optional fraction, never an exponent ("5E+3") or a JSON number.
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"


def _utc_iso(value: str) -> str:
    if datetime.fromisoformat(value).utcoffset() != timedelta(0):
        raise ValueError("must be an ISO 8601 time in UTC")
    return value


Naira = Annotated[
    str,
    Field(pattern=DECIMAL_PATTERN, description="naira, a decimal string", examples=["5000.00"]),
]
Cngn = Annotated[
    str,
    Field(
        pattern=DECIMAL_PATTERN,
        description="cNGN, a decimal string with 7 places (1 cNGN = 1 naira)",
        examples=["5000.0000000"],
    ),
]
Rate = Annotated[
    str,
    Field(
        pattern=DECIMAL_PATTERN,
        description="a share from 0 to 1, a decimal string with 4 places; null when nothing "
        "settled",
        examples=["0.9750"],
    ),
]
UtcTime = Annotated[
    str,
    AfterValidator(_utc_iso),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601, UTC",
            "examples": ["2026-12-02T02:01:18.774598+00:00"],
        }
    ),
]
Masked = Annotated[
    str, Field(description="masked: only the last four characters", examples=["*******4567"])
]


class Answer(BaseModel):
    """A documented answer: unknown keys are refused, so the schema lists every key sent, and
    every key is required (a default only fills what the route leaves out: it is still sent)."""

    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


# --- health and catalogue ------------------------------------------------------------------


class Health(Answer):
    status: Literal["ok"]
    database: Literal["ok"] = Field(description="the database answered")


class BillTypeEntry(Answer):
    code: BillType
    label: str = Field(examples=["Electricity"])


class BillTypes(Answer):
    types: list[BillTypeEntry]


class Product(Answer):
    code: str = Field(examples=["mtn-1gb-30d"])
    name: str
    price: Naira | None = Field(
        description="a fixed price in naira, or null when the customer chooses the amount"
    )


class Biller(Answer):
    code: str = Field(examples=["ikeja-electric"], description="the `biller` of an order")
    name: str = Field(examples=["Ikeja Electric"])
    products: list[Product] = Field(description="plans or bouquets; empty when none is listed")


class Providers(Answer):
    bill_type: BillType
    billers: list[Biller]


class ValidateAnswer(Answer):
    """``POST /api/bills/validate``: what the pipeline would decide about this account now."""

    valid: bool
    customer_name: str | None = Field(None, description="as the provider knows it (numbers masked)")
    address: str | None = Field(None, description="as the provider knows it (numbers masked)")
    min_amount: Naira | None = Field(None, description="the least this bill may cost, in naira")
    max_amount: Naira | None = Field(None, description="the most this bill may cost, in naira")
    message: str = Field(examples=["the account is valid"])
    warnings: list[str] = Field(default=[], description="e.g. a ported number's prefix")


# --- orders --------------------------------------------------------------------------------


class PaymentInstructions(Answer):
    """Where and what to pay: ``amount_cngn`` of ``asset_code:asset_issuer`` to ``destination``
    with the text memo ``memo``, or to ``muxed_destination`` (no memo needed), before
    ``expires_at``."""

    reference: str = Field(examples=["WCT3R5D5EM"], description="the order's reference")
    memo: str = Field(examples=["BILL-WCT3R5D5EM"], description="the MEMO_TEXT to send")
    amount_cngn: Cngn
    destination: str = Field(description="our Stellar account (G...)")
    muxed_destination: str = Field(description="an M-address naming this order")
    asset_code: str = Field(examples=["cNGN"])
    asset_issuer: str = Field(description="the cNGN issuer (G...)")
    expires_at: UtcTime = Field(description="pay before this; later payments are refunded")
    sep7_uri: str = Field(
        description="SEP-0007 `web+stellar:pay` URI of this payment, for wallets",
        examples=["web+stellar:pay?destination=G...&amount=5000.0000000&memo_type=MEMO_TEXT"],
    )


class PayAnswer(PaymentInstructions):
    """``POST /api/bills/pay``: the payment instructions and the order's warnings. A replay of
    the same Idempotency-Key and body answers this same body again."""

    warnings: list[str] = Field(
        description="accepted but worth telling the customer, e.g. a ported number's prefix"
    )


class OrderSummary(Answer):
    """One order as a history line shows it (and the head of ``GET /api/bills/{reference}``)."""

    reference: str = Field(examples=["WCT3R5D5EM"])
    status: BillState
    bill_type: BillType
    biller: str = Field(examples=["ikeja-electric"])
    product: str | None = Field(description="the plan or bouquet code, if any")
    network: str | None = Field(description="the network of a ported number, if given")
    account: Masked
    phone: Masked
    amount: Naira
    amount_cngn: Cngn
    created_at: UtcTime
    updated_at: UtcTime


class Refund(Answer):
    status: Literal["pending", "submitted", "confirmed", "held"] = Field(
        description="confirmed: on the ledger"
    )
    reason: str = Field(examples=["amount_mismatch"])
    amount: Cngn
    asset: str = Field(
        description="`native` (XLM) or `CODE:ISSUER`, what the payment brought",
        examples=["cNGN:GAD4DF..."],
    )
    tx_hash: str | None = Field(description="the refund's Stellar transaction hash, once sent")


class OrderEvent(Answer):
    """One state change. ``from`` is a Python keyword: the field is ``from_``, sent as ``from``
    (FastAPI serialises by alias)."""

    from_: BillState | None = Field(alias="from", description="null for the first event")
    to: BillState
    at: UtcTime
    actor: Literal["api", "provider webhook", "operator", "billpay"]
    detail: str = Field(description="what happened, masked")


class OrderDetail(OrderSummary):
    """``GET /api/bills/{reference}``: the summary, then the fee, timestamps, token and units
    once completed, the refund once there is one, the payment instructions while pending and
    every state change."""

    fee: Naira = Field(description="our service fee in naira, included in amount_cngn")
    paid_at: UtcTime | None
    completed_at: UtcTime | None
    refunded_at: UtcTime | None
    expires_at: UtcTime | None
    token: str | None = Field(
        description="the delivered token (electricity: grouped by 4), once completed",
        examples=["1234-5678-9012-3456-7890"],
    )
    units: str | None = Field(description="the units the provider reports, once completed")
    refund: Refund | None = Field(description="the latest refund of this order's payment")
    payment: PaymentInstructions | None = Field(description="while the order waits for payment")
    events: list[OrderEvent] = Field(description="its state changes, oldest first")


class History(Answer):
    items: list[OrderSummary] = Field(description="newest first")
    next_cursor: str | None = Field(
        description="pass back as `cursor` for the next page; null on the last page"
    )


# --- stats ---------------------------------------------------------------------------------


class SuccessRateRow(Answer):
    """One (bill type, biller) of the success-rate report; ``*`` rows are roll-ups."""

    bill_type: str = Field(examples=["electricity", "*"])
    biller: str = Field(examples=["ikeja-electric", "*"])
    paid: int
    completed: int
    refunded: int
    in_flight: int
    settled: int = Field(description="completed + refunded")
    success_rate: Rate | None
    refund_rate: Rate | None
    refunds_by_reason: dict[str, int]
    time_to_complete_p50_s: float | None = Field(description="seconds from paid to completed")
    time_to_complete_p95_s: float | None
    cngn_volume: Cngn


class ProviderPerformanceRow(Answer):
    """One (provider, operation) of the provider-performance report; ``*`` rows are roll-ups.
    The ``pay`` rows alone carry the requery and token figures (null elsewhere)."""

    provider: str = Field(examples=["vtpass", "*"])
    operation: str = Field(examples=["pay", "verify", "requery", "*"])
    calls: int
    success: int
    pending: int
    failed: int
    unknown: int
    success_rate: Rate | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    error_classes: dict[str, int]
    fallbacks: int
    pay_attempts_requeried: int | None
    requery_share: Rate | None
    tokens_delivered: int | None
    time_to_token_p50_s: float | None = Field(description="electricity: paid to completed")
    time_to_token_p95_s: float | None


class Stats(Answer):
    scope: Literal["client"] = Field(description="the calling client's orders only")
    window: str = Field(examples=["24h"])
    window_start: UtcTime
    window_end: UtcTime
    success_rate: list[SuccessRateRow]
    provider_performance: list[ProviderPerformanceRow]


# --- provider webhooks ---------------------------------------------------------------------
# The webhook routes answer a raw JSONResponse (webhooks.VTPASS_ACK, FLUTTERWAVE_ACK): these
# models only document it, and the fuzz test's response schema check keeps the two in step.


class VtpassAck(Answer):
    response: Literal["success"]


class FlutterwaveAck(Answer):
    status: Literal["success"]
