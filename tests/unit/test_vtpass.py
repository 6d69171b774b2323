from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from billpay.catalogue import Catalogue
from billpay.config import Settings
from billpay.orders import BillOrder, BillType
from billpay.providers.base import ErrorClass, PaymentOutcome, PaymentResult
from billpay.providers.vtpass import VTPASS_CODES, VTpassProvider, vtpass_request_id
from tests.unit.outcomes import ACC, CONF, FLOAT, PERM, F, P, S, T, U
from tests.unit.provider_cases import NOW, OLD_REFERENCE, REFERENCE, fixture, order_maker

BUILTIN = Catalogue.builtin()

BASE = "https://vtpass.test/api"
order = order_maker(
    bill_type=BillType.ELECTRICITY, biller="ikeja-electric", account_number="1111111111111",
    amount_kobo=200_000, phone="08011111111", account_type="prepaid",
)  # fmt: skip


AIRTIME = order(
    bill_type=BillType.AIRTIME, biller="mtn", account_number="08031234567", account_type=None
)


def answer_with(route: respx.Route, answer: Any) -> respx.Route:
    """A response, or an exception (or list of them) raised by the transport."""
    if isinstance(answer, httpx.Response):
        return route.mock(return_value=answer)
    return route.mock(side_effect=answer)


@pytest.fixture
def settings() -> Settings:
    return Settings(
        vtpass_base_url=BASE,
        vtpass_api_key="api-KEY-123",
        vtpass_public_key="PK_public_456",
        vtpass_secret_key="SK_secret_789",
    )


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def vtpass(settings: Settings) -> Iterator[VTpassProvider]:
    provider = VTpassProvider(
        settings, httpx.Client(), clock=lambda: NOW + timedelta(minutes=1), catalogue=BUILTIN
    )
    yield provider
    provider.close()


def pay_answer(
    mock: respx.MockRouter, vtpass: VTpassProvider, answer: Any, o: BillOrder | None = None
) -> tuple[PaymentResult, respx.Route]:
    route = answer_with(mock.post("/pay"), answer)
    return vtpass.pay(o or order(), REFERENCE), route


# --- the acceptance checks ---------------------------------------------------------------


def test_documented_electricity_success_body_yields_success_with_token_and_units(
    mock: respx.MockRouter, vtpass: VTpassProvider
) -> None:
    body = fixture("vtpass_pay_electricity_prepaid_success.json")
    result, route = pay_answer(mock, vtpass, httpx.Response(200, json=body))
    assert result.outcome == PaymentOutcome.SUCCESS
    assert result.token == "26362054405982757802"
    assert result.units == "79.9 kWh"
    assert result.provider_reference == "17416102247366731230557150"
    assert result.amount_kobo == 200_000
    assert result.provider_time == datetime(2025, 3, 10, 12, 37, 4, tzinfo=UTC)
    assert route.call_count == 1


def test_processed_code_with_inner_status_failed_is_failed(
    mock: respx.MockRouter, vtpass: VTpassProvider
) -> None:
    body = fixture("vtpass_pay_electricity_prepaid_success.json")
    body["content"]["transactions"]["status"] = "failed"
    body["response_description"] = "TRANSACTION FAILED"
    for key in ("token", "purchased_code"):
        body[key] = ""
    result, _ = pay_answer(mock, vtpass, httpx.Response(200, json=body))
    assert result.outcome == PaymentOutcome.FAILED
    assert result.error_class == ErrorClass.PERMANENT


def test_read_timeout_on_pay_is_unknown_and_pay_is_sent_exactly_once(
    mock: respx.MockRouter, vtpass: VTpassProvider
) -> None:
    result, route = pay_answer(mock, vtpass, httpx.ReadTimeout("slow"))
    assert result.outcome == PaymentOutcome.UNKNOWN
    assert route.call_count == 1
    assert len(mock.calls) == 1
    assert result.call is not None and result.call.http_status is None


# --- pay ----------------------------------------------------------------------------------


def test_pay_sends_the_documented_electricity_body_with_post_keys(
    mock: respx.MockRouter, vtpass: VTpassProvider
) -> None:
    body = fixture("vtpass_pay_electricity_prepaid_success.json")
    _, route = pay_answer(mock, vtpass, httpx.Response(200, json=body))
    request = route.calls.last.request
    sent = json.loads(request.content)
    assert sent == {
        "request_id": REFERENCE,
        "serviceID": "ikeja-electric",
        "billersCode": "1111111111111",
        "variation_code": "prepaid",
        "amount": 2000,
        "phone": "08011111111",
    }
    assert REFERENCE.startswith("202611261430")
    assert request.headers["api-key"] == "api-KEY-123"
    assert request.headers["secret-key"] == "SK_secret_789"
    assert "public-key" not in request.headers


@pytest.mark.parametrize(
    ("o", "expected"),
    [
        (AIRTIME, {"serviceID": "mtn", "phone": "08031234567", "amount": 2000}),
        (
            order(bill_type=BillType.DATA, biller="9mobile-data", account_number="08091234567",
                  account_type=None, product_code="eti-1gb-1000", amount_kobo=100_050),
            {"serviceID": "etisalat-data", "billersCode": "08091234567", "amount": "1000.50",
             "variation_code": "eti-1gb-1000", "phone": "08011111111"},
        ),
        (
            order(bill_type=BillType.CABLE_TV, biller="dstv", account_number="1212121212",
                  account_type=None, product_code="dstv-padi"),
            {"serviceID": "dstv", "billersCode": "1212121212", "variation_code": "dstv-padi",
             "subscription_type": "change", "amount": 2000, "phone": "08011111111"},
        ),
    ],
)  # fmt: skip
def test_pay_bodies_per_bill_type(
    vtpass: VTpassProvider, o: BillOrder, expected: dict[str, Any]
) -> None:
    assert vtpass.pay_body(o, REFERENCE) == {"request_id": REFERENCE, **expected}


def test_old_format_airtime_success(mock: respx.MockRouter, vtpass: VTpassProvider) -> None:
    body = fixture("vtpass_pay_airtime_success_old_format.json")
    result, _ = pay_answer(mock, vtpass, httpx.Response(200, json=body), AIRTIME)
    assert result.outcome == PaymentOutcome.SUCCESS
    assert result.token is None
    assert result.provider_reference == "1563873435424"
    assert result.provider_time == datetime(2019, 7, 23, 9, 17, 16, tzinfo=UTC)  # Lagos 10:17


@pytest.mark.parametrize(
    ("inner", "outcome", "error_class"),
    [("delivered", S, None), ("reversed", F, PERM), ("initiated", P, None), ("pending", P, None),
     ("weird", U, None)],
)  # fmt: skip
def test_inner_status_decides_processed_answers(
    mock: respx.MockRouter, vtpass: VTpassProvider, inner: str, outcome: Any, error_class: Any
) -> None:
    body = fixture("vtpass_pay_electricity_prepaid_success.json")
    body["content"]["transactions"]["status"] = inner
    result, _ = pay_answer(mock, vtpass, httpx.Response(200, json=body))
    assert (result.outcome, result.error_class) == (outcome, error_class)


def test_prepaid_delivered_without_token_stays_pending(
    mock: respx.MockRouter, vtpass: VTpassProvider
) -> None:
    body = fixture("vtpass_pay_electricity_prepaid_success.json")
    for key in ("token", "purchased_code"):
        body[key] = ""
    result, _ = pay_answer(mock, vtpass, httpx.Response(200, json=body))
    assert result.outcome == PaymentOutcome.PENDING


# Written independently of VTPASS_CODES: what each REFERENCE.md code means on pay.
PAY_CODES = {
    "099": (P, None), "089": (P, None), "016": (F, PERM), "040": (F, PERM), "091": (F, T),
    "014": (U, None), "015": (F, T), "018": (F, FLOAT), "019": (F, T),
    "010": (F, PERM), "011": (F, PERM), "012": (F, PERM), "013": (F, PERM), "017": (F, PERM),
    "021": (F, CONF), "022": (F, CONF), "023": (F, CONF), "024": (F, CONF), "027": (F, CONF),
    "087": (F, CONF), "030": (F, T), "034": (F, T), "035": (F, T), "083": (U, T), "085": (F, CONF),
    "020": (U, None), "999": (U, None),
}  # fmt: skip


@pytest.mark.parametrize(("code", "expected"), sorted(PAY_CODES.items()))
def test_every_reference_code_maps_on_pay(
    mock: respx.MockRouter, vtpass: VTpassProvider, code: str, expected: tuple[Any, Any]
) -> None:
    answer = httpx.Response(200, json={"code": code, "response_description": "X", "content": {}})
    result, route = pay_answer(mock, vtpass, answer)
    assert (result.outcome, result.error_class) == expected
    assert result.reason_code == code
    assert route.call_count == 1


def test_code_table_covers_every_reference_code() -> None:
    assert set(PAY_CODES) - {"999"} <= set(VTPASS_CODES)


def test_code_wins_over_http_status_and_numeric_codes_are_padded(
    mock: respx.MockRouter, vtpass: VTpassProvider
) -> None:
    result, _ = pay_answer(mock, vtpass, httpx.Response(500, json={"code": 16}))
    assert (result.outcome, result.error_class) == (F, PERM)
    result, _ = pay_answer(mock, vtpass, httpx.Response(400, json={"code": "018"}))
    assert (result.outcome, result.error_class) == (F, FLOAT)


@pytest.mark.parametrize(
    ("response", "outcome", "error_class"),
    [
        (httpx.Response(502, content=b""), U, T),
        (httpx.Response(500, text="<html>oops</html>"), U, T),
        (httpx.Response(200, text="<html><body>Maintenance</body></html>"), U, T),
        (httpx.Response(200, text='{"code": "000", "content": '), U, T),
        (httpx.Response(200, json=["not", "an", "object"]), U, T),
        (httpx.Response(200, json={"response_description": "no code"}), U, T),
        (httpx.Response(401, text="Unauthorized"), F, CONF),
        (httpx.Response(403, json={"message": "forbidden"}), F, CONF),
        (httpx.Response(429, text="slow down"), F, T),
        (httpx.Response(401, json={"code": "087", "response_description": "BAD KEYS"}), F, CONF),
    ],
)
def test_pay_answers_without_a_usable_code(
    mock: respx.MockRouter, vtpass: VTpassProvider, response: httpx.Response, outcome: Any,
    error_class: Any,
) -> None:  # fmt: skip
    result, route = pay_answer(mock, vtpass, response)
    assert (result.outcome, result.error_class) == (outcome, error_class)
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("error", "outcome", "error_class"),
    [
        (httpx.ConnectTimeout("no connect"), F, T),
        (httpx.ConnectError("refused"), F, T),
        (httpx.ReadTimeout("slow"), U, T),
        (httpx.WriteTimeout("slow"), U, T),
        (httpx.RemoteProtocolError("dropped"), U, T),
        (httpx.ReadError("reset"), U, T),
    ],
)
def test_transport_errors_on_pay_are_never_retried(
    mock: respx.MockRouter, vtpass: VTpassProvider, error: Exception, outcome: Any,
    error_class: Any,
) -> None:  # fmt: skip
    result, route = pay_answer(mock, vtpass, error)
    assert (result.outcome, result.error_class) == (outcome, error_class)
    assert route.call_count == 1


def test_call_record_is_redacted_and_timed(mock: respx.MockRouter, vtpass: VTpassProvider) -> None:
    body = fixture("vtpass_pay_electricity_prepaid_success.json")
    result, _ = pay_answer(mock, vtpass, httpx.Response(200, json=body))
    call = result.call
    assert call is not None
    assert (call.provider, call.operation, call.reference) == ("vtpass", "pay", REFERENCE)
    assert call.outcome == "success" and call.error_class is None and call.http_status == 200
    assert call.started_at.tzinfo is not None and call.finished_at >= call.started_at
    assert isinstance(call.latency_ms, int)
    text = json.dumps(call.response_summary)
    assert "26362054405982757802" not in text
    assert "****-****-****-****-7802" in text
    for secret in ("api-KEY-123", "SK_secret_789", "PK_public_456"):
        assert secret not in text
    assert call.response_summary["content"]["transactions"]["unique_element"] == "*********1111"


# --- requery ------------------------------------------------------------------------------


def requery(
    mock: respx.MockRouter, vtpass: VTpassProvider, answer: Any, reference: str = REFERENCE
) -> tuple[PaymentResult, respx.Route]:
    route = answer_with(mock.post("/requery"), answer)
    return vtpass.requery(order(), reference), route


def test_requery_uses_the_same_request_id_and_reads_extras(
    mock: respx.MockRouter, vtpass: VTpassProvider
) -> None:
    body = fixture("vtpass_pay_electricity_prepaid_success.json")
    for key in ("token", "purchased_code"):
        del body[key]
    body["content"]["transactions"]["extras"] = "Token : 2636-2054-4059-8275-7802"
    result, route = requery(mock, vtpass, httpx.Response(200, json=body))
    assert json.loads(route.calls.last.request.content) == {"request_id": REFERENCE}
    assert route.calls.last.request.headers["secret-key"] == "SK_secret_789"
    assert result.outcome == S and result.token == "26362054405982757802"
    assert result.call is not None and result.call.operation == "requery"


def test_unknown_request_id_is_pending_while_young_and_failed_when_old(
    mock: respx.MockRouter, vtpass: VTpassProvider
) -> None:
    answer = httpx.Response(200, json={"code": "015", "response_description": "INVALID REQUEST ID"})
    young, _ = requery(mock, vtpass, answer)
    assert (young.outcome, young.error_class) == (P, None)
    old, _ = requery(mock, vtpass, answer, OLD_REFERENCE)
    assert (old.outcome, old.error_class) == (F, T)


@pytest.mark.parametrize(
    ("code", "outcome", "error_class"),
    [("016", F, PERM), ("040", F, PERM), ("091", F, T), ("099", P, None), ("089", P, None),
     ("087", U, CONF), ("027", U, CONF), ("018", U, FLOAT), ("083", U, T), ("014", U, None),
     ("030", U, T), ("999", U, None)],
)  # fmt: skip
def test_requery_codes(
    mock: respx.MockRouter, vtpass: VTpassProvider, code: str, outcome: Any, error_class: Any
) -> None:
    result, _ = requery(mock, vtpass, httpx.Response(200, json={"code": code}))
    assert (result.outcome, result.error_class) == (outcome, error_class)


@pytest.mark.parametrize(
    "answer",
    [httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), httpx.Response(503, text="busy"),
     httpx.Response(200, text="<html/>")],
)  # fmt: skip
def test_requery_trouble_is_unknown(
    mock: respx.MockRouter, vtpass: VTpassProvider, answer: Any
) -> None:
    result, _ = requery(mock, vtpass, answer)
    assert result.outcome == U


def test_pay_without_a_stamped_reference_is_a_programming_error(vtpass: VTpassProvider) -> None:
    with pytest.raises(ValueError):
        vtpass.pay(order(), "not-stamped")


# --- verify and catalogue -----------------------------------------------------------------


def test_merchant_verify_documented_prepaid_success(
    mock: respx.MockRouter, vtpass: VTpassProvider
) -> None:
    body = fixture("vtpass_merchant_verify_prepaid_success.json")
    route = mock.post("/merchant-verify").mock(return_value=httpx.Response(200, json=body))
    check = vtpass.verify_account(order())
    assert check.valid is True
    assert (check.customer_name, check.address) == ("TESTMETER1", "ABULE EGBA BU ABULE")
    assert check.arrears_kobo is None and check.min_amount_kobo is None
    assert json.loads(route.calls.last.request.content) == {
        "billersCode": "1111111111111",
        "serviceID": "ikeja-electric",
        "type": "prepaid",
    }
    assert check.call is not None and check.call.outcome == "valid"


@pytest.mark.parametrize(
    "content",
    [{"WrongBillersCode": True}, {"error": "Meter not found"}, {"WrongBillersCode": "true"}],
)
def test_merchant_verify_code_000_can_still_mean_invalid(
    mock: respx.MockRouter, vtpass: VTpassProvider, content: dict[str, Any]
) -> None:
    answer = httpx.Response(200, json={"code": "000", "content": content})
    mock.post("/merchant-verify").mock(return_value=answer)
    check = vtpass.verify_account(order())
    assert check.valid is False and check.error_class == ACC


@pytest.mark.parametrize(
    ("answer", "error_class"),
    [
        (httpx.Response(200, json={"code": "087"}), CONF),
        (httpx.Response(200, json={"code": "027"}), CONF),
        (httpx.Response(200, json={"code": "012"}), PERM),
        (httpx.Response(200, json={"code": "030"}), T),
        (httpx.Response(500, text="down"), T),
        (httpx.Response(401, text="no"), CONF),
        (httpx.ReadTimeout("slow"), T),
    ],
)
def test_merchant_verify_that_cannot_tell(
    mock: respx.MockRouter, vtpass: VTpassProvider, answer: Any, error_class: Any
) -> None:
    answer_with(mock.post("/merchant-verify"), answer)
    check = vtpass.verify_account(order())
    assert check.valid is None and check.error_class == error_class


def test_phone_bills_need_no_provider_check(mock: respx.MockRouter, vtpass: VTpassProvider) -> None:
    check = vtpass.verify_account(AIRTIME)
    assert check.valid is True and check.call is None
    assert not mock.calls


@pytest.mark.parametrize("key", ["variations", "varations"])
def test_service_variations_accepts_both_spellings(
    mock: respx.MockRouter, vtpass: VTpassProvider, key: str
) -> None:
    variations = [
        {"variation_code": "mtn-1gb-1000", "name": "1GB", "variation_amount": "1000.00",
         "fixedPrice": "Yes"},
        {"variation_code": "prepaid", "name": "Prepaid", "variation_amount": "0",
         "fixedPrice": "No"},
    ]  # fmt: skip
    answer = httpx.Response(200, json={"response_description": "000", "content": {key: variations}})
    route = answer_with(mock.get("/service-variations", params={"serviceID": "mtn-data"}), answer)
    catalogue = vtpass.catalogue("mtn-data")
    assert [(p.code, p.amount_kobo) for p in catalogue.products] == [
        ("mtn-1gb-1000", 100_000),
        ("prepaid", None),
    ]
    headers = route.calls.last.request.headers
    assert headers["public-key"] == "PK_public_456" and "secret-key" not in headers


def test_catalogue_get_retries_connect_errors(
    mock: respx.MockRouter, vtpass: VTpassProvider
) -> None:
    ok = httpx.Response(200, json={"content": {"variations": []}})
    route = mock.get("/service-variations").mock(side_effect=[httpx.ConnectError("x"), ok])
    assert vtpass.catalogue("dstv").error_class is None
    assert route.call_count == 2


# --- request ids --------------------------------------------------------------------------


def test_request_id_is_the_stamped_attempt_reference() -> None:
    assert REFERENCE == "2026112614307K3M9QZ2XAA1"
    assert vtpass_request_id(REFERENCE, NOW + timedelta(days=3)) == REFERENCE


def test_request_id_for_an_unstamped_reference_gets_the_lagos_stamp() -> None:
    assert vtpass_request_id("abc-123", NOW) == "202611261430abc123"
    late = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)  # already the 27th in Lagos
    assert vtpass_request_id("X1", late) == "202611270030X1"


def test_undecodable_body_on_pay_is_unknown(mock: respx.MockRouter, vtpass: VTpassProvider) -> None:
    result, route = pay_answer(mock, vtpass, httpx.DecodingError("bad gzip"))
    assert (result.outcome, result.error_class) == (U, T)
    assert route.call_count == 1


@pytest.mark.parametrize("zero", [0, "0", "0.00", 0.0])
def test_a_zero_minimum_does_not_hide_the_real_one(
    mock: respx.MockRouter, vtpass: VTpassProvider, zero: Any
) -> None:
    content = {
        "Customer_Name": "ADA OBI",
        "Min_Purchase_Amount": zero,
        "Minimum_Amount": "500",
        "Max_Purchase_Amount": zero,
        "Maximum_Amount": 250000,
    }
    answer = httpx.Response(200, json={"code": "000", "content": content})
    mock.post("/merchant-verify").mock(return_value=answer)
    check = vtpass.verify_account(order())
    assert (check.min_amount_kobo, check.max_amount_kobo) == (50_000, 25_000_000)


def test_zero_limits_alone_mean_no_limit(mock: respx.MockRouter, vtpass: VTpassProvider) -> None:
    content = {"Customer_Name": "ADA OBI", "Min_Purchase_Amount": 0, "Max_Purchase_Amount": "0"}
    answer = httpx.Response(200, json={"code": "000", "content": content})
    mock.post("/merchant-verify").mock(return_value=answer)
    check = vtpass.verify_account(order())
    assert check.valid is True
    assert (check.min_amount_kobo, check.max_amount_kobo) == (None, None)
