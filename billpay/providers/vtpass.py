"""VTpass: merchant-verify, pay, requery and service variations.

Key off ``code``, never the HTTP status (VTpass answers most errors with HTTP 200). The code
table below is the single source of the mapping; docs/providers.md renders it for humans.
VTpass's own rule, which we follow: an unexpected response, a timeout or no response means
"pending": requery with the same ``request_id``, never pay again.

The ``request_id`` is the attempt reference itself (``make_attempt_reference`` already starts
with the Lagos ``YYYYMMDDHHII`` stamp), so a requery days later reproduces it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billpay.catalogue_sync import (
    VTPASS_IDENTIFIERS,
    ListedBiller,
    ListedItem,
    valid_provider_code,
)
from billpay.orders import BillOrder, BillType
from billpay.providers.base import (
    LAGOS,
    REFERENCE_STAMP_FORMAT,
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
    reference_created_at,
    storable_product,
    text_field,
)
from billpay.providers.http import Exchange, HttpAdapter, guarded
from billpay.tokens import extract_token

Outcome = PaymentOutcome
Err = ErrorClass
# VTpass's "change" buys the bouquet named by variation_code ("renew" repeats the current one).
SUBSCRIPTION_TYPE = "change"


@dataclass(frozen=True, slots=True)
class CodeRule:
    outcome: PaymentOutcome  # on pay
    error_class: ErrorClass | None
    meaning: str


# Every code REFERENCE.md lists (plus 020/028 from VTpass's public list). "000" is decided by the
# inner transaction status and 015 on requery by the attempt's age; see below.
VTPASS_CODES: dict[str, CodeRule] = {
    "000": CodeRule(Outcome.SUCCESS, None, "processed: read content.transactions.status"),
    "099": CodeRule(Outcome.PENDING, None, "transaction processing: requery"),
    "089": CodeRule(Outcome.PENDING, None, "request is still processing: requery"),
    "016": CodeRule(Outcome.FAILED, Err.PERMANENT, "transaction failed"),
    "040": CodeRule(Outcome.FAILED, Err.PERMANENT, "transaction reversed (our wallet refunded)"),
    "091": CodeRule(Outcome.FAILED, Err.TRANSIENT, "transaction not processed, not charged"),
    "014": CodeRule(Outcome.UNKNOWN, None, "request id already exists: requery it"),
    "015": CodeRule(
        Outcome.FAILED, Err.TRANSIENT, "invalid/unknown request id: nothing was recorded"
    ),
    "018": CodeRule(Outcome.FAILED, Err.INSUFFICIENT_FLOAT, "low wallet balance"),
    "019": CodeRule(Outcome.FAILED, Err.TRANSIENT, "likely duplicate: same account within 30 s"),
    "010": CodeRule(Outcome.FAILED, Err.PERMANENT, "variation code does not exist"),
    "011": CodeRule(Outcome.FAILED, Err.PERMANENT, "invalid arguments"),
    "012": CodeRule(Outcome.FAILED, Err.PERMANENT, "product does not exist"),
    "013": CodeRule(Outcome.FAILED, Err.PERMANENT, "below minimum amount"),
    "017": CodeRule(Outcome.FAILED, Err.PERMANENT, "above maximum amount"),
    "020": CodeRule(Outcome.SUCCESS, None, "biller confirmed (verify)"),
    "021": CodeRule(Outcome.FAILED, Err.CONFIGURATION, "our VTpass account is locked"),
    "022": CodeRule(Outcome.FAILED, Err.CONFIGURATION, "our VTpass account is suspended"),
    "023": CodeRule(Outcome.FAILED, Err.CONFIGURATION, "API access not enabled for our account"),
    "024": CodeRule(Outcome.FAILED, Err.CONFIGURATION, "our VTpass account is inactive"),
    "027": CodeRule(Outcome.FAILED, Err.CONFIGURATION, "IP not whitelisted"),
    "028": CodeRule(Outcome.FAILED, Err.CONFIGURATION, "product not whitelisted on our account"),
    "030": CodeRule(Outcome.FAILED, Err.TRANSIENT, "biller not reachable"),
    "034": CodeRule(Outcome.FAILED, Err.TRANSIENT, "service suspended"),
    "035": CodeRule(Outcome.FAILED, Err.TRANSIENT, "service inactive"),
    "083": CodeRule(Outcome.UNKNOWN, Err.TRANSIENT, "system error: requery"),
    # A pay is stamped just before it is sent, so on a pay 085 means our clock is off from
    # VTpass's (or a reference bug): ours to fix, never the user's retries. A resend of an older
    # attempt gets it too (billpay.bills.policy.after_resend): the reference is too old now.
    "085": CodeRule(
        Outcome.FAILED,
        Err.CONFIGURATION,
        "improper request id (stamp not VTpass's current minute: check our clock); "
        "a new attempt gets a fresh one",
    ),
    "087": CodeRule(Outcome.FAILED, Err.CONFIGURATION, "invalid credentials"),
}
# On requery only these codes say something about the transaction itself; any other code is a
# refusal of the requery (credentials, system error...) and leaves the outcome UNKNOWN.
REQUERY_DEFINITIVE = frozenset({"000", "099", "089", "016", "040", "091"})
# A reversal: the code on its own, or "000" with this inner status (a delivered transaction
# VTpass later took back, refunding our wallet; also what its reversal webhook carries).
REVERSED_CODE = "040"
REVERSED_STATUS = "reversed"
# Delivered, but the answer carries no token for a prepaid meter (the pipeline waits for one).
TOKEN_PENDING = "000:token_pending"
# A pay whose request_id is not stamped with VTpass's current Lagos minute is refused with this
# code, and nothing is recorded under it.
IMPROPER_REQUEST_ID = "085"
# A pay whose request_id was used before is refused with this code. Not to be confused with 019
# (same service and biller code within 30 s, whatever the request_id).
DUPLICATE_REQUEST_ID = "014"

TRANSACTION_STATUS: dict[str, tuple[PaymentOutcome, ErrorClass | None]] = {
    "delivered": (Outcome.SUCCESS, None),
    "successful": (Outcome.SUCCESS, None),
    "failed": (Outcome.FAILED, Err.PERMANENT),
    "reversed": (Outcome.FAILED, Err.PERMANENT),
    "initiated": (Outcome.PENDING, None),
    "pending": (Outcome.PENDING, None),
}


def vtpass_request_id(reference: str, created_at: datetime) -> str:
    """The VTpass ``request_id`` for an attempt: Lagos ``YYYYMMDDHHII`` of ``created_at`` then the
    reference's alphanumerics. A reference that already starts with a stamp (from
    ``make_attempt_reference``) is used as it is, so pay and requery agree."""
    clean = "".join(c for c in reference if c.isascii() and c.isalnum())
    if reference_created_at(clean) is not None:
        return clean
    if created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    return created_at.astimezone(LAGOS).strftime(REFERENCE_STAMP_FORMAT) + clean


def _request_id(reference: str) -> str:
    created = reference_created_at(reference)
    if created is None:
        raise ValueError("VTpass needs an attempt reference from make_attempt_reference()")
    return vtpass_request_id(reference, created)


def _code(body: Any) -> str | None:
    """The VTpass code as three characters, or None when absent or not a code at all (a dict,
    a list, a float: the answer is then read like one without a code)."""
    raw = body.get("code") if isinstance(body, dict) else None
    if isinstance(raw, float):
        return None
    code = text_field(raw, 10)
    return code.zfill(3) if code else None


def _transaction(body: dict[str, Any]) -> dict[str, Any]:
    content = body.get("content")
    tx = content.get("transactions") if isinstance(content, dict) else None
    return tx if isinstance(tx, dict) else {}


_text = text_field


def parse_transaction_date(value: object) -> datetime | None:
    """ISO string, or ``{"date": "2019-07-23 10:17:16.000000", "timezone": "Africa/Lagos"}``."""
    zone: Any = UTC
    if isinstance(value, dict):
        zone = LAGOS if value.get("timezone") == "Africa/Lagos" else UTC
        value = value.get("date")
    text = text_field(value, 64) if isinstance(value, str) else None
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)
        parsed.astimezone(UTC)  # year 1 or 9999 with an offset cannot be stored
    except (ValueError, OverflowError):
        return None
    return parsed


def _details(order: BillOrder, body: dict[str, Any]) -> dict[str, Any]:
    tx = _transaction(body)
    token = None
    if order.bill_type == BillType.ELECTRICITY:
        # Token fields under any spelling (mainToken before bonusToken), the body's then the
        # transaction's (requery answers carry it in ``extras``).
        token = extract_token(body) or extract_token(tx)
    return {
        "token": token,
        "units": _text(field_named((body, tx), UNITS_FIELDS), 40),
        "provider_reference": _text(tx.get("transactionId") or body.get("transactionId")),
        "message": _text(body.get("response_description")),
        "amount_kobo": kobo_from_naira(body.get("amount") or tx.get("amount")),
        "provider_time": parse_transaction_date(body.get("transaction_date")),
    }


def _processed(order: BillOrder, body: dict[str, Any]) -> PaymentResult:
    """A ``000`` answer: the inner transaction status decides."""
    details = _details(order, body)
    status = (_text(_transaction(body).get("status"), 40) or "").lower()
    if not status:
        # Older airtime answers carry no content: only the description says it worked.
        described = "SUCCESS" in (details["message"] or "").upper()
        status = "delivered" if described else "pending"
    outcome, error_class = TRANSACTION_STATUS.get(status, (Outcome.UNKNOWN, None))
    if status == REVERSED_STATUS:
        return PaymentResult(
            outcome, error_class, reason_code="000:reversed", reversed=True, **details
        )
    needs_token = order.bill_type == BillType.ELECTRICITY and order.account_type == "prepaid"
    if outcome == Outcome.SUCCESS and needs_token and not details["token"]:
        return PaymentResult(Outcome.PENDING, reason_code=TOKEN_PENDING, **details)
    return PaymentResult(outcome, error_class, reason_code=f"000:{status}", **details)


def _no_code(ex: Exchange, is_pay: bool) -> PaymentResult:
    """No VTpass code: transport trouble, auth walls, HTML pages, empty bodies."""
    if ex.transport_error:
        if is_pay and ex.nothing_sent:
            return PaymentResult(Outcome.FAILED, Err.TRANSIENT, reason_code=ex.transport_error)
        return PaymentResult(Outcome.UNKNOWN, Err.TRANSIENT, reason_code=ex.transport_error)
    if is_pay and ex.status in (401, 403):
        return PaymentResult(Outcome.FAILED, Err.CONFIGURATION, reason_code=f"http_{ex.status}")
    if is_pay and ex.status == 429:
        return PaymentResult(Outcome.FAILED, Err.TRANSIENT, reason_code="http_429")
    hint = Err.CONFIGURATION if ex.status in (401, 403) else Err.TRANSIENT
    return PaymentResult(Outcome.UNKNOWN, hint, reason_code=f"http_{ex.status}_no_code")


def pay_result(order: BillOrder, ex: Exchange) -> PaymentResult:
    code = _code(ex.body)
    if code is None:
        return _no_code(ex, is_pay=True)
    body: dict[str, Any] = ex.body
    if code == "000":
        return _processed(order, body)
    rule = VTPASS_CODES.get(code)
    details = _details(order, body)
    if code == DUPLICATE_REQUEST_ID:
        # Refused: this request_id was used before, so an earlier request did arrive.
        return PaymentResult(Outcome.UNKNOWN, reason_code=code, duplicate_reference=True, **details)
    if rule is None or rule.outcome == Outcome.SUCCESS:  # unexpected code: requery decides
        return PaymentResult(Outcome.UNKNOWN, reason_code=code, **details)
    refused = code == IMPROPER_REQUEST_ID
    return PaymentResult(
        rule.outcome, rule.error_class, reason_code=code, reference_refused=refused, **details
    )


def requery_result(order: BillOrder, reference: str, ex: Exchange, now: datetime) -> PaymentResult:
    code = _code(ex.body)
    if code is None:
        return _no_code(ex, is_pay=False)
    body: dict[str, Any] = ex.body
    details = _details(order, body)
    if code == "000":
        return _processed(order, body)
    if code == "015":
        # VTpass has no record of this request id: it was never received, so never charged. A
        # request sent a moment ago may not be recorded yet, so believe it only after a while.
        if not_found_is_definitive(reference, now):
            return PaymentResult(
                Outcome.FAILED, Err.TRANSIENT, reason_code="015", not_found=True, **details
            )
        return PaymentResult(
            Outcome.PENDING, reason_code="015:too_early", not_found=True, **details
        )
    rule = VTPASS_CODES.get(code)
    if rule is None or code not in REQUERY_DEFINITIVE:
        hint = rule.error_class if rule else None
        return PaymentResult(Outcome.UNKNOWN, hint, reason_code=code, **details)
    reversed_ = code == REVERSED_CODE
    return PaymentResult(
        rule.outcome, rule.error_class, reason_code=code, reversed=reversed_, **details
    )


def verify_result(ex: Exchange) -> AccountCheck:
    code = _code(ex.body)
    if code is None:
        result = _no_code(ex, is_pay=False)
        return AccountCheck(
            valid=None, error_class=result.error_class, reason_code=result.reason_code
        )
    body: dict[str, Any] = ex.body
    message = _text(body.get("response_description"))
    if code in ("000", "020"):
        content = body.get("content")
        return _verified(content if isinstance(content, dict) else {}, code, message)
    rule = VTPASS_CODES.get(code)
    error_class = rule.error_class if rule and rule.error_class else Err.TRANSIENT
    return AccountCheck(valid=None, error_class=error_class, reason_code=code, message=message)


def _verified(content: dict[str, Any], code: str, message: str | None) -> AccountCheck:
    error = content.get("error")
    wrong = field_named((content,), ("wrongbillerscode",))
    if wrong in (True, "true", "True", 1) or error:
        return AccountCheck(
            valid=False,
            error_class=Err.ACCOUNT_INVALID,
            reason_code=f"{code}:wrong_billers_code",
            message=_text(error) or message,
        )

    def read(*names: str) -> Any:
        return field_named((content,), names)

    return AccountCheck(
        valid=True,
        customer_name=_text(read("customername", "name")),
        address=_text(read("address", "customeraddress")),
        arrears_kobo=kobo_from_naira(read("customerarrears", "arrears")),
        min_amount_kobo=_limit_kobo(content, "minpurchaseamount", "minimumamount"),
        max_amount_kobo=_limit_kobo(content, "maxpurchaseamount", "maximumamount"),
        reason_code=code,
        message=message,
    )


def _limit_kobo(content: dict[str, Any], *names: str) -> int | None:
    """The first positive amount among ``names``. VTpass sends both spellings of a limit and
    fills the one it does not use with 0 (``Min_Purchase_Amount: 0, Minimum_Amount: 500``): a
    zero or negative limit is no limit, so it must not hide the other spelling."""
    for name in names:
        kobo = kobo_from_naira(field_named((content,), (name,)))
        if kobo is not None and kobo > 0:
            return kobo
    return None


class VTpassProvider(HttpAdapter):
    name = "vtpass"
    # VTpass refuses a reused request_id, so a pay whose first send is in doubt may be sent again
    # under the same request_id (billpay.bills.requery): it is either the first request VTpass
    # sees or it is refused. Evidence, https://www.vtpass.com/documentation/response-codes/ :
    # "014 REQUEST ID ALREADY EXIST - You have used the RequestID for a previous transaction." and
    # "015 INVALID REQUEST ID - This is returned for a requery operation. This RequestID was not
    # used on our platform." The sandbox answers 014 the same way (billpay/sandbox/providers.py).
    rejects_duplicate_references = True

    def _base_url(self) -> str:
        return self._settings.vtpass_base_url

    def _headers(self, method: str) -> dict[str, str]:
        s = self._settings
        second = ("public-key", s.vtpass_public_key)
        if method.upper() != "GET":
            second = ("secret-key", s.vtpass_secret_key)
        return {
            "api-key": s.vtpass_api_key.get_secret_value(),
            second[0]: second[1].get_secret_value(),
        }

    def _service_id(self, order: BillOrder) -> str:
        return self._listing(order)[2].code

    @guarded(Operation.VERIFY)
    def verify_account(self, order: BillOrder) -> AccountCheck:
        service_id = self._service_id(order)
        if order.bill_type in (BillType.AIRTIME, BillType.DATA):
            return AccountCheck(valid=True, message="no provider check for phone bills")
        body = {"billersCode": order.account_number, "serviceID": service_id}
        if order.bill_type == BillType.ELECTRICITY:
            body["type"] = order.account_type or ""
        ex = self._send("POST", "/merchant-verify", body=body)
        return self._with_check_call(order.reference, ex, verify_result(ex))

    def pay_body(self, order: BillOrder, reference: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "request_id": _request_id(reference),
            "serviceID": self._service_id(order),
            "amount": naira_amount(order),
            "phone": order.phone,
        }
        if order.bill_type == BillType.AIRTIME:
            body["phone"] = order.account_number
            return body
        body["billersCode"] = order.account_number
        variation = self._catalogue.current().provider_product(order, self.name)
        if variation:
            body["variation_code"] = variation
        if order.bill_type == BillType.CABLE_TV:
            body["subscription_type"] = SUBSCRIPTION_TYPE
        return body

    @guarded(Operation.PAY)
    def pay(self, order: BillOrder, reference: str) -> PaymentResult:
        body = self.pay_body(order, reference)
        ex = self._send("POST", "/pay", body=body)
        return self._with_call(Operation.PAY, reference, ex, pay_result(order, ex))

    @guarded(Operation.REQUERY)
    def requery(self, order: BillOrder, reference: str) -> PaymentResult:
        self._listing(order, live=False)  # sold here once, if no longer
        ex = self._send("POST", "/requery", body={"request_id": _request_id(reference)})
        result = requery_result(order, reference, ex, self._clock())
        return self._with_call(Operation.REQUERY, reference, ex, result)

    @guarded(Operation.CATALOGUE)
    def catalogue(self, biller: str) -> Catalogue:
        entry = self._biller(biller)
        ex = self._send("GET", "/service-variations", params={"serviceID": entry.code})
        content = ex.body.get("content") if isinstance(ex.body, dict) else None
        variations = None
        if isinstance(content, dict):
            variations = content.get("variations", content.get("varations"))
        ok = isinstance(variations, list)
        call = self._record(Operation.CATALOGUE, None, ex, "success" if ok else "failed", None)
        if not ok:
            return Catalogue((), call, Err.TRANSIENT, message=f"code {_code(ex.body)}"[:40])
        rows = [v for v in variations if isinstance(v, dict)]  # type: ignore[union-attr]
        products = tuple(_product(entry.biller_code, v) for v in rows)
        return Catalogue(products, call)

    # --- the full catalogue (billpay.catalogue_sync) -------------------------------------------
    # Both raise ProviderError (with the call record) when the call fails or its answer is not
    # the documented shape: a failed services call applies nothing for VTpass, a failed
    # variations call holds that one service as last synced.

    def services(self, identifier: str) -> list[ListedBiller]:
        """``GET /services?identifier=airtime|data|tv-subscription|electricity-bill``."""
        return self._listed("/services", {"identifier": identifier}, parse_services, identifier)

    def variations(self, service_id: str) -> tuple[list[ListedItem], int]:
        """``GET /service-variations?serviceID=...``: the items and the service's flat fee."""
        return self._listed("/service-variations", {"serviceID": service_id}, parse_variations)

    def _listed(self, path: str, params: dict[str, str], parse: Any, *args: Any) -> Any:
        ex = self._send("GET", path, params=params)
        call_name = f"vtpass GET {path}?{'&'.join(f'{k}={v}' for k, v in params.items())}"
        try:
            if ex.transport_error or not 200 <= (ex.status or 0) < 300:
                raise ListingUnreadable(ex.transport_error or f"HTTP {ex.status}")
            result = parse(ex.body, *args)
        except (ListingUnreadable, ArithmeticError, TypeError, ValueError) as exc:
            call = self._record(Operation.CATALOGUE, None, ex, "failed", Err.TRANSIENT)
            reason = clean_text(str(exc), 120)
            raise ProviderError(Err.TRANSIENT, f"{call_name}: {reason}", call) from exc
        return result


class ListingUnreadable(ValueError):
    """A catalogue answer that is not the documented shape (so nothing of it is believed)."""


def _listing_content(body: Any) -> Any:
    if not isinstance(body, dict) or _code(body) not in (None, "000"):
        raise ListingUnreadable(f"code {_code(body)}" if isinstance(body, dict) else "not JSON")
    return body.get("content")


def _naira_fee_kobo(value: object) -> int:
    """``convinience_fee`` (sic): ``"N100"`` / ``100`` naira are a flat fee; a percentage
    (``"0 %"``, ``"100 %"``) is not a fee in kobo and reads as 0."""
    text = text_field(value, 40) or ""
    if "%" in text:
        return 0
    return max(kobo_from_naira(text.lstrip("Nn\u20a6 ").strip()) or 0, 0)


def _positive_kobo(value: object) -> int | None:
    kobo = kobo_from_naira(value)
    return kobo if kobo is not None and kobo > 0 else None


def _listed_code(row: Any, key: str, what: str) -> str:
    """The listing row's code under ``key``. A row without one, or one that is not shaped as a
    code, makes the whole answer unreadable (``what`` names the row in the reason)."""
    code = text_field(row.get(key), 200) if isinstance(row, dict) else None
    if not code:
        raise ListingUnreadable(f"{what} without a {key}")
    if not valid_provider_code(code):
        raise ListingUnreadable(f"a {key} that is not a code ({code[:40]!r})")
    return code


def parse_services(body: Any, identifier: str) -> list[ListedBiller]:
    """``GET /services?identifier=...``: ``content[]`` of serviceID, name, minimium_amount (sic),
    maximum_amount, convinience_fee. A row without a serviceID makes the answer unreadable."""
    content = _listing_content(body)
    if isinstance(content, dict):  # some pages show the list as an object of objects
        content = list(content.values())
    if not isinstance(content, list):
        raise ListingUnreadable("content is not a list")
    billers = []
    for row in content:
        code = _listed_code(row, "serviceID", "a service")
        billers.append(
            ListedBiller(
                code=code,
                name=text_field(row.get("name")) or code,
                category=identifier,
                bill_type=VTPASS_IDENTIFIERS.get(identifier),
                min_amount_kobo=_positive_kobo(
                    field_named((row,), ("minimiumamount", "minimumamount"))
                ),
                max_amount_kobo=_positive_kobo(field_named((row,), ("maximumamount",))),
                fee_kobo=_naira_fee_kobo(field_named((row,), ("conviniencefee", "conveniencefee"))),
            )
        )
    return billers


def parse_variations(body: Any) -> tuple[list[ListedItem], int]:
    """``GET /service-variations?serviceID=...``: ``content.variations[]`` (or ``varations``) of
    variation_code, name, variation_amount, fixedPrice; plus the service's flat fee in kobo. One
    unreadable row makes the service's whole list unreadable (the sync then keeps the service
    as last synced): a list missing one row is not believed."""
    content = _listing_content(body)
    rows = None
    if isinstance(content, dict):
        rows = content.get("variations", content.get("varations"))
    if not isinstance(rows, list):
        raise ListingUnreadable("no variations list")
    items = []
    for row in rows:
        code = _listed_code(row, "variation_code", "a variation")
        fixed = (text_field(row.get("fixedPrice")) or "").lower() in ("yes", "true", "1")
        amount = _positive_kobo(row.get("variation_amount"))
        if fixed and amount is None:
            raise ListingUnreadable(f"fixed-price variation {code} without an amount")
        name = text_field(row.get("name")) or code
        items.append(ListedItem(code, name, amount if fixed else None))
    fee = _naira_fee_kobo(field_named((content,), ("conviniencefee", "conveniencefee")))
    return items, fee


def _product(biller: str, variation: dict[str, Any]) -> Product:
    fixed = (text_field(variation.get("fixedPrice")) or "").lower() in ("yes", "true", "1")
    amount = kobo_from_naira(variation.get("variation_amount"))
    return storable_product(
        Product(
            provider="vtpass",
            biller=biller,
            code=text_field(variation.get("variation_code")) or "",
            name=text_field(variation.get("name")) or "",
            amount_kobo=amount if fixed and amount else None,
        )
    )
