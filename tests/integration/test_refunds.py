"""Refunds against real PostgreSQL: the sandbox Horizon end to end, and exact paths with respx."""

from __future__ import annotations

import threading
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
from pydantic import SecretStr
from stellar_sdk import MuxedAccount, TransactionEnvelope

from billpay.config import SANDBOX_NETWORK_PASSPHRASE, Settings
from billpay.sandbox import identities as ids
from billpay.sandbox.horizon import SandboxLedger, horizon_env, mount_horizon
from billpay.sandbox.options import SandboxOptions
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
from tests.factories import new_order

SYSTEM = ids.system().account_id
USER = ids.users()[0]
BASE = "http://testserver"


# --- sandbox plumbing -------------------------------------------------------------------------


@pytest.fixture
def sandbox() -> FastAPI:
    app = FastAPI()
    app.state.options = SandboxOptions()
    mount_horizon(app, app.state.options)
    return app


@pytest.fixture
def ledger(sandbox: FastAPI) -> SandboxLedger:
    return sandbox.state.horizon_ledger


@pytest.fixture
def web(sandbox: FastAPI) -> TestClient:
    return TestClient(sandbox)


@pytest.fixture
def stellar_settings(settings: Settings) -> Settings:
    env = horizon_env(BASE)
    return settings.model_copy(
        update={
            "horizon_url": env["BILLPAY_HORIZON_URL"],
            "network_passphrase": env["BILLPAY_NETWORK_PASSPHRASE"],
            "system_account": env["BILLPAY_SYSTEM_ACCOUNT"],
            "system_secret": SecretStr(env["BILLPAY_SYSTEM_SECRET"]),
            "cngn_issuer": env["BILLPAY_CNGN_ISSUER"],
            "ingest_start_cursor": env["BILLPAY_INGEST_START_CURSOR"],
        }
    )


@pytest.fixture
def horizon(stellar_settings: Settings, web: TestClient) -> HorizonClient:
    return HorizonClient.from_settings(stellar_settings, web)


def _user_pays(web: TestClient, memo: str | None, amount: str, **extra: Any) -> dict:
    body = {"from": extra.pop("sender", USER.name), "amount": amount, "memo": memo, **extra}
    response = web.post("/horizon/_sandbox/payments", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _refund_for(
    db: Database,
    settings: Settings,
    horizon: HorizonClient,
    web: TestClient,
    memo: str | None,
    amount: str,
    **extra: Any,
) -> dict:
    _user_pays(web, memo, amount, **extra)
    ingest_payments(db, settings, horizon)
    match_payments(db, settings, actor="matcher", limit=10)
    return _one(db, "SELECT * FROM refunds ORDER BY id DESC LIMIT 1")


def _one(db: Database, sql: str, **params: Any) -> dict:
    with db.begin() as conn:
        row = conn.execute(sa.text(sql), params).mappings().first()
    return dict(row) if row is not None else {}


def _refunds_on_ledger(ledger: SandboxLedger, destination: str) -> list[dict]:
    return [
        op
        for op in ledger.operations
        if op["from"] == SYSTEM and op["to"] == destination and op["transaction_successful"]
    ]


def _cngn(ledger: SandboxLedger, account: str) -> Decimal:
    return ledger.accounts[account].trustlines[("cNGN", ledger.issuer)].balance


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
    db: Database,
    stellar_settings: Settings,
    horizon: HorizonClient,
    web: TestClient,
    ledger: SandboxLedger,
) -> None:
    order = new_order(db, "5000")
    before = _cngn(ledger, USER.account_id)
    refund = _refund_for(db, stellar_settings, horizon, web, f"BILL-{order['reference']}", "4000")
    claimed = claim_refunds(db, "refunder", limit=10, lease_seconds=60)
    assert [r.id for r in claimed] == [refund["id"]]

    result = process_refund(db, stellar_settings, horizon, refund["id"], "refunder")

    assert result.status == RefundStatus.CONFIRMED
    assert _cngn(ledger, USER.account_id) == before  # paid 4000, got 4000 back
    (on_ledger,) = _refunds_on_ledger(ledger, USER.account_id)
    assert on_ledger["transaction_hash"] == result.tx_hash
    tx = ledger.transactions[result.tx_hash]
    assert tx["memo"] == f"REFUND-{order['reference']}"
    row = _one(db, "SELECT * FROM refunds WHERE id = :id", id=refund["id"])
    assert (row["status"], row["tx_hash"], row["claimed_by"]) == ("confirmed", result.tx_hash, None)
    assert row["envelope_xdr"] and row["sequence"] and row["max_time"]
    assert _events(db, order["id"]) == [
        "pending_payment",
        "refund_initiated",
        "refund_processing",
        "refunded",
    ]
    again = process_refund(db, stellar_settings, horizon, refund["id"], "refunder")
    assert again.status == RefundStatus.CONFIRMED
    assert len(_refunds_on_ledger(ledger, USER.account_id)) == 1


def test_submit_that_times_out_after_applying_is_confirmed_by_hash_and_lands_once(
    db: Database,
    stellar_settings: Settings,
    horizon: HorizonClient,
    web: TestClient,
    ledger: SandboxLedger,
) -> None:
    refund = _refund_for(db, stellar_settings, horizon, web, "no such order", "250")
    web.post("/horizon/_sandbox/faults", json={"submit_504_after_apply": 1})
    result = process_refund(db, stellar_settings, horizon, refund["id"], "refunder")
    assert result.status == RefundStatus.CONFIRMED
    assert len(_refunds_on_ledger(ledger, USER.account_id)) == 1
    assert _one(db, "SELECT submit_attempts FROM refunds")["submit_attempts"] == 1


def test_submit_that_times_out_before_applying_is_resubmitted_unchanged(
    db: Database,
    stellar_settings: Settings,
    horizon: HorizonClient,
    web: TestClient,
    ledger: SandboxLedger,
) -> None:
    refund = _refund_for(db, stellar_settings, horizon, web, "no such order", "250")
    web.post("/horizon/_sandbox/faults", json={"submit_504_before_apply": 1})
    first = process_refund(db, stellar_settings, horizon, refund["id"], "refunder")
    assert first.status == RefundStatus.SUBMITTED
    stored = _one(db, "SELECT * FROM refunds WHERE id = :id", id=refund["id"])
    assert stored["status"] == "submitted" and stored["next_attempt_at"] is not None
    assert _refunds_on_ledger(ledger, USER.account_id) == []

    second = process_refund(db, stellar_settings, horizon, refund["id"], "refunder")
    assert second.status == RefundStatus.CONFIRMED
    assert second.tx_hash == stored["tx_hash"]  # the same envelope, not a new one
    assert len(_refunds_on_ledger(ledger, USER.account_id)) == 1


def test_expired_unsent_envelope_is_rebuilt_with_a_fresh_sequence(
    db: Database,
    stellar_settings: Settings,
    horizon: HorizonClient,
    web: TestClient,
    ledger: SandboxLedger,
) -> None:
    order = new_order(db, "5000")
    refund = _refund_for(db, stellar_settings, horizon, web, f"BILL-{order['reference']}", "1")
    web.post("/horizon/_sandbox/faults", json={"submit_504_before_apply": 1})
    assert process_refund(db, stellar_settings, horizon, refund["id"], "r").status == "submitted"
    old = _one(db, "SELECT * FROM refunds WHERE id = :id", id=refund["id"])
    # Another transaction from the system account uses the sequence, and the time bounds pass.
    _user_pays(web, None, "1", sender="system", to=ids.users()[1].account_id)
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE refunds SET max_time = now() - interval '1 hour'"))

    result = process_refund(db, stellar_settings, horizon, refund["id"], "r")

    assert result.status == RefundStatus.CONFIRMED
    new = _one(db, "SELECT * FROM refunds WHERE id = :id", id=refund["id"])
    assert new["tx_hash"] != old["tx_hash"] and new["sequence"] == old["sequence"] + 1
    assert len(_refunds_on_ledger(ledger, USER.account_id)) == 1
    assert _events(db, order["id"])[-4:] == [
        "refund_processing",
        "refund_initiated",
        "refund_processing",
        "refunded",
    ]


def test_muxed_sender_is_refunded_to_the_muxed_address(
    db: Database,
    stellar_settings: Settings,
    horizon: HorizonClient,
    web: TestClient,
    ledger: SandboxLedger,
) -> None:
    refund = _refund_for(db, stellar_settings, horizon, web, None, "10", from_muxed_id=7)
    muxed = MuxedAccount(USER.account_id, 7).account_muxed
    assert refund["destination"] == muxed
    result = process_refund(db, stellar_settings, horizon, refund["id"], "r")
    assert result.status == RefundStatus.CONFIRMED
    (op,) = _refunds_on_ledger(ledger, USER.account_id)
    assert op["to_muxed"] == muxed


def test_recipient_without_trustline_is_held_without_submitting(
    db: Database,
    stellar_settings: Settings,
    horizon: HorizonClient,
    web: TestClient,
    ledger: SandboxLedger,
) -> None:
    refund = _refund_for(db, stellar_settings, horizon, web, None, "10")
    web.post("/horizon/_sandbox/trustlines", json={"account": USER.name, "remove": True})
    sequence = ledger.accounts[SYSTEM].sequence

    held = process_refund(db, stellar_settings, horizon, refund["id"], "r")

    assert held.status == RefundStatus.HELD
    row = _one(db, "SELECT * FROM refunds WHERE id = :id", id=refund["id"])
    assert (row["status"], row["hold_reason"], row["envelope_xdr"]) == (
        "held",
        "no_trustline",
        None,
    )
    assert row["next_attempt_at"] is not None
    assert ledger.accounts[SYSTEM].sequence == sequence  # nothing was submitted
    assert claim_refunds(db, "r", 10, 60) == []

    # The user adds the trustline back; the periodic recheck requeues it once due.
    web.post("/horizon/_sandbox/trustlines", json={"account": USER.name, "balance": "0"})
    assert requeue_held_refunds(db) == []
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE refunds SET next_attempt_at = now() - interval '1 s'"))
    assert requeue_held_refunds(db) == [refund["id"]]
    assert process_refund(db, stellar_settings, horizon, refund["id"], "r").status == "confirmed"
    assert _cngn(ledger, USER.account_id) == Decimal("10")


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


def _bill_refund(db: Database, amount: str = "5000", paid: str = "4000") -> tuple[dict, dict]:
    """An order paid with the wrong amount: refund row + bill in refund_initiated."""
    order = new_order(db, amount)
    with db.begin() as conn:
        payment_id = conn.execute(
            sa.text(
                """
                INSERT INTO incoming_payments (operation_id, paging_token, transaction_hash,
                    operation_type, from_account, to_account, asset_code, asset_issuer, amount,
                    memo_type, memo, ledger_time)
                VALUES ('op-1', 'op-1', 'h', 'payment', :sender, :system, 'cNGN', :issuer,
                        :amount, 'text', :memo, now())
                RETURNING id
                """
            ),
            {
                "sender": USER.account_id,
                "system": SYSTEM,
                "issuer": ids.issuer().account_id,
                "amount": Decimal(paid),
                "memo": f"BILL-{order['reference']}",
            },
        ).scalar()
        conn.execute(
            sa.text("UPDATE bill_payments SET incoming_payment_id = :p WHERE id = :id"),
            {"p": payment_id, "id": order["id"]},
        )
        conn.execute(
            sa.text("SELECT transition_bill_to_refund(:id, 'amount_mismatch')"), {"id": order["id"]}
        )
    return order, _one(db, "SELECT * FROM refunds")


def _row(db: Database, refund_id: int) -> dict:
    return _one(db, "SELECT * FROM refunds WHERE id = :id", id=refund_id)


def test_envelope_is_stored_before_the_first_submit_and_decodes_to_the_refund(
    db: Database, rsettings: Settings, rhorizon: HorizonClient, fake: FakeHorizon
) -> None:
    order, refund = _bill_refund(db)
    seen: list[dict] = []
    fake.submit_answers = []

    original = fake._submit

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(_row(db, refund["id"]))  # what PostgreSQL holds while the POST is in flight
        return original(request)

    fake.router.post(f"{RBASE}/transactions").mock(side_effect=spy)
    result = process_refund(db, rsettings, rhorizon, refund["id"], "r")

    assert result.status == RefundStatus.CONFIRMED
    (during,) = seen
    assert during["status"] == "submitted" and during["submit_attempts"] == 1
    assert during["envelope_xdr"] == fake.submissions[0] and during["tx_hash"] == result.tx_hash
    assert _one(db, "SELECT status FROM bill_payments")["status"] == "refunded"
    envelope = TransactionEnvelope.from_xdr(during["envelope_xdr"], SANDBOX_NETWORK_PASSPHRASE)
    (op,) = envelope.transaction.operations
    assert op.destination.account_id == USER.account_id
    assert (op.asset.code, op.asset.issuer) == ("cNGN", rsettings.cngn_issuer)
    assert Decimal(op.amount) == Decimal("4000")
    assert envelope.transaction.memo.memo_text == f"REFUND-{order['reference']}".encode()
    assert envelope.transaction.sequence == 1001 == during["sequence"]
    ids.system().keypair.verify(envelope.hash(), envelope.signatures[0].signature)


def test_504_then_hash_found_confirms_without_resubmitting(
    db: Database, rsettings: Settings, rhorizon: HorizonClient, fake: FakeHorizon
) -> None:
    _, refund = _bill_refund(db)

    def applied_then_504(request: httpx.Request) -> httpx.Response:
        fake.apply(parse_qs(request.content.decode())["tx"][0])
        return httpx.Response(504, json={"status": 504, "title": "Timeout"})

    fake.submit_answers = [httpx.ReadTimeout("lost")]
    first = process_refund(db, rsettings, rhorizon, refund["id"], "r")
    assert first.status == RefundStatus.SUBMITTED and len(fake.submissions) == 1

    fake.router.post(f"{RBASE}/transactions").mock(side_effect=applied_then_504)
    second = process_refund(db, rsettings, rhorizon, refund["id"], "r")
    assert second.status == RefundStatus.CONFIRMED
    assert _row(db, refund["id"])["submit_attempts"] == 2
    third = process_refund(db, rsettings, rhorizon, refund["id"], "r")
    assert third.status == RefundStatus.CONFIRMED
    assert _row(db, refund["id"])["submit_attempts"] == 2  # found by hash, not sent again


def test_unknown_outcome_resubmits_the_same_envelope_while_open(
    db: Database, rsettings: Settings, rhorizon: HorizonClient, fake: FakeHorizon
) -> None:
    _, refund = _bill_refund(db)
    fake.submit_answers = [httpx.Response(504), httpx.ConnectError("down")]
    assert process_refund(db, rsettings, rhorizon, refund["id"], "r").status == "submitted"
    assert process_refund(db, rsettings, rhorizon, refund["id"], "r").status == "submitted"
    assert process_refund(db, rsettings, rhorizon, refund["id"], "r").status == "confirmed"
    assert len(set(fake.submissions)) == 1 and len(fake.submissions) == 3


def test_expired_and_absent_envelope_is_rebuilt_with_the_reloaded_sequence(
    db: Database, rsettings: Settings, rhorizon: HorizonClient, fake: FakeHorizon
) -> None:
    order, refund = _bill_refund(db)
    fake.submit_answers = [httpx.Response(504)]
    process_refund(db, rsettings, rhorizon, refund["id"], "r")
    old = _row(db, refund["id"])
    fake.sequence = 1005  # other transactions used the account meanwhile
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE refunds SET max_time = now() - interval '10 minutes'"))

    result = process_refund(db, rsettings, rhorizon, refund["id"], "r")

    assert result.status == RefundStatus.CONFIRMED
    new = _row(db, refund["id"])
    assert new["tx_hash"] != old["tx_hash"] and new["sequence"] == 1006
    assert len(fake.submissions) == 2
    assert _events(db, order["id"])[-4:] == [
        "refund_processing",
        "refund_initiated",
        "refund_processing",
        "refunded",
    ]


def test_expired_envelope_waits_until_horizon_has_closed_a_later_ledger(
    db: Database, rsettings: Settings, rhorizon: HorizonClient, fake: FakeHorizon
) -> None:
    _, refund = _bill_refund(db)
    fake.submit_answers = [httpx.Response(504)]
    process_refund(db, rsettings, rhorizon, refund["id"], "r")
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE refunds SET max_time = now() - interval '1 minute'"))
    fake.closed_at = datetime.now(UTC) - timedelta(minutes=5)  # Horizon is lagging behind

    result = process_refund(db, rsettings, rhorizon, refund["id"], "r")

    assert result.status == RefundStatus.SUBMITTED
    assert len(fake.submissions) == 1  # neither resubmitted (too late) nor rebuilt (may land)
    fake.closed_at = None
    assert process_refund(db, rsettings, rhorizon, refund["id"], "r").status == "confirmed"
    assert len(fake.submissions) == 2  # rebuilt (identical here: same sequence, same second)


def test_bad_seq_on_a_first_submit_reloads_the_account_and_rebuilds(
    db: Database, rsettings: Settings, rhorizon: HorizonClient, fake: FakeHorizon
) -> None:
    _, refund = _bill_refund(db)

    def someone_else_used_the_sequence(request: httpx.Request) -> httpx.Response:
        fake.sequence += 1
        return _rejected("tx_bad_seq")

    fake.submit_answers = [someone_else_used_the_sequence]
    result = process_refund(db, rsettings, rhorizon, refund["id"], "r")
    assert result.status == RefundStatus.CONFIRMED
    sequences = [
        TransactionEnvelope.from_xdr(x, SANDBOX_NETWORK_PASSPHRASE).transaction.sequence
        for x in fake.submissions
    ]
    assert sequences == [1001, 1002]


def test_bad_seq_after_an_unknown_outcome_does_not_rebuild_while_the_envelope_may_land(
    db: Database, rsettings: Settings, rhorizon: HorizonClient, fake: FakeHorizon
) -> None:
    _, refund = _bill_refund(db)
    fake.submit_answers = [httpx.Response(504), _rejected("tx_bad_seq")]
    process_refund(db, rsettings, rhorizon, refund["id"], "r")
    result = process_refund(db, rsettings, rhorizon, refund["id"], "r")
    assert result.status == RefundStatus.SUBMITTED
    row = _row(db, refund["id"])
    assert row["status"] == "submitted" and row["tx_hash"] == result.tx_hash
    assert len(set(fake.submissions)) == 1


@pytest.mark.parametrize(
    "op_code", ["op_no_trust", "op_not_authorized", "op_line_full", "op_no_destination"]
)
def test_recipient_failures_at_submit_are_held_with_result_codes(
    db: Database, rsettings: Settings, rhorizon: HorizonClient, fake: FakeHorizon, op_code: str
) -> None:
    _, refund = _bill_refund(db)
    fake.submit_answers = [_rejected("tx_failed", op_code)]
    result = process_refund(db, rsettings, rhorizon, refund["id"], "r")
    assert result.status == RefundStatus.HELD
    row = _row(db, refund["id"])
    assert (row["status"], row["hold_reason"], row["envelope_xdr"]) == ("held", op_code, None)
    assert row["result_codes"] == {"transaction": "tx_failed", "operations": [op_code]}
    assert _one(db, "SELECT status FROM bill_payments")["status"] == "refund_initiated"


def test_underfunded_system_account_alerts_and_retries_later(
    db: Database, rsettings: Settings, rhorizon: HorizonClient, fake: FakeHorizon
) -> None:
    _, refund = _bill_refund(db)
    fake.submit_answers = [_rejected("tx_failed", "op_underfunded")]
    result = process_refund(db, rsettings, rhorizon, refund["id"], "r")
    assert (result.status, result.alert) == (RefundStatus.RETRY, True)
    row = _row(db, refund["id"])
    assert row["status"] == "pending" and row["envelope_xdr"] is None
    assert "lacks cNGN" in row["last_error"]
    assert claim_refunds(db, "r", 10, 60) == []  # not due until next_attempt_at
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE refunds SET next_attempt_at = now()"))
    assert process_refund(db, rsettings, rhorizon, refund["id"], "r").status == "confirmed"


def test_horizon_down_before_building_leaves_nothing_signed(
    db: Database, rsettings: Settings, rhorizon: HorizonClient, fake: FakeHorizon
) -> None:
    _, refund = _bill_refund(db)
    fake.account_route.mock(side_effect=httpx.ConnectError("down"))
    result = process_refund(db, rsettings, rhorizon, refund["id"], "r")
    assert result.status == RefundStatus.RETRY
    row = _row(db, refund["id"])
    assert (row["status"], row["envelope_xdr"], row["submit_attempts"]) == ("pending", None, 0)
    assert fake.submissions == []


def test_crash_during_submit_resumes_with_the_stored_envelope(
    db: Database, rsettings: Settings, rhorizon: HorizonClient, fake: FakeHorizon
) -> None:
    _, refund = _bill_refund(db)
    fake.submit_answers = [RuntimeError("worker killed mid-request")]
    with pytest.raises(RuntimeError):
        process_refund(db, rsettings, rhorizon, refund["id"], "r")
    stored = _row(db, refund["id"])
    assert stored["status"] == "submitted" and stored["submit_attempts"] == 1
    result = process_refund(db, rsettings, rhorizon, refund["id"], "r")
    assert result.status == RefundStatus.CONFIRMED and result.tx_hash == stored["tx_hash"]
    assert set(fake.submissions) == {stored["envelope_xdr"]}


def test_unknown_payment_held_by_policy_is_sent_after_an_operator_releases_it(
    db: Database,
    stellar_settings: Settings,
    horizon: HorizonClient,
    web: TestClient,
    ledger: SandboxLedger,
) -> None:
    hold = stellar_settings.model_copy(update={"unknown_reference_policy": "hold"})
    refund = _refund_for(db, hold, horizon, web, "who knows", "77")
    assert (refund["status"], refund["hold_reason"]) == ("held", "unknown_reference")
    assert requeue_held_refunds(db) == []  # policy holds wait for a person, not a recheck
    assert process_refund(db, hold, horizon, refund["id"], "r").status == RefundStatus.HELD
    assert _refunds_on_ledger(ledger, USER.account_id) == []

    assert release_held_refund(db, refund["id"]) is True
    assert claim_refunds(db, "r", 10, 60)[0].id == refund["id"]
    assert process_refund(db, hold, horizon, refund["id"], "r").status == RefundStatus.CONFIRMED
    assert len(_refunds_on_ledger(ledger, USER.account_id)) == 1
    assert release_held_refund(db, refund["id"]) is False
