"""Catalogue sync, the deciding half: what a provider lists, mapped onto our billers and product
codes and diffed against what the 0019 tables hold. Pure: no I/O here (the adapters read the
listing, ``billpay.store.catalogue_sync`` applies the plan in one transaction).

Mapping rules (the contract with the catalogue reader, see sql/0019_provider_catalogue.sql):

- VTpass serviceIDs are our code scheme: a serviceID maps to our biller of the same code, after
  ``BILLER_ALIASES`` (``etisalat`` is our ``9mobile`` airtime), when that biller is ours already
  or in the built-in table, of the same bill type. A serviceID new to both is stored UNMAPPED
  (never sold before a person maps it with ``billpay catalogue map vtpass``): VTpass adding a
  service must not put it on sale unreviewed. Variation codes are our product codes. VTpass airtime has no variations, so its billers carry no items (as in the built-in
  table, where an airtime plan has no VTpass code).
- Flutterwave billers map only through an existing row's ``biller_code`` or the built-in table's
  ``flutterwave_biller_code``: never by name. Anything else is stored unmapped (biller_code
  NULL, never routed) and operators are told, so a person maps it (``billpay catalogue map``).
  Items map through an existing row's product code, then the built-in plan's item code, then
  (electricity) "prepaid" / "postpaid" in the name when exactly one item says it, then
  (airtime, water) the biller's single item.
- A code listed again after it vanished keeps its old mapping only while no other listed code
  sells that biller of ours now (an operator remapped it): else it comes back unmapped.
- A product is sold under one item code: a live item keeps its product over a returning one,
  a returning one over a built-in guess.
- A biller whose items could not be read (``ListedBiller.unreadable``) is held: its stored rows
  are left as they are (not updated, not vanished), and operators are told.
- Refused unless forced (an empty or cut-short listing must not switch sales off): more than
  half of a provider's routed billers would vanish; a category / identifier that had routed
  billers comes back empty or missing; a routed biller's items would all vanish.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from billpay.catalogue import BILLER_ALIASES, BILLERS, Biller
from billpay.money import naira_text
from billpay.orders import BillType

PROVIDERS = ("vtpass", "flutterwave")

# VTpass's ``GET /services?identifier=`` identifiers, and the bill type each lists.
VTPASS_IDENTIFIERS: dict[str, BillType] = {
    "airtime": BillType.AIRTIME,
    "data": BillType.DATA,
    "tv-subscription": BillType.CABLE_TV,
    "electricity-bill": BillType.ELECTRICITY,
}
# Flutterwave categories we sell from; UTILITYBILLS holds electricity and water alike, so its
# bill type comes from the mapped biller only.
FLUTTERWAVE_CATEGORIES: dict[str, BillType | None] = {
    "AIRTIME": BillType.AIRTIME,
    "MOBILEDATA": BillType.DATA,
    "CABLEBILLS": BillType.CABLE_TV,
    "UTILITYBILLS": None,
}
_OUR_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
# What a provider code (biller, item, category) may be: it goes into URL paths, so never a dot
# segment, a slash, a query or a percent sign. The adapters reject other codes when they parse.
_PROVIDER_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def valid_provider_code(code: str) -> bool:
    return bool(_PROVIDER_CODE.fullmatch(code)) and ".." not in code


class Outcome(StrEnum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    REFUSED = "refused"
    MAPPED = "mapped"


@dataclass(frozen=True, slots=True)
class ListedItem:
    """One item / variation as the provider lists it (amounts in kobo)."""

    code: str
    name: str
    amount_kobo: int | None  # None: the customer sets the amount
    fee_kobo: int = 0
    label: str | None = None


@dataclass(frozen=True, slots=True)
class ListedBiller:
    """One biller as the provider lists it, with every item it lists."""

    code: str
    name: str
    category: str
    bill_type: BillType | None
    min_amount_kobo: int | None = None
    max_amount_kobo: int | None = None
    fee_kobo: int = 0
    items: tuple[ListedItem, ...] = ()
    # Why its items could not be read (its stored rows are then held as they are); None: read.
    unreadable: str | None = None


@dataclass(frozen=True, slots=True)
class Listing:
    """A provider's whole catalogue, read without a single failed call."""

    provider: str
    billers: tuple[ListedBiller, ...]

    @property
    def item_count(self) -> int:
        return sum(len(b.items) for b in self.billers)


@dataclass(frozen=True, slots=True)
class StoredItem:
    code: str
    product_code: str | None
    name: str
    amount_kobo: int | None
    fee_kobo: int
    label: str | None
    vanished: bool


@dataclass(frozen=True, slots=True)
class StoredBiller:
    code: str
    biller_code: str | None
    bill_type: str | None
    category: str | None
    name: str
    min_amount_kobo: int | None
    max_amount_kobo: int | None
    fee_kobo: int
    vanished: bool
    items: Mapping[str, StoredItem] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Stored:
    """What the 0019 tables hold for one provider, plus our billers (code -> bill type)."""

    billers: Mapping[str, StoredBiller]
    our_billers: Mapping[str, str]

    @property
    def routed(self) -> list[str]:
        return [c for c, b in self.billers.items() if b.biller_code and not b.vanished]


@dataclass(frozen=True, slots=True)
class NewBiller:
    """A catalogue_billers row to create (ours did not exist yet)."""

    code: str
    bill_type: BillType
    name: str


@dataclass(frozen=True, slots=True)
class PriceChange:
    provider_biller: str
    item: str
    product_code: str | None
    before_kobo: int | None
    after_kobo: int | None


@dataclass(frozen=True, slots=True)
class ItemRow:
    code: str
    product_code: str | None
    name: str
    amount_kobo: int | None
    fee_kobo: int
    label: str | None


@dataclass(frozen=True, slots=True)
class BillerRow:
    """A provider_billers row as it is to be after the sync (seen now)."""

    code: str
    biller_code: str | None
    bill_type: str | None
    category: str
    name: str
    min_amount_kobo: int | None
    max_amount_kobo: int | None
    fee_kobo: int
    items: tuple[ItemRow, ...]
    # A returning code whose biller of ours another code sells now: its old mapping is cleared.
    displaced: bool = False


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """What one sync of one provider changes. ``outcome`` refused: nothing is applied."""

    provider: str
    outcome: Outcome
    billers_seen: int
    items_seen: int
    new_billers: tuple[NewBiller, ...] = ()
    rows: tuple[BillerRow, ...] = ()
    vanished_billers: tuple[str, ...] = ()
    vanished_items: tuple[tuple[str, str], ...] = ()  # (provider biller, item code)
    added: int = 0
    changed: int = 0
    unmapped: tuple[str, ...] = ()  # provider biller codes listed but not mapped to ours
    new_unmapped: tuple[str, ...] = ()  # of those, the ones first seen now (operators told)
    vanished_routed: tuple[str, ...] = ()  # of ours: "dstv (BIL119)"
    price_changes: tuple[PriceChange, ...] = ()
    detail: str = ""
    held: tuple[tuple[str, str], ...] = ()  # (provider biller, why its items were unreadable)
    displaced: tuple[str, ...] = ()  # "BIL119 (dstv is sold under BIL999)"
    vanished_plans: tuple[str, ...] = ()  # items gone from a still-listed biller, named

    @property
    def vanished(self) -> int:
        return len(self.vanished_billers) + len(self.vanished_items)

    def counts(self) -> dict[str, int]:
        return {
            "billers": self.billers_seen,
            "items": self.items_seen,
            "added": self.added,
            "changed": self.changed,
            "vanished": self.vanished,
        }


# --- mapping --------------------------------------------------------------------------------


def _builtin_by_flutterwave(builtin: Mapping[str, Biller]) -> dict[str, Biller]:
    return {b.flutterwave_biller_code: b for b in builtin.values() if b.flutterwave_biller_code}


def our_biller_for(
    provider: str,
    listed: ListedBiller,
    stored: Stored,
    builtin: Mapping[str, Biller] = BILLERS,
) -> tuple[str | None, NewBiller | None]:
    """Our biller code for a listed provider biller (None: unmapped), and the catalogue_billers
    row to create when ours does not exist yet."""
    existing = stored.billers.get(listed.code)
    if existing is not None and existing.biller_code:
        return existing.biller_code, None
    if provider == "vtpass":
        code = BILLER_ALIASES.get(listed.code, listed.code)
        template = builtin.get(code)
        known = stored.our_billers.get(code)
        if (template is None and known is None) or not _OUR_CODE.fullmatch(code):
            return None, None  # new to us: stored unmapped until a person maps it
        bill_type = template.bill_type if template else BillType(known)
        if listed.bill_type is not None and bill_type != listed.bill_type:
            return None, None  # same code, another kind of bill: a person decides
        name = template.name if template else listed.name or code
        return code, _new_unless_known(code, bill_type, name, stored)
    template = _builtin_by_flutterwave(builtin).get(listed.code)
    if template is None:
        return None, None
    return template.code, _new_unless_known(
        template.code, template.bill_type, template.name, stored
    )


def new_biller_from_listing(code: str, bill_type: str | None, name: str) -> NewBiller | None:
    """Our biller an operator's mapping may create from the provider's row (None: it cannot,
    the code is not of our scheme or the row has no bill type)."""
    if not _OUR_CODE.fullmatch(code) or bill_type not in {str(t) for t in BillType}:
        return None
    return NewBiller(code, BillType(bill_type), name[:200] or code)


def _new_unless_known(
    code: str, bill_type: BillType, name: str, stored: Stored
) -> NewBiller | None:
    return None if code in stored.our_billers else NewBiller(code, bill_type, name[:200] or code)


def _builtin_item(builtin_biller: Biller | None, provider: str, item_code: str) -> str | None:
    if builtin_biller is None:
        return None
    return next((p.code for p in builtin_biller.plans if getattr(p, provider) == item_code), None)


def product_codes(
    provider: str,
    our: str | None,
    bill_type: str | None,
    listed: ListedBiller,
    stored: StoredBiller | None,
    builtin: Mapping[str, Biller] = BILLERS,
) -> dict[str, str | None]:
    """Item code -> our product code (None: not mapped, never sold through this provider)."""
    if provider == "vtpass":
        return {item.code: item.code for item in listed.items}
    if our is None:
        return {item.code: None for item in listed.items}
    known = stored.items if stored else {}
    template = builtin.get(our)
    claims: dict[str, tuple[int, str] | None] = {}  # item -> (rank, product); lower rank wins
    for item in listed.items:
        previous = known.get(item.code)
        if previous is not None and previous.product_code:
            claims[item.code] = (1 if previous.vanished else 0, previous.product_code)
        else:
            guess = _builtin_item(template, provider, item.code)
            claims[item.code] = (2, guess) if guess else None
    result = _unique_products(listed.items, claims)
    _infer_single_products(bill_type, listed.items, result)
    return result


def _infer_single_products(
    bill_type: str | None, items: Iterable[ListedItem], result: dict[str, str | None]
) -> None:
    """Electricity by "prepaid" / "postpaid" in the name when exactly one item says it;
    airtime and water when the biller lists one item."""
    items = tuple(items)
    taken = {p for p in result.values() if p}
    if bill_type == BillType.ELECTRICITY:
        for kind in ("prepaid", "postpaid"):
            named = [i for i in items if kind in i.name.lower()]
            if kind not in taken and len(named) == 1 and result[named[0].code] is None:
                result[named[0].code] = kind
    elif bill_type in (BillType.AIRTIME, BillType.WATER) and len(items) == 1:
        if result[items[0].code] is None and str(bill_type) not in taken:
            result[items[0].code] = str(bill_type)


def _unique_products(
    items: Iterable[ListedItem], claims: Mapping[str, tuple[int, str] | None]
) -> dict[str, str | None]:
    """A product is sold under one item code at a time: the live holder keeps it over a
    returning item, a returning one over a built-in guess, else the first listed; the others
    stay unmapped."""
    winner: dict[str, tuple[int, int, str]] = {}
    for index, item in enumerate(items):
        claim = claims.get(item.code)
        if claim is not None:
            rank, product = claim
            if product not in winner or (rank, index) < winner[product][:2]:
                winner[product] = (rank, index, item.code)
    result: dict[str, str | None] = {item.code: None for item in items}
    for product, (_, _, code) in winner.items():
        result[code] = product
    return result


# --- the diff -------------------------------------------------------------------------------


def _item_rows(listed: ListedBiller, products: Mapping[str, str | None]) -> tuple[ItemRow, ...]:
    unique = {i.code: i for i in listed.items}  # a repeated code: the last one listed wins
    return tuple(
        ItemRow(i.code, products.get(i.code), i.name, i.amount_kobo, i.fee_kobo, i.label)
        for i in unique.values()
    )


def _biller_changed(row: BillerRow, before: StoredBiller) -> bool:
    return before.vanished or (
        row.biller_code,
        row.name,
        row.category,
        row.min_amount_kobo,
        row.max_amount_kobo,
        row.fee_kobo,
    ) != (
        before.biller_code,
        before.name,
        before.category,
        before.min_amount_kobo,
        before.max_amount_kobo,
        before.fee_kobo,
    )


def _item_changed(row: ItemRow, before: StoredItem) -> bool:
    now = (row.product_code, row.name, row.amount_kobo, row.fee_kobo, row.label)
    then = (before.product_code, before.name, before.amount_kobo, before.fee_kobo, before.label)
    return before.vanished or now != then


@dataclass
class _Tally:
    added: int = 0
    changed: int = 0
    prices: list[PriceChange] = field(default_factory=list)
    vanished_items: list[tuple[str, str]] = field(default_factory=list)


def _compare_items(row: BillerRow, before: StoredBiller | None, tally: _Tally) -> None:
    known = before.items if before else {}
    for item in row.items:
        previous = known.get(item.code)
        if previous is None:
            tally.added += 1
            continue
        if _item_changed(item, previous):
            tally.changed += 1
        if previous.amount_kobo != item.amount_kobo and not previous.vanished:
            tally.prices.append(
                PriceChange(
                    row.code, item.code, item.product_code, previous.amount_kobo, item.amount_kobo
                )
            )
    listed = {i.code for i in row.items}
    tally.vanished_items += [
        (row.code, code) for code, i in known.items() if code not in listed and not i.vanished
    ]


@dataclass
class _Rows:
    rows: list[BillerRow] = field(default_factory=list)
    new: dict[str, NewBiller] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    displaced: list[str] = field(default_factory=list)


def _rows(listing: Listing, stored: Stored, builtin: Mapping[str, Biller]) -> _Rows:
    """Every readable listed biller as its row is to be, ours to create, the unmapped codes and
    the returning codes whose biller of ours another code sells now."""
    out = _Rows()
    listed_codes = {b.code for b in listing.billers}
    claimed: dict[str, str] = {}  # our biller -> the provider code selling it after this sync
    for code, b in stored.billers.items():  # ours already sold under a code still listed
        if b.biller_code and not b.vanished and code in listed_codes:
            claimed[b.biller_code] = code
    for listed in {b.code: b for b in listing.billers}.values():
        if listed.unreadable:
            continue  # held: its stored rows stay as they are
        our, create = our_biller_for(listing.provider, listed, stored, builtin)
        before = stored.billers.get(listed.code)
        holder = claimed.get(our) if our is not None else None
        displaced = False
        if holder is not None and holder != listed.code:
            if before is not None and before.biller_code == our:
                displaced = True  # it vanished and an operator remapped ours meanwhile
                out.displaced.append(f"{listed.code} ({our} is sold under {holder})")
            our, create = None, None  # ours is sold under another code at this provider
        if our is None:
            out.unmapped.append(listed.code)
        else:
            claimed[our] = listed.code
        if create is not None:
            out.new[create.code] = create
        bill_type = _bill_type(our, listed, stored, out.new, builtin)
        products = product_codes(listing.provider, our, bill_type, listed, before, builtin)
        out.rows.append(
            BillerRow(
                listed.code,
                our,
                bill_type,
                listed.category,
                listed.name,
                listed.min_amount_kobo,
                listed.max_amount_kobo,
                listed.fee_kobo,
                _item_rows(listed, products),
                displaced,
            )
        )
    return out


def _bill_type(
    our: str | None,
    listed: ListedBiller,
    stored: Stored,
    new: Mapping[str, NewBiller],
    builtin: Mapping[str, Biller],
) -> str | None:
    if our is not None:
        if our in stored.our_billers:
            return str(stored.our_billers[our])
        if our in new:
            return str(new[our].bill_type)
        if our in builtin:
            return str(builtin[our].bill_type)
    return str(listed.bill_type) if listed.bill_type else None


def _category(provider: str, biller: StoredBiller) -> str | None:
    """The listing call a stored biller came from (a seeded VTpass row has no category yet: its
    bill type names the identifier)."""
    if biller.category or provider != "vtpass":
        return biller.category
    return next((i for i, t in VTPASS_IDENTIFIERS.items() if str(t) == biller.bill_type), None)


def _refusals(
    listing: Listing, stored: Stored, rows: list[BillerRow], gone: list[str]
) -> list[str]:
    """Why this listing must not be applied unless forced (empty: it may)."""
    routed = stored.routed
    gone_routed = [c for c in gone if c in routed]
    reasons = []
    if len(gone_routed) * 2 > len(routed):
        named = ", ".join(f"{stored.billers[c].biller_code} ({c})" for c in gone_routed)
        reasons.append(f"{len(gone_routed)} of {len(routed)} routed billers would vanish ({named})")
    listed_categories = {b.category for b in listing.billers}
    empty = sorted(
        {c for c in (_category(listing.provider, stored.billers[r]) for r in routed) if c}
        - listed_categories
    )
    if empty:
        reasons.append(f"{', '.join(empty)} came back empty or missing (it had routed billers)")
    emptied = []
    for row in rows:
        before = stored.billers.get(row.code)
        live = before is not None and any(not i.vanished for i in before.items.values())
        if live and row.code in routed and not row.items:
            emptied.append(f"{before.biller_code} ({row.code})")  # type: ignore[union-attr]
    if emptied:
        reasons.append(f"every item of {', '.join(emptied)} would vanish")
    return reasons


def _vanished_plans(
    vanished_items: list[tuple[str, str]], stored: Stored, gone: list[str]
) -> tuple[str, ...]:
    """The items gone from billers still listed, named ours/product (theirs/item)."""
    named = []
    for biller, item in vanished_items:
        if biller in gone:
            continue  # the biller vanished whole: its own alert says so
        before = stored.billers[biller]
        product = before.items[item].product_code or "unmapped"
        named.append(f"{before.biller_code or '-'}/{product} ({biller}/{item})")
    return tuple(named)


def diff(
    listing: Listing,
    stored: Stored,
    *,
    force: bool = False,
    builtin: Mapping[str, Biller] = BILLERS,
) -> SyncPlan:
    """The plan that makes the tables say what ``listing`` says (held billers aside)."""
    planned = _rows(listing, stored, builtin)
    rows, new, unmapped = planned.rows, planned.new, planned.unmapped
    held = tuple({b.code: (b.code, b.unreadable) for b in listing.billers if b.unreadable}.values())
    tally = _Tally()
    for row in rows:
        before = stored.billers.get(row.code)
        if before is None:
            tally.added += 1
        elif _biller_changed(row, before):
            tally.changed += 1
        _compare_items(row, before, tally)
    listed = {r.code for r in rows} | {code for code, _ in held}
    gone = [c for c, b in stored.billers.items() if c not in listed and not b.vanished]
    for code in gone:  # a vanished biller's items go with it
        tally.vanished_items += [
            (code, i) for i, item in stored.billers[code].items.items() if not item.vanished
        ]
    named = tuple(f"{stored.billers[c].biller_code} ({c})" for c in gone if c in stored.routed)
    base = {
        "provider": listing.provider,
        "billers_seen": len(rows) + len(held),
        "items_seen": sum(len(r.items) for r in rows),
        "held": held,
    }
    reasons = _refusals(listing, stored, rows, gone)
    if reasons and not force:
        detail = f"refused: {'; '.join(reasons)}; run with --force if the provider really did it"
        return SyncPlan(
            outcome=Outcome.REFUSED, vanished_routed=named, detail=detail[:1000], **base
        )
    changes = tally.added + tally.changed + len(gone) + len(tally.vanished_items) + len(new)
    return SyncPlan(
        outcome=Outcome.APPLIED if changes else Outcome.UNCHANGED,
        new_billers=tuple(new.values()),
        rows=tuple(rows),
        vanished_billers=tuple(gone),
        vanished_items=tuple(tally.vanished_items),
        added=tally.added,
        changed=tally.changed,
        unmapped=tuple(unmapped),
        new_unmapped=tuple(c for c in unmapped if c not in stored.billers),
        vanished_routed=named,
        price_changes=tuple(tally.prices),
        detail=_detail(tally, gone, unmapped, held, planned.displaced),
        displaced=tuple(planned.displaced),
        vanished_plans=_vanished_plans(tally.vanished_items, stored, gone),
        **base,
    )


def _detail(
    tally: _Tally,
    gone: list[str],
    unmapped: list[str],
    held: tuple[tuple[str, str], ...],
    displaced: list[str],
) -> str:
    parts = []
    if held:  # first: the detail is cut at 1000 characters and this needs a person most
        parts.append("held, items unreadable: " + ", ".join(f"{c} ({why})" for c, why in held))
    if gone:
        parts.append(f"vanished: {', '.join(gone)}")
    gone_items = [f"{b}/{i}" for b, i in tally.vanished_items if b not in gone]
    if gone_items:
        parts.append(f"items vanished: {', '.join(gone_items)}")
    if tally.prices:
        parts.append(f"{len(tally.prices)} price(s) changed")
    if displaced:
        parts.append(f"back unmapped: {', '.join(displaced)}")
    if unmapped:
        parts.append(f"unmapped: {', '.join(unmapped)}")
    return "; ".join(parts)[:1000]


# --- what operators are told ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CatalogueAlert:
    kind: str
    payload: dict[str, Any]
    # "sync": one per sync that found it (a change happens once); "content": one per distinct
    # payload, for what every run finds again until a person acts (a refusal, a held biller);
    # "day": one per provider per UTC day (a failing sync, retried within the day).
    once_per: str = "sync"


def _held_alert(plan: SyncPlan) -> list[CatalogueAlert]:
    if not plan.held:
        return []
    billers = "; ".join(f"{code}: {why}" for code, why in plan.held)
    payload = {"provider": plan.provider, "billers": billers[:2000],
               "meaning": "its items could not be read: kept as last synced, not updated"}  # fmt: skip
    return [CatalogueAlert("catalogue_biller_unreadable", payload, "content")]


def alerts(plan: SyncPlan) -> list[CatalogueAlert]:
    """One alert per kind per sync, naming the billers: vanished billers and items, changed
    prices, billers a person must map, billers held unread, a refused sync."""
    provider = plan.provider
    found = _held_alert(plan)
    if plan.outcome == Outcome.REFUSED:
        payload = {"provider": provider, "detail": plan.detail}
        return [CatalogueAlert("catalogue_sync_refused", payload, "content"), *found]
    if plan.vanished_billers:
        found.append(
            CatalogueAlert(
                "catalogue_biller_vanished",
                {
                    "provider": provider,
                    "billers": ", ".join(plan.vanished_billers),
                    "routed": ", ".join(plan.vanished_routed),
                    "meaning": "no longer routed to this provider until it lists them again",
                },
            )
        )
    if plan.vanished_plans:
        payload = {"provider": provider, "plans": ", ".join(plan.vanished_plans)[:2000],
                   "meaning": "no longer sold through this provider until it lists them again"}  # fmt: skip
        found.append(CatalogueAlert("catalogue_item_vanished", payload))
    if plan.price_changes:
        changes = ", ".join(
            f"{c.provider_biller}/{c.item} {_naira(c.before_kobo)} -> {_naira(c.after_kobo)}"
            for c in plan.price_changes
        )
        found.append(
            CatalogueAlert(
                "catalogue_price_changed", {"provider": provider, "changes": changes[:2000]}
            )
        )
    if plan.new_unmapped or plan.displaced:
        payload = {
            "provider": provider,
            "billers": ", ".join([*plan.new_unmapped, *(d.split(" ")[0] for d in plan.displaced)]),
            "fix": f"billpay catalogue map {provider} <code> <our biller>",
        }
        if plan.displaced:
            payload["returned"] = ", ".join(plan.displaced)
        found.append(CatalogueAlert("catalogue_biller_unmapped", payload))
    return found


def failure_alert(provider: str, detail: str) -> CatalogueAlert:
    """A sync of ``provider`` that applied nothing (its listing unreadable, or a bug)."""
    payload = {"provider": provider, "detail": detail[:1000],
               "meaning": "nothing applied: its catalogue stays as last synced"}  # fmt: skip
    return CatalogueAlert("catalogue_sync_failed", payload, "day")


def _naira(kobo: int | None) -> str:
    return naira_text(kobo) or "open amount"


@dataclass(frozen=True, slots=True)
class Mapped:
    """What ``billpay catalogue map`` did: ``ok`` False means nothing changed."""

    ok: bool
    message: str


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one sync of one provider did, as the CLI and the flow print it."""

    provider: str
    outcome: Outcome
    counts: Mapping[str, int]
    detail: str = ""
    sync_id: int | None = None
    finished_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "outcome": str(self.outcome),
            **dict(self.counts),
            "detail": self.detail,
            "sync_id": self.sync_id,
        }

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.APPLIED, Outcome.UNCHANGED, Outcome.MAPPED)
