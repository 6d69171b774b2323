"""What leaves an adapter: storable text (issue 12 defect 1), no secret in stored bodies (defect
2), units under any spelling (defect 3), and the per-operation guard that turns an answer we
cannot read into an open outcome instead of an exception."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import httpx
import pytest

import billpay.providers.flutterwave as flutterwave_module
import billpay.providers.vtpass as vtpass_module
from billpay.catalogue import Catalogue
from billpay.orders import BillOrder, BillType
from billpay.providers.base import (
    ErrorClass,
    PaymentOutcome,
    PaymentResult,
    clean_text,
    customer_secrets,
    kobo_from_naira,
    make_attempt_reference,
    redact,
    storable_payment,
)
from billpay.providers.flutterwave import FlutterwaveProvider
from billpay.providers.vtpass import VTpassProvider
from billpay.tokens import format_token
from tests.hostile import (
    BOM,
    DSTV,
    PREPAID,
    REFERENCE,
    SETTINGS,
    TOKEN,
    adapters,
    storable,
    strings_in,
)
from tests.unit.provider_cases import NOW, fixture

BUILTIN = Catalogue.builtin()

U, T = PaymentOutcome.UNKNOWN, ErrorClass.TRANSIENT


def raw(body: bytes | str, status: int = 200, content_type: str = "application/json") -> Any:
    content = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return httpx.Response(status, content=content, headers={"content-type": content_type})


@pytest.fixture
def vtpass_flw() -> Iterator[tuple[list[httpx.Response], VTpassProvider, FlutterwaveProvider]]:
    """Both adapters on one MockTransport answering with the responses queued in the list."""
    queue: list[httpx.Response] = []
    holder = httpx.Response(200)
    vtpass, flw = adapters(holder)
    client = httpx.Client(transport=httpx.MockTransport(lambda request: queue.pop(0)))
    vtpass._client = flw._client = client
    yield queue, vtpass, flw
    client.close()


# --- defect 1: every string is storable ---------------------------------------------------


def test_clean_text_drops_nuls_replaces_lone_surrogates_and_bounds_length() -> None:
    assert clean_text("ADA OBI\x00\x00\x00") == "ADA OBI"
    assert clean_text("a\ud800b\udfffc") == "a\ufffdb\ufffdc"
    assert clean_text("\ufeffok\x1b[0m\x07") == "ok [0m"
    assert clean_text("x" * 5000, 50) == "x" * 50
    assert clean_text("line\nnext\ttab") == "line\nnext\ttab"


def test_a_nul_padded_customer_name_and_surrogate_message_come_out_storable(vtpass_flw) -> None:
    queue, vtpass, _ = vtpass_flw
    body = (
        '{"code":"000","response_description":"OK \\ud800","content":'
        '{"Customer_Name":"ADA OBI\\u0000\\u0000\\u0000","Address":"1 Marina\\u0000",'
        '"Meter_Number":"1111111111111","Min_Purchase_Amount":"1e999999"}}'
    )
    queue.append(raw(body))
    check = vtpass.verify_account(PREPAID)
    assert check.valid is True
    assert check.customer_name == "ADA OBI" and check.address == "1 Marina"
    assert check.message == "OK \ufffd"
    assert check.min_amount_kobo is None  # 1e999999 is not an amount
    assert check.call is not None
    summary = json.dumps(check.call.response_summary, ensure_ascii=False)
    assert storable(summary) and "\\u0000" not in json.dumps(check.call.response_summary)
    assert "1111111111111" not in summary


@pytest.mark.parametrize(
    "value", ["1e999999", 1e308 * 10, float("nan"), "9" * 5000, {"a": 1}, [1], "-1e999999"]
)
def test_amounts_that_are_not_amounts_are_absent_never_an_exception(value: object) -> None:
    assert kobo_from_naira(value) is None


def test_redacted_bodies_have_no_nan_no_bad_keys_and_no_huge_values() -> None:
    summary = redact({"a\x00b": float("inf"), "\ud800": "x\x00", "n": float("nan"), "x": 10**400})
    text = json.dumps(summary, allow_nan=False)  # raises on NaN / Infinity
    assert storable(text) and "\\u0000" not in text and "\\ud800" not in text
    assert len(summary["x"]) <= 200


# --- defect 1/2: bodies that are not the JSON object we expect --------------------------


def test_json_behind_a_bom_is_read(vtpass_flw) -> None:
    queue, vtpass, _ = vtpass_flw
    body = fixture("vtpass_pay_electricity_prepaid_success.json")
    queue.append(raw(BOM + json.dumps(body).encode()))
    result = vtpass.pay(PREPAID, REFERENCE)
    assert result.outcome is PaymentOutcome.SUCCESS and result.token == TOKEN


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000,  # RecursionError in the JSON parser
        '{"code":' + "9" * 5000 + "}",  # past Python's int-digit limit
        '{"token":' * 3000 + '"x"' + "}" * 3000,
        "[1, 2]",
        '"just a string"',
        "null",
        "NaN",
    ],
)
def test_unparseable_or_unexpected_json_leaves_every_pay_open(vtpass_flw, body: str) -> None:
    queue, vtpass, flw = vtpass_flw
    for provider, order in ((vtpass, PREPAID), (flw, DSTV)):
        queue.append(raw(body))
        result = provider.pay(order, REFERENCE)
        assert result.outcome is U, provider.name
        assert result.call is not None


@pytest.mark.parametrize("body", [f"<html>meter 1111111111111 token {TOKEN}</html>", "\ufeffjunk"])
def test_non_json_bodies_are_stored_masked(vtpass_flw, body: str) -> None:
    queue, vtpass, _ = vtpass_flw
    queue.append(raw(body + " call +234 803 123 4567 or ada@example.com", 502, "text/html"))
    result = vtpass.pay(PREPAID, REFERENCE)
    assert result.outcome is U and result.call is not None
    excerpt = result.call.response_summary["body_excerpt"]
    for secret in ("1111111111111", TOKEN, "803 123", "ada@"):
        assert secret not in excerpt
    assert storable(excerpt)


# --- defect 2: account keys under any spelling -------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["meterNumber", "customerNumber", "Customer_Number", "MeterNo", "smartCardNumber",
     "SmartCard_No", "customer-number", "phoneNumber", "MSISDN", "Account Number", "billersCode"],
)  # fmt: skip
def test_account_numbers_are_masked_under_any_spelling(key: str) -> None:
    summary = redact({"content": {key: "1111111111111"}, "description": "meter 1111111111111"})
    assert "1111111111111" not in json.dumps(summary)
    assert summary["content"][key].endswith("1111")


@pytest.mark.parametrize("key", ["API_KEY", "secretKey", "Secret-Key", "Authorization"])
def test_secrets_are_redacted_under_any_spelling(key: str) -> None:
    assert redact({key: "SK_secret_789"}) == {key: "[redacted]"}


@pytest.mark.parametrize("key", ["Token", "MAIN_TOKEN", "bonus-token", "Purchased_Code"])
def test_tokens_are_masked_under_any_spelling(key: str) -> None:
    assert redact({key: f"Token : {TOKEN}"}) == {key: "****-****-****-****-7802"}


def test_references_stay_whole_and_units_are_not_taken_for_tokens() -> None:
    body = {"transactionId": "17416102247366731230557150", "mainTokenUnits": "79.9"}
    assert redact(body) == body


# --- defect 3: units and tokens under any spelling ----------------------------------------


@pytest.mark.parametrize(
    ("fields", "units"),
    [
        ({"Units": "12.5"}, "12.5"),
        ({"mainTokenUnits": "40.1", "bonusTokenUnits": "2.0"}, "40.1"),
        ({"bonusTokenUnits": "2.0", "main_token_units": "40.1"}, "40.1"),
        ({"tokenUnits": 33.3}, "33.3"),
        ({"units": {"odd": 1}, "tokenUnits": "7"}, "7"),
    ],
)
def test_vtpass_units_are_read_under_any_spelling(vtpass_flw, fields, units) -> None:
    queue, vtpass, _ = vtpass_flw
    body = fixture("vtpass_pay_electricity_prepaid_success.json")
    del body["units"]
    queue.append(httpx.Response(200, json=body | fields))
    result = vtpass.pay(PREPAID, REFERENCE)
    assert result.outcome is PaymentOutcome.SUCCESS and result.units == units


def test_vtpass_main_token_wins_over_bonus_token(vtpass_flw) -> None:
    queue, vtpass, _ = vtpass_flw
    body = fixture("vtpass_pay_electricity_prepaid_success.json")
    for key in ("token", "purchased_code"):
        del body[key]
    body |= {"bonusToken": "1111 2222 3333 4444 5555", "MainToken": TOKEN}
    queue.append(httpx.Response(200, json=body))
    assert vtpass.pay(PREPAID, REFERENCE).token == TOKEN


def test_flutterwave_units_are_read_under_any_spelling(vtpass_flw) -> None:
    queue, _, flw = vtpass_flw
    data = {"flw_ref": "BPUSSD1", "recharge_token": TOKEN, "Units": "55.5", "amount": 2000}
    queue.append(httpx.Response(200, json={"status": "success", "message": "ok", "data": data}))
    flw_order = PREPAID
    result = flw.pay(flw_order, REFERENCE)
    assert result.outcome is PaymentOutcome.SUCCESS
    assert (result.token, result.units) == (TOKEN, "55.5")


# --- the guard: an answer the mapping cannot read is an outcome --------------------------


def _broken(*_: Any) -> Any:
    raise KeyError("mapping bug")


@pytest.mark.parametrize("module", [vtpass_module, flutterwave_module])
def test_a_mapping_exception_after_the_call_is_an_open_outcome(
    vtpass_flw, monkeypatch, module, caplog
) -> None:
    queue, vtpass, flw = vtpass_flw
    provider, order = (vtpass, PREPAID) if module is vtpass_module else (flw, DSTV)
    for name in ("pay_result", "requery_result", "verify_result"):
        monkeypatch.setattr(module, name, _broken)
    queue.extend(raw(json.dumps({"code": "000", "meter": "1111111111111"})) for _ in range(3))
    for result in (provider.pay(order, REFERENCE), provider.requery(order, REFERENCE)):
        assert (result.outcome, result.error_class) == (U, T)  # never FAILED: maybe charged
        assert result.call is not None and result.call.http_status == 200
    check = provider.verify_account(order)
    assert (check.valid, check.error_class, check.reason_code) == (
        None,
        T,
        "unreadable_response",
    )
    assert "could not read the answer" in caplog.text and "1111111111111" not in caplog.text


def test_a_catalogue_mapping_exception_is_transient(vtpass_flw, monkeypatch) -> None:
    queue, vtpass, _ = vtpass_flw
    monkeypatch.setattr(vtpass_module, "_product", _broken)
    queue.append(httpx.Response(200, json={"content": {"variations": [{"name": "x"}]}}))
    catalogue = vtpass.catalogue("dstv")
    assert catalogue.products == () and catalogue.error_class is T


def test_a_programming_error_before_any_call_still_raises() -> None:
    provider = VTpassProvider(
        SETTINGS, httpx.Client(transport=httpx.MockTransport(_broken)), catalogue=BUILTIN
    )
    with pytest.raises(ValueError, match="attempt reference"):
        provider.pay(PREPAID, "not-a-reference")


def test_an_answer_behind_a_bom_and_a_wrong_charset_label_is_read(vtpass_flw) -> None:
    queue, vtpass, _ = vtpass_flw
    body = fixture("vtpass_pay_electricity_prepaid_success.json")
    for label in ("application/json; charset=iso-8859-1", "text/html; charset=windows-1252"):
        queue.append(raw(BOM + json.dumps(body).encode(), content_type=label))
        result = vtpass.pay(PREPAID, REFERENCE)
        assert (result.outcome, result.token) == (PaymentOutcome.SUCCESS, TOKEN), label


# --- the guard only covers reading an answer -------------------------------------------------


def _unencodable(amount: Any) -> Any:
    return Decimal("2000")  # json cannot encode a Decimal: a bug in building the request


@pytest.mark.parametrize("provider_name", ["vtpass", "flutterwave"])
def test_a_request_that_cannot_be_built_raises_and_nothing_is_sent(
    monkeypatch, provider_name: str
) -> None:
    sent: list[httpx.Request] = []
    client = httpx.Client(transport=httpx.MockTransport(lambda r: sent.append(r) or raw("{}")))
    vtpass, flw = adapters(httpx.Response(200))
    provider, order = (vtpass, PREPAID) if provider_name == "vtpass" else (flw, DSTV)
    provider._client = client
    monkeypatch.setattr(
        vtpass_module if provider is vtpass else flutterwave_module, "naira_amount", _unencodable
    )
    with pytest.raises(TypeError, match="Decimal"):
        provider.pay(order, REFERENCE)
    assert sent == []


def test_headers_that_cannot_be_read_raise_instead_of_leaving_the_pay_open(monkeypatch) -> None:
    vtpass, _ = adapters(httpx.Response(200, json={"code": "000"}))

    def no_headers(method: str) -> dict[str, str]:
        raise AttributeError("settings bug")

    monkeypatch.setattr(vtpass, "_headers", no_headers)
    with pytest.raises(AttributeError, match="settings bug"):
        vtpass.pay(PREPAID, REFERENCE)


def test_the_guard_logs_its_catch_at_error_with_frames_and_no_values(
    vtpass_flw, monkeypatch, caplog
) -> None:
    queue, vtpass, _ = vtpass_flw
    monkeypatch.setattr(vtpass_module, "pay_result", _broken)
    queue.append(raw(json.dumps({"code": "000", "meter": "1111111111111"})))
    with caplog.at_level(logging.ERROR, logger="billpay.providers.http"):
        result = vtpass.pay(PREPAID, REFERENCE)
    assert result.reason_code == "unreadable_response"
    (record,) = [r for r in caplog.records if r.name == "billpay.providers.http"]
    assert record.levelno == logging.ERROR
    assert "in _broken" in caplog.text and "test_provider_boundary.py" in caplog.text
    assert "1111111111111" not in caplog.text


def test_operations_take_keyword_arguments(vtpass_flw) -> None:
    queue, vtpass, _ = vtpass_flw
    queue.append(httpx.Response(200, json=fixture("vtpass_pay_electricity_prepaid_success.json")))
    assert vtpass.pay(order=PREPAID, reference=REFERENCE).token == TOKEN
    queue.append(raw("{}"))
    result = vtpass.requery(PREPAID, reference=REFERENCE)
    assert result.outcome is U


def test_a_mapping_exception_with_keyword_arguments_is_still_an_open_outcome(
    vtpass_flw, monkeypatch
) -> None:
    queue, vtpass, _ = vtpass_flw
    monkeypatch.setattr(vtpass_module, "pay_result", _broken)
    queue.append(raw(json.dumps({"code": "000"})))
    result = vtpass.pay(order=PREPAID, reference=REFERENCE)
    assert (result.outcome, result.reason_code) == (U, "unreadable_response")
    assert result.call is not None and result.call.reference == REFERENCE


# --- keys quoted back in free text ------------------------------------------------------------

FLW_SECRET = SETTINGS.flutterwave_secret_key.get_secret_value()
VTPASS_KEYS = [
    SETTINGS.vtpass_api_key.get_secret_value(),
    SETTINGS.vtpass_secret_key.get_secret_value(),
    SETTINGS.vtpass_public_key.get_secret_value(),
]
# Distinctive parts of the keys above: a partly masked key is still a leak.
KEY_PARTS = ["FLWSECK", "abcdef", "KEY-123", "public_456", "secret_789"]


def _leaks(result: Any) -> list[str]:
    text = json.dumps(strings_in(result), ensure_ascii=False)
    return [part for part in KEY_PARTS if part in text]


def test_a_flutterwave_key_quoted_in_an_error_is_not_stored(vtpass_flw) -> None:
    queue, _, flw = vtpass_flw
    message = f"Authorization: Bearer {FLW_SECRET} is not valid"
    for status in (401, 400):
        queue.append(httpx.Response(status, json={"status": "error", "message": message}))
        result = flw.pay(DSTV, REFERENCE)
        assert _leaks(result) == []
    queue.append(httpx.Response(400, json={"status": "error", "message": message}))
    check = flw.verify_account(DSTV)
    assert check.message and "[redacted]" in check.message
    assert _leaks(check) == []


def test_vtpass_keys_quoted_in_answers_are_not_stored(vtpass_flw) -> None:
    queue, vtpass, _ = vtpass_flw
    quoted = "keys " + " / ".join(VTPASS_KEYS)
    queue.append(httpx.Response(200, json={"code": "087", "response_description": quoted}))
    queue.append(raw(f"<html>{quoted}</html>", 502, "text/html"))
    queue.append(httpx.Response(200, json={"code": "000", "content": {"error": quoted}}))
    for result in (vtpass.pay(PREPAID, REFERENCE), vtpass.pay(PREPAID, REFERENCE)):
        assert _leaks(result) == []
    assert _leaks(vtpass.verify_account(PREPAID)) == []


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer FLWSECK_TEST-abcdef0123456789-X",
        "bearer eyJhbGciOi.J9.abc",
        "key FLWSECK-0a1b2c3d4e5f-X rejected",
        "public key FLWPUBK_TEST-0a1b2c3d4e5f-X",
    ],
)
def test_key_shaped_text_is_redacted_in_stored_bodies(text: str) -> None:
    stored = json.dumps(redact({"message": text, "data": [text]}))
    for part in ("FLWSECK", "FLWPUBK", "abcdef", "0a1b2c", "eyJhbG"):
        assert part not in stored


# --- numbers and references in stored bodies ---------------------------------------------------


@pytest.mark.parametrize("body", [{"MeterNo": 45012345678.0}, {"x": [45012345678.0]}])
def test_float_typed_meters_are_masked_like_ints(body: dict[str, Any]) -> None:
    stored = json.dumps(redact(body))
    assert "45012345678" not in stored and "5678" in stored


@pytest.mark.parametrize(
    ("key", "value", "hidden"),
    [
        ("transactionReference", f"TOKEN {TOKEN}", TOKEN),
        ("exchangeReference", TOKEN, TOKEN),
        ("customerRef", "45012345678", "45012345678"),
        ("customer_reference", "+234 803 123 4567", "803 123"),
        ("paymentRef", "0101 2345 6789", "0101 2345"),
        ("requestId", 45012345678, "45012345678"),
    ],
)
def test_meters_phones_and_tokens_under_reference_keys_are_masked(
    key: str, value: Any, hidden: str
) -> None:
    assert hidden not in json.dumps(redact({key: value}))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("customer_reference", REFERENCE),  # ours: Lagos stamp + bill reference + A<n>
        ("request_id", make_attempt_reference("0123456789", 12, NOW)),
        ("tx_ref", "CF-FLYAPI-20240324091413750321"),  # Flutterwave's, 20 digits in it
        ("transactionId", "17416102247366731230557150"),  # VTpass's, 26 digits
        ("requestId", "2025031013366434255"),
        ("flw_ref", "BPUSSD17175111565077679855"),
    ],
)
def test_our_and_the_providers_transaction_references_stay_readable(key: str, value: str) -> None:
    assert redact({key: value}) == {key: value}


# --- issue 12 review 3: the customer's own account and phone, masked before cutting -------------

POSTPAID = replace(PREPAID, account_number="12345678901234", account_type="postpaid")
WATER = BillOrder(
    reference="7K3M9QZ2XA", phone="08031234567", bill_type=BillType.WATER, biller="fct-water",
    account_number="AB1234X", amount_kobo=500_000,
)  # fmt: skip


def _shows(result: Any, *values: str) -> list[str]:
    """The stored strings of ``result`` that still carry one of ``values`` (compared on letters
    and digits only, so a grouped or spaced copy counts)."""

    def compact(text: str) -> str:
        return "".join(c for c in text.lower() if c.isalnum())

    return [s for s in strings_in(result) for v in values if compact(v) in compact(s)]


def test_a_pay_answer_echoing_the_customers_account_and_phone_stores_neither(vtpass_flw) -> None:
    queue, vtpass, _ = vtpass_flw
    body = fixture("vtpass_pay_electricity_prepaid_success.json")
    body["content"]["transactions"]["unique_element"] = "N/A"
    body |= {
        "customerRef": "12345678901234",
        "ref": 12345678901234,
        "exchangeReference": "1234 5678 9012 34",
        "response_description": "PAID 1234-5678-9012-34 for +234 803 123 4567 / 2348031234567",
        "customerName": "ADA 8031234567",
    }
    for order in (POSTPAID, replace(PREPAID, account_number="12345678901234")):
        queue.append(httpx.Response(200, json=body))
        result = vtpass.pay(order, REFERENCE)
        assert result.outcome == PaymentOutcome.SUCCESS
        assert _shows(result, "12345678901234", "8031234567") == []
    # The customer's purchase is untouched: the receipt shows the whole token.
    assert result.token == TOKEN and format_token(result.token) == "2636-2054-4059-8275-7802"


def test_a_short_postpaid_account_echoed_under_a_reference_key_is_not_stored(vtpass_flw) -> None:
    queue, vtpass, _ = vtpass_flw
    order = replace(POSTPAID, account_number="4501234")
    queue.append(httpx.Response(200, json={"code": "016", "customerRef": "4501234"}))
    queue.append(httpx.Response(200, json={"code": "016", "requestId": 4501234}))
    for _ in range(2):
        assert _shows(vtpass.pay(order, REFERENCE), "4501234") == []


def test_an_alphanumeric_water_account_is_masked_in_free_text(vtpass_flw) -> None:
    queue, _, flw = vtpass_flw
    message = "customer ab 1234 x not found; note: acct AB1234X for water"
    queue.append(httpx.Response(400, json={"status": "error", "message": message}))
    queue.append(raw(f"<html>{message}</html>", 502, "text/html"))
    queue.append(httpx.Response(400, json={"status": "error", "data": {"note": message}}))
    results = [flw.verify_account(WATER), flw.pay(WATER, REFERENCE), flw.pay(WATER, REFERENCE)]
    for result in results:
        assert _shows(result, "AB1234X") == []
    assert results[0].message and "[redacted]" in results[0].message


@pytest.mark.parametrize(
    ("body", "account"),
    [
        ({"customerRef": "12345678901234"}, "12345678901234"),  # a 14-digit postpaid account
        ({"customerRef": "4501234"}, "4501234"),
        ({"ref": 12345678901234}, "12345678901234"),
        ({"note": "acct 1234 5678 9012 34 / 0803 123 4567"}, "12345678901234"),
        ({"Customer Ref 4501234": 1}, "4501234"),
    ],
)
def test_redact_with_the_orders_values_hides_them_under_any_key(
    body: dict[str, Any], account: str
) -> None:
    secrets = customer_secrets(replace(POSTPAID, account_number=account))
    digits = "".join(c for c in json.dumps(redact(body, secrets=secrets)) if c.isdigit())
    assert account not in digits and "8031234567" not in digits


def test_customer_secrets_cover_every_spelling_of_a_nigerian_phone() -> None:
    secrets = customer_secrets(replace(DSTV, phone="0803-123-4567"))
    assert {"0025401100", "08031234567", "2348031234567", "8031234567"} <= set(secrets)


FLW_KEY = SETTINGS.flutterwave_secret_key.get_secret_value()
VTPASS_KEY = SETTINGS.vtpass_secret_key.get_secret_value()


def test_text_is_masked_before_it_is_cut_so_a_key_at_the_cut_is_not_half_stored() -> None:
    # Masked emails shrink (32 characters to 10), so text far into the message is stored. Under
    # the old order (cut at twice the limit, then mask) a key straddling that cut lost its end,
    # no longer matched, and its first half was stored.
    emails = "abcdefghijklmnopqrstuvwxyz@x.io " * 18  # 576 characters
    message = emails + "x" * 14 + VTPASS_KEY  # the message's old cut (600) splits the key
    result = storable_payment(PaymentResult(PaymentOutcome.FAILED, message=message), [VTPASS_KEY])
    assert result.message and "x" * 14 in result.message and "SK_sec" not in result.message
    leaf = emails[: 32 * 12] + "x" * 8 + VTPASS_KEY  # a stored string's old cut (400)
    stored = json.dumps(redact({"data": [leaf]}, secrets=[VTPASS_KEY]))
    assert "x" * 8 in stored and "SK_sec" not in stored


def test_a_non_json_body_is_masked_whole_before_its_excerpt_is_cut(vtpass_flw) -> None:
    queue, vtpass, _ = vtpass_flw
    # NULs vanish when the text is cleaned, so the key lands inside the stored excerpt; the raw
    # body used to be cut at 500 characters first, leaving "SK_secret_" unrecognisable.
    queue.append(raw("\x00" * 490 + f"{VTPASS_KEY} rejected", 502, "text/html"))
    queue.append(raw("<p>" + f"{FLW_KEY} " * 12 + f"{FLW_KEY}</p>", 502, "text/html"))
    for _ in range(2):
        stored = json.dumps(strings_in(vtpass.pay(PREPAID, REFERENCE)))
        assert "SK_secret" not in stored and FLW_KEY[:10] not in stored
