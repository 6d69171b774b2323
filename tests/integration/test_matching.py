"""Matching against real PostgreSQL: every payment gets exactly one outcome, rows as described."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal
from itertools import count

import pytest
import sqlalchemy as sa
from stellar_sdk import MuxedAccount

from billpay.config import Settings, UnknownReferencePolicy
from billpay.sandbox import identities as ids
from billpay.stellar import match_payments
from billpay.stellar.ingest import IncomingPayment
from billpay.store import bills
from billpay.store.engine import Database
from billpay.store.queries import query
from tests.db_reads import one_row
from tests.factories import new_order

SYSTEM = ids.system().account_id
ISSUER = ids.issuer().account_id
SENDER = ids.users()[0].account_id
LEDGER_TIME = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
_ops = count(1)


@pytest.fixture
def stellar_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"system_account": SYSTEM, "cngn_issuer": ISSUER})


def _pay(
    db: Database,
    memo: str | None,
    amount: str | None = "5000",
    *,
    memo_type: str = "text",
    from_muxed: str | None = None,
    **fields: object,
) -> int:
    n = next(_ops)
    payment = IncomingPayment(
        operation_id=str(1000 + n),
        paging_token=str(1000 + n),
        transaction_hash=f"{n:064x}",
        operation_type=str(fields.pop("operation_type", "payment")),
        from_account=str(fields.pop("from_account", SENDER)),
        from_muxed=from_muxed,
        to_account=SYSTEM,
        to_muxed_id=fields.pop("to_muxed_id", None),  # type: ignore[arg-type]
        asset_type=str(fields.pop("asset_type", "credit_alphanum4")),
        asset_code=fields.pop("asset_code", "cNGN"),  # type: ignore[arg-type]
        asset_issuer=fields.pop("asset_issuer", ISSUER),  # type: ignore[arg-type]
        amount=None if amount is None else Decimal(amount),
        memo_type=memo_type if memo is not None else "none",
        memo=memo,
        ledger=5000 + n,
        ledger_time=LEDGER_TIME,
    )
    with db.begin() as conn:
        return conn.execute(query("insert_incoming_payment"), _params(payment)).scalar()


def _params(payment: IncomingPayment) -> dict:
    return {name: getattr(payment, name) for name in IncomingPayment.__dataclass_fields__}


def _payment(db: Database, payment_id: int) -> dict:
    return one_row(db, "SELECT * FROM incoming_payments WHERE id = :id", id=payment_id)


def _bill(db: Database, bill_id: int) -> dict:
    return one_row(db, "SELECT * FROM bill_payments WHERE id = :id", id=bill_id)


def _refund(db: Database, payment_id: int) -> dict:
    return one_row(db, "SELECT * FROM refunds WHERE incoming_payment_id = :id", id=payment_id)


def _expire(db: Database, bill_id: int) -> None:
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE bill_payments SET expires_at = now() - interval '1 second' WHERE id = :id"
            ),
            {"id": bill_id},
        )


def test_exact_amount_and_memo_marks_the_order_paid(
    db: Database, stellar_settings: Settings
) -> None:
    order = new_order(db, "5000")
    payment_id = _pay(db, f"BILL-{order['reference']}", "5000.0000000")
    summary = match_payments(db, stellar_settings, actor="matcher-1", limit=10)
    assert summary.processed == 1 and summary.outcomes == {"matched": 1}
    bill = _bill(db, order["id"])
    assert bill["status"] == "cngn_received"
    assert bill["incoming_payment_id"] == payment_id
    assert bill["paid_at"] == LEDGER_TIME
    payment = _payment(db, payment_id)
    assert payment["match_outcome"] == "matched" and payment["bill_payment_id"] == order["id"]
    assert _refund(db, payment_id) == {}
    event = one_row(
        db,
        "SELECT * FROM bill_payment_events WHERE bill_payment_id = :id ORDER BY id DESC",
        id=order["id"],
    )
    assert (event["to_state"], event["actor"]) == ("cngn_received", "matcher-1")


@pytest.mark.parametrize("amount", ["4999.9999999", "5000.0000001", "10000"])
def test_wrong_amount_links_the_payment_and_refunds_through_the_order(
    db: Database, stellar_settings: Settings, amount: str
) -> None:
    order = new_order(db, "5000")
    payment_id = _pay(db, f"BILL-{order['reference']}", amount)
    match_payments(db, stellar_settings, actor="m", limit=10)
    bill = _bill(db, order["id"])
    assert (bill["status"], bill["refund_reason"]) == ("refund_initiated", "amount_mismatch")
    assert bill["incoming_payment_id"] == payment_id
    assert _payment(db, payment_id)["match_outcome"] == "amount_mismatch"
    refund = _refund(db, payment_id)
    assert refund["bill_payment_id"] == order["id"]
    assert refund["amount"] == Decimal(amount)
    assert refund["destination"] == SENDER
    assert refund["memo"] == f"REFUND-{order['reference']}"
    assert (refund["reason"], refund["status"]) == ("amount_mismatch", "pending")


def test_second_payment_to_a_paid_order_is_refunded_and_the_order_untouched(
    db: Database, stellar_settings: Settings
) -> None:
    order = new_order(db, "5000")
    first = _pay(db, f"BILL-{order['reference']}")
    second = _pay(db, f"BILL-{order['reference']}")
    summary = match_payments(db, stellar_settings, actor="m", limit=10)
    assert summary.outcomes == {"matched": 1, "order_not_payable": 1}
    assert _bill(db, order["id"])["incoming_payment_id"] == first
    refund = _refund(db, second)
    assert refund["bill_payment_id"] is None
    assert (refund["reason"], refund["memo"]) == (
        "order_not_payable",
        f"REFUND-{order['reference']}",
    )
    assert _payment(db, second)["match_outcome"] == "order_not_payable"


def test_payment_to_an_expired_order_is_refunded(db: Database, stellar_settings: Settings) -> None:
    order = new_order(db, "5000")
    _expire(db, order["id"])
    bills.expire_due_orders(db, actor="expirer")
    payment_id = _pay(db, f"BILL-{order['reference']}")
    match_payments(db, stellar_settings, actor="m", limit=10)
    assert _bill(db, order["id"])["status"] == "expired"
    assert _payment(db, payment_id)["match_outcome"] == "order_not_payable"
    assert _refund(db, payment_id)["reason"] == "order_not_payable"


def test_pending_order_past_its_expiry_is_not_payable(
    db: Database, stellar_settings: Settings
) -> None:
    order = new_order(db, "5000")
    _expire(db, order["id"])  # the expire job has not run yet
    payment_id = _pay(db, f"BILL-{order['reference']}")
    match_payments(db, stellar_settings, actor="m", limit=10)
    bill = _bill(db, order["id"])
    assert (bill["status"], bill["incoming_payment_id"]) == ("pending_payment", None)
    assert _payment(db, payment_id)["match_outcome"] == "order_not_payable"
    assert _refund(db, payment_id)["bill_payment_id"] is None


@pytest.mark.parametrize(
    ("memo", "memo_type"),
    [
        (None, "none"),
        ("BILL-ZZZZZZZZZZ", "text"),  # well formed, no such order
        ("hello", "text"),
        ("BILL-\\xff\\xfe", "text"),  # how undecodable memo bytes are stored
        ("1234567890", "id"),
        ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "hash"),
    ],
)
def test_payment_naming_no_order_is_refunded_to_its_sender(
    db: Database, stellar_settings: Settings, memo: str | None, memo_type: str
) -> None:
    muxed = MuxedAccount(SENDER, 99).account_muxed
    payment_id = _pay(db, memo, "123.4567890", memo_type=memo_type, from_muxed=muxed)
    match_payments(db, stellar_settings, actor="m", limit=10)
    assert _payment(db, payment_id)["match_outcome"] == "unknown_reference"
    refund = _refund(db, payment_id)
    assert refund["destination"] == muxed  # the muxed sender, not its base account
    assert refund["amount"] == Decimal("123.456789")
    assert refund["memo"] == f"REFUND-P{payment_id}"
    assert (refund["reason"], refund["status"], refund["bill_payment_id"]) == (
        "unknown_reference",
        "pending",
        None,
    )


def test_memo_must_be_exactly_bill_reference(db: Database, stellar_settings: Settings) -> None:
    order = new_order(db, "5000")
    variants = [
        f"bill-{order['reference']}",
        f"BILL-{order['reference']} ",
        f" BILL-{order['reference']}",
        f"BILL-{order['reference'].lower()}",
    ]
    ids_ = [_pay(db, memo) for memo in variants]
    id_memo = _pay(db, f"BILL-{order['reference']}", memo_type="id")
    match_payments(db, stellar_settings, actor="m", limit=10)
    for payment_id in [*ids_, id_memo]:
        assert _payment(db, payment_id)["match_outcome"] == "unknown_reference"
    assert _bill(db, order["id"])["status"] == "pending_payment"


def test_hold_policy_parks_unknown_payments_for_review(
    db: Database, stellar_settings: Settings
) -> None:
    hold = stellar_settings.model_copy(
        update={"unknown_reference_policy": UnknownReferencePolicy.HOLD}
    )
    payment_id = _pay(db, "no order here")
    summary = match_payments(db, hold, actor="m", limit=10)
    assert summary.outcomes == {"held_for_review": 1}
    assert _payment(db, payment_id)["match_outcome"] == "held_for_review"
    refund = _refund(db, payment_id)
    assert (refund["status"], refund["hold_reason"]) == ("held", "unknown_reference")
    assert one_row(db, "SELECT count(*) AS n FROM queue_refunds")["n"] == 0


def test_every_payment_gets_exactly_one_outcome(db: Database, stellar_settings: Settings) -> None:
    orders = [new_order(db, "5000") for _ in range(3)]
    for order in orders:
        _pay(db, f"BILL-{order['reference']}")
    _pay(db, None)
    _pay(db, f"BILL-{orders[0]['reference']}", "1")
    first = match_payments(db, stellar_settings, actor="m", limit=2)
    rest = match_payments(db, stellar_settings, actor="m", limit=100)
    assert (first.processed, rest.processed) == (2, 3)
    assert match_payments(db, stellar_settings, actor="m", limit=100).processed == 0
    counts = one_row(
        db,
        "SELECT count(*) FILTER (WHERE match_outcome IS NULL) AS open, count(*) AS total,"
        " (SELECT count(*) FROM refunds) AS refunds FROM incoming_payments",
    )
    assert counts == {"open": 0, "total": 5, "refunds": 2}


def test_a_payment_locked_by_another_matcher_is_skipped(
    db: Database, stellar_settings: Settings
) -> None:
    locked = _pay(db, None)
    free = _pay(db, None)
    with db.engine.connect() as other:
        other.execute(
            sa.text("SELECT 1 FROM incoming_payments WHERE id = :id FOR UPDATE"), {"id": locked}
        )
        summary = match_payments(db, stellar_settings, actor="m2", limit=10)
        assert summary.processed == 1
        assert _payment(db, free)["match_outcome"] == "unknown_reference"
        other.rollback()
    assert _payment(db, locked)["match_outcome"] is None
    assert match_payments(db, stellar_settings, actor="m2", limit=10).processed == 1


def test_expiry_and_matching_cannot_interleave(db: Database, stellar_settings: Settings) -> None:
    """The expire job holds the order row; the matcher waits and then sees it expired."""
    order = new_order(db, "5000")
    payment_id = _pay(db, f"BILL-{order['reference']}")
    done = threading.Event()
    with db.engine.connect() as expirer:
        expirer.execute(
            sa.text("UPDATE bill_payments SET expires_at = now() - interval '1 s' WHERE id = :id"),
            {"id": order["id"]},
        )
        thread = threading.Thread(
            target=lambda: (match_payments(db, stellar_settings, actor="m", limit=1), done.set())
        )
        thread.start()
        assert not done.wait(0.5)  # blocked on the order row lock
        expirer.execute(
            sa.text("UPDATE bill_payments SET status = 'expired' WHERE id = :id"),
            {"id": order["id"]},
        )
        expirer.commit()
    thread.join(timeout=10)
    assert done.is_set()
    assert _payment(db, payment_id)["match_outcome"] == "order_not_payable"
    assert _bill(db, order["id"])["status"] == "expired"
