"""Flutterwave v3 bill payments: validate, pay, status (requery) and catalogue.

Outcome rules (the full table is docs/providers.md):

- Pay ``status: "success"``: SUCCESS, except PENDING when the message says it is still
  processing or when a prepaid meter got no token yet (the status lookup brings it later).
- Pay ``status: "error"`` with a 4xx: Flutterwave rejected the request, so FAILED, classed by
  its message; a duplicate-reference error is UNKNOWN (the first request may have gone through).
- 401/403: FAILED CONFIGURATION; 429: FAILED TRANSIENT; 5xx, timeouts, dropped connections,
  bodies that are not the JSON envelope: UNKNOWN. Connect errors: FAILED TRANSIENT (not sent).
- Status (``GET /bills/{reference}``) has no per-bill status field in the docs. A record found
  for our reference means Flutterwave took the payment: SUCCESS for bills without a token, and
  for prepaid electricity SUCCESS once a token is present, PENDING until then. If a ``status``
  field does appear (webhook shape: success / fail), it wins. "Not found" is FAILED (TRANSIENT,
  nothing was charged) only when the attempt is older than ``NOT_FOUND_GRACE``; before that
  it is PENDING. Anything else is UNKNOWN: never FAILED when in doubt.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from billpay.accounts import parse_phone
from billpay.catalogue import FLUTTERWAVE_CATEGORY
from billpay.catalogue_sync import (
    FLUTTERWAVE_CATEGORIES,
    ListedBiller,
    ListedItem,
    valid_provider_code,
)
from billpay.orders import BillOrder, BillType
from billpay.providers.base import (
    UNITS_FIELDS,
    AccountCheck,
    Catalogue,
    ErrorClass,
    Operation,
    PaymentOutcome,
    PaymentResult,
    Product,
    ProviderError,
    clean_text,
    field_named,
    kobo_from_naira,
    naira_amount,
    not_found_is_definitive,
    storable_product,
    text_field,
)
from billpay.providers.http import Exchange, HttpAdapter, guarded
from billpay.tokens import extract_token

PHONE_BILLS = (BillType.AIRTIME, BillType.DATA)
_PENDING_WORDS = ("pending", "processing", "in progress", "queued")
_NOT_FOUND_WORDS = ("not found", "no transaction", "does not exist", "no record", "invalid ref")
_SUCCESS_STATUSES = ("success", "successful", "completed", "delivered")
_FAILED_STATUSES = ("fail", "failed", "reversed", "error", "declined")
# First match wins; matched against the lower-cased error message.
_ERROR_RULES: tuple[tuple[tuple[str, ...], ErrorClass | None], ...] = (
    # Outcome unknown: the first request may have gone through, or the biller may still act.
    (("duplicate", "already exist", "already been used", "already used", "pending",
      "processing", "in progress", "timeout", "timed out"), None),
    (("insufficient", "low balance", "wallet balance"), ErrorClass.INSUFFICIENT_FLOAT),
    (("authoriz", "api key", "secret key", "whitelist", "ip address"), ErrorClass.CONFIGURATION),
    (("amount", "minimum", "maximum", "limit"), ErrorClass.PERMANENT),
    (("customer", "meter", "smart card", "smartcard", "account no"), ErrorClass.ACCOUNT_INVALID),
)  # fmt: skip


def classify_error_message(message: str) -> ErrorClass | None:
    """Error class of a Flutterwave ``status: "error"`` message; None means outcome unknown
    (duplicate reference, still processing, biller timeout). Unrecognised messages are
    PERMANENT."""
    lowered = (message or "").lower()
    for words, error_class in _ERROR_RULES:
        if any(word in lowered for word in words):
            return error_class
    return ErrorClass.PERMANENT


def _envelope(ex: Exchange) -> tuple[str, str, Any] | None:
    """(status, message, data) of a Flutterwave JSON envelope, or None for anything else."""
    body = ex.body
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        return None
    status = (text_field(body["status"], 40) or "").lower()
    return status, text_field(body.get("message"), 500) or "", body.get("data")


def _needs_token(order: BillOrder) -> bool:
    return order.bill_type == BillType.ELECTRICITY and (order.account_type or "") == "prepaid"


def _transport_failure(ex: Exchange, operation: str) -> PaymentResult | None:
    """Outcome for exchanges without a usable Flutterwave answer, or None to parse on."""
    is_pay = operation == Operation.PAY
    if ex.transport_error:
        if is_pay and ex.nothing_sent:
            return PaymentResult(
                PaymentOutcome.FAILED, ErrorClass.TRANSIENT, reason_code=ex.transport_error
            )
        return PaymentResult(
            PaymentOutcome.UNKNOWN, ErrorClass.TRANSIENT, reason_code=ex.transport_error
        )
    status = ex.status or 0
    if status in (401, 403):
        outcome = PaymentOutcome.FAILED if is_pay else PaymentOutcome.UNKNOWN
        return PaymentResult(outcome, ErrorClass.CONFIGURATION, reason_code=f"http_{status}")
    if status == 429:
        outcome = PaymentOutcome.FAILED if is_pay else PaymentOutcome.UNKNOWN
        return PaymentResult(outcome, ErrorClass.TRANSIENT, reason_code="http_429")
    if status >= 500:
        return PaymentResult(
            PaymentOutcome.UNKNOWN, ErrorClass.TRANSIENT, reason_code=f"http_{status}"
        )
    if _envelope(ex) is None:
        return PaymentResult(
            PaymentOutcome.UNKNOWN, ErrorClass.TRANSIENT, reason_code="unparseable"
        )
    return None


def _delivered(order: BillOrder, data: dict[str, Any], message: str) -> PaymentResult:
    token = extract_token(
        {"recharge_token": field_named((data,), ("rechargetoken", "token", "maintoken")),
         "extra": data.get("extra")}
    )  # fmt: skip
    explicit = (_str(data.get("status")) or "").lower()
    common = {
        "token": token if order.bill_type == BillType.ELECTRICITY else None,
        "units": _units(data),
        "provider_reference": _str(
            data.get("flw_ref") or data.get("reference") or data.get("tx_ref")
        ),
        "message": message,
        "amount_kobo": kobo_from_naira(data.get("amount")),
        "provider_time": _parse_time(data.get("transaction_date")),
    }
    if explicit in _FAILED_STATUSES:
        return PaymentResult(
            PaymentOutcome.FAILED, ErrorClass.PERMANENT, reason_code=explicit, **common
        )
    if explicit and explicit not in _SUCCESS_STATUSES:
        pending = any(word in explicit for word in _PENDING_WORDS)
        outcome = PaymentOutcome.PENDING if pending else PaymentOutcome.UNKNOWN
        return PaymentResult(outcome, reason_code=explicit, **common)
    if not explicit and any(word in message.lower() for word in _PENDING_WORDS):
        return PaymentResult(PaymentOutcome.PENDING, reason_code="processing", **common)
    if _needs_token(order) and not token:
        return PaymentResult(PaymentOutcome.PENDING, reason_code="token_pending", **common)
    return PaymentResult(PaymentOutcome.SUCCESS, reason_code=explicit or "success", **common)


_UNITS_IN_TEXT = re.compile(r"units?\s*[:=]?\s*([0-9][0-9.,]*\s*(?:kwh)?)", re.IGNORECASE)


def _units(data: dict[str, Any]) -> str | None:
    extra = data.get("extra")
    units = _str(field_named((data, extra), UNITS_FIELDS), 40)
    if units:
        return units
    if isinstance(extra, str) and (match := _UNITS_IN_TEXT.search(extra[:2000])):
        return _str(match.group(1), 40)
    return None


_str = text_field


def _parse_time(value: object) -> datetime | None:
    text = _str(value, 64) if isinstance(value, str) else None
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        parsed.astimezone(UTC)  # year 1 or 9999 with an offset cannot be stored
    except (ValueError, OverflowError):
        return None
    return parsed


def pay_result(order: BillOrder, ex: Exchange) -> PaymentResult:
    """Map a pay exchange to a result (without the call record)."""
    early = _transport_failure(ex, Operation.PAY)
    if early is not None:
        return early
    status, message, data = _envelope(ex)  # type: ignore[misc]
    if status == "success" and 200 <= (ex.status or 0) < 300:
        return _delivered(order, data if isinstance(data, dict) else {}, message)
    if status == "error":
        error_class = classify_error_message(message)
        if error_class is None:
            return PaymentResult(
                PaymentOutcome.UNKNOWN, reason_code="ambiguous_error", message=message
            )
        return PaymentResult(
            PaymentOutcome.FAILED, error_class, reason_code="error", message=message
        )
    return PaymentResult(PaymentOutcome.UNKNOWN, reason_code=f"status_{status}", message=message)


def _find_record(data: Any, reference: str) -> dict[str, Any] | None:
    if isinstance(data, dict):
        return data
    if isinstance(data, list):
        for item in data:
            if isinstance(item, dict) and item.get("customer_reference") == reference:
                return item
    return None


def requery_result(order: BillOrder, reference: str, ex: Exchange, now: datetime) -> PaymentResult:
    """Map a ``GET /bills/{reference}`` exchange to a result (without the call record)."""
    early = _transport_failure(ex, Operation.REQUERY)
    if early is not None:
        return early
    status, message, data = _envelope(ex)  # type: ignore[misc]
    not_found = ex.status == 404 or any(w in message.lower() for w in _NOT_FOUND_WORDS)
    if status != "success" and not_found:
        if not_found_is_definitive(reference, now):
            return PaymentResult(
                PaymentOutcome.FAILED,
                ErrorClass.TRANSIENT,
                reason_code="not_found",
                message=message,
                not_found=True,
            )
        return PaymentResult(
            PaymentOutcome.PENDING, reason_code="not_found_yet", message=message, not_found=True
        )
    record = _find_record(data, reference) if status == "success" else None
    if record is None:
        return PaymentResult(
            PaymentOutcome.UNKNOWN, reason_code=f"status_{status}", message=message
        )
    theirs = record.get("customer_reference")
    if theirs not in (None, "", reference):
        return PaymentResult(
            PaymentOutcome.UNKNOWN, reason_code="reference_mismatch", message=message
        )
    return _delivered(order, record, message)


class FlutterwaveProvider(HttpAdapter):
    name = "flutterwave"
    # Not covered by the same-reference resend: Flutterwave documents no duplicate-reference
    # rejection for bills. Its create-bill-payment reference only says "This is a unique
    # reference passed by the developer to identify transactions on their end"
    # (https://developer.flutterwave.com/reference/create-a-bill-payment), and its timeout guide
    # says to "query the status of the transaction to confirm if the payment is being processed
    # before retrying the request" (https://developer.flutterwave.com/docs/handling-error-timeouts).
    # Its X-Idempotency-Key (https://developer.flutterwave.com/docs/idempotency) is documented
    # with the v4 API (access tokens, developersandbox-api host), not for the v3 bills endpoints
    # used here. So its "not found" keeps waiting NOT_FOUND_GRACE.
    rejects_duplicate_references = False

    def _base_url(self) -> str:
        return self._settings.flutterwave_base_url

    def _headers(self, method: str) -> dict[str, str]:
        secret = self._settings.flutterwave_secret_key.get_secret_value()
        return {"Authorization": f"Bearer {secret}"}

    def _codes(self, order: BillOrder) -> tuple[str, str | None]:
        catalogue, _, listing = self._listing(order)
        return listing.code, catalogue.provider_product(order, self.name)

    @guarded(Operation.VERIFY)
    def verify_account(self, order: BillOrder) -> AccountCheck:
        biller_code, item = self._codes(order)
        if order.bill_type in PHONE_BILLS:
            return AccountCheck(valid=True, message="no provider check for phone bills")
        if item is None:
            return AccountCheck(
                valid=None, error_class=ErrorClass.PERMANENT, reason_code="no_item_code"
            )
        params = {"code": biller_code, "customer": order.account_number}
        ex = self._send("GET", f"/bill-items/{segment(item)}/validate", params=params)
        return self._with_check_call(order.reference, ex, verify_result(ex))

    def _customer_id(self, order: BillOrder) -> str:
        if order.bill_type in PHONE_BILLS:
            return parse_phone(order.account_number).e164
        return order.account_number

    @guarded(Operation.PAY)
    def pay(self, order: BillOrder, reference: str) -> PaymentResult:
        biller_code, item = self._codes(order)
        if item is None:
            return PaymentResult(
                PaymentOutcome.FAILED, ErrorClass.PERMANENT, reason_code="no_item_code"
            )
        body: dict[str, Any] = {
            "country": "NG",
            "customer_id": self._customer_id(order),
            "amount": naira_amount(order),
            "reference": reference,
        }
        if self._settings.callback_url:
            body["callback_url"] = self._settings.callback_url
        path = f"/billers/{segment(biller_code)}/items/{segment(item)}/payment"
        ex = self._send("POST", path, body=body)
        return self._with_call(Operation.PAY, reference, ex, pay_result(order, ex))

    @guarded(Operation.REQUERY)
    def requery(self, order: BillOrder, reference: str) -> PaymentResult:
        self._listing(order, live=False)  # sold here once, if no longer
        ex = self._send("GET", f"/bills/{segment(reference)}")
        result = requery_result(order, reference, ex, self._clock())
        return self._with_call(Operation.REQUERY, reference, ex, result)

    # --- catalogue ------------------------------------------------------------------------

    @guarded(Operation.CATALOGUE)
    def catalogue(self, biller: str) -> Catalogue:
        entry = self._biller(biller)
        ex = self._send("GET", f"/billers/{segment(entry.code)}/items")
        envelope = _envelope(ex)
        ok = envelope is not None and envelope[0] == "success" and isinstance(envelope[2], list)
        call = self._record(Operation.CATALOGUE, None, ex, "success" if ok else "failed", None)
        if not ok:
            message = self._masked(envelope[1]) if envelope else None
            return Catalogue((), call, ErrorClass.TRANSIENT, message=message)
        items = [item for item in envelope[2] if isinstance(item, dict)]  # type: ignore[index]
        products = tuple(_product(entry.biller_code, item) for item in items)
        return Catalogue(products, call)

    def categories(self) -> list[dict[str, Any]]:
        """``GET /top-bill-categories?country=NG`` (raises ProviderError when unavailable)."""
        return self._list("/top-bill-categories", {"country": "NG"})

    def billers(self, bill_type: BillType | str) -> list[dict[str, Any]]:
        """``GET /bills/{category}/billers?country=NG``, by our bill type or by Flutterwave's
        category code (``CABLEBILLS``)."""
        known = str(bill_type) in {str(t) for t in BillType}
        category = FLUTTERWAVE_CATEGORY[BillType(bill_type)] if known else str(bill_type)
        return self._list(f"/bills/{segment(category)}/billers", {"country": "NG"})

    # --- the full catalogue (billpay.catalogue_sync) -------------------------------------------
    # Each raises ProviderError (with the call record) when its call fails or a row is not the
    # documented shape: a failed categories / billers call applies nothing for Flutterwave, a
    # failed items call holds that one biller as last synced.

    def category_codes(self) -> list[str]:
        """The category codes ``GET /top-bill-categories?country=NG`` lists."""
        return self._parsed("/top-bill-categories", self.categories, parse_categories)

    def listed_billers(self, category: str) -> list[ListedBiller]:
        """The billers of one category (``GET /bills/{category}/billers?country=NG``)."""
        return self._parsed(
            f"/bills/{segment(category)}/billers",
            lambda: self.billers(category),
            parse_billers,
            category,
        )

    def items(self, biller_code: str) -> list[ListedItem]:
        """``GET /billers/{biller_code}/items``: every item of one biller."""
        path = f"/billers/{segment(biller_code)}/items"
        return self._parsed(path, lambda: self._list(path, {}), parse_items)

    def _parsed(self, path: str, read: Any, parse: Any, *args: Any) -> Any:
        rows = read()  # ProviderError when the call failed or the envelope is not a success
        try:
            return parse(rows, *args)
        except (ValueError, TypeError, ArithmeticError) as exc:
            ex = self._calls.exchange
            call = self._record(Operation.CATALOGUE, None, ex, "failed", ErrorClass.TRANSIENT)
            message = f"flutterwave GET {path}: {clean_text(str(exc), 120)}"
            raise ProviderError(ErrorClass.TRANSIENT, message, call) from exc

    def _list(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        ex = self._send("GET", path, params=params)
        envelope = _envelope(ex)
        if envelope is None or envelope[0] != "success" or not isinstance(envelope[2], list):
            call = self._record(Operation.CATALOGUE, None, ex, "failed", ErrorClass.TRANSIENT)
            what = ex.transport_error or f"HTTP {ex.status}"
            if envelope is not None and envelope[1]:
                what = f"{what}: {self._masked(envelope[1], 80)}"
            message = f"flutterwave GET {path} unavailable ({what})"
            raise ProviderError(ErrorClass.TRANSIENT, message, call)
        return [item for item in envelope[2] if isinstance(item, dict)]


def segment(code: str) -> str:
    """A provider code as one URL path segment: percent-encoded whole (a ``/``, ``?`` or ``#``
    in it can never reach another path), and a dot-only code (which httpx would resolve as a dot
    segment) encoded too, so our Bearer key only ever goes to the path we mean."""
    quoted = quote(code, safe="")
    return quoted.replace(".", "%2E") if set(quoted) <= {"."} else quoted


def _code(value: object, what: str) -> str:
    code = _str(value, 200)
    if not code:
        raise ValueError(f"a {what} without a code")
    if not valid_provider_code(code):
        raise ValueError(f"a {what} code that is not a code ({code[:40]!r})")
    return code


def parse_categories(rows: list[dict[str, Any]]) -> list[str]:
    return [_code(row.get("code"), "category").upper() for row in rows]


def parse_billers(rows: list[dict[str, Any]], category: str) -> list[ListedBiller]:
    """``data[]`` of biller_code, name (also description, short_name, logo, country_code). A row
    without a valid biller_code makes the answer unreadable."""
    billers = []
    for row in rows:
        code = _code(row.get("biller_code"), "biller")
        name = _str(row.get("name")) or _str(row.get("short_name")) or code
        bill_type = FLUTTERWAVE_CATEGORIES.get(category.upper())
        billers.append(ListedBiller(code, name, category.upper(), bill_type))
    return billers


def parse_items(rows: list[dict[str, Any]]) -> list[ListedItem]:
    """``data[]`` of item_code, name, amount (0: the customer sets it), fee, label_name. A row
    without a valid item_code or a readable amount makes the biller's item list unreadable (the
    sync then keeps the biller as last synced): a list missing one row is not believed."""
    items = []
    for row in rows:
        code = _code(row.get("item_code"), "item")
        amount = kobo_from_naira(row.get("amount"))
        if amount is None or amount < 0:
            raise ValueError(f"item {code} without a readable amount")
        fee = kobo_from_naira(row.get("fee")) or 0
        name = _str(row.get("name")) or _str(row.get("biller_name")) or code
        label = _str(row.get("label_name"), 100)
        items.append(ListedItem(code, name, amount or None, max(fee, 0), label))
    return items


def _product(biller: str, item: dict[str, Any]) -> Product:
    amount = kobo_from_naira(item.get("amount"))
    return storable_product(
        Product(
            provider="flutterwave",
            biller=biller,
            code=_str(item.get("item_code")) or "",
            name=_str(item.get("name")) or _str(item.get("biller_name")) or "",
            amount_kobo=amount or None,  # 0 means the customer sets the amount
            fee_kobo=kobo_from_naira(item.get("fee")) or 0,
        )
    )


def verify_result(ex: Exchange) -> AccountCheck:
    """Map a validate exchange to an account check (without the call record)."""
    if ex.transport_error or (ex.status or 0) >= 500 or ex.status == 429:
        reason = ex.transport_error or f"http_{ex.status}"
        return AccountCheck(valid=None, error_class=ErrorClass.TRANSIENT, reason_code=reason)
    if ex.status in (401, 403):
        return AccountCheck(
            valid=None, error_class=ErrorClass.CONFIGURATION, reason_code=f"http_{ex.status}"
        )
    envelope = _envelope(ex)
    if envelope is None:
        return AccountCheck(valid=None, error_class=ErrorClass.TRANSIENT, reason_code="unparseable")
    status, message, data = envelope
    if status == "success" and isinstance(data, dict):
        return _validated(data, message)
    error_class = classify_error_message(message) or ErrorClass.TRANSIENT
    if error_class == ErrorClass.ACCOUNT_INVALID:
        return AccountCheck(
            valid=False, error_class=error_class, reason_code="invalid_customer", message=message
        )
    return AccountCheck(valid=None, error_class=error_class, reason_code="error", message=message)


def _validated(data: dict[str, Any], message: str) -> AccountCheck:
    raw_code = data.get("response_code")
    code = _str(raw_code, 20) or "00"
    message = _str(data.get("response_message"), 500) or message
    if raw_code not in (None, "") and _str(raw_code) is None:
        # A code that is not a code (a dict, a list): we cannot tell, ask again later.
        return AccountCheck(
            valid=None, error_class=ErrorClass.TRANSIENT, reason_code="odd_code", message=message
        )
    if code not in ("00", "0"):
        return AccountCheck(
            valid=False,
            error_class=ErrorClass.ACCOUNT_INVALID,
            reason_code=code,
            message=message,
        )

    def read(*names: str) -> Any:
        return field_named((data,), names)

    return AccountCheck(
        valid=True,
        customer_name=_str(read("name", "customername")),
        address=_str(read("address", "customeraddress")),
        min_amount_kobo=kobo_from_naira(read("minimum")) or None,  # 0: no minimum
        max_amount_kobo=kobo_from_naira(read("maximum")) or None,
        reason_code=code,
        message=message,
    )
