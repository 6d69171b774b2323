"""``dispatch-notifications`` end to end: a completed bill's receipt reaches the configured
webhook signed, a refusing webhook is retried with backoff and then given up on, and with no
webhook the receipt goes to the log with the token masked."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from billpay.tokens import format_token
from deployments.cli import run_tick
from tests.e2e.pipeline_helpers import bill_row, place_order
from tests.webhook_receiver import Receiver, receiving, signed_with

pytestmark = pytest.mark.e2e

SECRET = "whsec-test-0123456789"
HOOK = "/billpay/hooks"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as state:
        yield state


@pytest.fixture
def webhook_runtime(pipeline_settings, receiver, prefect_harness) -> Iterator[Any]:
    from billpay.app import App
    from tasks.runtime import set_runtime

    settings = pipeline_settings.model_copy(
        update={
            "webhook_url": receiver.url(HOOK),
            "webhook_secret": SecretStr(SECRET),
            "notify_backoff_seconds": [0],
            "notify_max_attempts": 2,
        }
    )
    rt = App.open(settings)
    set_runtime(rt)
    yield rt
    set_runtime(None)
    rt.close()


def _notifications(rt: Any, bill_id: int) -> list[dict[str, Any]]:
    with rt.db.connect() as conn:
        return [
            dict(row)
            for row in conn.execute(
                sa.text("SELECT * FROM notifications WHERE bill_payment_id = :id ORDER BY id"),
                {"id": bill_id},
            ).mappings()
        ]


def _prepaid(rt: Any, sandbox: Any, amount: str = "5000") -> dict[str, Any]:
    order = place_order(
        rt, "electricity", "ikeja-electric", "1111111111111", amount, account_type="prepaid"
    )
    sandbox.pay(order["memo"], order["amount_cngn"])
    return order


def test_completed_bill_receipt_is_posted_signed_with_the_token(webhook_runtime, receiver, sandbox):
    order = _prepaid(webhook_runtime, sandbox)
    summary = run_tick()
    row = bill_row(webhook_runtime, order["reference"])
    assert row["status"] == "completed" and row["token"]
    assert summary["notify"]["advanced"] == 1

    (request,) = receiver.received
    assert request["path"] == HOOK and signed_with(request, SECRET)
    body = json.loads(request["raw"])
    assert body["kind"] == "bill_completed" and body["audience"] == "customer"
    assert body["reference"] == order["reference"]
    assert format_token(row["token"]) in body["message"]
    assert "1111111111111" in body["message"]  # the customer sees their own meter
    assert body["data"]["token"] == row["token"]

    (note,) = _notifications(webhook_runtime, row["id"])
    assert note["status"] == "sent" and note["attempts"] == 1 and note["claimed_by"] is None
    run_tick()  # nothing is sent twice
    assert len(receiver.received) == 1


def test_refusing_webhook_is_retried_then_marked_failed(webhook_runtime, receiver, sandbox):
    receiver.status[HOOK] = 500
    order = _prepaid(webhook_runtime, sandbox, "2000")
    first = run_tick()
    row = bill_row(webhook_runtime, order["reference"])
    assert row["status"] == "completed"
    assert first["notify"] == {"claimed": 1, "advanced": 0, "failed": 0}
    (note,) = _notifications(webhook_runtime, row["id"])
    assert (note["status"], note["attempts"]) == ("pending", 1)
    assert note["last_error"] == "webhook answered HTTP 500"
    assert note["claimed_by"] is None

    second = run_tick()  # backoff [0]: due again at once; the second refusal is the last
    assert second["notify"] == {"claimed": 1, "advanced": 0, "failed": 1}
    (note,) = _notifications(webhook_runtime, row["id"])
    assert (note["status"], note["attempts"]) == ("failed", 2)
    assert note["sent_at"] is None and note["claimed_by"] is None
    assert len(receiver.received) == 2

    run_tick()  # a failed row waits for an operator: no third delivery
    assert len(receiver.received) == 2
    assert run_tick()["notify"]["claimed"] == 0


def test_receipt_without_webhook_goes_to_the_log_without_the_token(runtime, sandbox, caplog):
    assert runtime.settings.webhook_url is None
    caplog.set_level(logging.DEBUG)
    order = _prepaid(runtime, sandbox, "3000")
    run_tick()
    row = bill_row(runtime, order["reference"])
    assert row["status"] == "completed" and row["token"]
    (note,) = _notifications(runtime, row["id"])
    assert note["status"] == "sent"

    delivered = [r for r in caplog.records if r.name == "billpay.notifications"]
    assert delivered, "the receipt was not logged"
    assert "****-****-****-****-" + row["token"][-4:] in delivered[0].getMessage()
    everything = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    assert row["token"] not in everything
    assert format_token(row["token"]) not in everything
    assert "1111111111111" not in "\n".join(r.getMessage() for r in delivered)
