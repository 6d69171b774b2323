"""Catalogue and account routes: bill types, billers and products, validate, stats.

``validate`` runs the order's format rules (``billpay.accounts``, the catalogue) and then the
pipeline's own verify step (``billpay.bills.verify.ask_providers``) over the configured route, so
its answer predicts what the pipeline will decide for the same order. ``stats`` runs the report
flows' functions (``billpay.store.reports`` reads, ``billpay.reports`` metrics) over the calling
client's own bills only: a client must never learn another client's volumes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from billpay import intake, reports
from billpay.api import problems
from billpay.api.deps import CurrentClient, Runtime
from billpay.api.problems import Problem, field_error
from billpay.api.schemas import BillTypes, Providers, Stats, ValidateAnswer
from billpay.app import App
from billpay.bills import policy
from billpay.bills.context import StepContext
from billpay.bills.verify import ask_providers
from billpay.catalogue import CatalogueBiller
from billpay.intake import IntakeError, OrderRequest
from billpay.money import naira_text, naira_to_kobo
from billpay.orders import BillOrder, BillType, new_reference
from billpay.providers.base import AccountCheck
from billpay.store import reports as report_store
from billpay.store.slots import ShareOfSlots, SlotsBusy
from billpay.tokens import mask_text

router = APIRouter(prefix="/api/bills", tags=["catalogue"])

LABELS: dict[BillType, str] = {
    BillType.ELECTRICITY: "Electricity",
    BillType.AIRTIME: "Airtime",
    BillType.DATA: "Mobile data",
    BillType.CABLE_TV: "Cable TV",
    BillType.WATER: "Water",
}
# A provider that could not answer is asked again by the pipeline after its retry backoff; a
# client is told to come back after about as long.
RETRY_AFTER_SECONDS = 30
_WINDOW = re.compile(r"^([1-9][0-9]{0,3})([hd])$")
_MIN_WINDOW, _MAX_WINDOW = timedelta(hours=1), timedelta(days=30)
# accounts.ValidationError names the order's column; the API names its request field.
_API_FIELD = {"account_number": "account", "amount_kobo": "amount"}
_NAME_LIMIT = 200


# --- types and providers -------------------------------------------------------------------


@router.get("/types", response_model=BillTypes)
def bill_types(client: CurrentClient) -> dict[str, Any]:
    """The bill types this service sells, with human labels."""
    return {"types": [{"code": t.value, "label": LABELS[t]} for t in BillType]}


def _route(runtime: App, bill_type: BillType) -> list[str]:
    """The configured route of ``bill_type``, providers this process has adapters for."""
    names = runtime.router.names()
    return [n for n in dict.fromkeys(runtime.settings.route_for(str(bill_type))) if n in names]


def routed_billers(runtime: App, bill_type: BillType) -> list[CatalogueBiller]:
    """The billers of ``bill_type`` that a provider on its configured route sells right now
    (the synced catalogue: a vanished listing does not count)."""
    route = _route(runtime, bill_type)
    providers = [runtime.router.get(n) for n in route]
    catalogue = runtime.catalogue.current()
    return [
        biller
        for biller in catalogue.routed_billers(bill_type, route)
        if any(p.supports(bill_type, biller.code) for p in providers)
    ]


@router.get("/providers/{bill_type}", response_model=Providers)
def providers(bill_type: BillType, client: CurrentClient, runtime: Runtime) -> dict[str, Any]:
    """The billers we route for ``bill_type`` and their products. ``price`` is a fixed price in
    naira (a decimal string), or null when the customer chooses the amount: the price of the
    first provider on the route that sells the plan, as last synced. An unknown
    ``bill_type`` is a 422 naming it, like any other bad input (the set is closed and listed
    by ``/types``; a 404 would read as a wrong URL)."""
    route = _route(runtime, bill_type)
    catalogue = runtime.catalogue.current()
    return {
        "bill_type": bill_type.value,
        "billers": [
            {
                "code": biller.code,
                "name": biller.name,
                "products": [
                    {"code": p.code, "name": p.name, "price": naira_text(p.amount_kobo)}
                    for p in catalogue.plans(biller.code, route)
                ],
            }
            for biller in routed_billers(runtime, bill_type)
        ],
    }


# --- validate ------------------------------------------------------------------------------


class ValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bill_type: str = Field(max_length=32, examples=["electricity"])
    biller: str = Field(max_length=64, examples=["ikeja-electric"])
    account: str = Field(max_length=64, examples=["1111111111111"])
    account_type: str | None = Field(None, max_length=16, examples=["prepaid"])
    product: str | None = Field(None, max_length=64)
    amount: str | None = Field(None, max_length=32, description="naira, a decimal string")
    network: str | None = Field(None, max_length=16, description="airtime/data: a ported number")


def _checked_order(
    body: ValidateRequest, runtime: App
) -> tuple[BillOrder, int | None, bool, tuple[str, ...]]:
    """The order the format rules accept (intake's own rules, with no phone and, when none was
    sent, the plan's price or our minimum as the amount), its plan's fixed price (None: the
    customer sets it), whether an amount was sent and intake's warnings. Raises IntakeError
    naming each bad request field."""
    request = OrderRequest(
        bill_type=body.bill_type,
        biller=body.biller,
        account=body.account,
        amount=body.amount if body.amount and body.amount.strip() else None,
        phone=None,
        account_type=body.account_type,
        product=body.product,
        network=body.network,
    )
    catalogue = runtime.catalogue.current()
    try:
        valid = intake.validate(request, runtime.settings, catalogue=catalogue, partial=True)
    except IntakeError as exc:
        raise exc.renamed(_API_FIELD) from None
    route = runtime.settings.route_for(str(valid.bill_type))
    price = catalogue.price(valid.biller, valid.product_code, route) if valid.product_code else None
    order = BillOrder(
        reference=new_reference(),
        bill_type=valid.bill_type,
        biller=valid.biller,
        account_number=valid.account_number,
        amount_kobo=valid.amount_kobo,
        phone="08000000000",  # verify sends no phone; the order's own is checked at pay
        account_type=valid.account_type,
        product_code=valid.product_code,
        network=valid.network,
    )
    return order, price, request.amount is not None, valid.warnings


problems.check_body_with(f"{router.prefix}/validate", ValidateRequest, _checked_order)


def _bounds(runtime: App, price: int | None, check: AccountCheck) -> tuple[int, int]:
    """What the order may cost: our limits, narrowed by the provider's and a fixed price."""
    settings = runtime.settings
    low = naira_to_kobo(settings.min_amount_naira)
    high = naira_to_kobo(settings.max_amount_naira)
    if price is not None:
        return price, price
    if check.min_amount_kobo:
        low = max(low, check.min_amount_kobo)
    if check.max_amount_kobo:
        high = min(high, check.max_amount_kobo)
    return low, high


def _unavailable(detail: str) -> Problem:
    return Problem(
        503,
        detail,
        code="provider_unavailable",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def validate_guard(runtime: App) -> ShareOfSlots:
    """The API's share of the providers' slots (one per app, so its threads queue in-process)."""
    settings = runtime.settings
    return ShareOfSlots(
        runtime.slots, settings.api_validate_share, settings.api_validate_wait_seconds
    )


def _provider_check(runtime: App, guard: ShareOfSlots, order: BillOrder) -> AccountCheck:
    """The pipeline's verify: the route's providers in order, the first definitive answer
    wins, each call held to the provider's concurrency slots and recorded (with no bill). The
    API may use only its share of those slots and waits briefly for one: busy is a 503."""
    if not policy.needs_provider_verify(order):
        return AccountCheck(valid=True, message="format and network checked")
    route = runtime.router.route(order)
    if not route:
        raise _unavailable(f"no provider is configured for {order.bill_type} {order.biller}")
    ctx = StepContext(
        db=runtime.db,
        settings=runtime.settings,
        router=runtime.router,
        worker=runtime.worker_id(),
        guard=guard,
    )
    try:
        check = ask_providers(ctx, None, order, route)  # type: ignore[arg-type]
    except SlotsBusy:
        raise _unavailable("the provider is busy; try again shortly") from None
    if check.valid is None:
        raise _unavailable("the provider could not verify the account now; try again later")
    return check


def _text(value: str | None) -> str | None:
    return mask_text(value)[:_NAME_LIMIT] if value else None


@router.post("/validate", response_model=ValidateAnswer)
def validate(
    body: ValidateRequest, client: CurrentClient, runtime: Runtime, request: Request
) -> ValidateAnswer:
    """Format rules first (422 naming the field), then the provider's account check. A
    provider that cannot answer is a 503 ``provider_unavailable`` with ``Retry-After``, never
    ``valid: false``. Nothing is stored but the provider call record."""
    order, price, amount_sent, warnings = _checked_order(body, runtime)
    check = _provider_check(runtime, request.app.state.validate_guard, order)
    low, high = _bounds(runtime, price, check)
    valid = bool(check.valid)
    message = "the account is valid" if valid else "the provider does not know this account"
    if check.message and not valid:
        message = _text(check.message) or message
    problem = policy.amount_outside(order, check) if valid and amount_sent else None
    if problem:
        valid, message = False, problem
    elif valid and check.call is None:
        message = "format and network checked; the provider has nothing to verify for this bill"
    return ValidateAnswer(
        valid=valid,
        customer_name=_text(check.customer_name) if check.valid else None,
        address=_text(check.address) if check.valid else None,
        min_amount=naira_text(low),
        max_amount=naira_text(high),
        message=message,
        warnings=list(warnings),
    )


# --- stats ---------------------------------------------------------------------------------


def parse_stats_window(text: str) -> str:
    """``"24h"``, ``"7d"``: whole hours or days from 1h to 30d; else a 422 naming ``window``."""
    label = text.strip().lower()
    match = _WINDOW.match(label)
    length = reports.parse_window(label) if match else None
    if length is None or not _MIN_WINDOW <= length <= _MAX_WINDOW:
        raise Problem(
            422,
            "window: use hours or days from 1h to 30d, like 24h or 7d",
            code="invalid_input",
            errors=[field_error("window", "use hours or days from 1h to 30d, like 24h or 7d")],
        )
    return label


def _rows(report: Any, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    return reports.to_records(report[list(columns)])


@router.get("/stats", response_model=Stats)
def stats(client: CurrentClient, runtime: Runtime, window: str = "24h") -> dict[str, Any]:
    """Success rate (per bill type and biller) and provider performance (per provider and
    operation) over the last ``window``, for this client's orders only: the report flows'
    functions and numbers, filtered to the client. Rates are decimal strings (4 places), null
    when nothing settled; ``*`` rows are roll-ups."""
    label = parse_stats_window(window)
    windows = reports.rolling_windows([label], datetime.now(UTC).replace(microsecond=0))
    since, until = reports.covering(windows)
    bills = report_store.read_bills(runtime.db, since, until, api_client_id=client.id)
    attempts = report_store.read_attempts(runtime.db, since, until, api_client_id=client.id)
    success = reports.success_rate_report(bills, windows)
    performance = reports.provider_performance_report(attempts, bills, windows)
    key = len(reports.SNAPSHOT_KEY)
    return {
        "scope": "client",
        "window": label,
        "window_start": windows[0].start.isoformat(),
        "window_end": windows[0].end.isoformat(),
        "success_rate": _rows(success, reports.SUCCESS_RATE_COLUMNS[key:]),
        "provider_performance": _rows(performance, reports.PROVIDER_COLUMNS[key:]),
    }
