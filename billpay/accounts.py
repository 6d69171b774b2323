"""Account rules: phone numbers, networks, meters, smart cards and water accounts.

Pure functions, no I/O. Every rule either returns the normalised value or raises
``ValidationError`` carrying a stable ``code``, the order ``field`` it concerns and a human
``message``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from billpay.orders import BillType


class ValidationError(ValueError):
    """A value an order cannot carry. ``str(err)`` is ``"field: message"``."""

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.code = code
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class Network(StrEnum):
    MTN = "mtn"
    AIRTEL = "airtel"
    GLO = "glo"
    NINE_MOBILE = "9mobile"


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    local: str  # 0803XXXXXXX
    e164: str  # +234803XXXXXXX

    def __str__(self) -> str:
        return self.local


def _prefixes(network: Network | None, *codes: str) -> dict[str, Network | None]:
    return dict.fromkeys(codes, network)


# Original-network prefixes (libphonenumber carrier data, REFERENCE.md). A value of None means
# "a known prefix that is not a network we sell airtime for". Five-digit entries win. 0910 (MTN)
# is newer than REFERENCE.md's table (issue 14).
NETWORK_PREFIXES: dict[str, Network | None] = {
    **_prefixes(
        Network.MTN,
        "0703", "0704", "0706", "0707", "0803", "0806", "0810", "0813", "0814", "0816",
        "0903", "0906", "0910", "0913", "0916", "07025", "07026",
    ),
    **_prefixes(
        Network.AIRTEL,
        "0701", "0708", "0802", "0808", "0812", "0901", "0902", "0904", "0907", "0911", "0912",
    ),
    **_prefixes(Network.GLO, "0705", "0805", "0807", "0811", "0815", "0905", "0915"),
    **_prefixes(Network.NINE_MOBILE, "0809", "0817", "0818", "0908", "0909"),
    **_prefixes(None, "0804", "0801", "07020"),  # Ntel, MAFAB, Smile
}  # fmt: skip

_SEPARATORS = re.compile(r"[\s\-]")
_LOCAL_PHONE = re.compile(r"0[0-9]{10}")
_INTL_PHONE = re.compile(r"\+?234([0-9]{10})")


def parse_phone(value: str, field: str = "phone") -> PhoneNumber:
    """Accept ``0XXXXXXXXXX``, ``234XXXXXXXXXX`` or ``+234XXXXXXXXXX`` (spaces/dashes allowed)."""
    compact = _SEPARATORS.sub("", value or "")
    if _LOCAL_PHONE.fullmatch(compact):
        national = compact[1:]
    elif match := _INTL_PHONE.fullmatch(compact):
        national = match.group(1)
    else:
        raise ValidationError(
            "invalid_phone", field, "expected 0XXXXXXXXXX, 234XXXXXXXXXX or +234XXXXXXXXXX"
        )
    if national.startswith("0"):
        raise ValidationError("invalid_phone", field, "national number cannot start with 0")
    return PhoneNumber(local=f"0{national}", e164=f"+234{national}")


def normalize_phone(value: str, field: str = "phone") -> str:
    """The local form ``0803...`` of a valid phone number."""
    return parse_phone(value, field).local


def detect_network(phone: str | PhoneNumber) -> Network | None:
    """The original network of a number by prefix, or None (unknown or not sold)."""
    local = phone.local if isinstance(phone, PhoneNumber) else parse_phone(phone).local
    for length in (5, 4):
        if (prefix := local[:length]) in NETWORK_PREFIXES:
            return NETWORK_PREFIXES[prefix]
    return None


def parse_network(value: str | Network, field: str = "network") -> Network:
    text = str(value).strip().lower()
    if text == "etisalat":  # 9mobile's old name, still VTpass's serviceID
        text = Network.NINE_MOBILE.value
    try:
        return Network(text)
    except ValueError:
        raise ValidationError("unknown_network", field, f"unknown network {value!r}") from None


def resolve_network(phone: str | PhoneNumber, explicit: str | Network | None = None) -> Network:
    """The network to top up: an explicit choice wins (number portability), else the prefix."""
    if explicit:
        return parse_network(explicit)
    network = detect_network(phone)
    if network is None:
        raise ValidationError(
            "unknown_network", "network", "cannot tell the network from the number; name it"
        )
    return network


# --- meters, smart cards, water accounts --------------------------------------------------

PREPAID_METER_LENGTHS = (11, 13)
POSTPAID_ACCOUNT_LENGTHS = (6, 16)  # inclusive bounds
SMART_CARD_LENGTHS: dict[str, int] = {"dstv": 10, "gotv": 10, "startimes": 11}
# Per-biller water account rules: (regex, human description). Unknown billers get the default.
WATER_ACCOUNT_RULES: dict[str, tuple[str, str]] = {
    "lagos-water": (r"[0-9]{6,12}", "6 to 12 digits"),
    "fct-water": (r"[A-Za-z0-9]{4,20}", "4 to 20 letters or digits"),
}
DEFAULT_WATER_RULE = (r"[A-Za-z0-9]{4,20}", "4 to 20 letters or digits")
ACCOUNT_TYPES = ("prepaid", "postpaid")


def _compact(value: str | None) -> str:
    return _SEPARATORS.sub("", value or "")


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def validate_meter(number: str, account_type: str | None) -> str:
    kind = (account_type or "").strip().lower()
    if kind not in ACCOUNT_TYPES:
        raise ValidationError("invalid_account_type", "account_type", "must be prepaid or postpaid")
    compact = _compact(number)
    if kind == "prepaid":
        if not _is_digits(compact) or len(compact) not in PREPAID_METER_LENGTHS:
            raise ValidationError(
                "invalid_meter_number", "account_number", "a prepaid meter has 11 or 13 digits"
            )
        return compact
    low, high = POSTPAID_ACCOUNT_LENGTHS
    if not _is_digits(compact) or not low <= len(compact) <= high:
        raise ValidationError(
            "invalid_meter_number",
            "account_number",
            f"a postpaid account number has {low} to {high} digits",
        )
    return compact


def validate_smart_card(biller: str, number: str) -> str:
    length = SMART_CARD_LENGTHS.get(biller)
    if length is None:
        raise ValidationError("unknown_biller", "biller", f"unknown cable TV biller {biller!r}")
    compact = _compact(number)
    if not _is_digits(compact) or len(compact) != length:
        raise ValidationError(
            "invalid_smart_card", "account_number", f"a {biller} smart card has {length} digits"
        )
    return compact


def validate_water_account(biller: str, number: str) -> str:
    pattern, description = WATER_ACCOUNT_RULES.get(biller, DEFAULT_WATER_RULE)
    compact = _compact(number)
    if not re.fullmatch(pattern, compact):
        raise ValidationError(
            "invalid_account_number", "account_number", f"a {biller} account has {description}"
        )
    return compact


def validate_account(
    bill_type: BillType | str, biller: str, account_number: str, account_type: str | None = None
) -> str:
    """The normalised account number for a bill, or ``ValidationError``.

    Airtime and data accounts are phone numbers and come back in local form (``0803...``).
    """
    kind = BillType(bill_type)
    if kind in (BillType.AIRTIME, BillType.DATA):
        return normalize_phone(account_number, field="account_number")
    if kind is BillType.ELECTRICITY:
        return validate_meter(account_number, account_type)
    if kind is BillType.CABLE_TV:
        return validate_smart_card(biller, account_number)
    return validate_water_account(biller, account_number)


def validate_amount_kobo(
    amount_kobo: int, minimum_kobo: int | None = None, maximum_kobo: int | None = None
) -> int:
    if isinstance(amount_kobo, bool) or not isinstance(amount_kobo, int) or amount_kobo <= 0:
        raise ValidationError("invalid_amount", "amount_kobo", "amount must be a positive kobo int")
    if minimum_kobo is not None and amount_kobo < minimum_kobo:
        raise ValidationError("invalid_amount", "amount_kobo", f"below minimum {minimum_kobo} kobo")
    if maximum_kobo is not None and amount_kobo > maximum_kobo:
        raise ValidationError("invalid_amount", "amount_kobo", f"above maximum {maximum_kobo} kobo")
    return amount_kobo
