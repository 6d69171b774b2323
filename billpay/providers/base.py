"""What every bill provider adapter promises: the Protocol, typed results and the error taxonomy.

How the pipeline reads results (the whole contract):

``verify_account(order) -> AccountCheck`` never raises for anything the provider says or for
transport trouble:

- ``valid is True``: go on and pay (``customer_name``, ``min_amount_kobo``... may be set).
- ``valid is False``: the provider says the account is wrong (``error_class`` is
  ``ACCOUNT_INVALID``): move to ``account_invalid`` and refund.
- ``valid is None``: we could not tell. ``error_class`` says why: ``TRANSIENT`` or
  ``INSUFFICIENT_FLOAT`` -> retry later; ``CONFIGURATION`` -> alert (and try the next provider or
  retry later), never refund; ``PERMANENT`` -> this provider cannot serve the product, try the
  next provider.

Airtime and data need no provider check: ``valid=True`` with ``call=None`` (no HTTP call made).

``pay(order, reference) -> PaymentResult`` and ``requery(order, reference) -> PaymentResult``
never raise either. ``outcome``:

- ``SUCCESS``: delivered; ``token``/``units`` set for prepaid electricity.
- ``PENDING``: accepted, not final: requery later with the same reference.
- ``UNKNOWN``: we do not know whether the provider charged us (timeout, 5xx, garbage, duplicate
  reference): requery later with the same reference. Never pay again under a new reference.
- ``FAILED``: definitively not delivered and not charged; ``error_class`` decides what next:
  ``TRANSIENT`` -> new attempt later (same or next provider); ``INSUFFICIENT_FLOAT`` -> alert,
  retry later or next provider, never refund on the first failure; ``CONFIGURATION`` -> alert,
  wait (growing, retries not spent), refund only 24 h after the first refusal; ``PERMANENT`` -> next provider, else refund; ``ACCOUNT_INVALID`` -> refund.

Three facts ride along whatever the outcome: ``not_found`` (a requery the provider answered
"no such reference"; PENDING inside ``NOT_FOUND_GRACE``, FAILED after it),
``duplicate_reference`` (a pay refused because the reference was used before: an earlier request
arrived; ``billpay.bills.requery`` reads both for the same-reference resend) and ``reversed``
(the provider took the transaction back, VTpass 040 / ``reversed``: FAILED for a bill still
waiting at the provider, the reversal path for a delivered one, ``billpay.bills.reversal``).

On ``PENDING``/``UNKNOWN`` the ``error_class`` may carry a hint (e.g. ``CONFIGURATION`` when a
requery was refused for bad credentials) but the outcome is still open.

``ProviderError`` (``NotSupported``) is raised only for programming errors: asking a provider for
a bill it does not support (routing prevents this) or calling Paystack at all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from billpay.orders import BillOrder, BillType
from billpay.tokens import (
    extract_token,
    mask_account,
    mask_reference,
    mask_text,
    mask_token,
    remove_secrets,
)

LAGOS = ZoneInfo("Africa/Lagos")
REFERENCE_STAMP_FORMAT = "%Y%m%d%H%M"  # VTpass: the first 12 chars of a request_id
# How long after an attempt was created a provider's "no such transaction" is believed. Before
# that, the request may simply not be recorded yet, so it stays PENDING.
NOT_FOUND_GRACE = timedelta(minutes=10)


class PaymentOutcome(StrEnum):
    SUCCESS = "success"
    PENDING = "pending"
    FAILED = "failed"
    UNKNOWN = "unknown"


class ErrorClass(StrEnum):
    TRANSIENT = "transient"  # retry later
    PERMANENT = "permanent"  # this bill cannot be paid here: next provider or refund
    ACCOUNT_INVALID = "account_invalid"  # refund
    INSUFFICIENT_FLOAT = "insufficient_float"  # our provider wallet is low: alert, retry later
    CONFIGURATION = "configuration"  # credentials / IP whitelist: alert, wait; refund after 24 h


class Operation(StrEnum):
    VERIFY = "verify"
    PAY = "pay"
    REQUERY = "requery"
    CATALOGUE = "catalogue"
    # The open attempt's pay request sent once more under the SAME reference, only to a provider
    # that rejects a reused reference (see rejects_duplicate_references); at most once per attempt.
    RESEND = "resend"


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One HTTP exchange with a provider, as stored in ``provider_attempts`` (no secrets)."""

    provider: str
    operation: str
    reference: str | None
    started_at: datetime
    finished_at: datetime
    latency_ms: int
    outcome: str
    error_class: str | None
    http_status: int | None
    response_summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AccountCheck:
    valid: bool | None
    customer_name: str | None = None
    address: str | None = None
    arrears_kobo: int | None = None
    min_amount_kobo: int | None = None
    max_amount_kobo: int | None = None
    reason_code: str | None = None
    message: str | None = None
    error_class: ErrorClass | None = None
    call: CallRecord | None = None


@dataclass(frozen=True, slots=True)
class PaymentResult:
    outcome: PaymentOutcome
    error_class: ErrorClass | None = None
    token: str | None = None  # 20 bare digits; display with billpay.tokens.format_token
    units: str | None = None
    provider_reference: str | None = None  # theirs (VTpass transactionId, Flutterwave flw_ref)
    reason_code: str | None = None  # provider code, e.g. "016", or ours, e.g. "read_timeout"
    message: str | None = None
    call: CallRecord | None = None
    amount_kobo: int | None = None  # what the provider says it charged, when it says
    provider_time: datetime | None = None
    # A requery the provider answered "no such reference" (believed or not: see the outcome).
    not_found: bool = False
    # A pay the provider refused because the reference was used before (VTpass 014): proof that
    # an earlier request under this reference arrived.
    duplicate_reference: bool = False
    # The provider says it reversed the transaction (VTpass 040 / status "reversed"): not
    # delivered, and our float refunded. The outcome is FAILED, so a bill still waiting at the
    # provider fails as usual; a bill already completed takes the reversal path instead
    # (billpay.bills.reversal). Flutterwave documents no reversal.
    reversed: bool = False
    # A pay the provider refused for the reference itself (VTpass 085: the request_id's stamp
    # is not its current minute): nothing was recorded under it by this request, and the same
    # reference will never be taken again. Only a new attempt (a fresh reference) can pay.
    reference_refused: bool = False


@dataclass(frozen=True, slots=True)
class Product:
    """A catalogue entry: a data plan, a bouquet, an electricity/airtime item."""

    provider: str
    biller: str
    code: str  # the provider's code (VTpass variation_code, Flutterwave item_code)
    name: str
    amount_kobo: int | None  # None: the customer chooses the amount
    fee_kobo: int = 0


@dataclass(frozen=True, slots=True)
class Catalogue:
    products: tuple[Product, ...]
    call: CallRecord | None = None
    error_class: ErrorClass | None = None
    message: str | None = None


class ProviderError(Exception):
    def __init__(
        self, error_class: ErrorClass, message: str, call: CallRecord | None = None
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.call = call


class NotSupported(ProviderError):
    """The provider offers no such bill (a routing bug) or no bills at all (Paystack)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorClass.PERMANENT, message)


@runtime_checkable
class BillProvider(Protocol):
    name: str

    def supports(self, bill_type: BillType | str, biller: str) -> bool: ...

    def verify_account(self, order: BillOrder) -> AccountCheck: ...

    def pay(self, order: BillOrder, reference: str) -> PaymentResult: ...

    def requery(self, order: BillOrder, reference: str) -> PaymentResult: ...

    def catalogue(self, biller: str) -> Catalogue: ...


# --- attempt references -------------------------------------------------------------------


def make_attempt_reference(bill_reference: str, attempt_no: int, now: datetime) -> str:
    """The provider reference of one pay attempt, fixed before the HTTP call and reused by every
    requery: Lagos ``YYYYMMDDHHII`` + bill reference + ``"A"`` + attempt number.

    ``make_attempt_reference("7K3M9QZ2XA", 1, now)`` -> ``"2026112614307K3M9QZ2XAA1"``. It is
    alphanumeric and starts with VTpass's required timestamp, so it doubles as the VTpass
    ``request_id`` and the Flutterwave ``reference``.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if attempt_no < 1:
        raise ValueError("attempt_no starts at 1")
    stamp = now.astimezone(LAGOS).strftime(REFERENCE_STAMP_FORMAT)
    suffix = "".join(c for c in bill_reference if c.isascii() and c.isalnum())
    return f"{stamp}{suffix}A{attempt_no}"


def reference_created_at(reference: str) -> datetime | None:
    """The creation minute encoded in an attempt reference (UTC), or None if it has none."""
    try:
        stamp = datetime.strptime(reference[:12], REFERENCE_STAMP_FORMAT)
    except ValueError:
        return None
    return stamp.replace(tzinfo=LAGOS).astimezone(UTC)


def not_found_is_definitive(reference: str, now: datetime) -> bool:
    """Whether "no such transaction" for ``reference`` can be believed (see NOT_FOUND_GRACE)."""
    created = reference_created_at(reference)
    # A stamp is minute-resolution and truncated: add a minute so we never decide early.
    return created is not None and now - created >= NOT_FOUND_GRACE + timedelta(minutes=1)


def rejects_duplicate_references(provider: object) -> bool:
    """Whether ``provider`` documents that a pay request under an already used reference is
    refused, never charged again. Only such a provider may be re-sent a pay request whose first
    send is in doubt (``billpay.bills.requery``); every other one waits ``NOT_FOUND_GRACE``.

    An adapter opts in with a class attribute ``rejects_duplicate_references = True`` next to
    the evidence (the provider's documentation, quoted). Today: VTpass only."""
    return getattr(provider, "rejects_duplicate_references", False) is True


# --- shared helpers for adapters ----------------------------------------------------------


def naira_amount(order: BillOrder) -> int | str:
    """The amount in naira for a JSON body: an int when whole, else a 2-decimal string."""
    naira = order.amount_naira
    return int(naira) if naira == naira.to_integral_value() else f"{naira:.2f}"


# Naira amounts beyond this are not amounts (1e999999, 5000-digit numbers): read them as absent.
_MAX_NAIRA_DIGITS = 15


def kobo_from_naira(value: object) -> int | None:
    """Provider amounts (naira, numbers or strings, maybe empty) to kobo; None when absent/odd.

    Never raises: ``1e999999``, ``inf``, ``NaN``, a dict or a 5000-digit number are all None."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    if not isinstance(value, int | float | str | Decimal):
        return None
    try:
        amount = Decimal(clean_text(str(value), 64).replace(",", ""))
        if not amount.is_finite() or amount.adjusted() > _MAX_NAIRA_DIGITS:
            return None
        return int((amount * 100).to_integral_value())
    except (ArithmeticError, ValueError):  # ValueError: an int past Python's digit limit
        return None


# --- what leaves an adapter is storable ------------------------------------------------------

# PostgreSQL text and jsonb refuse NUL and lone surrogates; other C0 controls (but tab, newline,
# carriage return) and DEL are legal there but garble logs and terminals.
_NUL = "\x00"
_SURROGATES = re.compile("[\ud800-\udfff]")
_CONTROLS = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MAX_STRING = 200
_MAX_KEY = 64
_MAX_ITEMS = 20
_MAX_KEYS = 50


def clean_text(value: str, limit: int = _MAX_STRING) -> str:
    """``value`` as PostgreSQL stores it: NULs dropped (gateways pad names with them), lone
    surrogates replaced by U+FFFD, control characters by spaces, byte-order marks dropped, edges
    stripped, at most ``limit`` characters. The one sanitiser for everything leaving an adapter."""
    text = value[: limit * 4].replace(_NUL, "").replace("\ufeff", "")
    text = _CONTROLS.sub(" ", _SURROGATES.sub("\ufffd", text))
    return text.strip()[:limit]


def text_field(value: object, limit: int = _MAX_STRING) -> str | None:
    """A provider field read as text: scalars only (a dict or list where text belongs is absent),
    cleaned; None when empty or ``N/A``."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        text = clean_text(value if isinstance(value, str) else str(value), limit)
    except ValueError:  # an int past Python's digit limit
        return None
    return None if text in ("", "N/A") else text


# Text is masked before it is cut to what is stored: cut first, a key or an account split at the
# cut no longer matches and its first half would be stored. For speed only the first
# 4 * limit + MASK_MARGIN characters (at most MASK_BOUND) are masked; when that cut anything off,
# the last MASK_MARGIN masked characters are dropped too, since they may hold the first half of
# something split there (longer than any key, account or token). Masking shrinks text (keys to
# "[redacted]", emails), so the kept part may reach past the limit before it is cut.
MASK_BOUND = 4000
MASK_MARGIN = 200


def masked_excerpt(
    value: str,
    limit: int,
    secrets: Iterable[str] = (),
    mask: Callable[[str, Iterable[str]], str] = mask_text,
) -> str:
    """At most ``limit`` characters of ``value``, storable (see clean_text) and masked by
    ``mask`` (free text by default) with ``secrets``, masked before it is cut."""
    bound = min(MASK_BOUND, 4 * limit + MASK_MARGIN)
    masked = mask(clean_text(value[:bound], bound), secrets)
    if len(value) > bound:
        masked = masked[: max(len(masked) - MASK_MARGIN, 0)]
    return masked[:limit].strip()


def customer_secrets(order: BillOrder) -> tuple[str, ...]:
    """What of ``order`` is the customer's own and must never be stored or logged, as secrets for
    :func:`billpay.tokens.remove_secrets`: the account number and the phone, each also in the
    other spellings of a Nigerian number (0803..., 234803..., 803...). Separators need no
    variants: secrets are matched whatever separates their characters."""
    values: list[str] = []
    for value in (order.account_number, order.phone):
        digits = "".join(c for c in value or "" if c.isascii() and c.isalnum())
        values.append(digits)
        if digits.isdigit() and len(digits) == 11 and digits.startswith("0"):
            values += ["234" + digits[1:], digits[1:]]
        elif digits.isdigit() and len(digits) == 13 and digits.startswith("234"):
            values += ["0" + digits[3:], digits[3:]]
    return tuple(dict.fromkeys(v for v in values if v))


def normalise_key(key: object) -> str:
    """``"Customer_Number"``, ``"customer-number"``, ``"CustomerNumber"`` -> ``"customernumber"``:
    providers spell the same field many ways."""
    return re.sub(r"[\s_\-]", "", str(key)).lower()


def field_named(mappings: Iterable[object], names: Iterable[str]) -> Any:
    """The first present scalar among ``names`` (normalised spellings, most preferred first),
    looked up in each mapping in turn; None when none has one. A dict or list where a field
    belongs counts as absent."""
    wanted = tuple(names)
    indexed = [
        {normalise_key(k): v for k, v in m.items()} for m in mappings if isinstance(m, Mapping)
    ]
    for name in wanted:
        for index in indexed:
            value = index.get(name)
            if value not in (None, "", "N/A") and not isinstance(value, Mapping | list):
                return value
    return None


# Units, main token before bonus token; also the plain spelling of either.
UNITS_FIELDS = ("maintokenunits", "units", "unit", "tokenunits", "bonustokenunits", "bonusunits")


def storable_payment(result: PaymentResult, secrets: Iterable[str] = ()) -> PaymentResult:
    """``result`` with every string it carries cleaned; messages also masked (they quote meters,
    tokens and our keys, ``secrets``, back at us) and ``secrets`` (keys, the customer's account
    and phone) removed from the other texts. The token stays whole: it is the customer's
    purchase."""
    return replace(
        result,
        token=_clean_optional(result.token, 40),
        units=_clean_optional(result.units, 40),
        provider_reference=_masked_optional(
            result.provider_reference, 100, secrets, remove_secrets
        ),
        reason_code=_masked_optional(result.reason_code, 80, secrets, remove_secrets),
        message=_masked_optional(result.message, 300, secrets),
    )


def storable_check(check: AccountCheck, secrets: Iterable[str] = ()) -> AccountCheck:
    return replace(
        check,
        customer_name=_masked_optional(check.customer_name, 200, secrets, remove_secrets),
        address=_masked_optional(check.address, 300, secrets, remove_secrets),
        reason_code=_masked_optional(check.reason_code, 80, secrets, remove_secrets),
        message=_masked_optional(check.message, 300, secrets),
    )


def storable_product(product: Product) -> Product:
    return replace(product, code=clean_text(product.code, 100), name=clean_text(product.name, 200))


def _clean_optional(value: str | None, limit: int) -> str | None:
    return None if value is None else (clean_text(value, limit) or None)


def _masked_optional(
    value: str | None,
    limit: int,
    secrets: Iterable[str] = (),
    mask: Callable[[str, Iterable[str]], str] = mask_text,
) -> str | None:
    return None if value is None else (masked_excerpt(value, limit, secrets, mask) or None)


# --- redaction of stored bodies ---------------------------------------------------------------

# Matched against normalised keys (see normalise_key).
_SECRET_KEY_PARTS = ("key", "secret", "authorization", "password", "hash", "pin")
_TOKEN_KEY_PARTS = ("token", "purchasedcode", "extra", "kct")
_NOT_TOKEN_SUFFIXES = ("units", "unit", "amount")
_ACCOUNT_KEYS = {
    "customer", "customerid", "customerno", "customernumber", "billerscode", "account",
    "accountno", "accountnumber", "uniqueelement", "cardnumber", "iuc", "iucnumber",
}  # fmt: skip
_ACCOUNT_KEY_PARTS = ("meter", "smartcard", "phone", "msisdn", "mobile", "email")
# References are not secrets and support needs them readable, but providers also echo meters,
# phones and tokens under reference keys ("customerRef": "<meter>"). So a reference value is
# masked by mask_reference (tokens, phones, emails, keys and 10-13-digit runs; transaction ids of
# other lengths stay readable), except two shapes kept whole because they are never anyone's
# account: our attempt references (make_attempt_reference: Lagos stamp + bill reference + A<n>;
# the stamp alone is a 12-digit run) and Flutterwave's tx_ref (CF-FLYAPI- + a 20-digit stamp).
_REFERENCE_SUFFIXES = ("ref", "reference", "transactionid", "requestid")
_ATTEMPT_REFERENCE = re.compile(r"[0-9]{12}[0-9A-Z]{1,40}A[0-9]{1,4}")
_FLUTTERWAVE_TX_REF = re.compile(r"CF-FLYAPI-[0-9]{14,30}")
_LONG_INT = 10**9  # ten digits and more: a smart card, a meter, a phone without its 0


def _is_account_key(key: str, value: Any) -> bool:
    if key in _ACCOUNT_KEYS:
        return True
    # "meterType": "PREPAID" says nothing secret; only values with digits are masked.
    return any(part in key for part in _ACCOUNT_KEY_PARTS) and any(
        c.isdigit() or c == "@" for c in str(value)
    )


def _redact_reference(value: str | int, secrets: Iterable[str]) -> Any:
    text = text_field(value, MASK_BOUND + 1)  # one more: masked_excerpt then knows it was cut
    if text is None:
        return redact(value, secrets=secrets)  # an int past the digit limit, "", "N/A"
    if _ATTEMPT_REFERENCE.fullmatch(text) and reference_created_at(text) is not None:
        return text[:_MAX_STRING]
    if _FLUTTERWAVE_TX_REF.fullmatch(text):
        return text
    masked = masked_excerpt(text, _MAX_STRING, secrets, mask_reference)
    return value if isinstance(value, int) and masked == text else masked


def _redact_value(key: str, value: Any, depth: int, secrets: Iterable[str]) -> Any:
    if any(part in key for part in _SECRET_KEY_PARTS):
        return "[redacted]"
    is_token_key = any(part in key for part in _TOKEN_KEY_PARTS)
    if is_token_key and not key.endswith(_NOT_TOKEN_SUFFIXES) and value not in (None, "", "N/A"):
        token = extract_token(value)
        return mask_token(token) if token else "[redacted]"
    scalar = isinstance(value, str | int) and not isinstance(value, bool)
    if scalar and _is_account_key(key, value):
        return mask_account(text_field(value, _MAX_STRING * 4) or "")[-_MAX_STRING:]
    if scalar and key.endswith(_REFERENCE_SUFFIXES):
        return _redact_reference(value, secrets)
    return redact(value, depth + 1, secrets=secrets)


def _redact_number(number: int | float) -> Any:
    if isinstance(number, float) and not math.isfinite(number):
        return str(number)  # jsonb has no NaN or Infinity
    if abs(number) < _LONG_INT:
        return number
    # Ten digits and more is an account, whatever its JSON type: 45012345678.0 is a meter too.
    digits = text_field(int(number), 4400) or ""
    return mask_account(digits)[-_MAX_STRING:]


def redact(body: Any, depth: int = 0, *, secrets: Iterable[str] = ()) -> Any:
    """A copy of a provider body safe to store and log: no keys (``secrets``: our own key values,
    removed wherever they are quoted), masked tokens, accounts, phones and emails (under any
    spelling of their keys, and inside free text), every string and key storable (see
    clean_text), no NaN or infinity, long strings and lists cut, nesting limited."""
    secrets = tuple(secrets)
    if depth > 4:
        return "[...]"
    if isinstance(body, Mapping):
        return {
            masked_excerpt(str(k), _MAX_KEY, secrets): _redact_value(
                normalise_key(k), v, depth, secrets
            )
            for k, v in list(body.items())[:_MAX_KEYS]
        }
    if isinstance(body, list | tuple):
        return [redact(item, depth + 1, secrets=secrets) for item in body[:_MAX_ITEMS]]
    if isinstance(body, bool) or body is None:
        return body
    if isinstance(body, int | float):
        return _redact_number(body)
    return masked_excerpt(str(body), _MAX_STRING, secrets)
