"""The adapters' full-catalogue calls against recorded bodies (tests/fixtures, see
CATALOGUE_SOURCES.md) and hostile ones: every answer that is not the documented shape is a
ProviderError naming the call, never a short listing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from billpay.catalogue_runner import ListingFailed, read_listing
from billpay.catalogue_sync import ListedItem
from billpay.orders import BillType
from billpay.providers.base import ProviderError
from billpay.providers.flutterwave import parse_items, segment
from billpay.providers.vtpass import parse_services, parse_variations
from tests.unit.provider_cases import FLW_SECRET, FLW_URL, VTPASS_URL, fixture

HTML = httpx.Response(200, text="<html><h1>502 Bad Gateway</h1></html>")


def _json(body: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body)


# --- VTpass ---------------------------------------------------------------------------------


def test_vtpass_services_reads_the_documented_answer(mock, vtpass) -> None:
    route = mock.get(f"{VTPASS_URL}/services", params={"identifier": "data"})
    route.mock(return_value=_json(fixture("vtpass_services_data.json")))
    services = vtpass.services("data")
    assert [s.code for s in services][:4] == [
        "airtel-data",
        "mtn-data",
        "glo-data",
        "etisalat-data",
    ]
    glo = services[2]
    assert (glo.bill_type, glo.category) == (BillType.DATA, "data")
    assert (glo.min_amount_kobo, glo.max_amount_kobo, glo.fee_kobo) == (100, 20_000_000, 0)
    assert services[4].fee_kobo == 0  # "N0"
    assert route.calls[0].request.headers["public-key"] == "PK_public_456"


def test_vtpass_variations_read_fixed_prices_and_the_varations_spelling(mock, vtpass) -> None:
    mock.get(f"{VTPASS_URL}/service-variations", params={"serviceID": "gotv"}).mock(
        return_value=_json(fixture("vtpass_service_variations_gotv.json"))
    )
    mock.get(f"{VTPASS_URL}/service-variations", params={"serviceID": "ikeja-electric"}).mock(
        return_value=_json(fixture("vtpass_service_variations_electricity_varations.json"))
    )
    items, fee = vtpass.variations("gotv")
    assert items[0] == ListedItem("gotv-lite", "GOtv Lite N400", 40_000)
    assert fee == 0  # "100 %" is a percentage, not kobo
    items, fee = vtpass.variations("ikeja-electric")
    assert [(i.code, i.amount_kobo) for i in items] == [("prepaid", None), ("postpaid", None)]
    assert fee == 10_000  # "N100"


@pytest.mark.parametrize(
    "answer",
    [
        HTML,
        httpx.Response(200, text=""),
        _json({"code": "087", "response_description": "INVALID CREDENTIALS"}, 401),
        _json({"response_description": "000", "content": "nothing"}),
        _json({"response_description": "000", "content": {"ServiceName": "GOTV"}}),
        _json({"response_description": "000", "content": {"variations": [{"name": "no code"}]}}),
        _json(
            {
                "response_description": "000",
                "content": {
                    "variations": [
                        {
                            "variation_code": "gotv-max",
                            "variation_amount": "abc",
                            "fixedPrice": "Yes",
                        }
                    ]
                },
            }
        ),
        _json({"code": "000", "content": {"variations": [{"variation_code": {"a": 1}}]}}),
    ],
    ids=["html", "empty", "auth", "content-text", "no-list", "no-code", "bad-price", "dict-code"],
)
def test_vtpass_unreadable_variations_are_a_provider_error_naming_the_call(
    mock, vtpass, answer
) -> None:
    mock.get(f"{VTPASS_URL}/service-variations").mock(return_value=answer)
    with pytest.raises(ProviderError) as raised:
        vtpass.variations("gotv")
    assert "GET /service-variations?serviceID=gotv" in raised.value.message
    assert raised.value.call is not None and raised.value.call.outcome == "failed"


def test_vtpass_service_without_a_service_id_is_unreadable(mock, vtpass) -> None:
    body = {"response_description": "000", "content": [{"name": "Mystery"}]}
    mock.get(f"{VTPASS_URL}/services").mock(return_value=_json(body))
    with pytest.raises(ProviderError, match="identifier=data"):
        vtpass.services("data")


def test_vtpass_transport_error_is_a_provider_error(mock, vtpass) -> None:
    mock.get(f"{VTPASS_URL}/services").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(ProviderError, match="read_timeout"):
        vtpass.services("airtime")


# --- Flutterwave ----------------------------------------------------------------------------


def test_flutterwave_categories_billers_and_items_read_the_documented_shapes(mock, flw) -> None:
    mock.get(f"{FLW_URL}/top-bill-categories").mock(
        return_value=_json(fixture("flutterwave_top_bill_categories.json"))
    )
    mock.get(f"{FLW_URL}/bills/CABLEBILLS/billers").mock(
        return_value=_json(fixture("flutterwave_billers_cablebills.json"))
    )
    mock.get(f"{FLW_URL}/billers/BIL119/items").mock(
        return_value=_json(fixture("flutterwave_biller_items_bil119.json"))
    )
    assert "UTILITYBILLS" in flw.category_codes()
    billers = flw.listed_billers("CABLEBILLS")
    assert [(b.code, b.name, b.bill_type) for b in billers][:1] == [
        ("BIL119", "DSTV", BillType.CABLE_TV)
    ]
    items = flw.items("BIL119")
    assert items[0] == ListedItem("CB141", "DStv Padi", 295_000, 10_000, "Smart Card Number")
    assert items[1].amount_kobo == 420_000  # amount as a string
    assert items[2].amount_kobo is None  # 0: the customer sets the amount


@pytest.mark.parametrize(
    "answer",
    [
        HTML,
        _json({"status": "error", "message": "Invalid authorization key", "data": None}, 401),
        _json({"status": "success", "message": "ok", "data": {"item_code": "CB141"}}),
        _json({"status": "success", "message": "ok", "data": [{"name": "no code", "amount": 1}]}),
        _json({"status": "success", "message": "ok", "data": [{"item_code": "CB1"}]}),
        _json({"status": "success", "message": "ok",
               "data": [{"item_code": "CB1", "amount": "1e999999"}]}),
    ],
    ids=["html", "auth", "data-object", "no-item-code", "no-amount", "huge-amount"],
)  # fmt: skip
def test_flutterwave_unreadable_items_are_a_provider_error_naming_the_call(
    mock, flw, answer
) -> None:
    mock.get(f"{FLW_URL}/billers/BIL119/items").mock(return_value=answer)
    with pytest.raises(ProviderError) as raised:
        flw.items("BIL119")
    assert "/billers/BIL119/items" in raised.value.message
    assert raised.value.call is not None


def test_flutterwave_error_message_is_masked_of_our_key(mock, flw) -> None:
    body = {"status": "error", "message": f"bad key {FLW_SECRET}", "data": None}
    mock.get(f"{FLW_URL}/top-bill-categories").mock(return_value=_json(body, 401))
    with pytest.raises(ProviderError) as raised:
        flw.category_codes()
    assert FLW_SECRET not in raised.value.message
    assert "HTTP 401" in raised.value.message


def test_one_failed_items_call_holds_only_that_flutterwave_biller(mock, flw) -> None:
    categories = {"status": "success", "message": "ok",
                  "data": [{"id": 3, "name": "Cable", "code": "CABLEBILLS"}]}  # fmt: skip
    mock.get(f"{FLW_URL}/top-bill-categories").mock(return_value=_json(categories))
    mock.get(f"{FLW_URL}/bills/CABLEBILLS/billers").mock(
        return_value=_json(fixture("flutterwave_billers_cablebills.json"))
    )
    mock.get(f"{FLW_URL}/billers/BIL119/items").mock(
        return_value=_json(fixture("flutterwave_biller_items_bil119.json"))
    )
    mock.get(url__regex=rf"{FLW_URL}/billers/BIL(12[03]|999)/items").mock(return_value=HTML)
    listing = read_listing("flutterwave", flw)
    held = {b.code: b.unreadable for b in listing.billers if b.unreadable}
    assert set(held) == {"BIL120", "BIL123", "BIL999"} and "BIL120/items" in held["BIL120"]
    (dstv,) = [b for b in listing.billers if b.code == "BIL119"]
    assert dstv.items and dstv.unreadable is None


def test_vtpass_listing_skips_variations_for_airtime(mock, vtpass) -> None:
    airtime = {"response_description": "000",
               "content": [{"serviceID": "mtn", "name": "MTN Airtime VTU",
                            "minimium_amount": 50, "maximum_amount": 50000,
                            "convinience_fee": "0 %"}]}  # fmt: skip
    empty = {"response_description": "000", "content": []}
    mock.get(f"{VTPASS_URL}/services", params={"identifier": "airtime"}).mock(
        return_value=_json(airtime)
    )
    mock.get(f"{VTPASS_URL}/services").mock(return_value=_json(empty))
    variations = mock.get(f"{VTPASS_URL}/service-variations")
    listing = read_listing("vtpass", vtpass)
    assert [(b.code, b.items, b.min_amount_kobo) for b in listing.billers] == [("mtn", (), 5_000)]
    assert not variations.called


# --- review fixes: codes go into URL paths, one bad row holds only its biller ----------------


@pytest.mark.parametrize(
    "code", ["../../../transfers?x=", "..", "BIL/119", "a b", "%2e%2e", "-x", "x" * 101]
)
def test_a_flutterwave_item_code_that_is_not_a_code_makes_its_item_list_unreadable(code) -> None:
    with pytest.raises(ValueError, match="not a code"):
        parse_items([{"item_code": code, "name": "x", "amount": 0}])


def test_vtpass_codes_that_are_not_codes_are_unreadable() -> None:
    body = {"response_description": "000",
            "content": {"variations": [{"variation_code": "../x", "name": "x",
                                        "variation_amount": "1", "fixedPrice": "Yes"}]}}  # fmt: skip
    with pytest.raises(ValueError, match="not a code"):
        parse_variations(body)
    services = {"response_description": "000", "content": [{"serviceID": "dstv?x=1"}]}
    with pytest.raises(ValueError, match="not a code"):
        parse_services(services, "tv-subscription")


def test_path_segments_are_percent_encoded_whole() -> None:
    assert segment("../../../transfers?x=") == "..%2F..%2F..%2Ftransfers%3Fx%3D"
    assert segment("..") == "%2E%2E" and segment(".") == "%2E"
    assert segment("BIL119") == "BIL119" and segment("a.b-c_d") == "a.b-c_d"


def test_a_hostile_item_code_never_takes_our_key_to_another_flutterwave_path(mock, flw) -> None:
    hit = mock.route(host=httpx.URL(FLW_URL).host).mock(
        return_value=_json({"status": "error"}, 400)
    )
    hostile = "../../../transfers?x="
    with pytest.raises(ProviderError):
        flw.items(hostile)
    (call,) = hit.calls
    assert call.request.url.raw_path == b"/v3/billers/..%2F..%2F..%2Ftransfers%3Fx%3D/items"


def test_a_vtpass_variations_failure_holds_only_that_service(mock, vtpass) -> None:
    tv = {"response_description": "000",
          "content": [{"serviceID": "dstv", "name": "DSTV"}, {"serviceID": "gotv", "name": "GOtv"}]}  # fmt: skip
    empty = {"response_description": "000", "content": []}
    mock.get(f"{VTPASS_URL}/services", params={"identifier": "tv-subscription"}).mock(
        return_value=_json(tv)
    )
    mock.get(f"{VTPASS_URL}/services").mock(return_value=_json(empty))
    mock.get(f"{VTPASS_URL}/service-variations", params={"serviceID": "dstv"}).mock(
        return_value=_json({"response_description": "010"}, 503)
    )
    mock.get(f"{VTPASS_URL}/service-variations", params={"serviceID": "gotv"}).mock(
        return_value=_json(fixture("vtpass_service_variations_gotv.json"))
    )
    listing = read_listing("vtpass", vtpass)
    by_code = {b.code: b for b in listing.billers}
    assert "HTTP 503" in (by_code["dstv"].unreadable or "") and by_code["dstv"].items == ()
    assert by_code["gotv"].unreadable is None and by_code["gotv"].items


def test_a_failed_categories_call_still_fails_the_whole_flutterwave_listing(mock, flw) -> None:
    mock.get(f"{FLW_URL}/top-bill-categories").mock(return_value=HTML)
    with pytest.raises(ListingFailed, match="top-bill-categories"):
        read_listing("flutterwave", flw)
