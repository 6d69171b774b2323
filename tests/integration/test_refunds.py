"""Refunds against real PostgreSQL: the sandbox Horizon end to end, and exact paths with respx."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from stellar_sdk import MuxedAccount, TransactionEnvelope

from billpay.config import SANDBOX_NETWORK_PASSPHRASE, Settings
from billpay.sandbox import identities as ids
from billpay.sandbox.horizon import SandboxLedger
from billpay.stellar import (
    HorizonClient,
    RefundStatus,
    claim_refunds,
    ingest_payments,
    match_payments,
    process_refund,
    release_held_refund,
    requeue_held_refunds,
)
from billpay.store.engine import Database
from tests.db_reads import one_row
from tests.factories import add_incoming_payment, new_order
from tests.integration.conftest import sandbox_stellar_settings

SYSTEM = ids.system().account_id
USER = ids.users()[0]
BASE = "http://testserver"


# --- sandbox plumbing -------------------------------------------------------------------------


@pytest.fixture
def stellar_settings(settings: Settings) -> Settings:
    return sandbox_stellar_settings(settings)


def _user_pays(web: TestClient, memo: str | None, amount: str, **extra: Any) -> dict:
    body = {"from": extra.pop("sender", USER.name), "amount": amount, "memo": memo, **extra}
    response = web.post("/horizon/_sandbox/payments", json=body)
    assert response.status_code == 200, response.text
    return response.json()


@dataclass(frozen=True)
class Sandboxed:
    """The refunder wired to the sandbox Horizon, as the user (USER) sees it."""

    db: Database
    settings: Settings
    horizon: HorizonClient
    web: TestClient
    ledger: SandboxLedger

    def user_pays(self, memo: str | None, amount: str, **extra: Any) -> dict:
        return _user_pays(self.web, memo, amount, **extra)

    def refund_for(self, memo: str | None, amount: str, **extra: Any) -> dict:
        """The user pays; ingest and match; the newest refund row."""
        self.user_pays(memo, amount, **extra)
        ingest_payments(self.db, self.settings, self.horizon)
        match_payments(self.db, self.settings, actor="matcher", limit=10)
        return one_row(self.db, "SELECT * FROM refunds ORDER BY id DESC LIMIT 1")

    def process(self, refund_id: int, worker: str = "refunder") -> Any:
        return process_refund(self.db, self.settings, self.horizon, refund_id, worker)

    def refunds_to_user(self) -> list[dict]:
        """Successful payments from the system account to USER on the ledger."""
        return [
            op
            for op in self.ledger.operations
            if op["from"] == SYSTEM and op["to"] == USER.account_id and op["transaction_successful"]
        ]

    def user_cngn(self) -> Decimal:
        trustlines = self.ledger.accounts[USER.account_id].trustlines
        return trustlines[("cNGN", self.ledger.issuer)].balance


@pytest.fixture
def sandboxed(
    db: Database,
    stellar_settings: Settings,
    horizon: HorizonClient,
    web: TestClient,
    ledger: SandboxLedger,
) -> Sandboxed:
    return Sandboxed(db, stellar_settings, horizon, web, ledger)


def _refund_row(db: Database, refund_id: int) -> dict:
    return one_row(db, "SELECT * FROM refunds WHERE id = :id", id=refund_id)


def _events(db: Database, bill_id: int) -> list[str]:
    with db.begin() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT to_state FROM bill_payment_events"
                    " WHERE bill_payment_id = :id ORDER BY id"
                ),
                {"id": bill_id},
            ).scalars()
        )


# --- against the sandbox ----------------------------------------------------------------------


def test_wrong_amount_is_refunded_on_the_ledger_and_the_bill_ends_refunded(
    db: Database, sandboxed: Sandboxed
) -> None:
    order = new_order(db, "5000")
    before = sandboxed.user_cngn()
    refund = sandboxed.refund_for(f"BILL-{order['reference']}", "4000")
    claimed = claim_refunds(db, "refunder", limit=10, lease_seconds=60)
    assert [r.id for r in claimed] == [refund["id"]]

    result = sandboxed.process(refund["id"], "refunder")

    assert result.status == RefundStatus.CONFIRMED
    assert sandboxed.user_cngn() == before  # paid 4000, got 4000 back
    (on_ledger,) = sandboxed.refunds_to_user()
    assert on_ledger["transaction_hash"] == result.tx_hash
    tx = sandboxed.ledger.transactions[result.tx_hash]
    assert tx["memo"] == f"REFUND-{order['reference']}"
    row = _refund_row(db, refund["id"])
    assert (row["status"], row["tx_hash"], row["claimed_by"]) == ("confirmed", result.tx_hash, None)
    assert row["envelope_xdr"] and row["sequence"] and row["max_time"]
    assert _events(db, order["id"]) == [
        "pending_payment",
        "refund_initiated",
        "refund_processing",
        "refunded",
    ]
    again = sandboxed.process(refund["id"], "refunder")
    assert again.status == RefundStatus.CONFIRMED
    assert len(sandboxed.refunds_to_user()) == 1


def _refund_after_a_504(sandboxed: Sandboxed, fault: str) -> tuple[dict, Any]:
    """An unknown payment's refund, processed once while Horizon answers its submit with 504."""
    refund = sandboxed.refund_for("no such order", "250")
    sandboxed.web.post("/horizon/_sandbox/faults", json={fault: 1})
    return refund, sandboxed.process(refund["id"], "refunder")


def test_submit_that_times_out_after_applying_is_confirmed_by_hash_and_lands_once(
    db: Database, sandboxed: Sandboxed
) -> None:
    refund, result = _refund_after_a_504(sandboxed, "submit_504_after_apply")
    assert result.status == RefundStatus.CONFIRMED
    assert len(sandboxed.refunds_to_user()) == 1
    assert one_row(db, "SELECT submit_attempts FROM refunds")["submit_attempts"] == 1


def test_submit_that_times_out_before_applying_is_resubmitted_unchanged(
    db: Database, sandboxed: Sandboxed
) -> None:
    refund, first = _refund_after_a_504(sandboxed, "submit_504_before_apply")
    assert first.status == RefundStatus.SUBMITTED
    stored = _refund_row(db, refund["id"])
    assert stored["status"] == "submitted" and stored["next_attempt_at"] is not None
    assert sandboxed.refunds_to_user() == []

    second = sandboxed.process(refund["id"], "refunder")
    assert second.status == RefundStatus.CONFIRMED
    assert second.tx_hash == stored["tx_hash"]  # the same envelope, not a new one
    assert len(sandboxed.refunds_to_user()) == 1


def test_expired_unsent_envelope_is_rebuilt_with_a_fresh_sequence(
    db: Database, sandboxed: Sandboxed
) -> None:
    order = new_order(db, "5000")
    refund = sandboxed.refund_for(f"BILL-{order['reference']}", "1")
    sandboxed.web.post("/horizon/_sandbox/faults", json={"submit_504_before_apply": 1})
    assert sandboxed.process(refund["id"], "r").status == "submitted"
    old = _refund_row(db, refund["id"])
    # Another transaction from the system account uses the sequence, and the time bounds pass.
    sandboxed.user_pays(None, "1", sender="system", to=ids.users()[1].account_id)
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE refunds SET max_time = now() - interval '1 hour'"))

    result = sandboxed.process(refund["id"], "r")

    assert result.status == RefundStatus.CONFIRMED
    new = _refund_row(db, refund["id"])
    assert new["tx_hash"] != old["tx_hash"] and new["sequence"] == old["sequence"] + 1
    assert len(sandboxed.refunds_to_user()) == 1
    assert _events(db, order["id"])[-4:] == [
        "refund_processing",
        "refund_initiated",
        "refund_processing",
        "refunded",
    ]


def test_muxed_sender_is_refunded_to_the_muxed_address(db: Database, sandboxed: Sandboxed) -> None:
    refund = sandboxed.refund_for(None, "10", from_muxed_id=7)
    muxed = MuxedAccount(USER.account_id, 7).account_muxed
    assert refund["destination"] == muxed
    result = sandboxed.process(refund["id"], "r")
    assert result.status == RefundStatus.CONFIRMED
    (op,) = sandboxed.refunds_to_user()
    assert op["to_muxed"] == muxed


def test_recipient_without_trustline_is_held_without_submitting(
    db: Database, sandboxed: Sandboxed
) -> None:
    refund = sandboxed.refund_for(None, "10")
    sandboxed.web.post("/horizon/_sandbox/trustlines", json={"account": USER.name, "remove": True})
    sequence = sandboxed.ledger.accounts[SYSTEM].sequence

    held = sandboxed.process(refund["id"], "r")

    assert held.status == RefundStatus.HELD
    row = _refund_row(db, refund["id"])
    assert (row["status"], row["hold_reason"], row["envelope_xdr"]) == (
        "held",
        "no_trustline",
        None,
    )
    assert row["next_attempt_at"] is not None
    assert sandboxed.ledger.accounts[SYSTEM].sequence == sequence  # nothing was submitted
    assert claim_refunds(db, "r", 10, 60) == []

    # The user adds the trustline back; the periodic recheck requeues it once due.
    sandboxed.web.post("/horizon/_sandbox/trustlines", json={"account": USER.name, "balance": "0"})
    assert requeue_held_refunds(db) == []
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE refunds SET next_attempt_at = now() - interval '1 s'"))
    assert requeue_held_refunds(db) == [refund["id"]]
    assert sandboxed.process(refund["id"], "r").status == "confirmed"
    assert sandboxed.user_cngn() == Decimal("10")


def test_concurrent_workers_never_race_on_the_sequence(
    db: Database,
    stellar_settings: Settings,
    sandbox: FastAPI,
    web: TestClient,
    ledger: SandboxLedger,
) -> None:
    horizon = HorizonClient.from_settings(stellar_settings, web)
    for i in range(6):
        _user_pays(web, None, f"{i + 1}", sender=ids.users()[i % 5].name)
    ingest_payments(db, stellar_settings, horizon)
    match_payments(db, stellar_settings, actor="m", limit=10)
    refund_ids = [r.id for r in claim_refunds(db, "w", 10, 60)]
    assert len(refund_ids) == 6
    results: list[Any] = []

    def worker(ids_: list[int]) -> None:
        client = HorizonClient.from_settings(stellar_settings, TestClient(sandbox))
        for refund_id in ids_:
            results.append(process_refund(db, stellar_settings, client, refund_id, "w"))

    threads = [threading.Thread(target=worker, args=(refund_ids[i::3],)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(r.status for r in results) == ["confirmed"] * 6
    submits = ledger_calls(sandbox)
    assert [c["outcome"] for c in submits] == ["success"] * 6  # no tx_bad_seq: no race


def ledger_calls(app: FastAPI) -> list[dict]:
    calls = app.state.options.calls
    return [c for c in calls if c["provider"] == "horizon" and c["operation"] == "submit"]


# --- exact paths with respx -------------------------------------------------------------------

RBASE = "https://horizon.test"


class FakeHorizon:
    """respx routes for one account sequence and a hash table, recording every submission."""

    def __init__(self, router: respx.MockRouter, settings: Settings) -> None:
        self.sequence = 1000
        self.known: dict[str, dict] = {}
        self.submissions: list[str] = []
        self.submit_answers: list[httpx.Response | Exception] = []
        self.settings = settings
        self.router = router
        self.closed_at: datetime | None = None  # None: the latest ledger closed now
        router.get(f"{RBASE}/").mock(side_effect=self._root)
        self.account_route = router.get(url__regex=rf"{RBASE}/accounts/(?P<account>\w+)$")
        self.account_route.mock(side_effect=self._account)
        router.get(url__regex=rf"{RBASE}/transactions/(?P<h>\w+)$").mock(side_effect=self._tx)
        router.post(f"{RBASE}/transactions").mock(side_effect=self._submit)

    def _account(self, request: httpx.Request, account: str) -> httpx.Response:
        balances = [
            {
                "asset_type": "credit_alphanum4",
                "asset_code": "cNGN",
                "asset_issuer": self.settings.cngn_issuer,
                "balance": "0.0000000",
                "limit": "922337203685.4775807",
                "is_authorized": True,
            },
        ]
        return httpx.Response(
            200,
            json={
                "id": account,
                "account_id": account,
                "sequence": str(self.sequence),
                "balances": balances,
            },
        )

    def _root(self, request: httpx.Request) -> httpx.Response:
        closed = self.closed_at or datetime.now(UTC)
        return httpx.Response(
            200, json={"history_latest_ledger_closed_at": closed.strftime("%Y-%m-%dT%H:%M:%SZ")}
        )

    def _tx(self, request: httpx.Request, h: str) -> httpx.Response:
        if h in self.known:
            return httpx.Response(200, json=self.known[h])
        return httpx.Response(404, json={"status": 404, "title": "Resource Missing"})

    def _submit(self, request: httpx.Request) -> httpx.Response:
        xdr = parse_qs(request.content.decode())["tx"][0]
        self.submissions.append(xdr)
        answer = self.submit_answers.pop(0) if self.submit_answers else "apply"
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=self.apply(xdr))

    def apply(self, xdr: str) -> dict:
        envelope = TransactionEnvelope.from_xdr(xdr, SANDBOX_NETWORK_PASSPHRASE)
        tx_hash = envelope.hash_hex()
        self.sequence = envelope.transaction.sequence
        self.known[tx_hash] = {"hash": tx_hash, "successful": True}
        return self.known[tx_hash]


def _rejected(tx_code: str, *ops: str) -> httpx.Response:
    codes: dict[str, Any] = {"transaction": tx_code}
    if ops:
        codes["operations"] = list(ops)
    return httpx.Response(
        400, json={"status": 400, "title": "Transaction Failed", "extras": {"result_codes": codes}}
    )


@pytest.fixture
def rsettings(stellar_settings: Settings) -> Settings:
    return stellar_settings.model_copy(update={"horizon_url": RBASE})


@pytest.fixture
def fake(rsettings: Settings) -> Any:
    with respx.mock(assert_all_called=False) as router:
        yield FakeHorizon(router, rsettings)


@pytest.fixture
def rhorizon(rsettings: Settings) -> HorizonClient:
    return HorizonClient.from_settings(rsettings, httpx.Client())


@dataclass(frozen=True)
class WrongAmountPaid:
    """An order of 5000 paid with 4000: its refund row, and the refunder on the scripted Horizon."""

    db: Database
    settings: Settings
    horizon: HorizonClient
    order: dict
    refund: dict

    def process(self) -> Any:
        return process_refund(self.db, self.settings, self.horizon, self.refund["id"], "r")

    def row(self) -> dict:
        return _refund_row(self.db, self.refund["id"])


@pytest.fixture
def paid(db: Database, rsettings: Settings, rhorizon: HorizonClient) -> WrongAmountPaid:
    """The order's bill is in refund_initiated; the refund is pending."""
    order = new_order(db, "5000")
    with db.begin() as conn:
        payment_id = add_incoming_payment(
            conn,
            "4000",
            memo=f"BILL-{order['reference']}",
            from_account=USER.account_id,
            to_account=SYSTEM,
            asset_issuer=ids.issuer().account_id,
        )
        conn.execute(
            sa.text("UPDATE bill_payments SET incoming_payment_id = :p WHERE id = :id"),
            {"p": payment_id, "id": order["id"]},
        )
        conn.execute(
            sa.text("SELECT transition_bill_to_refund(:id, 'amount_mismatch')"), {"id": order["id"]}
        )
    return WrongAmountPaid(db, rsettings, rhorizon, order, one_row(db, "SELECT * FROM refunds"))


def test_envelope_is_stored_before_the_first_submit_and_decodes_to_the_refund(
    db: Database, fake: FakeHorizon, paid: WrongAmountPaid
) -> None:
    seen: list[dict] = []
    fake.submit_answers = []

    original = fake._submit

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(paid.row())  # what PostgreSQL holds while the POST is in flight
        return original(request)

    fake.router.post(f"{RBASE}/transactions").mock(side_effect=spy)
    result = paid.process()

    assert result.status == RefundStatus.CONFIRMED
    (during,) = seen
    assert during["status"] == "submitted" and during["submit_attempts"] == 1
    assert during["envelope_xdr"] == fake.submissions[0] and during["tx_hash"] == result.tx_hash
    assert one_row(db, "SELECT status FROM bill_payments")["status"] == "refunded"
    envelope = TransactionEnvelope.from_xdr(during["envelope_xdr"], SANDBOX_NETWORK_PASSPHRASE)
    (op,) = envelope.transaction.operations
    assert op.destination.account_id == USER.account_id
    assert (op.asset.code, op.asset.issuer) == ("cNGN", paid.settings.cngn_issuer)
    assert Decimal(op.amount) == Decimal("4000")
    assert envelope.transaction.memo.memo_text == f"REFUND-{paid.order['reference']}".encode()
    assert envelope.transaction.sequence == 1001 == during["sequence"]
    ids.system().keypair.verify(envelope.hash(), envelope.signatures[0].signature)


def test_504_then_hash_found_confirms_without_resubmitting(
    db: Database, fake: FakeHorizon, paid: WrongAmountPaid
) -> None:

    def applied_then_504(request: httpx.Request) -> httpx.Response:
        fake.apply(parse_qs(request.content.decode())["tx"][0])
        return httpx.Response(504, json={"status": 504, "title": "Timeout"})

    fake.submit_answers = [httpx.ReadTimeout("lost")]
    first = paid.process()
    assert first.status == RefundStatus.SUBMITTED and len(fake.submissions) == 1

    fake.router.post(f"{RBASE}/transactions").mock(side_effect=applied_then_504)
    second = paid.process()
    assert second.status == RefundStatus.CONFIRMED
    assert paid.row()["submit_attempts"] == 2
    third = paid.process()
    assert third.status == RefundStatus.CONFIRMED
    assert paid.row()["submit_attempts"] == 2  # found by hash, not sent again


def test_unknown_outcome_resubmits_the_same_envelope_while_open(
    db: Database, fake: FakeHorizon, paid: WrongAmountPaid
) -> None:
    fake.submit_answers = [httpx.Response(504), httpx.ConnectError("down")]
    assert paid.process().status == "submitted"
    assert paid.process().status == "submitted"
    assert paid.process().status == "confirmed"
    assert len(set(fake.submissions)) == 1 and len(fake.submissions) == 3


def test_expired_and_absent_envelope_is_rebuilt_with_the_reloaded_sequence(
    db: Database, fake: FakeHorizon, paid: WrongAmountPaid
) -> None:
    fake.submit_answers = [httpx.Response(504)]
    paid.process()
    old = paid.row()
    fake.sequence = 1005  # other transactions used the account meanwhile
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE refunds SET max_time = now() - interval '10 minutes'"))

    result = paid.process()

    assert result.status == RefundStatus.CONFIRMED
    new = paid.row()
    assert new["tx_hash"] != old["tx_hash"] and new["sequence"] == 1006
    assert len(fake.submissions) == 2
    assert _events(db, paid.order["id"])[-4:] == [
        "refund_processing",
        "refund_initiated",
        "refund_processing",
        "refunded",
    ]


def test_expired_envelope_waits_until_horizon_has_closed_a_later_ledger(
    db: Database, fake: FakeHorizon, paid: WrongAmountPaid
) -> None:
    fake.submit_answers = [httpx.Response(504)]
    paid.process()
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE refunds SET max_time = now() - interval '1 minute'"))
    fake.closed_at = datetime.now(UTC) - timedelta(minutes=5)  # Horizon is lagging behind

    result = paid.process()

    assert result.status == RefundStatus.SUBMITTED
    assert len(fake.submissions) == 1  # neither resubmitted (too late) nor rebuilt (may land)
    fake.closed_at = None
    assert paid.process().status == "confirmed"
    assert len(fake.submissions) == 2  # rebuilt (identical here: same sequence, same second)


def test_bad_seq_on_a_first_submit_reloads_the_account_and_rebuilds(
    db: Database, fake: FakeHorizon, paid: WrongAmountPaid
) -> None:

    def someone_else_used_the_sequence(request: httpx.Request) -> httpx.Response:
        fake.sequence += 1
        return _rejected("tx_bad_seq")

    fake.submit_answers = [someone_else_used_the_sequence]
    result = paid.process()
    assert result.status == RefundStatus.CONFIRMED
    sequences = [
        TransactionEnvelope.from_xdr(x, SANDBOX_NETWORK_PASSPHRASE).transaction.sequence
        for x in fake.submissions
    ]
    assert sequences == [1001, 1002]


def test_bad_seq_after_an_unknown_outcome_does_not_rebuild_while_the_envelope_may_land(
    db: Database, fake: FakeHorizon, paid: WrongAmountPaid
) -> None:
    fake.submit_answers = [httpx.Response(504), _rejected("tx_bad_seq")]
    paid.process()
    result = paid.process()
    assert result.status == RefundStatus.SUBMITTED
    row = paid.row()
    assert row["status"] == "submitted" and row["tx_hash"] == result.tx_hash
    assert len(set(fake.submissions)) == 1


@pytest.mark.parametrize(
    "op_code", ["op_no_trust", "op_not_authorized", "op_line_full", "op_no_destination"]
)
def test_recipient_failures_at_submit_are_held_with_result_codes(
    db: Database, fake: FakeHorizon, paid: WrongAmountPaid, op_code: str
) -> None:
    fake.submit_answers = [_rejected("tx_failed", op_code)]
    result = paid.process()
    assert result.status == RefundStatus.HELD
    row = paid.row()
    assert (row["status"], row["hold_reason"], row["envelope_xdr"]) == ("held", op_code, None)
    assert row["result_codes"] == {"transaction": "tx_failed", "operations": [op_code]}
    assert one_row(db, "SELECT status FROM bill_payments")["status"] == "refund_initiated"


def test_underfunded_system_account_alerts_and_retries_later(
    db: Database, fake: FakeHorizon, paid: WrongAmountPaid
) -> None:
    fake.submit_answers = [_rejected("tx_failed", "op_underfunded")]
    result = paid.process()
    assert (result.status, result.alert) == (RefundStatus.RETRY, True)
    row = paid.row()
    assert row["status"] == "pending" and row["envelope_xdr"] is None
    assert "lacks cNGN" in row["last_error"]
    assert claim_refunds(db, "r", 10, 60) == []  # not due until next_attempt_at
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE refunds SET next_attempt_at = now()"))
    assert paid.process().status == "confirmed"


def test_horizon_down_before_building_leaves_nothing_signed(
    db: Database, fake: FakeHorizon, paid: WrongAmountPaid
) -> None:
    fake.account_route.mock(side_effect=httpx.ConnectError("down"))
    result = paid.process()
    assert result.status == RefundStatus.RETRY
    row = paid.row()
    assert (row["status"], row["envelope_xdr"], row["submit_attempts"]) == ("pending", None, 0)
    assert fake.submissions == []


def test_crash_during_submit_resumes_with_the_stored_envelope(
    db: Database, fake: FakeHorizon, paid: WrongAmountPaid
) -> None:
    fake.submit_answers = [RuntimeError("worker killed mid-request")]
    with pytest.raises(RuntimeError):
        paid.process()
    stored = paid.row()
    assert stored["status"] == "submitted" and stored["submit_attempts"] == 1
    result = paid.process()
    assert result.status == RefundStatus.CONFIRMED and result.tx_hash == stored["tx_hash"]
    assert set(fake.submissions) == {stored["envelope_xdr"]}


def test_unknown_payment_held_by_policy_is_sent_after_an_operator_releases_it(
    db: Database, sandboxed: Sandboxed
) -> None:
    held = replace(
        sandboxed,
        settings=sandboxed.settings.model_copy(update={"unknown_reference_policy": "hold"}),
    )
    refund = held.refund_for("who knows", "77")
    assert (refund["status"], refund["hold_reason"]) == ("held", "unknown_reference")
    assert requeue_held_refunds(db) == []  # policy holds wait for a person, not a recheck
    assert held.process(refund["id"], "r").status == RefundStatus.HELD
    assert held.refunds_to_user() == []

    assert release_held_refund(db, refund["id"]) is True
    assert claim_refunds(db, "r", 10, 60)[0].id == refund["id"]
    assert held.process(refund["id"], "r").status == RefundStatus.CONFIRMED
    assert len(held.refunds_to_user()) == 1
    assert release_held_refund(db, refund["id"]) is False
