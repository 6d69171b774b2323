"""The sandbox providers' catalogues: what VTpass's ``/services`` and ``/service-variations`` and
Flutterwave's ``/top-bill-categories``, ``/bills/{category}/billers`` and
``/billers/{code}/items`` answer, in the documented shapes (tests/fixtures/*catalogue*).

Built from the built-in table (billpay.catalogue.BILLERS, the seed) but held per app and
mutable, so tests and the demo can act as the provider changing its catalogue: set an item's
price, remove or restore a biller, list a biller we have never heard of, break one call. The
control routes in billpay/sandbox/providers.py (``/_sandbox/catalogue/...``) call these methods.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from billpay.catalogue import BILLERS, FLUTTERWAVE_CATEGORY
from billpay.orders import BillType

VTPASS_IDENTIFIER = {
    BillType.AIRTIME: "airtime",
    BillType.DATA: "data",
    BillType.CABLE_TV: "tv-subscription",
    BillType.ELECTRICITY: "electricity-bill",
}
# (minimium_amount (sic), maximum_amount, convinience_fee) as VTpass lists them per identifier.
_VTPASS_LIMITS = {
    "airtime": ("50", "50000", "0 %"),
    "data": ("1", "1000000", "0 %"),
    "tv-subscription": ("1", "1000000", "N0"),
    "electricity-bill": ("500", "1000000", "N0"),
}
FLUTTERWAVE_CATEGORIES = (
    # code, name (as GET /top-bill-categories lists them)
    ("AIRTIME", "Airtime"),
    ("MOBILEDATA", "Mobile Data Service"),
    ("CABLEBILLS", "Cable Bill Payment"),
    ("UTILITYBILLS", "Utility Bills"),
)
_LABELS = {
    BillType.ELECTRICITY: "Meter Number",
    BillType.CABLE_TV: "Smart Card Number",
    BillType.AIRTIME: "Mobile Number",
    BillType.DATA: "Mobile Number",
    BillType.WATER: "Account Number",
}


@dataclass
class SandboxItem:
    code: str
    name: str
    amount_kobo: int | None  # None: the customer sets the amount
    fee_kobo: int = 0


@dataclass
class SandboxBiller:
    code: str  # VTpass serviceID / Flutterwave biller_code
    name: str
    category: str  # VTpass identifier / Flutterwave category code
    bill_type: BillType
    items: dict[str, SandboxItem] = field(default_factory=dict)


def _naira(kobo: int | None) -> str:
    return f"{Decimal(kobo or 0) / 100:.2f}"


def _flutterwave_naira(kobo: int) -> int | str:
    """Flutterwave's amounts are naira numbers (``1850``, ``0``); a price with kobo is served as
    its exact decimal string (``"3100.50"``), never through float arithmetic."""
    return kobo // 100 if kobo % 100 == 0 else _naira(kobo)


def _vtpass_billers() -> dict[str, SandboxBiller]:
    out = {}
    for b in BILLERS.values():
        if not b.vtpass_service_id:
            continue
        items = {
            p.vtpass: SandboxItem(p.vtpass, p.name, p.amount_kobo) for p in b.plans if p.vtpass
        }
        identifier = VTPASS_IDENTIFIER[b.bill_type]
        out[b.vtpass_service_id] = SandboxBiller(
            b.vtpass_service_id, b.name, identifier, b.bill_type, items
        )
    return out


def _flutterwave_billers() -> dict[str, SandboxBiller]:
    out = {}
    for b in BILLERS.values():
        if not b.flutterwave_biller_code:
            continue
        items = {
            p.flutterwave: SandboxItem(p.flutterwave, p.name, p.amount_kobo)
            for p in b.plans
            if p.flutterwave
        }
        category = FLUTTERWAVE_CATEGORY[b.bill_type]
        out[b.flutterwave_biller_code] = SandboxBiller(
            b.flutterwave_biller_code, b.name, category, b.bill_type, items
        )
    return out


class SandboxCatalogue:
    """Both providers' catalogues for one sandbox app; every change is one method."""

    def __init__(self) -> None:
        self.billers: dict[str, dict[str, SandboxBiller]] = {
            "vtpass": _vtpass_billers(),
            "flutterwave": _flutterwave_billers(),
        }
        self.removed: dict[str, set[str]] = {"vtpass": set(), "flutterwave": set()}
        self.broken: dict[str, set[str]] = {"vtpass": set(), "flutterwave": set()}
        self.lock = threading.Lock()

    def listed(self, provider: str) -> list[SandboxBiller]:
        with self.lock:
            gone = self.removed[provider]
            return [b for code, b in self.billers[provider].items() if code not in gone]

    def biller(self, provider: str, code: str) -> SandboxBiller | None:
        with self.lock:
            if code in self.removed[provider]:
                return None
            return self.billers[provider].get(code)

    def is_broken(self, provider: str, code: str) -> bool:
        with self.lock:
            return code in self.broken[provider]

    # --- what an operator at the provider does (control routes) -----------------------------

    def set_price(self, provider: str, code: str, item: str, amount_kobo: int | None) -> bool:
        with self.lock:
            found = self.billers[provider].get(code)
            if found is None or item not in found.items:
                return False
            found.items[item].amount_kobo = amount_kobo
            return True

    def remove(self, provider: str, code: str) -> bool:
        with self.lock:
            if code not in self.billers[provider]:
                return False
            self.removed[provider].add(code)
            return True

    def restore(self, provider: str, code: str) -> bool:
        with self.lock:
            if code not in self.removed[provider]:
                return False
            self.removed[provider].discard(code)
            return True

    def break_biller(self, provider: str, code: str, broken: bool = True) -> None:
        """Its items / variations call answers an HTML page (HTTP 200) until mended."""
        with self.lock:
            (self.broken[provider].add if broken else self.broken[provider].discard)(code)

    def add(self, provider: str, biller: SandboxBiller) -> None:
        """A biller the provider starts listing (one we may never have heard of)."""
        with self.lock:
            self.billers[provider][biller.code] = biller
            self.removed[provider].discard(biller.code)

    # --- bodies in the documented shapes ----------------------------------------------------

    def vtpass_services(self, identifier: str) -> dict[str, Any]:
        low, high, fee = _VTPASS_LIMITS.get(identifier, ("1", "1000000", "0 %"))
        content = [
            {
                "serviceID": b.code,
                "name": b.name,
                "minimium_amount": low,  # sic: VTpass's spelling
                "maximum_amount": high,
                "convinience_fee": fee,  # sic
                "product_type": "fix" if identifier in ("data", "tv-subscription") else "flexible",
                "image": f"https://sandbox.vtpass.com/resources/products/200X200/{b.code}.jpg",
            }
            for b in self.listed("vtpass")
            if b.category == identifier
        ]
        return {"response_description": "000", "content": content}

    def vtpass_variations(self, biller: SandboxBiller) -> dict[str, Any]:
        varations = [  # VTpass really spells it this way in some answers
            {
                "variation_code": item.code,
                "name": item.name,
                "variation_amount": _naira(item.amount_kobo),
                "fixedPrice": "Yes" if item.amount_kobo else "No",
            }
            for item in biller.items.values()
        ]
        content = {
            "ServiceName": biller.name,
            "serviceID": biller.code,
            "convinience_fee": "0 %",
            "varations": varations,
        }
        return {"response_description": "000", "content": content}

    @staticmethod
    def flutterwave_categories(country: str) -> list[dict[str, Any]]:
        return [
            {"id": i + 1, "name": name, "code": code, "description": name,
             "country_code": country}
            for i, (code, name) in enumerate(FLUTTERWAVE_CATEGORIES)
        ]  # fmt: skip

    def flutterwave_billers(self, category: str, country: str) -> list[dict[str, Any]]:
        return [
            {
                "id": i + 1,
                "name": b.name,
                "logo": None,
                "description": b.name,
                "short_name": b.name,
                "biller_code": b.code,
                "country_code": country,
            }
            for i, b in enumerate(self.listed("flutterwave"))
            if b.category == category.upper()
        ]

    @staticmethod
    def flutterwave_items(biller: SandboxBiller) -> list[dict[str, Any]]:
        phone = biller.bill_type in (BillType.AIRTIME, BillType.DATA)
        return [
            {
                "id": i + 1,
                "biller_code": biller.code,
                "name": item.name,
                "default_commission": 0.03 if phone else 0.0,
                "date_added": "2020-02-11T11:16:42.727Z",
                "country": "NG",
                "is_airtime": biller.bill_type == BillType.AIRTIME,
                "biller_name": item.name,
                "item_code": item.code,
                "short_name": item.name,
                "fee": _flutterwave_naira(item.fee_kobo),
                "commission_on_fee": False,
                "label_name": _LABELS[biller.bill_type],
                "amount": _flutterwave_naira(item.amount_kobo or 0),
                "is_resolvable": not phone,
                "group_name": biller.name,
                "category_name": biller.category,
                "validity_period": None,
            }
            for i, item in enumerate(biller.items.values())
        ]
