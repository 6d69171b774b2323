"""The biller catalogue: every biller and plan we sell, and each provider's codes and prices.

Two halves:

- The built-in table ``BILLERS`` (``Biller``, ``Plan``, ``FLUTTERWAVE_CATEGORY``) only seeds a
  fresh database (``billpay.store.catalogue.seed``) and is the sandbox's own catalogue. VTpass
  codes are the documented serviceIDs / variation codes; most Flutterwave codes are plausible
  placeholders (BIL.../UB..., AT..., MD..., CB...) except where the fixtures show them (DStv
  BIL119 / CB141, airtime BIL099-BIL103): ``billpay catalogue sync`` replaces them with what
  Flutterwave really lists.
- :class:`Catalogue`: an immutable snapshot of the synced catalogue (the 0019 tables, loaded by
  ``billpay.store.catalogue.load``), which intake, validation, pricing, routing, the adapters and
  the API read. ``Catalogue.builtin()`` is the same snapshot built from the table, for the
  sandbox and the tests that need no database.

Rules of the snapshot:

- Our product codes for data plans and bouquets are VTpass's variation codes; electricity's are
  ``prepaid`` / ``postpaid``, airtime's ``airtime``, water's ``water`` (``plan_key``).
- A provider sells one of our billers when it lists it under a code mapped to ours and that
  listing has not vanished (``provider_billers.biller_code`` set, ``vanished_at`` NULL); it sells
  one of our plans when, on that listing, an item mapped to the plan has not vanished. VTpass
  airtime needs no item (its pay call takes none, ``ITEMLESS``): the listing alone sells it.
- Pricing: a fixed-price plan is charged the price of the FIRST provider in the bill type's
  configured route (``Settings.route_for``) that currently sells it; when none on the route does,
  the first other seller by name (the order then finds no route, the usual way).
- Routing: a provider whose own listed price for the plan is HIGHER than the order's amount is
  not routed for that bill (we would pay more than we received); lower or equal is fine.
- A biller or plan no provider sells any more is refused by intake ("not sold by any provider
  right now"); one we never listed is an unknown biller / plan.

Pure data and rules: no database, no adapter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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

# (provider, bill type) whose pay call takes no item code: a live listing sells the one plan.
ITEMLESS: frozenset[tuple[str, BillType]] = frozenset({("vtpass", BillType.AIRTIME)})
# The plan an order of these bill types means when it names none (plan_key).
_SINGLE_PLAN = {BillType.AIRTIME: "airtime", BillType.WATER: "water"}


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


# --- the runtime snapshot ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offer:
    """One provider's item for one of our plans: what to send it and what it costs there."""

    provider: str
    provider_biller: str  # the provider's biller code (VTpass serviceID, Flutterwave biller)
    code: str | None  # VTpass variation_code / Flutterwave item_code; None: none needed
    product_code: str  # ours
    name: str
    amount_kobo: int | None  # the provider's fixed price; None: the customer sets the amount
    fee_kobo: int = 0
    label: str | None = None


@dataclass(frozen=True, slots=True)
class Listing:
    """One provider's listing of one of our billers (a ``provider_billers`` row)."""

    provider: str
    code: str  # the provider's code (VTpass serviceID, Flutterwave biller_code)
    biller_code: str  # ours
    name: str
    live: bool  # not vanished; a vanished listing is kept only to recognise old orders
    min_amount_kobo: int | None = None
    max_amount_kobo: int | None = None
    fee_kobo: int = 0
    offers: Mapping[str, Offer] = field(default_factory=dict)  # our plan code -> live item


@dataclass(frozen=True, slots=True)
class PricedPlan:
    """One of our plans as a client sees it: its price and name from the provider that sets
    them (the first seller on the route)."""

    code: str
    name: str
    amount_kobo: int | None
    provider: str


@dataclass(frozen=True, slots=True)
class CatalogueBiller:
    """One of our billers, with every provider's listing of it (one per provider)."""

    code: str
    bill_type: BillType
    name: str
    listings: Mapping[str, Listing] = field(default_factory=dict)  # provider -> listing
    known_plans: tuple[str, ...] = ()  # every plan code ever listed, vanished ones included

    def sellers(self) -> tuple[str, ...]:
        return tuple(sorted(p for p, listing in self.listings.items() if listing.live))

    def offer(self, provider: str, plan: str | None) -> Offer | None:
        """The live item ``provider`` sells ``plan`` under (an itemless one where it needs
        none), or None."""
        listing = self.listings.get(provider)
        if listing is None or not listing.live or plan is None:
            return None
        found = listing.offers.get(plan)
        if found is None and (provider, self.bill_type) in ITEMLESS and plan in self.known_plans:
            return Offer(provider, listing.code, None, plan, listing.name, None)
        return found

    def plan_sellers(self, plan: str) -> tuple[str, ...]:
        return tuple(p for p in self.sellers() if self.offer(p, plan) is not None)


class CatalogueSource(Protocol):
    """Whatever hands out the catalogue in force: a :class:`Catalogue` itself (fixed), or the
    store's per-process cache (``billpay.store.catalogue.CatalogueCache``)."""

    def current(self) -> Catalogue: ...


class Catalogue:
    """An immutable snapshot of our billers and plans, with each provider's codes and prices."""

    __slots__ = ("_billers", "version")

    def __init__(self, billers: Iterable[CatalogueBiller], version: int = 0) -> None:
        self._billers: dict[str, CatalogueBiller] = {b.code: b for b in billers}
        self.version = version  # the catalogue_syncs id it was loaded at (0: not from a database)

    def current(self) -> Catalogue:
        """A fixed catalogue is its own source (see :class:`CatalogueSource`)."""
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Catalogue) and self._billers == other._billers

    def __hash__(self) -> int:
        return hash(tuple(self._billers))

    @classmethod
    def builtin(cls) -> Catalogue:
        """The built-in table as a catalogue: what a fresh database is seeded with."""
        return _BUILTIN

    @classmethod
    def from_rows(
        cls,
        billers: Iterable[Mapping[str, Any]],
        provider_billers: Iterable[Mapping[str, Any]],
        provider_items: Iterable[Mapping[str, Any]],
        version: int = 0,
    ) -> Catalogue:
        """A snapshot from rows shaped like the 0019 tables' (``catalogue_billers``,
        ``provider_billers``, ``provider_items``; absent columns read as NULL)."""
        return cls(_assemble(billers, provider_billers, provider_items), version)

    def billers(self) -> tuple[CatalogueBiller, ...]:
        return tuple(self._billers.values())

    def find_biller(self, code: str) -> CatalogueBiller | None:
        """Our biller by our code (or an alias), sold or not."""
        key = (code or "").strip().lower()
        return self._billers.get(BILLER_ALIASES.get(key, key))

    def listing(self, provider: str, biller: str, *, live: bool = True) -> Listing | None:
        """``provider``'s listing of ``biller``; ``live=False`` also finds a vanished one."""
        entry = self.find_biller(biller)
        found = entry.listings.get(provider) if entry else None
        return found if found is not None and (found.live or not live) else None

    def sells(
        self,
        provider: str,
        bill_type: BillType | str,
        biller: str,
        order: BillOrder | None = None,
    ) -> bool:
        """Whether ``provider`` sells ``biller`` (of ``bill_type``) right now; with ``order``,
        also the order's plan (when it names one) at no more than the order's amount."""
        entry = self.find_biller(biller)
        if entry is None or entry.bill_type != BillType(bill_type):
            return False
        if self.listing(provider, entry.code) is None:
            return False
        if order is None or (plan := plan_key(order)) is None:
            return True
        offer = entry.offer(provider, plan)
        if offer is None:
            return False
        return offer.amount_kobo is None or offer.amount_kobo <= order.amount_kobo

    def offer(self, order: BillOrder, provider: str) -> Offer | None:
        """What ``provider`` sells the order's plan under right now, or None."""
        entry = self.find_biller(order.biller)
        return entry.offer(provider, plan_key(order)) if entry else None

    def provider_product(self, order: BillOrder, provider: str) -> str | None:
        """The provider's product code for an order (VTpass variation_code / Flutterwave
        item_code); None when it needs none or does not sell the plan."""
        found = self.offer(order, provider)
        return found.code if found else None

    def price_offer(self, biller: str, plan: str, route: Sequence[str]) -> Offer | None:
        """The offer that prices ``plan``: the first provider on ``route`` selling it, else the
        first other seller by name; None when nobody sells it."""
        entry = self.find_biller(biller)
        if entry is None:
            return None
        sellers = entry.plan_sellers(plan)
        ordered = [p for p in dict.fromkeys(route) if p in sellers]
        ordered += [p for p in sellers if p not in ordered]
        return entry.offer(ordered[0], plan) if ordered else None

    def price(self, biller: str, plan: str, route: Sequence[str]) -> int | None:
        """The fixed price in kobo an order of ``plan`` is charged; None: the customer sets it
        (or nobody sells the plan)."""
        found = self.price_offer(biller, plan, route)
        return found.amount_kobo if found else None

    def routed_billers(
        self, bill_type: BillType | str, route: Sequence[str]
    ) -> tuple[CatalogueBiller, ...]:
        """Our billers of ``bill_type`` that a provider on ``route`` sells right now."""
        return tuple(
            b
            for b in self._billers.values()
            if b.bill_type == BillType(bill_type)
            and any(self.sells(p, b.bill_type, b.code) for p in route)
        )

    def plans(self, biller: str, route: Sequence[str]) -> tuple[PricedPlan, ...]:
        """The plans of ``biller`` a provider on ``route`` sells right now, priced by the first
        of them, cheapest first (customer-set amounts first)."""
        entry = self.find_biller(biller)
        if entry is None:
            return ()
        out: list[PricedPlan] = []
        for plan in entry.known_plans:
            if not any(entry.offer(p, plan) for p in route):
                continue
            found = self.price_offer(entry.code, plan, route)
            assert found is not None  # a provider on the route sells it
            out.append(PricedPlan(plan, found.name, found.amount_kobo, found.provider))
        return tuple(sorted(out, key=lambda p: (p.amount_kobo or 0, p.code)))


def _assemble(
    billers: Iterable[Mapping[str, Any]],
    provider_billers: Iterable[Mapping[str, Any]],
    provider_items: Iterable[Mapping[str, Any]],
) -> list[CatalogueBiller]:
    """Our billers with their listings: unmapped rows are dropped (never sold), vanished items
    dropped (kept only as known plan codes), a vanished listing kept only where the provider
    has no live one (to recognise older orders)."""
    items: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in provider_items:
        items.setdefault((row["provider"], row["provider_biller"]), []).append(row)
    listings: dict[str, dict[str, Listing]] = {}
    known: dict[str, list[str]] = {}
    for row in provider_billers:
        ours = row.get("biller_code")
        if not ours:
            continue
        rows = [i for i in items.get((row["provider"], row["code"]), []) if i.get("product_code")]
        known.setdefault(ours, []).extend(i["product_code"] for i in rows)
        listing = _listing(row, rows)
        held = listings.setdefault(ours, {}).get(listing.provider)
        if held is None or (listing.live and not held.live):
            listings[ours][listing.provider] = listing
    out = []
    for row in billers:
        bill_type = BillType(row["bill_type"])
        plans = list(known.get(row["code"], []))
        if bill_type in _SINGLE_PLAN and listings.get(row["code"]):
            plans.append(_SINGLE_PLAN[bill_type])  # an itemless listing sells it
        out.append(
            CatalogueBiller(
                code=row["code"],
                bill_type=bill_type,
                name=row["name"],
                listings=listings.get(row["code"], {}),
                known_plans=tuple(dict.fromkeys(plans)),
            )
        )
    return out


def _listing(row: Mapping[str, Any], items: list[Mapping[str, Any]]) -> Listing:
    offers = {
        i["product_code"]: Offer(
            provider=row["provider"],
            provider_biller=row["code"],
            code=i["code"],
            product_code=i["product_code"],
            name=i.get("name") or "",
            amount_kobo=i.get("amount_kobo"),
            fee_kobo=i.get("fee_kobo") or 0,
            label=i.get("label"),
        )
        for i in items
        if i.get("vanished_at") is None
    }
    return Listing(
        provider=row["provider"],
        code=row["code"],
        biller_code=row["biller_code"],
        name=row.get("name") or "",
        live=row.get("vanished_at") is None,
        min_amount_kobo=row.get("min_amount_kobo"),
        max_amount_kobo=row.get("max_amount_kobo"),
        fee_kobo=row.get("fee_kobo") or 0,
        offers=offers,
    )


# --- the seed ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedRows:
    """The built-in table as rows of the 0019 tables (what ``seed`` inserts)."""

    billers: list[dict[str, Any]]
    provider_billers: list[dict[str, Any]]
    provider_items: list[dict[str, Any]]


def seed_rows(table: Mapping[str, Biller] | None = None) -> SeedRows:
    billers, listed, items = [], [], []
    for b in (table or BILLERS).values():
        billers.append({"code": b.code, "bill_type": str(b.bill_type), "name": b.name})
        for provider, code in (
            ("vtpass", b.vtpass_service_id),
            ("flutterwave", b.flutterwave_biller_code),
        ):
            if code is None:
                continue
            category = FLUTTERWAVE_CATEGORY[b.bill_type] if provider == "flutterwave" else None
            listed.append(
                {"provider": provider, "code": code, "biller_code": b.code,
                 "bill_type": str(b.bill_type), "category": category, "name": b.name}
            )  # fmt: skip
            for plan in b.plans:
                item = getattr(plan, provider)
                if item is None:
                    continue
                items.append(
                    {"provider": provider, "provider_biller": code, "code": item,
                     "product_code": plan.code, "name": plan.name,
                     "amount_kobo": plan.amount_kobo}
                )  # fmt: skip
    return SeedRows(billers, listed, items)


_SEED = seed_rows()
_BUILTIN = Catalogue.from_rows(_SEED.billers, _SEED.provider_billers, _SEED.provider_items)
