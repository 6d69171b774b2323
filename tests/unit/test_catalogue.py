"""The biller catalogue: our codes, each provider's codes and prices for them, and the rules that
read them (who sells what, at what price, who is routed)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from billpay.catalogue import BILLERS, Catalogue, seed_rows
from billpay.config import Settings
from billpay.intake import IntakeError, OrderRequest, validate
from billpay.orders import BillType
from billpay.providers import ProviderRouter, build_providers
from billpay.providers.base import NotSupported
from tests.unit.provider_cases import order_maker

BUILTIN = Catalogue.builtin()
order = order_maker(account_number="1111111111111", amount_kobo=100_000)
padi = order(
    bill_type=BillType.CABLE_TV, biller="dstv", product_code="dstv-padi", amount_kobo=295_000
)
GONE = datetime(2026, 3, 1, tzinfo=UTC)


def changed(edit: Callable[[dict[str, list[dict[str, Any]]]], None]) -> Catalogue:
    """The built-in catalogue's rows after ``edit`` (what a sync would have written)."""
    seed = seed_rows()
    rows = {
        "billers": copy.deepcopy(seed.billers),
        "provider_billers": copy.deepcopy(seed.provider_billers),
        "provider_items": copy.deepcopy(seed.provider_items),
    }
    edit(rows)
    return Catalogue.from_rows(rows["billers"], rows["provider_billers"], rows["provider_items"])


def item(rows: dict[str, list[dict[str, Any]]], provider: str, product: str) -> dict[str, Any]:
    return next(
        i
        for i in rows["provider_items"]
        if i["provider"] == provider and i["product_code"] == product
    )


def listed(rows: dict[str, list[dict[str, Any]]], provider: str, biller: str) -> dict[str, Any]:
    return next(
        b
        for b in rows["provider_billers"]
        if b["provider"] == provider and b["biller_code"] == biller
    )


def flutterwave_padi_at(kobo: int) -> Catalogue:
    return changed(lambda rows: item(rows, "flutterwave", "dstv-padi").update(amount_kobo=kobo))


def request(**fields: Any) -> OrderRequest:
    base = {"bill_type": "cable_tv", "biller": "dstv", "account": "1212121212",
            "amount": "2950", "phone": "08031234567", "product": "dstv-padi"}  # fmt: skip
    return OrderRequest(**(base | fields))


def refusal(catalogue: Catalogue, settings: Settings | None = None, **fields: Any) -> IntakeError:
    with pytest.raises(IntakeError) as caught:
        validate(request(**fields), settings or Settings(), catalogue=catalogue)
    return caught.value


# --- the built-in table --------------------------------------------------------------------


def test_vtpass_service_ids_for_phone_bills() -> None:
    expected = {"mtn": "mtn", "airtel": "airtel", "glo": "glo", "9mobile": "etisalat",
                "mtn-data": "mtn-data", "airtel-data": "airtel-data", "glo-data": "glo-data",
                "etisalat-data": "etisalat-data", "dstv": "dstv", "gotv": "gotv",
                "startimes": "startimes"}  # fmt: skip
    assert {code: BILLERS[code].vtpass_service_id for code in expected} == expected
    assert {code: BUILTIN.listing("vtpass", code).code for code in expected} == expected  # type: ignore[union-attr]
    assert BUILTIN.find_biller("9mobile-data").code == "etisalat-data"  # type: ignore[union-attr]
    assert BUILTIN.find_biller("etisalat").code == "9mobile"  # type: ignore[union-attr]


def test_flutterwave_codes_are_unique_per_product() -> None:
    items = [p.flutterwave for b in BILLERS.values() for p in b.plans if p.flutterwave]
    assert len(items) == len(set(items))
    billers = [b.flutterwave_biller_code for b in BILLERS.values() if b.flutterwave_biller_code]
    assert len(billers) == len(set(billers))


def test_products_map_per_provider() -> None:
    assert BUILTIN.provider_product(padi, "vtpass") == "dstv-padi"
    assert BUILTIN.provider_product(padi, "flutterwave") == "CB141"
    airtime = order(bill_type=BillType.AIRTIME, biller="mtn")
    assert BUILTIN.provider_product(airtime, "flutterwave") == "AT099"
    # VTpass airtime takes no item code, yet VTpass sells it.
    assert BUILTIN.provider_product(airtime, "vtpass") is None
    assert BUILTIN.sells("vtpass", BillType.AIRTIME, "mtn", airtime)
    # A plan code nobody lists is sold nowhere (a sync adds VTpass's full variation list).
    native = order(bill_type=BillType.DATA, biller="mtn-data", product_code="mtn-40gb-10000")
    assert BUILTIN.provider_product(native, "vtpass") is None
    assert not BUILTIN.sells("vtpass", BillType.DATA, "mtn-data", native)


def test_the_builtin_catalogue_sells_what_the_table_lists() -> None:
    water = BUILTIN.find_biller("lagos-water")
    assert water is not None and water.sellers() == ("flutterwave",)
    assert BUILTIN.price("dstv", "dstv-padi", ["vtpass", "flutterwave"]) == 295_000
    assert BUILTIN.price("ikeja-electric", "prepaid", ["flutterwave", "vtpass"]) is None
    plans = {p.code: p.amount_kobo for p in BUILTIN.plans("gotv", ["vtpass"])}
    assert plans == {"gotv-smallie": 157_500, "gotv-jinja": 330_000, "gotv-max": 720_000}


# --- pricing and routing -------------------------------------------------------------------


def test_a_fixed_price_is_the_first_seller_on_the_route() -> None:
    catalogue = flutterwave_padi_at(310_000)
    assert catalogue.price("dstv", "dstv-padi", ["vtpass", "flutterwave"]) == 295_000
    assert catalogue.price("dstv", "dstv-padi", ["flutterwave", "vtpass"]) == 310_000
    # Nobody on the route sells it: the first other seller by name prices it.
    assert catalogue.price("dstv", "dstv-padi", ["nobody"]) == 310_000
    listed_prices = {p.code: p.amount_kobo for p in catalogue.plans("dstv", ["flutterwave"])}
    assert listed_prices["dstv-padi"] == 310_000


def test_intake_charges_the_route_price_and_names_it_when_the_amount_differs() -> None:
    catalogue = flutterwave_padi_at(310_000)
    by_flutterwave = Settings(route_cable_tv="flutterwave,vtpass")
    valid = validate(request(amount="3100"), by_flutterwave, catalogue=catalogue)
    assert valid.amount_kobo == 310_000 and valid.product_code == "dstv-padi"
    error = refusal(catalogue, by_flutterwave, amount="2950")
    assert error.field == "amount" and "costs 3100 naira" in error.message
    # Partial validation (the API's validate) reads the same price when no amount is sent.
    partial = validate(
        request(amount=None, phone=None), by_flutterwave, catalogue=catalogue, partial=True
    )
    assert partial.amount_kobo == 310_000


def test_a_provider_listing_it_dearer_than_the_order_is_not_routed() -> None:
    dearer = flutterwave_padi_at(300_000)
    assert not dearer.sells("flutterwave", BillType.CABLE_TV, "dstv", padi)
    assert dearer.sells("vtpass", BillType.CABLE_TV, "dstv", padi)
    cheaper = flutterwave_padi_at(290_000)
    assert cheaper.sells("flutterwave", BillType.CABLE_TV, "dstv", padi)
    providers = build_providers(
        Settings(), client_factory=lambda _: httpx.Client(), catalogue=dearer
    )
    route = ProviderRouter(providers, Settings(), catalogue=dearer).route(padi)
    assert [p.name for p in route] == ["vtpass"]
    with_cheaper = build_providers(
        Settings(), client_factory=lambda _: httpx.Client(), catalogue=cheaper
    )
    route = ProviderRouter(with_cheaper, Settings(), catalogue=cheaper).route(padi)
    assert [p.name for p in route] == ["vtpass", "flutterwave"]


# --- vanished and unmapped -----------------------------------------------------------------


def test_a_vanished_listing_is_not_routed_but_still_recognised() -> None:
    catalogue = changed(lambda rows: listed(rows, "vtpass", "dstv").update(vanished_at=GONE))
    assert not catalogue.sells("vtpass", BillType.CABLE_TV, "dstv")
    assert catalogue.find_biller("dstv").sellers() == ("flutterwave",)  # type: ignore[union-attr]
    assert catalogue.listing("vtpass", "dstv") is None
    assert catalogue.listing("vtpass", "dstv", live=False) is not None  # its older orders
    providers = build_providers(
        Settings(), client_factory=lambda _: httpx.Client(), catalogue=catalogue
    )
    route = ProviderRouter(providers, Settings(), catalogue=catalogue).route(padi)
    assert [p.name for p in route] == ["flutterwave"]
    with pytest.raises(NotSupported):
        providers["vtpass"].pay(padi, "202603011200X")  # type: ignore[attr-defined]


def test_a_vanished_item_is_not_sold_there() -> None:
    catalogue = changed(lambda rows: item(rows, "vtpass", "dstv-padi").update(vanished_at=GONE))
    assert catalogue.find_biller("dstv").plan_sellers("dstv-padi") == ("flutterwave",)  # type: ignore[union-attr]
    assert not catalogue.sells("vtpass", BillType.CABLE_TV, "dstv", padi)
    assert catalogue.sells("vtpass", BillType.CABLE_TV, "dstv")  # its other bouquets still are
    # The first seller on the route is now Flutterwave: its price (the same here) applies.
    assert (
        catalogue.price_offer("dstv", "dstv-padi", ["vtpass", "flutterwave"]).provider
        == "flutterwave"
    )  # type: ignore[union-attr]


def test_unmapped_rows_are_never_sold() -> None:
    def unmap(rows: dict[str, list[dict[str, Any]]]) -> None:
        listed(rows, "flutterwave", "lagos-water").update(biller_code=None)
        item(rows, "vtpass", "dstv-padi").update(product_code=None)

    catalogue = changed(unmap)
    assert not catalogue.sells("flutterwave", BillType.WATER, "lagos-water")
    assert catalogue.find_biller("dstv").plan_sellers("dstv-padi") == ("flutterwave",)  # type: ignore[union-attr]


def test_a_biller_nobody_sells_is_refused_naming_biller() -> None:
    def vanish(rows: dict[str, list[dict[str, Any]]]) -> None:
        for provider in ("vtpass", "flutterwave"):
            listed(rows, provider, "dstv").update(vanished_at=GONE)

    error = refusal(changed(vanish))
    assert error.field == "biller" and "not sold by any provider right now" in error.message
    assert refusal(BUILTIN, biller="atlantis-tv").field == "biller"  # never listed


def test_a_plan_nobody_sells_is_refused_naming_product() -> None:
    def vanish(rows: dict[str, list[dict[str, Any]]]) -> None:
        for provider in ("vtpass", "flutterwave"):
            item(rows, provider, "dstv-padi").update(vanished_at=GONE)

    error = refusal(changed(vanish))
    assert error.field == "product" and "not sold by any provider right now" in error.message
    unknown = refusal(BUILTIN, product="dstv-premium-xl")
    assert unknown.field == "product" and "is not a dstv plan" in unknown.message


def test_an_electricity_kind_nobody_sells_is_refused_naming_account_type() -> None:
    def vanish(rows: dict[str, list[dict[str, Any]]]) -> None:
        for i in rows["provider_items"]:
            if i["product_code"] == "postpaid" and i["provider_biller"] in (
                "ikeja-electric",
                "BIL112",
            ):
                i["vanished_at"] = GONE

    fields = {"bill_type": "electricity", "biller": "ikeja-electric", "account": "1010101010101",
              "amount": "5000", "product": None, "account_type": "postpaid"}  # fmt: skip
    error = refusal(changed(vanish), **fields)
    assert error.field == "account_type" and "not sold" in error.message
    assert validate(request(**fields | {"account_type": "prepaid", "account": "1111111111111"}),
                    Settings(), catalogue=changed(vanish)).biller == "ikeja-electric"  # fmt: skip
