"""The biller catalogue: every biller and plan we sell, and each provider's codes for them.

``BILLERS`` maps our biller codes (and our product codes) to each provider's codes. VTpass codes
are the documented serviceIDs / variation codes. Flutterwave biller and item codes come from its
catalogue at runtime in real life; the codes below are plausible placeholders (BIL.../UB...,
AT..., MD..., CB...) except where the fixtures show them (DStv BIL119 / CB141, airtime
BIL099-BIL103): check them against ``GET /billers/{biller_code}/items`` before going live.

Our product codes for data plans and bouquets are VTpass's variation codes; a product code that
is not in the table is passed through unchanged (it is then a provider-native code).

Pure data and lookups: intake, the adapters and the sandbox all read it; it imports no adapter.
"""

from __future__ import annotations

from dataclasses import dataclass

from billpay.orders import BillOrder, BillType


@dataclass(frozen=True, slots=True)
class Plan:
    code: str  # ours: prepaid/postpaid, airtime, a data plan, a bouquet, water
    name: str
    amount_kobo: int | None  # None: the customer sets the amount
    vtpass: str | None  # VTpass variation_code (None: none needed, e.g. airtime)
    flutterwave: str | None  # Flutterwave item_code


@dataclass(frozen=True, slots=True)
class Biller:
    code: str  # ours
    bill_type: BillType
    name: str
    vtpass_service_id: str | None
    flutterwave_biller_code: str | None
    plans: tuple[Plan, ...] = ()

    def plan(self, code: str | None) -> Plan | None:
        return next((p for p in self.plans if p.code == code), None)


FLUTTERWAVE_CATEGORY: dict[BillType, str] = {
    BillType.AIRTIME: "AIRTIME",
    BillType.DATA: "MOBILEDATA",
    BillType.CABLE_TV: "CABLEBILLS",
    BillType.ELECTRICITY: "UTILITYBILLS",
    BillType.WATER: "UTILITYBILLS",
}

_DISCOS = (
    # ours / VTpass serviceID, name, invented Flutterwave biller, prepaid item, postpaid item
    ("ikeja-electric", "Ikeja Electric (IKEDC)", "BIL112", "UB157", "UB158"),
    ("eko-electric", "Eko Electric (EKEDC)", "BIL113", "UB159", "UB160"),
    ("kano-electric", "Kano Electric (KEDCO)", "BIL114", "UB161", "UB162"),
    ("portharcourt-electric", "Port Harcourt Electric (PHED)", "BIL115", "UB163", "UB164"),
    ("jos-electric", "Jos Electric (JED)", "BIL116", "UB165", "UB166"),
    ("ibadan-electric", "Ibadan Electric (IBEDC)", "BIL117", "UB167", "UB168"),
    ("kaduna-electric", "Kaduna Electric (KAEDCO)", "BIL118", "UB169", "UB170"),
    ("abuja-electric", "Abuja Electric (AEDC)", "BIL204", "UB171", "UB172"),
    ("enugu-electric", "Enugu Electric (EEDC)", "BIL205", "UB173", "UB174"),
    ("benin-electric", "Benin Electric (BEDC)", "BIL206", "UB175", "UB176"),
    ("aba-electric", "Aba Power (APLE)", "BIL207", "UB177", "UB178"),
    ("yola-electric", "Yola Electric (YEDC)", "BIL208", "UB179", "UB180"),
)

_AIRTIME = (
    # ours, name, VTpass serviceID, Flutterwave biller, Flutterwave item
    ("mtn", "MTN Airtime", "mtn", "BIL099", "AT099"),
    ("airtel", "Airtel Airtime", "airtel", "BIL100", "AT100"),
    ("glo", "Glo Airtime", "glo", "BIL102", "AT102"),
    ("9mobile", "9mobile Airtime", "etisalat", "BIL103", "AT103"),
)

_DATA = (
    # ours = VTpass serviceID, name, Flutterwave biller (invented), plans:
    # (our code = VTpass variation_code, name, naira, invented Flutterwave item)
    ("mtn-data", "MTN Data", "BIL104", (
        ("mtn-100mb-100", "MTN 100MB 1 day", 100, "MD104"),
        ("mtn-1gb-1000", "MTN 1GB 30 days", 1000, "MD105"),
        ("mtn-2gb-2000", "MTN 2GB 30 days", 2000, "MD106"),
    )),
    ("airtel-data", "Airtel Data", "BIL105", (
        ("airtel-100mb-100", "Airtel 100MB 1 day", 100, "MD107"),
        ("airtel-1gb-1000", "Airtel 1GB 30 days", 1000, "MD108"),
        ("airtel-2gb-2000", "Airtel 2GB 30 days", 2000, "MD109"),
    )),
    ("glo-data", "Glo Data", "BIL106", (
        ("glo-100mb-100", "Glo 100MB 1 day", 100, "MD110"),
        ("glo-1gb-1000", "Glo 1GB 30 days", 1000, "MD111"),
        ("glo-2gb-2000", "Glo 2GB 30 days", 2000, "MD112"),
    )),
    ("etisalat-data", "9mobile Data", "BIL107", (
        ("eti-100mb-100", "9mobile 100MB 1 day", 100, "MD113"),
        ("eti-1gb-1000", "9mobile 1GB 30 days", 1000, "MD114"),
        ("eti-2gb-2000", "9mobile 2GB 30 days", 2000, "MD115"),
    )),
)  # fmt: skip

_CABLE = (
    ("dstv", "DStv", "BIL119", (
        ("dstv-padi", "DStv Padi", 2950, "CB141"),
        ("dstv-yanga", "DStv Yanga", 4200, "CB142"),
        ("dstv-confam", "DStv Confam", 7400, "CB143"),
    )),
    ("gotv", "GOtv", "BIL120", (
        ("gotv-smallie", "GOtv Smallie", 1575, "CB144"),
        ("gotv-jinja", "GOtv Jinja", 3300, "CB145"),
        ("gotv-max", "GOtv Max", 7200, "CB146"),
    )),
    ("startimes", "StarTimes", "BIL123", (
        ("nova", "StarTimes Nova", 1900, "CB147"),
        ("basic", "StarTimes Basic", 3700, "CB148"),
        ("smart", "StarTimes Smart", 4700, "CB149"),
    )),
)  # fmt: skip

_WATER = (
    # Flutterwave only; VTpass sells no water bills. Codes invented.
    ("lagos-water", "Lagos Water Corporation", "BIL160", "UB301"),
    ("fct-water", "FCT Water Board", "BIL161", "UB302"),
)


def _build_table() -> dict[str, Biller]:
    table: dict[str, Biller] = {}
    for code, name, flw, prepaid, postpaid in _DISCOS:
        plans = (
            Plan("prepaid", f"{name} prepaid", None, "prepaid", prepaid),
            Plan("postpaid", f"{name} postpaid", None, "postpaid", postpaid),
        )
        table[code] = Biller(code, BillType.ELECTRICITY, name, code, flw, plans)
    for code, name, service, flw, item in _AIRTIME:
        plans = (Plan("airtime", name, None, None, item),)
        table[code] = Biller(code, BillType.AIRTIME, name, service, flw, plans)
    for bill_type, rows in ((BillType.DATA, _DATA), (BillType.CABLE_TV, _CABLE)):
        for code, name, flw, plan_rows in rows:
            plans = tuple(Plan(p, n, naira * 100, p, item) for p, n, naira, item in plan_rows)
            table[code] = Biller(code, bill_type, name, code, flw, plans)
    for code, name, flw, item in _WATER:
        plans = (Plan("water", name, None, None, item),)
        table[code] = Biller(code, BillType.WATER, name, None, flw, plans)
    return table


BILLERS: dict[str, Biller] = _build_table()
BILLER_ALIASES = {"9mobile-data": "etisalat-data", "etisalat": "9mobile"}


def find_biller(code: str) -> Biller | None:
    key = (code or "").strip().lower()
    return BILLERS.get(BILLER_ALIASES.get(key, key))


def plan_key(order: BillOrder) -> str | None:
    """Which of our plan codes an order means: account type for electricity, the product code
    for data / TV, the single item for airtime and water."""
    if order.bill_type == BillType.ELECTRICITY:
        return (order.account_type or "").lower() or None
    if order.bill_type == BillType.AIRTIME:
        return "airtime"
    if order.bill_type == BillType.WATER:
        return order.product_code or "water"
    return order.product_code


def provider_product(order: BillOrder, provider: str) -> str | None:
    """The provider's product code for an order (VTpass variation_code / Flutterwave item_code).

    Unknown product codes pass through unchanged: they are then provider-native codes."""
    biller = find_biller(order.biller)
    key = plan_key(order)
    plan = biller.plan(key) if biller else None
    if plan is None:
        return key if order.bill_type in (BillType.DATA, BillType.CABLE_TV) else None
    return getattr(plan, provider)


def biller_supported(provider: str, bill_type: BillType | str, biller_code: str) -> bool:
    biller = find_biller(biller_code)
    if biller is None or biller.bill_type != BillType(bill_type):
        return False
    if provider == "vtpass":
        return biller.vtpass_service_id is not None
    if provider == "flutterwave":
        return biller.flutterwave_biller_code is not None
    return False
