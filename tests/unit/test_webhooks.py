"""Provider webhooks in (parsing, the Flutterwave hash), the VTpass reversal outcome, the re-check
rule, and the sandbox sending the providers' webhooks. No database."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from billpay.api.webhooks import (
    Unreadable,
    flutterwave_hash_ok,
    flutterwave_hint,
    parse_json,
    vtpass_hint,
)
from billpay.bills.reversal import RECHECK_MAX_TRIES, RecheckAction, after_recheck
from billpay.catalogue import Catalogue
from billpay.notifications import render
from billpay.providers import PaymentOutcome, build_providers
from billpay.providers.base import ErrorClass, PaymentResult
from billpay.sandbox.options import SandboxOptions
from billpay.sandbox.webhooks import SANDBOX_FLUTTERWAVE_WEBHOOK_HASH
from tests.conftest import FIXTURES
from tests.servers import free_port, served
from tests.unit.test_provider_sandbox import BASE, attempt, bill, sandbox_app, settings_for

BUILTIN = Catalogue.builtin()

REQUEST_ID = "2026120210307K3M9QZ2XAA1"


def vtpass_update(status: str = "delivered", code: str = "000", **data: Any) -> dict[str, Any]:
    answer = {
        "code": code,
        "content": {"transactions": {"status": status, "transactionId": "17215283548426"}},
        "response_description": "TRANSACTION SUCCESSFUL",
        "requestId": REQUEST_ID,
        "amount": 500,
    }
    return {"type": "transaction-update", "data": answer | data}


# --- parsing ------------------------------------------------------------------------------


def test_vtpass_transaction_update_names_our_request_id() -> None:
    hint = vtpass_hint(vtpass_update())
    assert (hint.provider, hint.reference, hint.reversal) == ("vtpass", REQUEST_ID, False)
    assert hint.status == "delivered"


@pytest.mark.parametrize(
    "body",
    [
        vtpass_update("reversed"),
        vtpass_update("reversed", code="040"),
        vtpass_update("delivered", code="040"),
        vtpass_update("delivered", code=40),
    ],
)
def test_vtpass_reversal_is_read_from_the_code_or_the_status(body: dict[str, Any]) -> None:
    assert vtpass_hint(body).reversal is True


def test_vtpass_request_id_may_sit_on_the_transaction() -> None:
    body = vtpass_update()
    del body["data"]["requestId"]
    body["data"]["content"]["transactions"]["requestId"] = REQUEST_ID
    assert vtpass_hint(body).reference == REQUEST_ID


@pytest.mark.parametrize(
    "body",
    [
        [],
        "transaction-update",
        {"type": "transaction-update"},
        {"type": "transaction-update", "data": "x"},
        vtpass_update(requestId=None),
        vtpass_update(requestId={"id": REQUEST_ID}),
        vtpass_update(requestId=[REQUEST_ID]),
        vtpass_update(requestId="2026 12021030 7K3M'; DROP TABLE bills"),
        vtpass_update(requestId="A" * 101),
        vtpass_update(requestId="\x00"),
        vtpass_update(requestId=True),
    ],
)
def test_vtpass_bodies_naming_no_readable_request_id_are_unreadable(body: object) -> None:
    with pytest.raises(Unreadable):
        vtpass_hint(body)


def test_flutterwave_documented_webhook_names_our_reference() -> None:
    body = json.loads((FIXTURES / "flutterwave_webhook_bill_success.json").read_text())
    hint = flutterwave_hint(body)
    assert (hint.provider, hint.reference, hint.reversal, hint.status) == (
        "flutterwave",
        "test-ref-kuf-01",
        False,
        "success",
    )


@pytest.mark.parametrize(
    "body",
    [
        {"event": "charge.completed", "data": {"customer_reference": REQUEST_ID}},
        {"data": {"customer_reference": REQUEST_ID}},
        {"event": "singlebillpayment.status", "data": {"customer_reference": None}},
        {"event": "singlebillpayment.status", "data": []},
        None,
    ],
)
def test_flutterwave_other_events_and_shapes_are_unreadable(body: object) -> None:
    with pytest.raises(Unreadable):
        flutterwave_hint(body)


@pytest.mark.parametrize(
    "raw", [b"\xff\xfe", b"{", b'{"a": NaN}', b"[" * 100_000, b'{"n": ' + b"9" * 5000 + b"}"]
)
def test_bytes_that_are_not_plain_json_are_unreadable(raw: bytes) -> None:
    with pytest.raises(Unreadable):
        parse_json(raw)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)
_shaped = st.fixed_dictionaries(
    {"type": st.text(max_size=20) | _json, "event": st.text(max_size=30) | _json},
    optional={"data": st.dictionaries(st.sampled_from(["requestId", "code", "status",
        "content", "customer_reference", "request_id"]), _json)},
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(body=_json | _shaped)
def test_any_json_is_a_hint_or_unreadable_never_an_error(body: object) -> None:
    for parse in (vtpass_hint, flutterwave_hint):
        try:
            hint = parse(body)
        except Unreadable:
            continue
        assert hint.reference.isascii() and 1 <= len(hint.reference) <= 100


def test_flutterwave_hash_is_compared_exactly_and_unset_accepts_nothing() -> None:
    assert flutterwave_hash_ok("s3cret", "s3cret")
    assert not flutterwave_hash_ok("s3cret ", "s3cret")
    assert not flutterwave_hash_ok("S3CRET", "s3cret")
    assert not flutterwave_hash_ok(None, "s3cret")
    assert not flutterwave_hash_ok("", "")
    assert not flutterwave_hash_ok("anything", "")
    assert not flutterwave_hash_ok("s3crét", "s3cret")


# --- the VTpass reversal outcome, against the sandbox's real wire format ----------------------


@pytest.fixture
def sandbox_client() -> Iterator[TestClient]:
    client = TestClient(sandbox_app(SandboxOptions()), base_url=BASE)
    yield client
    client.close()


def test_a_reversed_vtpass_payment_requeries_as_failed_and_reversed(sandbox_client) -> None:
    vtpass = build_providers(
        settings_for(BASE), client_factory=lambda name: sandbox_client, catalogue=BUILTIN
    )["vtpass"]
    order = bill("airtime", "08031234567")
    reference = attempt(order)
    assert vtpass.pay(order, reference).outcome is PaymentOutcome.SUCCESS
    before = vtpass.requery(order, reference)
    assert (before.outcome, before.reversed) == (PaymentOutcome.SUCCESS, False)
    reversed_ = sandbox_client.post(f"/vtpass/api/_sandbox/transactions/{reference}/reverse")
    assert reversed_.json() == {"reference": reference, "status": "reversed"}
    after = vtpass.requery(order, reference)
    assert (after.outcome, after.error_class, after.reversed) == (
        PaymentOutcome.FAILED,
        ErrorClass.PERMANENT,
        True,
    )
    assert after.reason_code == "040"
    again = sandbox_client.post(f"/vtpass/api/_sandbox/transactions/{reference}/reverse")
    assert again.status_code == 409  # only a delivered payment can be reversed


def test_a_pending_vtpass_payment_cannot_be_reversed(sandbox_client) -> None:
    vtpass = build_providers(
        settings_for(BASE), client_factory=lambda name: sandbox_client, catalogue=BUILTIN
    )["vtpass"]
    order = bill("airtime", "02010000000", network="mtn")
    reference = attempt(order)
    assert vtpass.pay(order, reference).outcome is PaymentOutcome.PENDING
    refused = sandbox_client.post(f"/vtpass/api/_sandbox/transactions/{reference}/reverse")
    assert refused.status_code == 409
    assert sandbox_client.post("/vtpass/api/_sandbox/transactions/nope/reverse").status_code == 404


# --- the re-check rule --------------------------------------------------------------------

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def recheck(result: PaymentResult, checks: int = 0):
    return after_recheck("7K3M9QZ2XA", 7, checks, result, NOW)


@pytest.mark.parametrize(
    "result",
    [
        PaymentResult(PaymentOutcome.SUCCESS, reason_code="000:delivered"),
        # delivered, but this answer lacks the prepaid token (the bill has it already)
        PaymentResult(PaymentOutcome.PENDING, reason_code="000:token_pending"),
    ],
)
def test_recheck_still_delivered_ends_the_check(result: PaymentResult) -> None:
    decision = recheck(result)
    assert decision.action is RecheckAction.CONFIRMED and decision.alert is None


def test_recheck_reversal_refunds_even_on_the_last_try() -> None:
    reversed_ = PaymentResult(
        PaymentOutcome.FAILED, ErrorClass.PERMANENT, reason_code="040", reversed=True
    )
    assert recheck(reversed_).action is RecheckAction.REVERSE
    assert recheck(reversed_, RECHECK_MAX_TRIES + 3).action is RecheckAction.REVERSE


@pytest.mark.parametrize(
    "result",
    [
        PaymentResult(PaymentOutcome.UNKNOWN, ErrorClass.TRANSIENT, reason_code="read_timeout"),
        PaymentResult(PaymentOutcome.PENDING, reason_code="099"),
        PaymentResult(PaymentOutcome.FAILED, ErrorClass.TRANSIENT, reason_code="015"),
    ],
)
def test_recheck_without_a_clear_answer_asks_again_with_backoff(result: PaymentResult) -> None:
    first, third = recheck(result, 0), recheck(result, 2)
    # its own schedule (minutes to hours), not the pending requery's seconds: an outage of an
    # hour or two must not use up the tries
    assert first.action is RecheckAction.LATER
    assert first.next_check_at == NOW + timedelta(minutes=10)
    assert third.next_check_at == NOW + timedelta(hours=1)
    assert first.alert is None


def test_recheck_a_delivered_bill_now_called_failed_alerts_but_never_refunds() -> None:
    decision = recheck(PaymentResult(PaymentOutcome.FAILED, ErrorClass.PERMANENT, "016"))
    assert decision.action is RecheckAction.LATER
    assert decision.alert is not None and decision.alert.kind == "delivered_bill_reported_failed"


def test_recheck_gives_up_after_its_tries_and_tells_an_operator() -> None:
    unknown = PaymentResult(PaymentOutcome.UNKNOWN, reason_code="http_502_no_code")
    assert recheck(unknown, RECHECK_MAX_TRIES - 2).action is RecheckAction.LATER
    decision = recheck(unknown, RECHECK_MAX_TRIES - 1)
    assert decision.action is RecheckAction.GIVE_UP
    assert decision.alert is not None and decision.alert.kind == "reversal_check_failed"


def test_the_customer_reversal_message_masks_the_account() -> None:
    message = render(
        "bill_reversed",
        "customer",
        {
            "reference": "7K3M9QZ2XA",
            "biller": "mtn",
            "amount_kobo": 50_000,
            "account_number": "08031234567",
            "amount_cngn": "500.0000000",
        },
    )
    assert "08031234567" not in message.text and "4567" in message.text
    assert "reversed" in message.text and "500.0000000 cNGN" in message.text


# --- the sandbox sends the providers' webhooks (opt-in) ---------------------------------------


@pytest.fixture
def webhook_sandbox() -> Iterator[tuple[str, SandboxOptions, list[dict[str, Any]]]]:
    """A served sandbox whose webhooks go to a receiver route on the same server."""
    received: list[dict[str, Any]] = []
    port = free_port()
    options = SandboxOptions(webhook_url=f"http://127.0.0.1:{port}")
    app = sandbox_app(options, pending_seconds=0.2, pending_requeries=100)
    receiver = FastAPI()

    @receiver.post("/webhooks/{provider}")
    async def receive(provider: str, request: Request) -> dict[str, str]:
        received.append(
            {"provider": provider, "headers": dict(request.headers), "body": await request.json()}
        )
        return {"response": "success"}

    app.mount("/", receiver)
    with served(app, port, log_level="error", what="sandbox") as url:
        yield url, options, received


def _wait_for(received: list[dict[str, Any]], count: int) -> None:
    deadline = time.monotonic() + 10
    while len(received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(received) >= count, received


def test_a_pending_vtpass_payment_settles_and_announces_itself(webhook_sandbox) -> None:
    base, options, received = webhook_sandbox
    vtpass = build_providers(settings_for(base), catalogue=BUILTIN)["vtpass"]
    order = bill("airtime", "02010000000", network="mtn")
    reference = attempt(order)
    assert vtpass.pay(order, reference).outcome is PaymentOutcome.PENDING
    _wait_for(received, 1)
    webhook = received[0]
    assert webhook["provider"] == "vtpass" and webhook["body"]["type"] == "transaction-update"
    hint = vtpass_hint(webhook["body"])
    assert (hint.reference, hint.status, hint.reversal) == (reference, "delivered", False)
    assert vtpass.requery(order, reference).outcome is PaymentOutcome.SUCCESS
    httpx.post(f"{base}/vtpass/api/_sandbox/transactions/{reference}/reverse").raise_for_status()
    _wait_for(received, 2)
    assert vtpass_hint(received[1]["body"]).reversal is True
    # The sandbox logs a webhook's outcome once our answer reaches it, just after we record it.
    deadline = time.monotonic() + 10
    outcomes: list[str] = []
    while len(outcomes) < 2 and time.monotonic() < deadline:
        outcomes = [c["outcome"] for c in options.calls if c["operation"] == "webhook"]
        time.sleep(0.05)
    assert outcomes == ["200", "200"]


def test_a_pending_flutterwave_payment_announces_itself_with_the_hash(webhook_sandbox) -> None:
    base, _, received = webhook_sandbox
    flutterwave = build_providers(settings_for(base), catalogue=BUILTIN)["flutterwave"]
    order = bill("postpaid", "2010000000000")
    reference = attempt(order)
    assert flutterwave.pay(order, reference).outcome is PaymentOutcome.PENDING
    _wait_for(received, 1)
    webhook = received[0]
    assert webhook["provider"] == "flutterwave"
    assert webhook["headers"]["verif-hash"] == SANDBOX_FLUTTERWAVE_WEBHOOK_HASH
    hint = flutterwave_hint(webhook["body"])
    assert (hint.reference, hint.status) == (reference, "success")


def test_without_a_webhook_url_the_sandbox_sends_nothing() -> None:
    options = SandboxOptions()
    app = sandbox_app(options)
    with TestClient(app, base_url=BASE) as client:
        vtpass = build_providers(
            settings_for(BASE), client_factory=lambda name: client, catalogue=BUILTIN
        )["vtpass"]
        order = bill("airtime", "02010000000", network="mtn")
        reference = attempt(order)
        vtpass.pay(order, reference)
        settle = client.post(f"/vtpass/api/_sandbox/transactions/{reference}/settle")
        assert settle.json() == {"reference": reference, "status": "delivered"}
        assert (
            client.post(f"/vtpass/api/_sandbox/transactions/{reference}/settle").status_code == 409
        )
    assert app.state.provider_sandbox.background == set()
    assert [c for c in options.calls if c["operation"] == "webhook"] == []
