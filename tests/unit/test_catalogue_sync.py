"""The catalogue diff, with no database: new billers and items, a changed price, vanished and
reappeared rows, mapping (never by name), the >50% refusal, and the alerts operators get."""

from __future__ import annotations

from dataclasses import replace

from billpay.catalogue_sync import (
    ListedBiller,
    ListedItem,
    Listing,
    Outcome,
    Stored,
    StoredBiller,
    StoredItem,
    alerts,
    diff,
)
from billpay.orders import BillType

EMPTY = Stored(billers={}, our_billers={})

DSTV = ListedBiller(
    "BIL119",
    "DSTV",
    "CABLEBILLS",
    BillType.CABLE_TV,
    items=(
        ListedItem("CB141", "DStv Padi", 295_000, 10_000, "Smart Card Number"),
        ListedItem("CB142", "DStv Yanga", 420_000),
        ListedItem("CB177", "DStv Box Office", None),
    ),
)
IKEJA = ListedBiller(
    "BIL112",
    "IKEDC",
    "UTILITYBILLS",
    None,
    items=(ListedItem("UB157", "IKEDC PREPAID", None), ListedItem("UB158", "IKEDC POSTPAID", None)),
)
SHOWMAX = ListedBiller("BIL999", "SHOWMAX", "CABLEBILLS", BillType.CABLE_TV,
                       items=(ListedItem("SM1", "Showmax Mobile", 120_000),))  # fmt: skip


def flw(*billers: ListedBiller) -> Listing:
    return Listing("flutterwave", billers)


def stored_after(plan, before: Stored = EMPTY) -> Stored:
    """What the tables would hold after ``plan`` (the store's upsert, in memory)."""
    billers = dict(before.billers)
    ours = dict(before.our_billers) | {n.code: str(n.bill_type) for n in plan.new_billers}
    for code in plan.vanished_billers:
        billers[code] = replace(billers[code], vanished=True)
    for biller, item in plan.vanished_items:
        old = billers[biller]
        gone = replace(old.items[item], vanished=True)
        billers[biller] = replace(old, items={**old.items, item: gone})
    for row in plan.rows:
        old = billers.get(row.code)
        items = dict(old.items) if old else {}
        for i in row.items:
            items[i.code] = StoredItem(
                i.code, i.product_code, i.name, i.amount_kobo, i.fee_kobo, i.label, False
            )
        billers[row.code] = StoredBiller(
            row.code, (old.biller_code if old else None) or row.biller_code, row.bill_type,
            row.category, row.name, row.min_amount_kobo, row.max_amount_kobo, row.fee_kobo,
            False, items,
        )  # fmt: skip
    return Stored(billers=billers, our_billers=ours)


def products(plan, code: str) -> dict[str, str | None]:
    row = next(r for r in plan.rows if r.code == code)
    return {i.code: i.product_code for i in row.items}


def test_a_fresh_catalogue_inserts_every_biller_and_creates_ours_from_the_builtin_names():
    plan = diff(flw(DSTV, IKEJA), EMPTY)
    assert plan.outcome == Outcome.APPLIED
    assert (plan.added, plan.changed, plan.vanished) == (7, 0, 0)  # 2 billers + 5 items
    assert {(n.code, n.name) for n in plan.new_billers} == {
        ("dstv", "DStv"),
        ("ikeja-electric", "Ikeja Electric (IKEDC)"),
    }
    assert [r.biller_code for r in plan.rows] == ["dstv", "ikeja-electric"]
    # built-in item codes map; an item the built-in table does not know stays unmapped
    assert products(plan, "BIL119") == {"CB141": "dstv-padi", "CB142": "dstv-yanga",
                                        "CB177": None}  # fmt: skip
    assert products(plan, "BIL112") == {"UB157": "prepaid", "UB158": "postpaid"}
    assert next(r for r in plan.rows if r.code == "BIL112").bill_type == "electricity"


def test_the_same_listing_again_is_unchanged():
    before = stored_after(diff(flw(DSTV, IKEJA), EMPTY))
    plan = diff(flw(DSTV, IKEJA), before)
    assert plan.outcome == Outcome.UNCHANGED
    assert plan.counts() == {"billers": 2, "items": 5, "added": 0, "changed": 0, "vanished": 0}
    assert alerts(plan) == []


def test_a_changed_price_is_applied_and_operators_are_told():
    before = stored_after(diff(flw(DSTV), EMPTY))
    cheaper = replace(DSTV, items=(replace(DSTV.items[0], amount_kobo=310_000), *DSTV.items[1:]))
    plan = diff(flw(cheaper), before)
    assert plan.outcome == Outcome.APPLIED and plan.changed == 1
    assert [(c.item, c.product_code, c.before_kobo, c.after_kobo) for c in plan.price_changes] == [
        ("CB141", "dstv-padi", 295_000, 310_000)
    ]
    (alert,) = alerts(plan)
    assert alert.kind == "catalogue_price_changed"
    assert "BIL119/CB141 2950.00 -> 3100.00" in alert.payload["changes"]


def test_a_biller_no_longer_listed_vanishes_with_its_items_and_operators_are_told():
    before = stored_after(diff(flw(DSTV, IKEJA, replace(IKEJA, code="BIL113", items=())), EMPTY))
    plan = diff(flw(DSTV, replace(IKEJA, code="BIL113", items=())), before)
    assert plan.outcome == Outcome.APPLIED
    assert plan.vanished_billers == ("BIL112",)
    assert set(plan.vanished_items) == {("BIL112", "UB157"), ("BIL112", "UB158")}
    (alert,) = alerts(plan)
    assert alert.kind == "catalogue_biller_vanished"
    assert alert.payload["routed"] == "ikeja-electric (BIL112)"


def test_a_vanished_biller_listed_again_comes_back():
    two = stored_after(diff(flw(DSTV, IKEJA, SHOWMAX), EMPTY))
    # forced: UTILITYBILLS coming back empty is refused otherwise (see the category guard)
    gone = stored_after(diff(flw(DSTV, SHOWMAX), two, force=True), two)
    assert gone.billers["BIL112"].vanished
    plan = diff(flw(DSTV, IKEJA, SHOWMAX), gone)
    assert plan.outcome == Outcome.APPLIED and plan.vanished == 0
    assert plan.changed == 3  # the biller and its two items
    after = stored_after(plan, gone)
    assert not after.billers["BIL112"].vanished
    assert after.billers["BIL112"].biller_code == "ikeja-electric"


def test_an_unknown_flutterwave_biller_is_stored_unmapped_never_matched_by_name():
    # "IKEJA ELECTRIC" would match by name; only codes map.
    lookalike = replace(IKEJA, code="BIL777", name="Ikeja Electric (IKEDC)")
    plan = diff(flw(SHOWMAX, lookalike), EMPTY)
    assert [(r.code, r.biller_code) for r in plan.rows] == [("BIL999", None), ("BIL777", None)]
    assert plan.new_billers == ()
    assert all(p is None for r in plan.rows for p in products(plan, r.code).values())
    (alert,) = alerts(plan)
    assert alert.kind == "catalogue_biller_unmapped"
    assert alert.payload["billers"] == "BIL999, BIL777"
    # told once: the next sync stores it again without a new alert
    again = diff(flw(SHOWMAX, lookalike), stored_after(plan))
    assert again.unmapped == ("BIL999", "BIL777") and alerts(again) == []


def test_an_operator_mapping_is_kept_by_later_syncs():
    before = stored_after(diff(flw(SHOWMAX), EMPTY))
    mapped = replace(before.billers["BIL999"], biller_code="showmax")
    before = Stored({"BIL999": mapped}, {"showmax": "cable_tv"})
    plan = diff(flw(SHOWMAX), before)
    assert plan.rows[0].biller_code == "showmax" and plan.unmapped == ()


def test_vtpass_service_ids_are_our_codes_with_aliases_and_new_ones_wait_unmapped():
    listing = Listing(
        "vtpass",
        (
            ListedBiller("etisalat", "9mobile Airtime VTU", "airtime", BillType.AIRTIME),
            ListedBiller("gotv", "GOtv", "tv-subscription", BillType.CABLE_TV,
                         items=(ListedItem("gotv-lite", "GOtv Lite", 40_000),)),
            ListedBiller("smile-direct", "Smile Payment", "data", BillType.DATA),
        ),
    )  # fmt: skip
    plan = diff(listing, EMPTY)
    # smile-direct is new to us: stored unmapped (never sold) until a person maps it
    assert [r.biller_code for r in plan.rows] == ["9mobile", "gotv", None]
    assert {n.code: n.name for n in plan.new_billers} == {
        "9mobile": "9mobile Airtime",
        "gotv": "GOtv",
    }
    assert products(plan, "gotv") == {"gotv-lite": "gotv-lite"}
    (alert,) = alerts(plan)
    assert alert.kind == "catalogue_biller_unmapped" and alert.payload["billers"] == "smile-direct"
    assert "billpay catalogue map vtpass" in alert.payload["fix"]
    # once ours exists (an operator mapped it), the same serviceID maps by itself
    known = Stored({}, {"smile-direct": "data"})
    assert diff(listing, known).rows[2].biller_code == "smile-direct"


def test_a_sync_that_would_vanish_most_routed_billers_is_refused_unless_forced():
    before = stored_after(diff(flw(DSTV, IKEJA, SHOWMAX), EMPTY))  # 2 routed, 1 unmapped
    plan = diff(flw(SHOWMAX), before)
    assert plan.outcome == Outcome.REFUSED
    assert plan.rows == () and plan.vanished_billers == ()
    assert "2 of 2 routed billers would vanish" in plan.detail
    (alert,) = alerts(plan)
    assert alert.kind == "catalogue_sync_refused"
    # exactly half is not more than half (another UTILITYBILLS biller keeps that category listed)
    eko = replace(IKEJA, code="BIL113", name="EKEDC")
    gotv = replace(DSTV, code="BIL120", name="GOTV")
    half = stored_after(diff(flw(DSTV, IKEJA, SHOWMAX, eko, gotv), EMPTY))
    assert diff(flw(DSTV, SHOWMAX, eko), half).outcome == Outcome.APPLIED
    forced = diff(flw(SHOWMAX), before, force=True)
    assert forced.outcome == Outcome.APPLIED and set(forced.vanished_billers) == {
        "BIL119",
        "BIL112",
    }


def test_an_empty_listing_never_switches_a_provider_off():
    before = stored_after(diff(flw(DSTV), EMPTY))
    assert diff(flw(), before).outcome == Outcome.REFUSED


def test_electricity_items_map_by_prepaid_postpaid_only_when_unambiguous():
    items = (
        ListedItem("X1", "IKEDC PREPAID", None),
        ListedItem("X2", "IKEDC PREPAID (TOKEN)", None),
        ListedItem("X3", "IKEDC POSTPAID", None),
    )
    plan = diff(flw(replace(IKEJA, items=items)), EMPTY)
    assert products(plan, "BIL112") == {"X1": None, "X2": None, "X3": "postpaid"}


def test_a_single_airtime_item_is_the_airtime_product():
    mtn = ListedBiller("BIL099", "MTN VTU", "AIRTIME", BillType.AIRTIME,
                       items=(ListedItem("AT999", "MTN VTU", None),))  # fmt: skip
    plan = diff(flw(mtn), EMPTY)
    assert plan.rows[0].biller_code == "mtn"
    assert products(plan, "BIL099") == {"AT999": "airtime"}


def test_a_product_is_sold_under_one_item_code():
    items = (ListedItem("CB141", "DStv Padi", 295_000), ListedItem("CB141X", "Padi", 295_000))
    before = Stored(
        {"BIL119": StoredBiller("BIL119", "dstv", "cable_tv", "CABLEBILLS", "DSTV", None, None, 0,
                                False, {"CB141X": StoredItem("CB141X", "dstv-padi", "Padi",
                                                             295_000, 0, None, False)})},
        {"dstv": "cable_tv"},
    )  # fmt: skip
    plan = diff(flw(replace(DSTV, items=items)), before)
    # the live holder keeps it (an operator's mapping included) over the built-in guess
    assert products(plan, "BIL119") == {"CB141": None, "CB141X": "dstv-padi"}


# --- review fixes (issue 14): remaps, held billers, item and category guards ----------------


def _vanished(before: Stored, code: str) -> Stored:
    billers = dict(before.billers)
    billers[code] = replace(billers[code], vanished=True)
    return Stored(billers, before.our_billers)


def test_a_returning_code_whose_biller_an_operator_remapped_comes_back_unmapped():
    before = stored_after(diff(flw(DSTV, SHOWMAX), EMPTY))
    before = _vanished(before, "BIL119")  # Flutterwave dropped BIL119; BIL999 now sells dstv
    before = Stored(
        {**before.billers, "BIL999": replace(before.billers["BIL999"], biller_code="dstv")},
        before.our_billers,
    )
    plan = diff(flw(DSTV, SHOWMAX), before)
    rows = {r.code: r for r in plan.rows}
    assert rows["BIL119"].biller_code is None and rows["BIL119"].displaced
    assert rows["BIL999"].biller_code == "dstv" and not rows["BIL999"].displaced
    assert set(products(plan, "BIL119").values()) == {None}
    (alert,) = [a for a in alerts(plan) if a.kind == "catalogue_biller_unmapped"]
    assert alert.payload["billers"] == "BIL119"
    assert alert.payload["returned"] == "BIL119 (dstv is sold under BIL999)"


def test_a_returning_item_never_takes_a_product_a_live_item_holds():
    first = flw(replace(IKEJA, items=(ListedItem("UB999", "IKEDC PREPAID (new)", None),
                                      ListedItem("UB158", "IKEDC POSTPAID", None))))  # fmt: skip
    seeded = stored_after(diff(flw(IKEJA), EMPTY))
    moved = stored_after(diff(first, seeded), seeded)  # UB157 vanished, UB999 is prepaid now
    assert moved.billers["BIL112"].items["UB999"].product_code == "prepaid"
    back = replace(IKEJA, items=(ListedItem("UB157", "IKEDC PREPAID", None),
                                 *first.billers[0].items))  # fmt: skip
    plan = diff(flw(back), moved)
    assert products(plan, "BIL112") == {"UB157": None, "UB999": "prepaid", "UB158": "postpaid"}


def test_a_biller_whose_items_are_unreadable_is_held_as_stored_and_operators_told():
    before = stored_after(diff(flw(DSTV, IKEJA), EMPTY))
    broken = replace(DSTV, items=(), unreadable="flutterwave GET /billers/BIL119/items: HTML")
    plan = diff(flw(broken, replace(IKEJA, name="IKEDC 2")), before)
    assert plan.outcome == Outcome.APPLIED
    assert [r.code for r in plan.rows] == ["BIL112"]  # BIL119 neither updated nor vanished
    assert plan.vanished_billers == () and plan.vanished_items == ()
    assert plan.held == (("BIL119", "flutterwave GET /billers/BIL119/items: HTML"),)
    assert "held, items unreadable: BIL119" in plan.detail
    (alert,) = [a for a in alerts(plan) if a.kind == "catalogue_biller_unreadable"]
    assert "BIL119" in alert.payload["billers"] and alert.once_per == "content"
    # a biller new to us whose items are unreadable is not stored at all yet
    assert diff(flw(broken), EMPTY).rows == ()


def test_a_routed_biller_losing_every_item_is_refused_and_lost_items_are_named():
    vt_dstv = ListedBiller("dstv", "DSTV", "tv-subscription", BillType.CABLE_TV,
                           items=(ListedItem("dstv-padi", "Padi", 295_000),
                                  ListedItem("dstv-yanga", "Yanga", 420_000)))  # fmt: skip
    airtime = ListedBiller("mtn", "MTN", "airtime", BillType.AIRTIME)
    before = stored_after(diff(Listing("vtpass", (vt_dstv, airtime)), EMPTY))
    emptied = diff(Listing("vtpass", (replace(vt_dstv, items=()), airtime)), before)
    assert emptied.outcome == Outcome.REFUSED and emptied.rows == ()
    assert "every item of dstv (dstv) would vanish" in emptied.detail
    forced = diff(Listing("vtpass", (replace(vt_dstv, items=()), airtime)), before, force=True)
    assert forced.outcome == Outcome.APPLIED and len(forced.vanished_items) == 2
    one_gone = diff(Listing("vtpass", (replace(vt_dstv, items=vt_dstv.items[:1]), airtime)), before)
    assert one_gone.outcome == Outcome.APPLIED
    (alert,) = [a for a in alerts(one_gone) if a.kind == "catalogue_item_vanished"]
    assert alert.payload["plans"] == "dstv/dstv-yanga (dstv/dstv-yanga)"
    # VTpass airtime never had items: listing none is not "emptied"
    assert diff(Listing("vtpass", (vt_dstv, airtime)), before).outcome == Outcome.UNCHANGED


def test_a_category_or_identifier_with_routed_billers_coming_back_empty_is_refused():
    eko = replace(IKEJA, code="BIL113", name="EKEDC")
    gotv = replace(DSTV, code="BIL120", name="GOTV")
    before = stored_after(diff(flw(DSTV, gotv, IKEJA, eko, SHOWMAX), EMPTY))
    plan = diff(flw(DSTV, gotv, SHOWMAX), before)  # 2 of 4 routed: under the half threshold
    assert plan.outcome == Outcome.REFUSED
    assert "UTILITYBILLS came back empty or missing" in plan.detail
    (alert,) = alerts(plan)
    assert alert.kind == "catalogue_sync_refused" and alert.once_per == "content"
    assert diff(flw(DSTV, gotv, SHOWMAX), before, force=True).outcome == Outcome.APPLIED
    # a seeded VTpass row has no category yet: its bill type names the identifier
    seeded = StoredBiller("ikeja-electric", "ikeja-electric", "electricity", None, "IKEDC",
                          None, None, 0, False, {})  # fmt: skip
    mtn = StoredBiller("mtn", "mtn", "airtime", None, "MTN", None, None, 0, False, {})
    vt = Stored({"ikeja-electric": seeded, "mtn": mtn, "glo": replace(mtn, code="glo")},
                {"ikeja-electric": "electricity", "mtn": "airtime"})  # fmt: skip
    airtime = ListedBiller("mtn", "MTN", "airtime", BillType.AIRTIME)
    glo = replace(airtime, code="glo", name="GLO")
    refused = diff(Listing("vtpass", (airtime, glo)), vt)
    assert "electricity-bill came back empty" in refused.detail
