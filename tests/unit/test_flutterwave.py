from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from billpay.catalogue import Catalogue
from billpay.config import Settings
from billpay.orders import BillOrder, BillType
from billpay.providers.base import (
    NotSupported,
    PaymentResult,
)
from billpay.providers.flutterwave import FlutterwaveProvider, classify_error_message
from billpay.providers.paystack import PaystackProvider
from tests.unit.outcomes import ACC, CONF, FLOAT, PERM, F, P, S, T, U
from tests.unit.provider_cases import NOW, OLD_REFERENCE, REFERENCE, fixture, order_maker

BUILTIN = Catalogue.builtin()

BASE = "https://flw.test/v3"
SECRET = "FLWSECK_TEST-abcdef0123456789-X"
TOKEN = "26362054405982757802"
order = order_maker(
    bill_type=BillType.CABLE_TV, biller="dstv", account_number="0025401100",
    amount_kobo=180_000, product_code="dstv-padi",
)  # fmt: skip


DSTV = order()
PREPAID = order(
    bill_type=BillType.ELECTRICITY,
    biller="ikeja-electric",
    account_number="1111111111111",
    account_type="prepaid",
    product_code=None,
)
AIRTIME = order(bill_type=BillType.AIRTIME, biller="mtn", account_number="08031234567")
PAY_OK = httpx.Response(200, json=fixture("flutterwave_pay_success.json"))


def answer_with(route: respx.Route, answer: Any) -> respx.Route:
    if isinstance(answer, httpx.Response):
        return route.mock(return_value=answer)
    return route.mock(side_effect=answer)


def success(data: Any) -> httpx.Response:
    return httpx.Response(200, json={"status": "success", "message": "ok", "data": data})


def error(message: str, status: int = 400) -> httpx.Response:
    return httpx.Response(status, json={"status": "error", "message": message, "data": None})


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def flw() -> Iterator[FlutterwaveProvider]:
    settings = Settings(flutterwave_base_url=BASE, flutterwave_secret_key=SECRET, callback_url=None)
    provider = FlutterwaveProvider(settings, httpx.Client(), clock=lambda: NOW, catalogue=BUILTIN)
    yield provider
    provider.close()


def pay(
    mock: respx.MockRouter, flw: FlutterwaveProvider, answer: Any, o: BillOrder = DSTV
) -> tuple[PaymentResult, respx.Route]:
    route = answer_with(mock.post(path__regex=r"/billers/\w+/items/\w+/payment"), answer)
    return flw.pay(o, REFERENCE), route


def requery(
    mock: respx.MockRouter,
    flw: FlutterwaveProvider,
    answer: Any,
    o: BillOrder = DSTV,
    reference: str = REFERENCE,
) -> tuple[PaymentResult, respx.Route]:
    route = answer_with(mock.get(f"/bills/{reference}"), answer)
    return flw.requery(o, reference), route


# --- validate -----------------------------------------------------------------------------


def test_validate_documented_success(mock: respx.MockRouter, flw: FlutterwaveProvider) -> None:
    body = fixture("flutterwave_validate_success.json")
    route = answer_with(
        mock.get("/bill-items/CB141/validate", params={"code": "BIL119", "customer": "0025401100"}),
        httpx.Response(200, json=body),
    )
    check = flw.verify_account(DSTV)
    assert check.valid is True and check.customer_name == "Test DSTV Account"
    assert check.min_amount_kobo is None and check.max_amount_kobo is None  # 0 = no limit
    assert route.calls.last.request.headers["authorization"] == f"Bearer {SECRET}"
    assert check.call is not None and SECRET not in json.dumps(check.call.response_summary)


def test_validate_reads_limits_in_naira(mock: respx.MockRouter, flw: FlutterwaveProvider) -> None:
    body = fixture("flutterwave_validate_success.json")
    body["data"].update(minimum=500, maximum="100000", address="1 Allen Avenue")
    answer_with(mock.get("/bill-items/CB141/validate"), httpx.Response(200, json=body))
    check = flw.verify_account(DSTV)
    assert (check.min_amount_kobo, check.max_amount_kobo) == (50_000, 10_000_000)
    assert check.address == "1 Allen Avenue"


@pytest.mark.parametrize(
    ("answer", "valid", "error_class"),
    [
        (error("Invalid customer"), False, ACC),
        (error("Customer not found for this meter"), False, ACC),
        (error("Invalid item code"), None, PERM),
        (error("Biller timed out"), None, T),
        (error("Invalid authorization key", 401), None, CONF),
        (httpx.Response(429, text="Too many requests"), None, T),
        (httpx.Response(503, text="<html>down</html>"), None, T),
        (httpx.Response(200, text="<html>captive portal</html>"), None, T),
        (httpx.ReadTimeout("slow"), None, T),
    ],
)
def test_validate_failures(
    mock: respx.MockRouter, flw: FlutterwaveProvider, answer: Any, valid: Any, error_class: Any
) -> None:
    answer_with(mock.get("/bill-items/CB141/validate"), answer)
    check = flw.verify_account(DSTV)
    assert (check.valid, check.error_class) == (valid, error_class)


def test_validate_response_code_other_than_00_is_invalid(
    mock: respx.MockRouter, flw: FlutterwaveProvider
) -> None:
    body = fixture("flutterwave_validate_success.json")
    body["data"].update(response_code="RR", response_message="Invalid smartcard")
    answer_with(mock.get("/bill-items/CB141/validate"), httpx.Response(200, json=body))
    check = flw.verify_account(DSTV)
    assert check.valid is False and check.message == "Invalid smartcard"


def test_validate_get_is_retried_on_connect_errors_only(
    mock: respx.MockRouter, flw: FlutterwaveProvider
) -> None:
    ok = httpx.Response(200, json=fixture("flutterwave_validate_success.json"))
    route = answer_with(mock.get("/bill-items/CB141/validate"), [httpx.ConnectError("x"), ok])
    assert flw.verify_account(DSTV).valid is True
    assert route.call_count == 2


def test_airtime_needs_no_validation(mock: respx.MockRouter, flw: FlutterwaveProvider) -> None:
    assert flw.verify_account(AIRTIME).valid is True
    assert not mock.calls


# --- pay ----------------------------------------------------------------------------------


def test_pay_documented_success(mock: respx.MockRouter, flw: FlutterwaveProvider) -> None:
    result, route = pay(mock, flw, PAY_OK)
    assert result.outcome == S and result.error_class is None
    assert result.provider_reference == "247837898415"
    assert result.amount_kobo == 180_000
    assert result.token is None
    request = route.calls.last.request
    assert request.url.path == "/v3/billers/BIL119/items/CB141/payment"
    assert json.loads(request.content) == {
        "country": "NG",
        "customer_id": "0025401100",
        "amount": 1800,
        "reference": REFERENCE,
    }
    assert request.headers["authorization"] == f"Bearer {SECRET}"


def test_airtime_customer_is_sent_in_e164(mock: respx.MockRouter, flw: FlutterwaveProvider) -> None:
    _, route = pay(mock, flw, PAY_OK, AIRTIME)
    sent = json.loads(route.calls.last.request.content)
    assert sent["customer_id"] == "+2348031234567"
    assert route.calls.last.request.url.path == "/v3/billers/BIL099/items/AT099/payment"


def test_callback_url_is_sent_when_configured(mock: respx.MockRouter) -> None:
    settings = Settings(
        flutterwave_base_url=BASE, flutterwave_secret_key=SECRET, callback_url="https://cb.test/h"
    )
    provider = FlutterwaveProvider(settings, httpx.Client(), catalogue=BUILTIN)
    _, route = pay(mock, provider, PAY_OK)
    assert json.loads(route.calls.last.request.content)["callback_url"] == "https://cb.test/h"


@pytest.mark.parametrize(
    "token_value", [f"Token: {TOKEN}", "2636-2054-4059-8275-7802", "2636 2054 4059 8275 7802"]
)
def test_prepaid_token_comes_from_recharge_token(
    mock: respx.MockRouter, flw: FlutterwaveProvider, token_value: str
) -> None:
    body = fixture("flutterwave_pay_success.json")
    body["data"]["recharge_token"] = token_value
    result, _ = pay(mock, flw, httpx.Response(200, json=body), PREPAID)
    assert result.outcome == S and result.token == TOKEN
    assert TOKEN not in json.dumps(result.call.response_summary if result.call else {})


def test_prepaid_without_a_token_yet_is_pending(
    mock: respx.MockRouter, flw: FlutterwaveProvider
) -> None:
    result, _ = pay(mock, flw, PAY_OK, PREPAID)
    assert result.outcome == P and result.reason_code == "token_pending"


def test_processing_message_is_pending(mock: respx.MockRouter, flw: FlutterwaveProvider) -> None:
    body = fixture("flutterwave_pay_success.json")
    body["message"] = "Bill payment is processing"
    result, _ = pay(mock, flw, httpx.Response(200, json=body))
    assert result.outcome == P


@pytest.mark.parametrize(
    ("answer", "outcome", "error_class"),
    [
        (error("Insufficient balance on wallet"), F, FLOAT),
        (error("Invalid customer id"), F, ACC),
        (error("Amount is below the minimum allowed"), F, PERM),
        (error("Bill payment failed"), F, PERM),
        (error("Duplicate reference"), U, None),
        (error("Biller timed out, please requery"), U, None),
        (error("Transaction is processing"), U, None),
        (error("Invalid authorization key", 401), F, CONF),
        (httpx.Response(403, text="<html>Forbidden: IP</html>"), F, CONF),
        (httpx.Response(429, json={"message": "rate limited"}), F, T),
        (httpx.Response(500, json={"status": "error", "message": "Internal error"}), U, T),
        (httpx.Response(502, content=b""), U, T),
        (httpx.Response(504, text="<html>Gateway Timeout</html>"), U, T),
        (httpx.Response(200, text="<html>hello</html>"), U, T),
        (httpx.Response(200, text='{"status": "success", "data": {'), U, T),
        (httpx.Response(404, text="<html>Not Found</html>"), U, T),
        (httpx.ConnectTimeout("no"), F, T),
        (httpx.ConnectError("refused"), F, T),
        (httpx.ReadTimeout("slow"), U, T),
        (httpx.RemoteProtocolError("peer closed"), U, T),
    ],
)
def test_pay_outcomes_and_pay_is_sent_once(
    mock: respx.MockRouter, flw: FlutterwaveProvider, answer: Any, outcome: Any, error_class: Any
) -> None:
    result, route = pay(mock, flw, answer)
    assert (result.outcome, result.error_class) == (outcome, error_class)
    assert route.call_count == 1
    assert result.call is not None and result.call.outcome == outcome.value


def test_error_message_rules() -> None:
    assert classify_error_message("Transaction with this reference already exists") is None
    assert classify_error_message("") == PERM


# --- status / requery ---------------------------------------------------------------------


def test_status_documented_body_is_success_for_non_token_bills(
    mock: respx.MockRouter, flw: FlutterwaveProvider
) -> None:
    body = fixture("flutterwave_status_success.json")
    body["data"]["customer_reference"] = REFERENCE
    result, route = requery(mock, flw, httpx.Response(200, json=body))
    assert result.outcome == S
    assert result.provider_reference == "247837898415"
    assert result.amount_kobo == 180_000
    assert result.provider_time == datetime(2024, 3, 24, 9, 14, 13, 373000, tzinfo=UTC)
    assert route.calls.last.request.headers["authorization"] == f"Bearer {SECRET}"


@pytest.mark.parametrize(
    ("extra", "outcome", "token"),
    [
        (f"Token : {TOKEN} Units : 80.0 kWh", S, TOKEN),
        ({"token": "2636-2054-4059-8275-7802", "units": "80.0"}, S, TOKEN),
        (None, P, None),
    ],
)
def test_status_for_prepaid_needs_the_token(
    mock: respx.MockRouter, flw: FlutterwaveProvider, extra: Any, outcome: Any, token: Any
) -> None:
    body = fixture("flutterwave_status_success.json")
    body["data"].update(customer_reference=REFERENCE, extra=extra)
    result, _ = requery(mock, flw, httpx.Response(200, json=body), PREPAID)
    assert (result.outcome, result.token) == (outcome, token)
    if token:
        assert result.units and result.units.startswith("80.0")


@pytest.mark.parametrize(
    ("status", "outcome"), [("fail", F), ("failed", F), ("pending", P), ("success", S), ("??", U)]
)
def test_status_field_wins_when_present(
    mock: respx.MockRouter, flw: FlutterwaveProvider, status: str, outcome: Any
) -> None:
    body = fixture("flutterwave_status_success.json")
    body["data"].update(customer_reference=REFERENCE, status=status)
    result, _ = requery(mock, flw, httpx.Response(200, json=body))
    assert result.outcome == outcome


def test_status_for_another_reference_is_unknown(
    mock: respx.MockRouter, flw: FlutterwaveProvider
) -> None:
    body = fixture("flutterwave_status_success.json")  # customer_reference is someone else's
    result, _ = requery(mock, flw, httpx.Response(200, json=body))
    assert result.outcome == U and result.reason_code == "reference_mismatch"


def test_not_found_is_pending_while_young_and_failed_when_old(
    mock: respx.MockRouter, flw: FlutterwaveProvider
) -> None:
    young, _ = requery(mock, flw, error("No transaction found", 404))
    assert (young.outcome, young.error_class) == (P, None)
    old, _ = requery(mock, flw, error("No transaction found", 404), reference=OLD_REFERENCE)
    assert (old.outcome, old.error_class) == (F, T)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(404, text="<html>Not Found</html>"),  # a proxy, not Flutterwave
        httpx.Response(500, text="oops"),
        httpx.Response(401, json={"status": "error", "message": "Invalid authorization key"}),
        httpx.Response(200, text="garbage"),
        error("Something else went wrong"),
        httpx.ReadTimeout("slow"),
    ],
)
def test_requery_trouble_is_never_failed(
    mock: respx.MockRouter, flw: FlutterwaveProvider, answer: Any
) -> None:
    result, _ = requery(mock, flw, answer, reference=OLD_REFERENCE)
    assert result.outcome == U


def test_requery_get_retries_a_dropped_connection(
    mock: respx.MockRouter, flw: FlutterwaveProvider
) -> None:
    body = fixture("flutterwave_status_success.json")
    body["data"]["customer_reference"] = REFERENCE
    answers = [httpx.RemoteProtocolError("x"), httpx.Response(200, json=body)]
    result, route = requery(mock, flw, answers)
    assert result.outcome == S and route.call_count == 2


# --- catalogue ----------------------------------------------------------------------------


def test_catalogue_items_and_categories(mock: respx.MockRouter, flw: FlutterwaveProvider) -> None:
    items = [
        {"item_code": "UB157", "name": "IKEDC PREPAID", "amount": 0, "fee": 100,
         "label_name": "Meter Number", "is_resolvable": True},
        {"item_code": "UB158", "name": "IKEDC POSTPAID", "amount": "0", "fee": 0},
    ]  # fmt: skip
    answer_with(mock.get("/billers/BIL112/items"), success(items))
    catalogue = flw.catalogue("ikeja-electric")
    assert [(p.code, p.amount_kobo, p.fee_kobo) for p in catalogue.products] == [
        ("UB157", None, 10_000),
        ("UB158", None, 0),
    ]
    categories = [{"code": "AIRTIME", "name": "Airtime"}]
    answer_with(mock.get("/top-bill-categories", params={"country": "NG"}), success(categories))
    assert flw.categories() == categories


def test_unsupported_biller_is_a_programming_error(flw: FlutterwaveProvider) -> None:
    with pytest.raises(NotSupported):
        flw.pay(order(biller="showmax"), REFERENCE)


# --- Paystack -----------------------------------------------------------------------------


def test_paystack_declares_no_bill_capability() -> None:
    paystack = PaystackProvider(Settings())
    assert not any(paystack.supports(t, "mtn") for t in BillType)
    for call in (
        lambda: paystack.verify_account(DSTV),
        lambda: paystack.pay(DSTV, REFERENCE),
        lambda: paystack.requery(DSTV, REFERENCE),
        lambda: paystack.catalogue("dstv"),
    ):
        with pytest.raises(NotSupported, match="no bill-payment API"):
            call()
