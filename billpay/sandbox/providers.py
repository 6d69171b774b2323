"""Flutterwave (``/flutterwave/v3``) and VTpass (``/vtpass/api``) simulators.

They speak the wire formats the adapters parse (the documented bodies in tests/fixtures) and
share one set of magic account numbers, so a scenario uses the same number on either provider.
Magic numbers act on **pay** only; verify says "valid" for them so a scenario reaches the pay:

==================  ===========================================================================
``201000000000``    pending: pay answers pending; a status/requery turns it delivered after
                    ``pending_requeries`` requeries or ``pending_seconds`` seconds
``500000000000``    unexpected response: HTML with HTTP 200 (the payment *is* made: requery
                    finds it delivered)
``400000000000``    no response: HTTP 502 with an empty body (payment made, as above)
``300000000000``    timeout: the payment is made, then the answer waits ``timeout_sleep_seconds``
                    (env ``BILLPAY_SANDBOX_TIMEOUT_SECONDS``, default 35 > the 30 s read timeout)
==================  ===========================================================================

A number is magic when its digits (after a leading ``0``, ``234`` or ``+234``) are the code
followed only by zeros, so the shapes our validation accepts work too: meter ``2010000000000``
(13 digits), smart card ``2010000000``, phone ``02010000000`` (name the network explicitly).

Other numbers: meters and smart cards succeed only for the documented sandbox numbers
``1111111111111`` (prepaid), ``1010101010101`` (postpaid), ``1212121212`` (smart card) plus the
shapes our validation needs (11-digit meter ``11111111111``, StarTimes card ``12121212121``);
any other meter or card is invalid on verify and fails on pay. Phones (airtime, data) and water
accounts succeed unless magic, so demo numbers like ``08031234567`` just work.

``options.failure_rate`` turns that share of otherwise successful pays into definitive
failures (VTpass ``016``, Flutterwave HTTP 400), drawn from ``options.rng``.

A VTpass pay whose ``request_id`` does not start with the Lagos minute of the sandbox's clock
(``ProviderSandboxConfig.clock``, within ``REQUEST_ID_TOLERANCE`` either way) is refused with
``085`` and recorded nowhere, as VTpass does.

Webhooks (opt-in, ``options.webhook_url``): a pending payment then also settles on its own
``pending_seconds`` after the pay, and the provider's webhook is POSTed to the API once it is
delivered (billpay/sandbox/webhooks.py). Control routes, as an operator's action at the provider:
``POST /vtpass/api/_sandbox/transactions/{request_id}/settle`` (and
``/flutterwave/v3/_sandbox/transactions/{reference}/settle``) delivers a pending payment now;
``POST /vtpass/api/_sandbox/transactions/{request_id}/reverse`` reverses a delivered VTpass
payment: its requery then answers ``040`` with status ``reversed``, and VTpass's webhook says
so when webhooks are on. Flutterwave documents no reversal, so the sandbox has none.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from billpay.orders import BillType
from billpay.providers.base import LAGOS, REFERENCE_STAMP_FORMAT
from billpay.sandbox import webhooks
from billpay.sandbox.catalogue import SandboxBiller, SandboxCatalogue, SandboxItem
from billpay.sandbox.options import SandboxOptions

SANDBOX_FLUTTERWAVE_SECRET_KEY = "FLWSECK_TEST-sandbox0000000000000000000000000000-X"
SANDBOX_VTPASS_API_KEY = "sandbox-vtpass-api-key-0000000000"
SANDBOX_VTPASS_PUBLIC_KEY = "PK_sandbox_vtpass_public_0000000000"
SANDBOX_VTPASS_SECRET_KEY = "SK_sandbox_vtpass_secret_0000000000"
TIMEOUT_ENV = "BILLPAY_SANDBOX_TIMEOUT_SECONDS"
DEFAULT_TIMEOUT_SLEEP_SECONDS = 35.0
# VTpass wants the request_id to start with the current Lagos minute. How far off it may be, in
# either direction (clock skew), is undocumented: the sandbox takes a stamp whose minute is at
# most this far from its clock, and answers any other 085.
REQUEST_ID_TOLERANCE = timedelta(minutes=5)


def provider_env(base_url: str) -> dict[str, str]:
    """The BILLPAY_* settings that point both adapters at this sandbox."""
    base = base_url.rstrip("/")
    return {
        "BILLPAY_FLUTTERWAVE_BASE_URL": f"{base}/flutterwave/v3",
        "BILLPAY_FLUTTERWAVE_SECRET_KEY": SANDBOX_FLUTTERWAVE_SECRET_KEY,
        "BILLPAY_VTPASS_BASE_URL": f"{base}/vtpass/api",
        "BILLPAY_VTPASS_API_KEY": SANDBOX_VTPASS_API_KEY,
        "BILLPAY_VTPASS_PUBLIC_KEY": SANDBOX_VTPASS_PUBLIC_KEY,
        "BILLPAY_VTPASS_SECRET_KEY": SANDBOX_VTPASS_SECRET_KEY,
        "BILLPAY_FLUTTERWAVE_WEBHOOK_HASH": webhooks.SANDBOX_FLUTTERWAVE_WEBHOOK_HASH,
    }


def _default_timeout_sleep() -> float:
    return float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_SLEEP_SECONDS))


@dataclass
class ProviderSandboxConfig:
    timeout_sleep_seconds: float = field(default_factory=_default_timeout_sleep)
    pending_requeries: int = 2  # requeries answered "pending" before "delivered"
    pending_seconds: float = 5.0  # ... or this long after the pay, whichever comes first
    # The first N requeries of each payment answer "not found" (VTpass 015, Flutterwave 404) as
    # a lagging lookup would, although the payment was taken: a resend must then be refused.
    requery_not_found: int = 0
    # VTpass's clock, for the request_id rule (a test that moves time moves it too).
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


class Scenario(StrEnum):
    SUCCESS = "success"
    FAIL = "fail"
    PENDING = "pending"
    UNEXPECTED = "unexpected"
    NO_RESPONSE = "no_response"
    TIMEOUT = "timeout"


MAGIC_CODES = {
    "201": Scenario.PENDING,
    "500": Scenario.UNEXPECTED,
    "400": Scenario.NO_RESPONSE,
    "300": Scenario.TIMEOUT,
}
_MAGIC = re.compile(r"(201|500|400|300)0{6,}")
SUCCESS_ACCOUNTS = frozenset(
    {"1111111111111", "11111111111", "1010101010101", "1212121212", "12121212121"}
)


def scenario_for(bill_type: BillType, account: str) -> Scenario:
    digits = re.sub(r"\D", "", account or "")
    significant = digits
    if len(digits) == 13 and digits.startswith("234"):
        significant = digits[3:]
    elif digits.startswith("0"):
        significant = digits[1:]
    for candidate in (digits, significant):
        if match := _MAGIC.fullmatch(candidate):
            return MAGIC_CODES[match.group(1)]
    if bill_type in (BillType.ELECTRICITY, BillType.CABLE_TV):
        return Scenario.SUCCESS if digits in SUCCESS_ACCOUNTS else Scenario.FAIL
    return Scenario.SUCCESS


def sandbox_token(reference: str) -> str:
    """A deterministic 20-digit STS token for a payment reference."""
    digest = int(hashlib.sha256(reference.encode()).hexdigest(), 16)
    return str(digest % 10**20).zfill(20)


def _digits_of(reference: str, length: int) -> str:
    digest = int(hashlib.sha256(("id:" + reference).encode()).hexdigest(), 16)
    return str(digest).zfill(length)[:length]


def _grouped(token: str) -> str:
    return "-".join(token[i : i + 4] for i in range(0, 20, 4))


@dataclass
class Transaction:
    provider: str
    reference: str
    biller: SandboxBiller
    plan: SandboxItem | None  # the item / variation paid (None: airtime without one)
    account: str
    amount: Decimal
    status: str  # delivered | pending | failed | reversed (VTpass, by the control route)
    created: float = field(default_factory=time.monotonic)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    requeries: int = 0
    lookups_missed: int = (
        0  # requeries answered "not found" (ProviderSandboxConfig.requery_not_found)
    )
    announced: bool = False  # its delivery webhook was sent (once per settled payment)

    @property
    def prepaid(self) -> bool:
        # VTpass's variation is "prepaid"; Flutterwave's item is named "... prepaid".
        return self.biller.bill_type == BillType.ELECTRICITY and (
            self.plan is not None and "prepaid" in f"{self.plan.code} {self.plan.name}".lower()
        )

    @property
    def token(self) -> str | None:
        return (
            sandbox_token(self.reference) if self.prepaid and self.status == "delivered" else None
        )

    @property
    def units(self) -> str | None:
        if not self.prepaid or self.status != "delivered":
            return None
        return f"{(self.amount / 25).quantize(Decimal('0.1'))} kWh"


def _parse_amount(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() and amount > 0 else None


def _number(amount: Decimal) -> int | float | str:
    return int(amount) if amount == amount.to_integral_value() else str(amount)


class _Sandbox:
    """State and behaviour shared by both simulators (one instance per mounted app)."""

    def __init__(self, options: SandboxOptions, config: ProviderSandboxConfig) -> None:
        self.options = options
        self.config = config
        self.transactions: dict[tuple[str, str], Transaction] = {}
        self.flw_first_answers: dict[str, tuple[int, Any]] = {}
        # Handlers run on one event loop under uvicorn, but a TestClient shared by threads runs
        # them on several: check-and-record must stay atomic either way.
        self.lock = threading.Lock()
        self.background: set[asyncio.Task[Any]] = set()  # webhook tasks (kept from the GC)
        self.catalogue = SandboxCatalogue()  # mutable: the catalogue control routes change it

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def after_pay(self, tx: Transaction) -> None:
        """With webhooks on, a pending payment settles by itself after ``pending_seconds``."""
        if self.options.webhook_url and tx.status == "pending":
            self._spawn(self._settle_later(tx))

    async def _settle_later(self, tx: Transaction) -> None:
        await asyncio.sleep(self.config.pending_seconds)
        self.settle_now(tx)

    def settle_now(self, tx: Transaction) -> bool:
        """Deliver a pending payment now (and announce it once, webhooks on); False when it
        was not pending."""
        with self.lock:
            was_pending = tx.status == "pending"
            if was_pending:
                tx.status = "delivered"
            announce = tx.status == "delivered" and not tx.announced
            tx.announced = tx.announced or announce
        if announce:
            self.announce(tx)
        return was_pending

    def reverse(self, tx: Transaction) -> bool:
        """A delivered VTpass payment taken back; announced when webhooks are on."""
        with self.lock:
            if tx.provider != "vtpass" or tx.status != "delivered":
                return False
            tx.status = "reversed"
        self.announce(tx)
        return True

    def announce(self, tx: Transaction) -> None:
        """Send the provider's webhook for ``tx`` as it is now (webhooks on only)."""
        if not self.options.webhook_url:
            return
        if tx.provider == "vtpass":
            body = webhooks.vtpass_body(_vtpass_transaction_body(tx))
        else:
            body = webhooks.flutterwave_body(_flw_status_data(tx), tx.status == "delivered")
        self._spawn(webhooks.send(self.options, tx.provider, tx.reference, body))

    async def latency(self) -> None:
        if self.options.latency_ms > 0:
            await asyncio.sleep(self.options.latency_ms / 1000)

    def random_failure(self) -> bool:
        if self.options.failure_rate <= 0:
            return False
        with self.options.lock:
            return self.options.rng.random() < self.options.failure_rate

    def settle(self, tx: Transaction) -> None:
        """Pending payments deliver after a few requeries or a few seconds."""
        if tx.status != "pending":
            return
        tx.requeries += 1
        waited = time.monotonic() - tx.created
        if tx.requeries > self.config.pending_requeries or waited >= self.config.pending_seconds:
            tx.status = "delivered"

    def lookup(self, provider: str, reference: str) -> Transaction | None:
        """A requery's view of a payment: None while the lookup still lags behind the pay."""
        with self.lock:
            tx = self.transactions.get((provider, reference))
            if tx is None or tx.lookups_missed >= self.config.requery_not_found:
                return tx
            tx.lookups_missed += 1
            return None

    def record(self, provider: str, reference: str, **fields: Any) -> Transaction:
        tx = Transaction(provider=provider, reference=reference, **fields)
        self.transactions[(provider, reference)] = tx
        return tx

    async def answer_magic(self, scenario: Scenario, success: Response) -> Response:
        if scenario == Scenario.UNEXPECTED:
            html = "<html><body><h1>502 Bad Gateway</h1>upstream hiccup</body></html>"
            return Response(html, status_code=200, media_type="text/html")
        if scenario == Scenario.NO_RESPONSE:
            return Response(b"", status_code=502)
        if scenario == Scenario.TIMEOUT:
            await asyncio.sleep(self.config.timeout_sleep_seconds)
        return success


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# --- VTpass ---------------------------------------------------------------------------------


def _vtpass_error(code: str, description: str, status: int = 200) -> JSONResponse:
    return JSONResponse({"code": code, "response_description": description}, status_code=status)


def _vtpass_authorised(request: Request) -> bool:
    second = ("public-key", SANDBOX_VTPASS_PUBLIC_KEY)
    if request.method != "GET":
        second = ("secret-key", SANDBOX_VTPASS_SECRET_KEY)
    headers = request.headers
    return headers.get("api-key") == SANDBOX_VTPASS_API_KEY and headers.get(second[0]) == second[1]


def request_id_problem(request_id: object, now: datetime) -> str | None:
    """Why VTpass would refuse ``request_id`` with 085 at ``now`` (None: it is proper): at least
    12 alphanumerics, the first 12 a Lagos ``YYYYMMDDHHII`` within ``REQUEST_ID_TOLERANCE``."""
    if not isinstance(request_id, str) or len(request_id) < 12:
        return "MUST BE 12 ALPHANUMERIC CHARACTERS OR MORE"
    if not (request_id.isascii() and request_id.isalnum()):  # no other scripts' digits
        return "MUST BE 12 ALPHANUMERIC CHARACTERS OR MORE"
    try:
        stamped = datetime.strptime(request_id[:12], REFERENCE_STAMP_FORMAT).replace(tzinfo=LAGOS)
    except ValueError:
        return "FIRST 12 CHARACTERS MUST BE THE DATE AND TIME (YYYYMMDDHHII)"
    minute = now.astimezone(LAGOS).replace(second=0, microsecond=0)
    if abs(stamped - minute) > REQUEST_ID_TOLERANCE:
        return "NOT THE CURRENT TIME: USE TODAY'S DATE AND TIME IN AFRICA/LAGOS (GMT+1)"
    return None


def _vtpass_transaction_body(tx: Transaction) -> dict[str, Any]:
    status = tx.status
    description = {
        "delivered": "TRANSACTION SUCCESSFUL",
        "pending": "TRANSACTION PROCESSING",
        "failed": "TRANSACTION FAILED",
        "reversed": "TRANSACTION REVERSED",
    }[status]
    commission = (tx.amount * Decimal("0.015")).quantize(Decimal("0.01"))
    body: dict[str, Any] = {
        "code": "000",
        "content": {
            "transactions": {
                "status": status,
                "product_name": tx.biller.name,
                "unique_element": tx.account,
                "unit_price": str(_number(tx.amount)),
                "quantity": 1,
                "commission": _number(commission),
                "total_amount": _number(tx.amount - commission),
                "type": tx.biller.bill_type.value,
                "amount": str(_number(tx.amount)),
                "transactionId": _digits_of(tx.reference, 26),
            }
        },
        "response_description": description,
        "requestId": tx.reference,
        "amount": _number(tx.amount),
        "transaction_date": tx.created_at.isoformat().replace("+00:00", "Z"),
        "purchased_code": "",
    }
    if status == "reversed":
        body["code"] = "040"
    if tx.token:
        token_text = f"Token : {tx.token}"
        body.update(
            purchased_code=token_text,
            token=token_text,
            customerName="SANDBOX CUSTOMER",
            units=tx.units,
            tariff="R2 SINGLE PHASE RESIDENTIAL",
            resetToken="N/A",
            configureToken="N/A",
        )
    return body


def _vtpass_verify_body(biller: SandboxBiller, account: str, kind: str | None) -> dict[str, Any]:
    if scenario_for(biller.bill_type, account) == Scenario.FAIL:
        content: dict[str, Any] = {
            "error": "This meter/card number is not valid. Please check and try again.",
            "WrongBillersCode": True,
        }
        return {"code": "000", "content": content}
    content = {"Customer_Name": "SANDBOX CUSTOMER", "WrongBillersCode": False}
    if biller.bill_type == BillType.ELECTRICITY:
        content.update(
            Address="1 SANDBOX CLOSE, IKEJA",
            Meter_Number=account,
            Customer_Arrears="",
            Minimum_Amount="",
            Min_Purchase_Amount="",
            Can_Vend="yes",
            Meter_Type=(kind or "prepaid").upper(),
        )
    else:
        content.update(Status="ACTIVE", Due_Date="2026-12-31", Customer_Number=account)
    return {"code": "000", "content": content}


def _vtpass_router(sandbox: _Sandbox) -> APIRouter:
    router = APIRouter(prefix="/vtpass/api")
    log = sandbox.options.log_call

    @router.get("/services")
    async def services(request: Request, identifier: str = "") -> Response:
        await sandbox.latency()
        if not _vtpass_authorised(request):
            return _vtpass_error("087", "INVALID CREDENTIALS", 401)
        log("vtpass", "catalogue", reference=None, account=None, amount=None, outcome="ok")
        return JSONResponse(sandbox.catalogue.vtpass_services(identifier))

    @router.get("/service-variations")
    async def service_variations(request: Request, serviceID: str = "") -> Response:  # noqa: N803
        await sandbox.latency()
        if not _vtpass_authorised(request):
            return _vtpass_error("087", "INVALID CREDENTIALS", 401)
        biller = sandbox.catalogue.biller("vtpass", serviceID)
        if biller is None:
            return _vtpass_error("012", "PRODUCT DOES NOT EXIST")
        if sandbox.catalogue.is_broken("vtpass", serviceID):
            return Response(_BROKEN_PAGE, status_code=200, media_type="text/html")
        log("vtpass", "catalogue", reference=None, account=None, amount=None, outcome="ok")
        return JSONResponse(sandbox.catalogue.vtpass_variations(biller))

    @router.post("/merchant-verify")
    async def merchant_verify(request: Request) -> Response:
        await sandbox.latency()
        if not _vtpass_authorised(request):
            log("vtpass", "verify", reference=None, account=None, amount=None, outcome="087")
            return _vtpass_error("087", "INVALID CREDENTIALS", 401)
        body = await _json_body(request)
        account = str(body.get("billersCode") or "")
        if not account:
            return _vtpass_error("011", "INVALID ARGUMENTS")
        # What the sandbox lists now (the control routes change it): a removed biller is gone.
        biller = sandbox.catalogue.biller("vtpass", str(body.get("serviceID")))
        if biller is None:
            return _vtpass_error("012", "PRODUCT DOES NOT EXIST")
        answer = _vtpass_verify_body(biller, account, body.get("type"))
        valid = not answer["content"].get("WrongBillersCode")
        outcome = "valid" if valid else "invalid"
        log("vtpass", "verify", reference=None, account=account, amount=None, outcome=outcome)
        return JSONResponse(answer)

    @router.post("/pay")
    async def pay(request: Request) -> Response:
        # A provider acts on a request it received even if the caller hangs up: the payment
        # is recorded first and the latency is spent before answering.
        body = await _json_body(request)
        request_id = body.get("request_id")
        account = str(body.get("billersCode") or body.get("phone") or "")
        amount = _parse_amount(body.get("amount"))
        details = {"reference": request_id, "account": account, "amount": str(amount)}
        with sandbox.lock:
            answer, outcome = _vtpass_pay(sandbox, request, body, account, amount)
        log("vtpass", "pay", outcome=outcome, **details)
        await sandbox.latency()
        if isinstance(answer, Response):
            return answer
        scenario, tx = answer
        sandbox.after_pay(tx)
        return await sandbox.answer_magic(scenario, JSONResponse(_vtpass_transaction_body(tx)))

    @router.post("/requery")
    async def requery(request: Request) -> Response:
        await sandbox.latency()
        if not _vtpass_authorised(request):
            return _vtpass_error("087", "INVALID CREDENTIALS", 401)
        request_id = str((await _json_body(request)).get("request_id") or "")
        tx = sandbox.lookup("vtpass", request_id)
        if tx is None:
            log("vtpass", "requery", reference=request_id, account=None, amount=None, outcome="015")
            return _vtpass_error("015", "INVALID REQUEST ID")
        with sandbox.lock:
            sandbox.settle(tx)
        details = {"reference": request_id, "account": tx.account, "amount": str(tx.amount)}
        log("vtpass", "requery", outcome=tx.status, **details)
        return JSONResponse(_vtpass_transaction_body(tx))

    @router.post("/_sandbox/transactions/{request_id}/settle", include_in_schema=False)
    async def settle(request_id: str) -> Response:
        return _control(sandbox, "vtpass", request_id, sandbox.settle_now, "not pending")

    @router.post("/_sandbox/transactions/{request_id}/reverse", include_in_schema=False)
    async def reverse(request_id: str) -> Response:
        return _control(sandbox, "vtpass", request_id, sandbox.reverse, "not delivered")

    return router


def _control(sandbox: _Sandbox, provider: str, reference: str, act: Any, refusal: str) -> Response:
    """An operator's action at the provider on one payment: 404 unknown, 409 not applicable."""
    tx = sandbox.transactions.get((provider, reference))
    if tx is None:
        return JSONResponse({"error": "no such transaction"}, status_code=404)
    if not act(tx):
        return JSONResponse({"error": refusal, "status": tx.status}, status_code=409)
    sandbox.options.log_call(
        provider, "control", reference=reference, account=None, amount=None, outcome=tx.status
    )
    return JSONResponse({"reference": reference, "status": tx.status})


def _vtpass_pay(
    sandbox: _Sandbox,
    request: Request,
    body: dict[str, Any],
    account: str,
    amount: Decimal | None,
) -> tuple[Response | tuple[Scenario, Transaction], str]:
    """Validate and record a VTpass pay: an error response, or (scenario, transaction)."""
    if not _vtpass_authorised(request):
        return _vtpass_error("087", "INVALID CREDENTIALS", 401), "087"
    request_id = body.get("request_id")
    if problem := request_id_problem(request_id, sandbox.config.clock()):
        return _vtpass_error("085", f"IMPROPER REQUEST ID: {problem}"), "085"
    if ("vtpass", request_id) in sandbox.transactions:
        return _vtpass_error("014", "REQUEST ID ALREADY EXIST"), "014"
    biller = sandbox.catalogue.biller("vtpass", str(body.get("serviceID")))
    if biller is None:  # never listed, or removed by the control route
        return _vtpass_error("012", "PRODUCT DOES NOT EXIST"), "012"
    variation = body.get("variation_code")
    plan = biller.items.get(variation) if isinstance(variation, str) else None
    if biller.bill_type != BillType.AIRTIME and variation and plan is None:
        return _vtpass_error("010", "VARIATION CODE DOES NOT EXIST"), "010"
    if plan and plan.amount_kobo:
        # A fixed-price variation costs its listed variation_amount whatever amount is sent,
        # and the answer's ``amount`` says so (as VTpass does).
        amount = Decimal(plan.amount_kobo) / 100
    if amount is None or not account:
        return _vtpass_error("011", "INVALID ARGUMENTS"), "011"
    scenario = scenario_for(biller.bill_type, account)
    failed = scenario == Scenario.FAIL or (
        scenario == Scenario.SUCCESS and sandbox.random_failure()
    )
    status = {Scenario.PENDING: "pending"}.get(scenario, "failed" if failed else "delivered")
    tx = sandbox.record(
        "vtpass",
        str(request_id),
        biller=biller,
        plan=plan,
        account=account,
        amount=amount,
        status=status,
    )
    if failed:
        answer = _vtpass_transaction_body(tx) | {"code": "016"}
        return JSONResponse(answer), "016"
    return (scenario, tx), f"{status}:{scenario.value}"


# --- Flutterwave ----------------------------------------------------------------------------


def _flw(status: str, message: str, data: Any = None, http: int = 200) -> JSONResponse:
    return JSONResponse({"status": status, "message": message, "data": data}, status_code=http)


def _flw_authorised(request: Request) -> bool:
    return request.headers.get("authorization") == f"Bearer {SANDBOX_FLUTTERWAVE_SECRET_KEY}"


def _flw_unauthorised() -> JSONResponse:
    return _flw("error", "Invalid authorization key", None, 401)


def _flw_item(sandbox: _Sandbox, biller_code: str, item_code: str) -> SandboxItem | None:
    """The item as the sandbox lists it now (None: unknown, or its biller was removed)."""
    biller = sandbox.catalogue.biller("flutterwave", biller_code)
    return biller.items.get(item_code) if biller is not None else None


def _flw_pay_data(tx: Transaction) -> dict[str, Any]:
    return {
        "phone_number": tx.account,
        "amount": _number(tx.amount),
        "network": tx.biller.name,
        "code": "200",
        "tx_ref": "CF-FLYAPI-" + _digits_of(tx.reference, 20),
        "reference": _digits_of("flw" + tx.reference, 12),
        "batch_reference": None,
        "recharge_token": _grouped(tx.token) if tx.token else None,
        "fee": 100,
    }


def _flw_status_data(tx: Transaction) -> dict[str, Any]:
    data: dict[str, Any] = {
        "currency": "NGN",
        "customer_id": tx.account,
        "frequency": "One Time",
        "amount": f"{tx.amount:.2f}",
        "fee": 100,
        "product": tx.biller.name,
        "product_name": tx.biller.name,
        "commission": 10,
        "transaction_date": tx.created_at.isoformat().replace("+00:00", "Z"),
        "customer_reference": tx.reference,
        "country": "NG",
        "flw_ref": _digits_of("flw" + tx.reference, 12),
        "tx_ref": "CF-FLYAPI-" + _digits_of(tx.reference, 20),
        "batch_id": int(_digits_of("batch" + tx.reference, 7)),
        "extra": f"Token : {_grouped(tx.token)} Units : {tx.units}" if tx.token else None,
        "product_details": f"FLY-API-NG-{tx.biller.name}",
    }
    if tx.status != "delivered":
        data["status"] = tx.status  # undocumented field; documented answers are delivered ones
    return data


def _flutterwave_router(sandbox: _Sandbox) -> APIRouter:
    router = APIRouter(prefix="/flutterwave/v3")
    log = sandbox.options.log_call

    @router.get("/top-bill-categories")
    async def categories(request: Request, country: str = "NG") -> Response:
        await sandbox.latency()
        if not _flw_authorised(request):
            return _flw_unauthorised()
        log("flutterwave", "catalogue", reference=None, account=None, amount=None, outcome="ok")
        rows = sandbox.catalogue.flutterwave_categories(country)
        return _flw("success", "Categories fetched successfully", rows)

    @router.get("/bills/{category}/billers")
    async def billers(request: Request, category: str, country: str = "NG") -> Response:
        await sandbox.latency()
        if not _flw_authorised(request):
            return _flw_unauthorised()
        rows = sandbox.catalogue.flutterwave_billers(category, country)
        return _flw("success", "Billers fetched successfully", rows)

    @router.get("/billers/{biller_code}/items")
    async def items(request: Request, biller_code: str) -> Response:
        await sandbox.latency()
        if not _flw_authorised(request):
            return _flw_unauthorised()
        biller = sandbox.catalogue.biller("flutterwave", biller_code)
        if biller is None:
            return _flw("error", "Biller not found", None, 404)
        if sandbox.catalogue.is_broken("flutterwave", biller_code):
            return Response(_BROKEN_PAGE, status_code=200, media_type="text/html")
        log("flutterwave", "catalogue", reference=None, account=None, amount=None, outcome="ok")
        rows = sandbox.catalogue.flutterwave_items(biller)
        return _flw("success", "Items fetched successfully", rows)

    @router.get("/bill-items/{item_code}/validate")
    async def validate(
        request: Request, item_code: str, code: str = "", customer: str = ""
    ) -> Response:
        await sandbox.latency()
        if not _flw_authorised(request):
            return _flw_unauthorised()
        biller = sandbox.catalogue.biller("flutterwave", code)
        if biller is None or _flw_item(sandbox, code, item_code) is None:
            return _flw("error", "Invalid item code or biller code", None, 400)
        invalid = scenario_for(biller.bill_type, customer) == Scenario.FAIL
        log(
            "flutterwave",
            "verify",
            reference=None,
            account=customer,
            amount=None,
            outcome="invalid" if invalid else "valid",
        )
        if invalid:
            return _flw("error", "Invalid customer id", None, 400)
        data = {
            "response_code": "00",
            "address": None,
            "response_message": "Successful",
            "name": "SANDBOX CUSTOMER",
            "biller_code": code,
            "customer": customer,
            "product_code": item_code,
            "email": None,
            "fee": 0,
            "maximum": 0,
            "minimum": 0,
        }
        return _flw("success", "Item validated successfully", data)

    @router.post("/billers/{biller_code}/items/{item_code}/payment")
    async def pay(request: Request, biller_code: str, item_code: str) -> Response:
        # A provider acts on a request it received even if the caller hangs up: the payment
        # is recorded first and the latency is spent before answering.
        body = await _json_body(request)
        reference = str(body.get("reference") or "")
        account = str(body.get("customer_id") or "")
        amount = _parse_amount(body.get("amount"))
        details = {"reference": reference, "account": account, "amount": str(amount)}
        with sandbox.lock:
            answer, outcome = _flw_pay(sandbox, request, body, biller_code, item_code, amount)
        log("flutterwave", "pay", outcome=outcome, **details)
        await sandbox.latency()
        if isinstance(answer, Response):
            return answer
        scenario, response = answer
        tx = sandbox.transactions.get(("flutterwave", reference))
        if tx is not None:
            sandbox.after_pay(tx)
        return await sandbox.answer_magic(scenario, response)

    @router.get("/bills/{reference}")
    async def status(request: Request, reference: str) -> Response:
        await sandbox.latency()
        if not _flw_authorised(request):
            return _flw_unauthorised()
        tx = sandbox.lookup("flutterwave", reference)
        if tx is None:
            log(
                "flutterwave",
                "requery",
                reference=reference,
                account=None,
                amount=None,
                outcome="not_found",
            )
            return _flw("error", f"No transaction found with reference {reference}", None, 404)
        with sandbox.lock:
            sandbox.settle(tx)
        log(
            "flutterwave",
            "requery",
            reference=reference,
            account=tx.account,
            amount=str(tx.amount),
            outcome=tx.status,
        )
        return _flw("success", "Bill status fetch successful", _flw_status_data(tx))

    @router.post("/_sandbox/transactions/{reference}/settle", include_in_schema=False)
    async def settle(reference: str) -> Response:
        return _control(sandbox, "flutterwave", reference, sandbox.settle_now, "not pending")

    return router


def _flw_pay(
    sandbox: _Sandbox,
    request: Request,
    body: dict[str, Any],
    biller_code: str,
    item_code: str,
    amount: Decimal | None,
) -> tuple[Response | tuple[Scenario, Response], str]:
    """Validate, dedupe and record a Flutterwave pay."""
    if not _flw_authorised(request):
        return _flw_unauthorised(), "unauthorised"
    reference = str(body.get("reference") or "")
    if reference in sandbox.flw_first_answers:  # same reference: the first answer again
        status, data = sandbox.flw_first_answers[reference]
        return JSONResponse(data, status_code=status), "repeat"
    biller = sandbox.catalogue.biller("flutterwave", biller_code)
    plan = _flw_item(sandbox, biller_code, item_code)
    account = str(body.get("customer_id") or "")
    if biller is None or plan is None:
        return _flw("error", "Invalid biller code or item code", None, 400), "bad_item"
    if plan.amount_kobo:  # a fixed-amount item costs its listed amount (reported in data.amount)
        amount = Decimal(plan.amount_kobo) / 100
    if not reference or amount is None or not account:
        return _flw("error", "customer_id, amount and reference are required", None, 400), "bad"
    scenario = scenario_for(biller.bill_type, account)
    if scenario == Scenario.FAIL or (scenario == Scenario.SUCCESS and sandbox.random_failure()):
        message = "Invalid customer id" if scenario == Scenario.FAIL else "Bill payment failed"
        error = {"status": "error", "message": message, "data": None}
        sandbox.flw_first_answers[reference] = (400, error)
        return JSONResponse(error, status_code=400), "failed"
    status = "pending" if scenario == Scenario.PENDING else "delivered"
    tx = sandbox.record(
        "flutterwave",
        reference,
        biller=biller,
        plan=plan,
        account=account,
        amount=amount,
        status=status,
    )
    message = "Bill payment is processing" if status == "pending" else "Bill payment successful"
    answer = {"status": "success", "message": message, "data": _flw_pay_data(tx)}
    sandbox.flw_first_answers[reference] = (200, answer)
    return (scenario, JSONResponse(answer)), f"{status}:{scenario.value}"


def mount_providers(
    app: FastAPI, options: SandboxOptions, config: ProviderSandboxConfig | None = None
) -> None:
    """Add the Flutterwave and VTpass simulators to ``app`` (state lives with this mount)."""
    sandbox = _Sandbox(options, config or ProviderSandboxConfig())
    app.state.provider_sandbox = sandbox
    app.include_router(_flutterwave_router(sandbox))
    app.include_router(_vtpass_router(sandbox))
    app.include_router(_catalogue_control_router(sandbox))


# --- catalogue control routes ---------------------------------------------------------------
# As an operator at the provider would change its catalogue: under each provider's prefix,
# ``POST .../_sandbox/catalogue/{code}/price`` ``{"item": ..., "amount": "3100.00"}`` (amount
# null or 0: the customer sets it), ``.../{code}/remove``, ``.../{code}/restore``,
# ``.../{code}/break`` and ``.../{code}/mend`` (its items call answers HTML, HTTP 200), and
# ``POST .../_sandbox/catalogue`` ``{"code", "name", "category", "bill_type", "items": [...]}``
# to list a new biller. 404 for an unknown biller or item.

_BROKEN_PAGE = "<html><body><h1>503 Service Unavailable</h1>catalogue offline</body></html>"
_PREFIXES = {"vtpass": "/vtpass/api", "flutterwave": "/flutterwave/v3"}


def _control_answer(done: bool, **details: Any) -> JSONResponse:
    if not done:
        return JSONResponse({"error": "no such biller or item", **details}, status_code=404)
    return JSONResponse({"ok": True, **details})


def _catalogue_control_router(sandbox: _Sandbox) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    catalogue = sandbox.catalogue

    @router.post("/{prefix:path}/_sandbox/catalogue/{code}/{action}")
    async def change(prefix: str, code: str, action: str, request: Request) -> Response:
        provider = next((p for p, pre in _PREFIXES.items() if pre == "/" + prefix), None)
        if provider is None:
            return JSONResponse({"error": "unknown provider"}, status_code=404)
        body = await _json_body(request)
        if action == "price":
            amount = _parse_amount(body.get("amount"))
            kobo = int(amount * 100) if amount else None
            item = str(body.get("item") or "")
            done = catalogue.set_price(provider, code, item, kobo)
            return _control_answer(done, biller=code, item=item, amount_kobo=kobo)
        if action in ("remove", "restore"):
            act = catalogue.remove if action == "remove" else catalogue.restore
            return _control_answer(act(provider, code), biller=code, action=action)
        if action in ("break", "mend"):
            catalogue.break_biller(provider, code, action == "break")
            return _control_answer(True, biller=code, action=action)
        return JSONResponse({"error": f"unknown action {action}"}, status_code=404)

    @router.post("/{prefix:path}/_sandbox/catalogue")
    async def add(prefix: str, request: Request) -> Response:
        provider = next((p for p, pre in _PREFIXES.items() if pre == "/" + prefix), None)
        body = await _json_body(request)
        try:
            bill_type = BillType(str(body.get("bill_type")))
            items = {
                str(i["code"]): SandboxItem(
                    str(i["code"]), str(i.get("name") or i["code"]), i.get("amount_kobo")
                )
                for i in body.get("items") or []
            }
            biller = SandboxBiller(
                str(body["code"]), str(body.get("name") or body["code"]),
                str(body["category"]), bill_type, items,
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": f"bad biller: {exc}"}, status_code=422)
        if provider is None:
            return JSONResponse({"error": "unknown provider"}, status_code=404)
        catalogue.add(provider, biller)
        return _control_answer(True, biller=biller.code)

    return router


# --- the doctor's harmless reads (issue 14: billpay doctor) ----------------------------------
# Kept apart from the routes above: read-only account endpoints each provider offers, which
# `billpay doctor` calls to prove the keys. They refuse wrong keys the way the real ones do.
# Mounted by billpay/sandbox/app.py through mount_account_reads.

SANDBOX_VTPASS_BALANCE = "250000.00"  # naira; VTpass sends a number
SANDBOX_FLUTTERWAVE_NGN_BALANCE = 500000  # naira, available and ledger


def _account_reads_router(options: SandboxOptions) -> APIRouter:
    router = APIRouter()

    @router.get("/vtpass/api/balance")
    async def vtpass_balance(request: Request) -> Response:
        # VTpass: GET /api/balance with api-key + public-key -> {"code": 1, "contents":
        # {"balance": <naira>}}; wrong keys: code 087 INVALID CREDENTIALS, as on every route.
        if not _vtpass_authorised(request):
            options.log_call("vtpass", "balance", outcome="087")
            return _vtpass_error("087", "INVALID CREDENTIALS", 401)
        options.log_call("vtpass", "balance", outcome="ok")
        return JSONResponse({"code": 1, "contents": {"balance": float(SANDBOX_VTPASS_BALANCE)}})

    @router.get("/flutterwave/v3/balances")
    async def flutterwave_balances(request: Request) -> Response:
        # Flutterwave v3 "Retrieve wallet balances": one entry per currency; a wrong secret key
        # is a 401 with the error envelope.
        if not _flw_authorised(request):
            options.log_call("flutterwave", "balances", outcome="401")
            return _flw_unauthorised()
        options.log_call("flutterwave", "balances", outcome="ok")
        wallets = [
            {"currency": currency, "available_balance": amount, "ledger_balance": amount}
            for currency, amount in (("NGN", SANDBOX_FLUTTERWAVE_NGN_BALANCE), ("USD", 0))
        ]
        return _flw("success", "Wallet balances fetched", wallets)

    return router


def mount_account_reads(app: FastAPI, options: SandboxOptions) -> None:
    """Add the providers' balance endpoints (what ``billpay doctor`` reads) to ``app``."""
    app.include_router(_account_reads_router(options))
