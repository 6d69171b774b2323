"""Catalogue routes against the real server and the sandbox: types, billers and products,
and account validation (format rules, then the provider's verify)."""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa

from tests.api.bodies import ELECTRICITY_ACCOUNT, problem_body
from tests.api.conftest import ApiServer
from tests.db_reads import scalar


def _validate(api: ApiServer, body: dict[str, Any]) -> httpx.Response:
    """POST /api/bills/validate, which must answer 200."""
    with api.client(api.new_key("wallet")) as http:
        answer = http.post("/api/bills/validate", json=body)
    assert answer.status_code == 200, answer.text
    return answer


def test_types_list_every_bill_type_with_a_label(api: ApiServer) -> None:
    with api.client(api.new_key("wallet")) as http:
        answer = http.get("/api/bills/types")
    assert answer.status_code == 200
    types = {t["code"]: t["label"] for t in answer.json()["types"]}
    assert types == {
        "electricity": "Electricity",
        "airtime": "Airtime",
        "data": "Mobile data",
        "cable_tv": "Cable TV",
        "water": "Water",
    }


def test_catalogue_routes_need_a_key(api: ApiServer) -> None:
    with api.client() as http:
        for path in ("/api/bills/types", "/api/bills/providers/data", "/api/bills/stats"):
            problem_body(http.get(path), 401)
        problem_body(http.post("/api/bills/validate", json={}), 401)


def test_providers_lists_billers_and_fixed_prices_as_decimal_strings(api: ApiServer) -> None:
    with api.client(api.new_key("wallet")) as http:
        cable = http.get("/api/bills/providers/cable_tv").json()
        power = http.get("/api/bills/providers/electricity").json()
    dstv = next(b for b in cable["billers"] if b["code"] == "dstv")
    assert dstv["name"] == "DStv"
    assert {"code": "dstv-padi", "name": "DStv Padi", "price": "2950.00"} in dstv["products"]
    ikeja = next(b for b in power["billers"] if b["code"] == "ikeja-electric")
    assert {p["code"]: p["price"] for p in ikeja["products"]} == {
        "prepaid": None,
        "postpaid": None,
    }
    assert {b["code"] for b in cable["billers"]} == {"dstv", "gotv", "startimes"}


def test_providers_lists_only_billers_a_configured_route_sells(api: ApiServer) -> None:
    # Water is sold by Flutterwave only: routed to VTpass alone, nobody sells it.
    settings = api.runtime.settings
    api.runtime.settings = settings.model_copy(update={"route_water": ["vtpass"]})
    try:
        with api.client(api.new_key("wallet")) as http:
            water = http.get("/api/bills/providers/water").json()
    finally:
        api.runtime.settings = settings
    assert water == {"bill_type": "water", "billers": []}


def test_unknown_bill_type_is_422_naming_it(api: ApiServer) -> None:
    with api.client(api.new_key("wallet")) as http:
        problem_body(http.get("/api/bills/providers/gas"), 422, "bill_type")


def test_validate_a_known_meter_returns_the_provider_customer(api: ApiServer) -> None:
    body = _validate(api, ELECTRICITY_ACCOUNT | {"amount": "5000"}).json()
    assert body["valid"] is True
    assert body["customer_name"] == "SANDBOX CUSTOMER"
    assert body["min_amount"] == "50.00" and body["max_amount"] == "500000.00"
    # Electricity routes to Flutterwave first; the call is recorded like the pipeline's verify.
    assert (
        scalar(api.runtime.db, "SELECT count(*) FROM provider_attempts WHERE operation = 'verify'")
        == 1
    )


def test_validate_an_unknown_meter_is_valid_false(api: ApiServer) -> None:
    answer = _validate(
        api,
        {
            "bill_type": "cable_tv",
            "biller": "dstv",
            "account": "9999999999",
            "product": "dstv-padi",
        },
    )
    body = answer.json()
    assert body["valid"] is False
    assert body["customer_name"] is None
    assert body["min_amount"] == body["max_amount"] == "2950.00"
    assert "9999999999" not in answer.text


def test_validate_airtime_checks_format_and_network_only(api: ApiServer, sandbox: Any) -> None:
    with api.client(api.new_key("wallet")) as http:
        good = http.post(
            "/api/bills/validate",
            json={"bill_type": "airtime", "biller": "mtn", "account": "08031234567"},
        )
        ported = http.post(
            "/api/bills/validate",
            json={"bill_type": "airtime", "biller": "glo", "account": "08031234567"},
        )
    assert good.status_code == 200 and good.json()["valid"] is True
    assert good.json()["warnings"] == []
    assert sandbox.calls(operation="verify") == []
    # The biller names the network: an MTN prefix on Glo is a ported number, only a warning.
    assert ported.status_code == 200 and ported.json()["valid"] is True
    (warning,) = ported.json()["warnings"]
    assert "0803" in warning and "Glo" in warning and "08031234567" not in ported.text


def test_validate_format_errors_name_the_request_field(api: ApiServer) -> None:
    cases = [
        ({"bill_type": "gas", "biller": "x", "account": "1"}, "bill_type"),
        ({"bill_type": "electricity", "biller": "dstv", "account": "1"}, "biller"),
        ({"bill_type": "electricity", "biller": "ikeja-electric", "account": "1"}, "account_type"),
        (
            {
                "bill_type": "electricity",
                "biller": "ikeja-electric",
                "account": "123",
                "account_type": "prepaid",
            },
            "account",
        ),
        ({"bill_type": "data", "biller": "mtn-data", "account": "08031234567"}, "product"),
        (
            {"bill_type": "airtime", "biller": "mtn", "account": "08031234567", "amount": "1.234"},
            "amount",
        ),
        (
            {
                "bill_type": "cable_tv",
                "biller": "dstv",
                "account": "1212121212",
                "product": "dstv-padi",
                "amount": "100",
            },
            "amount",
        ),
        ({"bill_type": "airtime", "biller": "mtn", "account": "1", "colour": "red"}, "colour"),
        ({"biller": "mtn", "account": "08031234567"}, "bill_type"),
    ]
    with api.client(api.new_key("wallet")) as http:
        for body, field in cases:
            problem_body(http.post("/api/bills/validate", json=body), 422, field)
    assert scalar(api.runtime.db, "SELECT count(*) FROM provider_attempts") == 0


def test_providers_lists_the_synced_catalogue(api: ApiServer) -> None:
    """A sync's new price and vanished biller reach the listing (and validation) at once
    after the process's catalogue reloads."""
    api.runtime.catalogue.current()  # seeds the fresh database
    with api.runtime.db.begin() as conn:
        for sql in (
            "UPDATE provider_items SET amount_kobo = 310000 WHERE product_code = 'dstv-padi'",
            "UPDATE provider_billers SET vanished_at = now() WHERE biller_code = 'startimes'",
            "INSERT INTO catalogue_syncs (provider, outcome) VALUES ('vtpass', 'applied')",
        ):
            conn.execute(sa.text(sql))
    api.runtime.catalogue.refresh()  # type: ignore[attr-defined]
    with api.client(api.new_key("wallet")) as http:
        cable = http.get("/api/bills/providers/cable_tv").json()
        gone = http.post("/api/bills/validate", json={"bill_type": "cable_tv",
                         "biller": "startimes", "account": "1212121212", "product": "nova"})  # fmt: skip
    assert {b["code"] for b in cable["billers"]} == {"dstv", "gotv"}
    dstv = next(b for b in cable["billers"] if b["code"] == "dstv")
    assert {"code": "dstv-padi", "name": "DStv Padi", "price": "3100.00"} in dstv["products"]
    body = problem_body(gone, 422, "biller")
    assert "not sold by any provider right now" in body["errors"][0]["message"]


def test_validate_answers_503_when_its_share_of_provider_slots_is_busy(api: ApiServer) -> None:
    # Other API processes hold the whole share of every provider's slots: this one waits
    # BILLPAY_API_VALIDATE_WAIT_SECONDS at most, then says "busy", never hangs or says invalid.
    from contextlib import ExitStack

    from billpay.store.slots import ProviderSlots

    settings = api.runtime.settings
    others = ProviderSlots(api.runtime.db, settings.api_validate_share)
    with ExitStack() as held, api.client(api.new_key("wallet")) as http:
        for provider in ("vtpass", "flutterwave"):
            for _ in range(settings.api_validate_share):
                held.enter_context(others(f"share:{provider}"))
        busy = http.post("/api/bills/validate", json=ELECTRICITY_ACCOUNT)
        assert api.runtime.slots.in_use("vtpass") == 0  # the pipeline's slots stayed free
    body = problem_body(busy, 503)
    assert body["code"] == "provider_unavailable" and "busy" in body["detail"]
    assert int(busy.headers["retry-after"]) > 0
    with api.client(api.new_key("wallet-2")) as http:  # once they are free, it answers
        assert http.post("/api/bills/validate", json=ELECTRICITY_ACCOUNT).status_code == 200
