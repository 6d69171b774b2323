"""Webhooks out per API client (issue 13, item 7): a client's customer receipts reach the
client's own webhook signed with the secret `billpay apikey create` printed for it; CLI orders,
clients without a webhook and every operator alert go to the global BILLPAY_WEBHOOK_URL, signed
with BILLPAY_WEBHOOK_SECRET; a refusing client webhook backs off and is retried on its own.

Real PostgreSQL, a real HTTP receiver on loopback, the dispatcher's own delivery code."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from billpay.api import clients
from billpay.app import App
from billpay.config import Settings
from billpay.states import BillState
from billpay.store import notifications as outbox
from tasks.notifications import deliver_batch
from tests.db_reads import one_row
from tests.factories import PREPAID_ELECTRICITY, force_state, new_order
from tests.webhook_receiver import Receiver, receiving, signed_with

MASTER = "global-webhook-secret-0123"
TOKEN = "26362054405982757802"
RECEIVER_TOKEN = "receiver-own-query-token"  # a client's URL may carry its own credential


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as state:
        yield state


@pytest.fixture
def runtime(settings: Settings, receiver: Receiver) -> Iterator[App]:
    configured = settings.model_copy(
        update={
            "webhook_url": receiver.url("/global"),
            "webhook_secret": SecretStr(MASTER),
            "notify_backoff_seconds": [0],  # due again at once: the test is the next tick
            "notify_max_attempts": 3,
        }
    )
    with App.open(configured) as rt:
        yield rt


def _client(rt: App, name: str, webhook_url: str | None) -> dict[str, Any]:
    """What `billpay apikey create NAME [--webhook-url URL]` prints."""
    return clients.create(rt.db, name, webhook_url=webhook_url, master_secret=MASTER)


def _completed_bill(rt: App, client: dict[str, Any] | None) -> dict[str, Any]:
    """A prepaid electricity order made by ``client`` (None: the CLI), delivered with a token;
    the database writes its customer receipt to the outbox."""
    bill = new_order(rt.db, "5000", **PREPAID_ELECTRICITY)
    with rt.db.begin() as conn:
        if client is not None:  # as POST /api/bills/pay records the order's client
            conn.execute(
                sa.text(
                    "UPDATE bill_payments SET api_client_id ="
                    " (SELECT id FROM api_clients WHERE name = :name AND key_prefix = :prefix)"
                    " WHERE id = :id"
                ),
                {"name": client["name"], "prefix": client["key_prefix"], "id": bill["id"]},
            )
        force_state(conn, bill["id"], BillState.COMPLETED, token=TOKEN, provider="vtpass")
    return bill


def _operator_alert(rt: App, bill: dict[str, Any]) -> None:
    with rt.db.begin() as conn:
        outbox.enqueue(
            conn,
            kind="bill_pending_too_long",
            audience="operator",
            bill_id=bill["id"],
            payload={"reference": bill["reference"], "provider": "vtpass"},
        )


def _dispatch(rt: App) -> list[dict[str, Any]]:
    """One dispatch-notifications batch, as the pipeline's stage runs it."""
    worker = rt.worker_id()
    rows = outbox.claim(rt.db, worker=worker, lease_seconds=60, limit=50)
    return deliver_batch(rt, rows, worker)


def _body(request: dict[str, Any]) -> dict[str, Any]:
    return json.loads(request["raw"])


def _outbox_row(rt: App, bill: dict[str, Any], audience: str = "customer") -> dict[str, Any]:
    return one_row(
        rt.db,
        "SELECT status, attempts, last_error FROM notifications"
        " WHERE bill_payment_id = :id AND audience = :audience",
        id=bill["id"],
        audience=audience,
    )


def test_each_receipt_goes_to_its_clients_webhook_or_the_global_one_with_the_matching_secret(
    runtime, receiver
):
    wallet = _client(runtime, "wallet-one", receiver.url("/wallet-one"))
    other = _client(runtime, "wallet-two", receiver.url(f"/wallet-two?token={RECEIVER_TOKEN}"))
    silent = _client(runtime, "no-hook", None)  # a client that set no webhook URL
    mine = _completed_bill(runtime, wallet)
    theirs = _completed_bill(runtime, other)
    from_cli = _completed_bill(runtime, None)
    unhooked = _completed_bill(runtime, silent)
    _operator_alert(runtime, mine)  # about wallet-one's bill, but for the operators

    results = _dispatch(runtime)
    assert [r["advanced"] for r in results] == [True] * 5

    (to_wallet,) = receiver.at("/wallet-one")
    assert _body(to_wallet)["reference"] == mine["reference"]
    assert _body(to_wallet)["audience"] == "customer"
    assert "2636-2054-4059-8275-7802" in _body(to_wallet)["message"]  # its customer's token
    assert signed_with(to_wallet, wallet["webhook_signing_secret"])
    assert not signed_with(to_wallet, MASTER) and not signed_with(
        to_wallet, other["webhook_signing_secret"]
    )

    (to_other,) = receiver.at("/wallet-two")
    assert to_other["path"] == f"/wallet-two?token={RECEIVER_TOKEN}"  # the URL as registered
    assert _body(to_other)["reference"] == theirs["reference"]
    assert signed_with(to_other, other["webhook_signing_secret"])

    to_global = receiver.at("/global")
    assert sorted((_body(r)["audience"], _body(r)["reference"]) for r in to_global) == sorted(
        [
            ("customer", from_cli["reference"]),
            ("customer", unhooked["reference"]),
            ("operator", mine["reference"]),
        ]
    )
    assert all(signed_with(r, MASTER) for r in to_global)
    assert sorted(r["detail"] for r in results) == [
        *["sent via default webhook (127.0.0.1)"] * 3,
        "sent via webhook of client wallet-one (127.0.0.1)",
        "sent via webhook of client wallet-two (127.0.0.1)",
    ]


def test_a_refusing_client_webhook_backs_off_and_is_retried_to_the_same_client(
    runtime, receiver, caplog
):
    caplog.set_level(logging.DEBUG)
    wallet = _client(runtime, "wallet-one", receiver.url(f"/wallet-one?token={RECEIVER_TOKEN}"))
    mine = _completed_bill(runtime, wallet)
    from_cli = _completed_bill(runtime, None)
    receiver.status["/wallet-one"] = 503

    first = {r["reference"]: r for r in _dispatch(runtime)}
    assert not first[mine["reference"]]["advanced"] and not first[mine["reference"]]["failed"]
    assert first[from_cli["reference"]]["advanced"]  # the global webhook is not held up
    row = _outbox_row(runtime, mine)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert (
        row["last_error"] == "webhook of client wallet-one (127.0.0.1): webhook answered HTTP 503"
    )

    receiver.status["/wallet-one"] = 200
    (second,) = _dispatch(runtime)
    assert second["reference"] == mine["reference"] and second["advanced"]
    assert _outbox_row(runtime, mine)["status"] == "sent"
    attempts = receiver.at("/wallet-one")
    assert len(attempts) == 2 and all(
        signed_with(r, wallet["webhook_signing_secret"]) for r in attempts
    )
    assert len(receiver.at("/global")) == 1  # the client's receipt never went to the default
    # nothing logged or stored names the client's secret or its URL's query
    assert wallet["webhook_signing_secret"] not in caplog.text and RECEIVER_TOKEN not in caplog.text
    assert TOKEN not in caplog.text


def test_a_client_webhook_that_keeps_refusing_is_given_up_after_the_last_try(runtime, receiver):
    wallet = _client(runtime, "wallet-one", receiver.url("/wallet-one"))
    mine = _completed_bill(runtime, wallet)
    receiver.status["/wallet-one"] = 500
    for _ in range(3):
        (result,) = _dispatch(runtime)
    assert result["failed"] and result["detail"].startswith("gave up after 3 tries")
    assert _outbox_row(runtime, mine)["status"] == "failed"
    assert _dispatch(runtime) == []  # a failed row is not claimed again
    assert len(receiver.at("/wallet-one")) == 3 and receiver.at("/global") == []


def test_a_revoked_client_still_gets_the_receipts_of_orders_it_made(runtime, receiver):
    wallet = _client(runtime, "wallet-one", receiver.url("/wallet-one"))
    mine = _completed_bill(runtime, wallet)
    clients.revoke(runtime.db, "wallet-one")
    # the name is issued again (a rotated key): the old order still goes to the old client row
    _client(runtime, "wallet-one", receiver.url("/wallet-one-new"))

    (result,) = _dispatch(runtime)
    assert result["advanced"]
    (request,) = receiver.at("/wallet-one")
    assert _body(request)["reference"] == mine["reference"]
    assert signed_with(request, wallet["webhook_signing_secret"])
    assert receiver.at("/wallet-one-new") == [] and receiver.at("/global") == []
