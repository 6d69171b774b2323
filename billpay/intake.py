"""Order intake: validate what a user asked for, price it in cNGN, store a pending order.

Every rule reads the catalogue in force, passed in explicitly (the App's ``catalogue.current()``,
or ``Catalogue.builtin()`` where no database is needed): a fixed-price plan costs what the first
provider on the route that sells it lists (``billpay.catalogue``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from billpay import accounts
from billpay.catalogue import Catalogue
from billpay.config import Settings
from billpay.money import MoneyError, format_cngn, kobo_to_cngn, kobo_to_naira, naira_to_kobo
from billpay.orders import BillType, memo_for, muxed_address_for
from billpay.store import Database
from billpay.store import bills as bill_store
from billpay.tokens import format_token

_T = TypeVar("_T")


class IntakeError(ValueError):
    """Bad order input; ``field`` names what to fix. Nothing has been stored. ``others`` are
    the further bad fields found in the same order (``all`` lists every one)."""

    def __init__(
        self,
        field: str,
        message: str,
        code: str = "invalid_input",
        others: tuple[IntakeError, ...] = (),
    ) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.code = code
        self.others = others

    @property
    def all(self) -> tuple[IntakeError, ...]:
        return (self, *self.others)

    def renamed(self, names: dict[str, str]) -> IntakeError:
        """The same errors under the caller's field names (the API's ``account`` for the
        order's ``account_number``)."""
        return IntakeError.of(
            [IntakeError(names.get(e.field, e.field), e.message, e.code) for e in self.all]
        )

    @classmethod
    def of(cls, errors: list[IntakeError]) -> IntakeError:
        first, *rest = errors
        return cls(first.field, first.message, first.code, tuple(rest))


@dataclass(frozen=True)
class OrderRequest:
    bill_type: str
    biller: str
    account: str
    amount: str | None  # None only for validate(partial=True)
    phone: str | None
    account_type: str | None = None
    product: str | None = None
    network: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class ValidOrder:
    """A validated order: its fields are those ``billpay.store.bills.create_order`` takes."""

    bill_type: BillType
    biller: str
    account_number: str
    account_type: str | None
    product_code: str | None
    network: str | None
    phone: str
    email: str | None
    amount_kobo: int
    # What the user should know but need not fix (a number whose prefix is another network's:
    # ported numbers are common). Masked: never the full number. Not an order column.
    warnings: tuple[str, ...] = ()

    def columns(self) -> dict[str, Any]:
        """The fields ``billpay.store.bills.create_order`` takes (the warnings are not stored)."""
        fields = asdict(self)
        del fields["warnings"]
        return fields


def validate(
    request: OrderRequest, settings: Settings, *, catalogue: Catalogue, partial: bool = False
) -> ValidOrder:
    """The order, checked and normalised; an :class:`IntakeError` naming every bad field
    otherwise (each field checked on its own, those that depend on a bad one skipped).

    ``partial``: the account questions only (``POST /api/bills/validate``): amount and phone
    may be absent; a missing amount reads as the plan's price or our minimum, a missing phone
    as empty."""
    errors: list[IntakeError] = []

    def check(rule: Callable[..., _T], *args: Any) -> _T | None:
        try:
            return rule(*args)
        except IntakeError as exc:
            errors.append(exc)
        except accounts.ValidationError as exc:
            errors.append(IntakeError(exc.field, exc.message, exc.code))
        return None

    bill_type = check(_bill_type, request.bill_type)
    biller = check(_biller_code, request.biller)
    amount_kobo = None
    if request.amount is not None or not partial:
        amount_kobo = check(_amount, request.amount, settings)
    phone = None
    if request.phone is not None or not partial:
        phone = check(accounts.parse_phone, request.phone)
    email = check(_validate_email, request.email)
    account_type = request.account_type.strip().lower() if request.account_type else None
    if bill_type is not None:
        check(_type_rules, bill_type, account_type, request.product)
    product = None
    if bill_type is not None and biller is not None and not _named(errors, "product"):
        priced = check(
            _check_catalogue, catalogue, settings, bill_type, biller, request, amount_kobo
        )
        if priced is None:
            biller = None
        else:
            biller, product = priced
    account_number, network = None, None
    warnings: tuple[str, ...] = ()
    if bill_type is not None and biller is not None and not _named(errors, "account_type"):
        account_number = check(
            accounts.validate_account, bill_type, biller, request.account, account_type
        )
        if bill_type in (BillType.AIRTIME, BillType.DATA) and account_number is not None:
            checked = check(_network, account_number, request.network, biller)
            network, warnings = checked if checked is not None else (None, ())
    if errors:
        raise IntakeError.of(errors)
    assert bill_type and biller and account_number
    if amount_kobo is None:  # partial: the plan's fixed price, or our minimum
        price = catalogue.price(biller, product, settings.route_for(bill_type)) if product else None
        amount_kobo = price or naira_to_kobo(settings.min_amount_naira)
    return ValidOrder(
        bill_type=bill_type,
        biller=biller,
        account_number=account_number,
        account_type=account_type,
        product_code=product,
        network=network,
        phone=phone.local if phone else "",
        email=email,
        amount_kobo=amount_kobo,
        warnings=warnings,
    )


def _named(errors: list[IntakeError], field: str) -> bool:
    return any(e.field == field for e in errors)


def _bill_type(text: str) -> BillType:
    try:
        return BillType(text.strip().lower())
    except ValueError:
        choices = ", ".join(t.value for t in BillType)
        raise IntakeError("bill_type", f"must be one of {choices}", "invalid_bill_type") from None


def _biller_code(text: str) -> str:
    biller = text.strip().lower()
    if not biller:
        raise IntakeError("biller", "is required", "invalid_biller")
    return biller


# Naira as people write them in a form: ASCII digits, at most two decimals. No exponent, no
# grouping commas, no other scripts' digits (Decimal would take "5e3" and "٥٠٠٠").
_MONEY_TEXT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")


def _amount(text: str | None, settings: Settings) -> int:
    if not _MONEY_TEXT.fullmatch((text or "").strip()):
        raise IntakeError(
            "amount",
            'must be naira in digits, at most 2 decimals, e.g. "5000" or "5000.50"',
            "invalid_amount",
        )
    try:
        amount_kobo = naira_to_kobo((text or "").strip())
    except MoneyError as exc:
        raise IntakeError("amount", str(exc), "invalid_amount") from None
    low, high = naira_to_kobo(settings.min_amount_naira), naira_to_kobo(settings.max_amount_naira)
    if not low <= amount_kobo <= high:
        raise IntakeError(
            "amount",
            f"must be between {settings.min_amount_naira} and {settings.max_amount_naira} naira",
            "invalid_amount",
        )
    return amount_kobo


def _type_rules(bill_type: BillType, account_type: str | None, product: str | None) -> None:
    if bill_type is BillType.ELECTRICITY and account_type not in ("prepaid", "postpaid"):
        raise IntakeError(
            "account_type", "must be prepaid or postpaid for electricity", "invalid_account_type"
        )
    if bill_type is not BillType.ELECTRICITY and account_type is not None:
        raise IntakeError(
            "account_type", f"is only for electricity, not {bill_type}", "invalid_account_type"
        )
    if bill_type in (BillType.DATA, BillType.CABLE_TV) and not product:
        raise IntakeError(
            "product", f"a plan/bouquet code is required for {bill_type}", "invalid_product"
        )


def _network(phone: str, named: str | None, biller: str) -> tuple[str, tuple[str, ...]]:
    """The network to top up, and what to warn about. A network's own biller (``mtn``,
    ``mtn-data``) names the network: a number whose prefix was first issued by another network,
    or by none we know, is taken with a warning (numbers are ported, and new ranges are
    allocated before any prefix table knows them). ``named`` (``--network``) must then agree
    with the biller. Without a network biller the prefix or ``named`` decides, as before."""
    chosen = accounts.parse_network(named) if named else None
    network = _biller_network(biller)
    if network is None:
        return str(accounts.resolve_network(phone, chosen)), ()
    if chosen is not None and chosen is not network:
        raise IntakeError(
            "network",
            f"{chosen} does not match biller {biller!r} ({network}); leave it out: "
            "the biller names the network",
            "invalid_network",
        )
    # Only the prefix is quoted back: a warning never carries the number itself.
    prefix, original = phone[:4], accounts.detect_network(phone)
    name = _NETWORK_NAMES[network]
    if original is None:
        return str(network), (
            f"we cannot tell the network of numbers starting {prefix}; topping up on {name} "
            f"as biller {biller!r} says",
        )
    if original is not network and chosen is None:
        return str(network), (
            f"numbers starting {prefix} were first issued by {_NETWORK_NAMES[original]}; "
            f"topping up on {name} as biller {biller!r} says (right for a number ported to {name})",
        )
    return str(network), ()


_NETWORK_NAMES = {
    accounts.Network.MTN: "MTN",
    accounts.Network.AIRTEL: "Airtel",
    accounts.Network.GLO: "Glo",
    accounts.Network.NINE_MOBILE: "9mobile",
}


def _biller_network(biller: str) -> accounts.Network | None:
    """The network whose own product ``biller`` is (``mtn``, ``mtn-data``, ``etisalat-data``)."""
    return next((n for n in accounts.Network if biller in _network_billers(n)), None)


def _network_billers(network: str) -> set[str]:
    vtpass_name = "etisalat" if network == "9mobile" else network
    return {network, f"{network}-data", f"{vtpass_name}-data"}


def _check_catalogue(
    catalogue: Catalogue,
    settings: Settings,
    bill_type: BillType,
    biller_code: str,
    request: OrderRequest,
    amount_kobo: int | None,
) -> tuple[str, str | None]:
    """The biller must be one we list, of this bill type, and sold by a provider right now; so
    must its plan (the account type for electricity); a fixed-price plan must be paid at its
    price on the route (checked when the amount itself is valid). Returns our canonical biller
    code and product code."""
    biller = catalogue.find_biller(biller_code)
    if biller is None or biller.bill_type != bill_type:
        raise IntakeError("biller", f"no {bill_type} biller {biller_code!r}", "invalid_biller")
    if not biller.sellers():
        raise IntakeError(
            "biller", f"{biller.code} is not sold by any provider right now", "not_sold"
        )
    if bill_type is BillType.ELECTRICITY:
        kind = (request.account_type or "").strip().lower()
        if kind in ("prepaid", "postpaid") and not biller.plan_sellers(kind):
            raise IntakeError(
                "account_type", f"{biller.code} {kind} is not sold by any provider right now",
                "not_sold",
            )  # fmt: skip
    single = {BillType.AIRTIME: "airtime", BillType.WATER: "water"}.get(bill_type)
    if single and not biller.plan_sellers(single):  # listed, but its one item vanished
        raise IntakeError(
            "biller", f"{biller.code} is not sold by any provider right now", "not_sold"
        )
    if bill_type not in (BillType.DATA, BillType.CABLE_TV):
        return biller.code, None
    code = request.product.strip().lower() if request.product else ""
    if code not in biller.known_plans:
        codes = ", ".join(p for p in biller.known_plans if biller.plan_sellers(p))
        raise IntakeError(
            "product", f"{request.product!r} is not a {biller.code} plan ({codes})",
            "invalid_product",
        )  # fmt: skip
    if not biller.plan_sellers(code):
        raise IntakeError("product", f"{code} is not sold by any provider right now", "not_sold")
    price = catalogue.price(biller.code, code, settings.route_for(bill_type))
    if amount_kobo is not None and price is not None and price != amount_kobo:
        raise IntakeError("amount", f"{code} costs {_naira_text(price)} naira", "invalid_amount")
    return biller.code, code


def _naira_text(kobo: int) -> str:
    """``295000`` -> ``"2950"``, ``295050`` -> ``"2950.50"``."""
    return str(kobo // 100) if kobo % 100 == 0 else str(kobo_to_naira(kobo))


def _validate_email(email: str | None) -> str | None:
    if email is None or not email.strip():
        return None
    email = email.strip()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or " " in email or len(email) > 254:
        raise IntakeError("email", f"{email!r} is not an email address", "invalid_email")
    return email


def create_order(
    db: Database, settings: Settings, request: OrderRequest, *, catalogue: Catalogue
) -> dict[str, Any]:
    """Validate, price (from ``catalogue``) and store one order; returns the payment
    instructions and the ``warnings`` (see :class:`ValidOrder`)."""
    valid = validate(request, settings, catalogue=catalogue)
    row = bill_store.create_order(db, **order_fields(valid, settings))
    return {**payment_instructions(row, settings), "warnings": list(valid.warnings)}


def order_fields(order: ValidOrder, settings: Settings) -> dict[str, Any]:
    """A validated order priced in cNGN (amount plus the service fee), with its time to live:
    the fields ``billpay.store.bills.insert_order`` takes (the CLI and the API share them)."""
    if not settings.system_account or not settings.cngn_issuer:
        raise IntakeError(
            "settings",
            "BILLPAY_SYSTEM_ACCOUNT and BILLPAY_CNGN_ISSUER must be set",
            "not_configured",
        )
    fee_kobo = naira_to_kobo(settings.service_fee_naira)
    return {
        **order.columns(),
        "fee_kobo": fee_kobo,
        "amount_cngn": kobo_to_cngn(order.amount_kobo + fee_kobo),
        "ttl": timedelta(seconds=settings.order_ttl_seconds),
    }


def payment_instructions(row: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Pay ``destination`` with the text ``memo``, or pay ``muxed_destination`` (no memo
    needed: the M-address names the order); either is matched."""
    return {
        "reference": row["reference"],
        "memo": memo_for(row["reference"]),
        "amount_cngn": format_cngn(row["amount_cngn"]),
        "destination": settings.system_account,
        "muxed_destination": muxed_address_for(settings.system_account, int(row["muxed_id"])),
        "asset_code": settings.cngn_asset_code,
        "asset_issuer": settings.cngn_issuer,
        "expires_at": _iso(row["expires_at"]),
    }


def _iso(value: datetime) -> str:
    """ISO 8601 in UTC, whatever the database session's time zone."""
    return value.astimezone(UTC).isoformat()


def describe(row: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """``billpay order show``: the order, its state and its transitions, JSON-ready."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in ("claimed_by", "claimed_until"):
            continue
        if isinstance(value, datetime):
            value = _iso(value)
        elif isinstance(value, Decimal):
            value = format_cngn(value) if key == "amount_cngn" else str(value)
        out[key] = value
    if out.get("token"):
        out["token"] = format_token(out["token"])
    out["memo"] = memo_for(row["reference"])
    out["events"] = [
        {
            "from": e["from_state"],
            "to": e["to_state"],
            "at": _iso(e["at"]),
            "actor": e["actor"],
            "detail": e["detail"],
        }
        for e in events
    ]
    return out
