"""Provider webhooks in, end to end: the API under uvicorn, the sandbox sending VTpass's and
Flutterwave's webhooks, the pipeline run by ``billpay tick`` (Prefect's test harness).

A webhook is a hint: it makes the requery due now and the requery decides. A reversal of a
delivered bill refunds its cNGN on the ledger, once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest

from billpay.config import Settings
from billpay.states import BillState
from billpay.store import bills as bill_store
from deployments.cli import run_tick
from tests.api.conftest import ApiServer
from tests.db_reads import all_rows, scalar
from tests.e2e.conftest import Sandbox, prefect_harness  # noqa: F401 - the fixture
from tests.e2e.pipeline_helpers import (
    bill_row,
    db_now,
    pay_calls,
    place_order,
    refund_payments,
    runtime_with,
    ticks_until_settled,
)
from tests.factories import bill_at_provider

VTPASS_ACK = {"response": "success"}


def _webhooks_on(sandbox: Sandbox, api: ApiServer) -> None:
    """The sandbox sends its webhooks to the API; pending payments settle only when told to
    (the control route), so a test decides when a provider would send its webhook."""
    sandbox.options.webhook_url = api.url
    config = sandbox.app.state.provider_sandbox.config
    config.pending_seconds = 3600
    config.pending_requeries = 1000


def _wait_for_webhooks(sandbox: Sandbox, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        sent = sandbox.calls(operation="webhook")
        if len(sent) >= count:
            return sent
        time.sleep(0.05)
    raise AssertionError(f"the sandbox sent {sandbox.calls(operation='webhook')}")


def _control(sandbox: Sandbox, action: str, reference: str) -> None:
    url = f"{sandbox.url}/vtpass/api/_sandbox/transactions/{reference}/{action}"
    httpx.post(url).raise_for_status()


@contextmanager
def _vtpass_order_paid(
    api: ApiServer,
    api_settings: Settings,
    sandbox: Sandbox,
    account: str,
    amount: str,
    account_type: str,
    **settings: Any,
) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Electricity routed to VTpass alone, webhooks on: an order for ``account``, paid on the
    ledger and through one tick. Yields the runtime and the order."""
    _webhooks_on(sandbox, api)
    with runtime_with(api_settings, route_electricity=["vtpass"], **settings) as rt:
        order = place_order(
            rt, "electricity", "ikeja-electric", account, amount, account_type=account_type
        )
        sandbox.pay(order["memo"], order["amount_cngn"])
        run_tick()
        yield rt, order


@pytest.fixture
def vtpass_order(api: ApiServer, api_settings: Settings, sandbox: Sandbox) -> Any:
    """``vtpass_order(account, amount, account_type, **settings)``: see _vtpass_order_paid."""
    return partial(_vtpass_order_paid, api, api_settings, sandbox)


def _notification_kinds(rt: Any, bill_id: int) -> list[tuple[str, str]]:
    return all_rows(
        rt.db,
        "SELECT kind, audience FROM notifications WHERE bill_payment_id = :id ORDER BY id",
        id=bill_id,
    )


@pytest.mark.e2e
@pytest.mark.usefixtures("prefect_harness")
def test_a_vtpass_webhook_for_a_pending_bill_completes_it_on_the_next_tick(
    api: ApiServer, sandbox: Sandbox, vtpass_order: Any
) -> None:
    # A requery backoff of 10 minutes: only the webhook can make the requery due at once.
    with vtpass_order("201000000000", "3000", "postpaid", requery_backoff_seconds=[600]) as paid:
        rt, order = paid
        waiting = bill_row(rt, order["reference"])
        assert waiting["status"] == "provider_processing"
        assert waiting["next_attempt_at"] > db_now(rt) + timedelta(minutes=5)

        _control(sandbox, "settle", waiting["attempt_reference"])  # VTpass delivers: webhook
        [webhook] = _wait_for_webhooks(sandbox, 1)
        assert (webhook["provider"], webhook["outcome"]) == ("vtpass", "200")
        hinted = bill_row(rt, order["reference"])
        assert hinted["status"] == "provider_processing"  # a hint changes no state
        assert hinted["next_attempt_at"] <= db_now(rt)

        run_tick()
        done = bill_row(rt, order["reference"])
        assert done["status"] == "completed"
        assert pay_calls(sandbox)[done["attempt_reference"]] == 1
        events = bill_store.events_for(rt.db, done["id"])
        assert any(e["actor"] == "webhook:vtpass" for e in events)


@pytest.mark.e2e
@pytest.mark.usefixtures("prefect_harness")
def test_a_reversal_of_a_delivered_bill_refunds_it_once_on_the_ledger(
    api: ApiServer, sandbox: Sandbox, vtpass_order: Any
) -> None:
    with vtpass_order("1111111111111", "5000", "prepaid", reversal_recheck_seconds=3600) as paid:
        rt, order = paid
        delivered = bill_row(rt, order["reference"])
        assert delivered["status"] == "completed" and delivered["token"]
        reference = delivered["attempt_reference"]
        run_tick()  # the re-check is an hour away: nothing asks VTpass again
        assert not [c for c in sandbox.calls(operation="requery") if c["reference"] == reference]

        _control(sandbox, "reverse", reference)  # VTpass reverses it: its reversal webhook
        [webhook] = _wait_for_webhooks(sandbox, 1)
        assert webhook["outcome"] == "200"
        assert bill_row(rt, order["reference"])["status"] == "completed"  # hints move no money

        states = ticks_until_settled(rt, [order["reference"]], max_ticks=4)
        assert states[order["reference"]] == "refunded"
        row = bill_row(rt, order["reference"])
        trail = [e["to_state"] for e in bill_store.events_for(rt.db, row["id"])]
        path = ["completed", "reversed", "refund_initiated", "refund_processing", "refunded"]
        assert [s for s in trail if s in path][-5:] == path
        refunds = all_rows(
            rt.db,
            "SELECT status, reason, tx_hash FROM refunds WHERE bill_payment_id = :id",
            id=row["id"],
        )
        assert len(refunds) == 1 and refunds[0][0] == "confirmed"
        assert refunds[0][1] == "provider_reversed: 040"
        on_ledger = refund_payments(sandbox, rt)
        assert len(on_ledger) == 1 and on_ledger[0]["transaction_hash"] == refunds[0][2]
        kinds = _notification_kinds(rt, row["id"])
        assert ("bill_reversed", "customer") in kinds
        assert ("provider_reversal", "operator") in kinds
        assert ("bill_refunded", "customer") in kinds

        # VTpass retries its webhook: the replay is acknowledged and refunds nothing again.
        body = {"type": "transaction-update", "data": {"code": "040", "requestId": reference}}
        with api.client() as http:
            assert http.post("/webhooks/vtpass", json=body).json() == VTPASS_ACK
        run_tick()
        assert len(refund_payments(sandbox, rt)) == 1
        assert bill_row(rt, order["reference"])["status"] == "refunded"


# --- the door itself: no pipeline needed ------------------------------------------------------


def _waiting_bill(api: ApiServer, provider: str) -> tuple[int, str, datetime]:
    """A bill waiting at ``provider`` on its open attempt, requery due in ten minutes."""
    later = datetime.now(UTC) + timedelta(minutes=10)
    bill_id, reference = bill_at_provider(
        api.runtime.db, BillState.PROVIDER_PROCESSING, provider, next_attempt_at=later
    )
    return bill_id, reference, later


def _next_attempt_at(api: ApiServer, bill_id: int) -> datetime:
    return scalar(
        api.runtime.db, "SELECT next_attempt_at FROM bill_payments WHERE id = :id", id=bill_id
    )


def _flutterwave_body(reference: str) -> dict[str, Any]:
    data = {"customer_reference": reference, "status": "success", "amount": 500}
    return {"event": "singlebillpayment.status", "event.type": "SingleBillPayment", "data": data}


def test_a_flutterwave_webhook_with_a_wrong_or_missing_hash_is_401_and_changes_nothing(
    api: ApiServer,
) -> None:
    bill_id, reference, later = _waiting_bill(api, "flutterwave")
    body = _flutterwave_body(reference)
    with api.client() as http:
        wrong = http.post("/webhooks/flutterwave", json=body, headers={"verif-hash": "guess"})
        missing = http.post("/webhooks/flutterwave", json=body)
    for answer in (wrong, missing):
        assert answer.status_code == 401
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert "guess" not in answer.text
    assert _next_attempt_at(api, bill_id) == later
    notes = "SELECT count(*) FROM bill_payment_events WHERE bill_payment_id = :id AND actor LIKE 'webhook%'"
    assert scalar(api.runtime.db, notes, id=bill_id) == 0


def test_a_flutterwave_webhook_with_the_hash_makes_the_requery_due_now(api: ApiServer) -> None:
    bill_id, reference, later = _waiting_bill(api, "flutterwave")
    secret = api.runtime.settings.flutterwave_webhook_hash.get_secret_value()
    assert secret  # the sandbox's dashboard hash, from its environment
    with api.client() as http:
        answer = http.post(
            "/webhooks/flutterwave",
            json=_flutterwave_body(reference),
            headers={"verif-hash": secret},
        )
    assert answer.status_code == 200 and answer.json() == {"status": "success"}
    assert _next_attempt_at(api, bill_id) < later
    assert scalar(
        api.runtime.db, "SELECT status FROM bill_payments WHERE id = :id", id=bill_id
    ) == ("provider_processing")


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b'{"type": "transaction-update", "data": {"requestId": "2026120210307NOSUCHREFA1"}}',
        b'{"type": "transaction-update", "data": {"requestId": {"$gt": ""}}}',
        b"[" * 50_000,
        b'{"pad": "' + b"x" * 200_000 + b'"}',
    ],
)
def test_vtpass_bodies_we_cannot_use_are_acknowledged_and_change_nothing(
    api: ApiServer, content: bytes
) -> None:
    bill_id, _, later = _waiting_bill(api, "vtpass")
    with api.client() as http:
        answer = http.post(
            "/webhooks/vtpass", content=content, headers={"content-type": "application/json"}
        )
    assert answer.status_code == 200 and answer.json() == VTPASS_ACK
    assert _next_attempt_at(api, bill_id) == later


def test_a_vtpass_webhook_for_a_waiting_bill_makes_its_requery_due(api: ApiServer) -> None:
    bill_id, reference, later = _waiting_bill(api, "vtpass")
    body = {"type": "transaction-update", "data": {"code": "000", "requestId": reference,
            "content": {"transactions": {"status": "delivered"}}}}  # fmt: skip
    with api.client() as http:
        assert http.post("/webhooks/vtpass", json=body).json() == VTPASS_ACK
    assert _next_attempt_at(api, bill_id) <= datetime.now(UTC)


def test_an_unknown_reference_is_logged_masked_and_acknowledged(
    api: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    body = {
        "type": "transaction-update",
        "data": {"requestId": "2026120210307NOSUCHREFA1", "phone": "08031234567",
                 "content": {"transactions": {"status": "delivered", "token": "12345678901234567890"}}},
    }  # fmt: skip
    with caplog.at_level("INFO", logger="billpay.api.webhooks"), api.client() as http:
        assert http.post("/webhooks/vtpass", json=body).json() == VTPASS_ACK
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "billpay.api.webhooks")
    assert "unknown_reference" in logged
    assert "08031234567" not in logged and "12345678901234567890" not in logged


def test_the_senders_status_text_reaches_neither_the_bill_events_nor_the_logs(
    api: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Anyone can post to /webhooks/vtpass: what its status says must not become an event the
    # client app shows ("refund sent"), nor a log line carrying a phone or a token.
    bill_id, reference, _ = _waiting_bill(api, "vtpass")
    forged = "refund sent to 08031234567"
    body = {"type": "transaction-update", "data": {"code": "12345678901234567890",
            "requestId": reference, "content": {"transactions": {"status": forged}}}}  # fmt: skip
    with caplog.at_level("INFO", logger="billpay.api.webhooks"), api.client() as http:
        assert http.post("/webhooks/vtpass", json=body).json() == VTPASS_ACK
    details = [e["detail"] or "" for e in bill_store.events_for(api.runtime.db, bill_id)]
    assert "vtpass webhook (update): requery due now" in details
    assert not any("refund" in d or "08031234567" in d for d in details)
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "billpay.api.webhooks")
    assert "requery_due" in logged
    assert "08031234567" not in logged and "refund sent" not in logged
