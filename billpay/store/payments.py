"""SQL for incoming cNGN payments: the ingest cursor, storing pages, and matching them to orders.

Every function takes a connection already inside a transaction, except the two that own one
(:func:`get_cursor`, :func:`store_page`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from billpay.store.engine import Database

if TYPE_CHECKING:
    from billpay.stellar.ingest import IncomingPayment

# --- ingest -------------------------------------------------------------------------------------

GET_CURSOR = sa.text("SELECT cursor FROM ingest_cursors WHERE account = :account")

# Compare-and-set: the row lock makes a second ingester wait, then find the cursor moved.
ADVANCE_CURSOR = sa.text(
    """
    UPDATE ingest_cursors SET cursor = :new, updated_at = now()
     WHERE account = :account AND cursor = :old
    RETURNING account
    """
)

CREATE_CURSOR = sa.text(
    """
    INSERT INTO ingest_cursors (account, cursor) VALUES (:account, :new)
    ON CONFLICT (account) DO NOTHING
    RETURNING account
    """
)

INSERT_PAYMENT = sa.text(
    """
    INSERT INTO incoming_payments (
        operation_id, paging_token, transaction_hash, operation_type, from_account, from_muxed,
        to_account, asset_code, asset_issuer, amount, memo_type, memo, ledger, ledger_time)
    VALUES (
        :operation_id, :paging_token, :transaction_hash, :operation_type, :from_account,
        :from_muxed, :to_account, :asset_code, :asset_issuer, :amount, :memo_type, :memo, :ledger,
        :ledger_time)
    ON CONFLICT (operation_id) DO NOTHING
    RETURNING id
    """
)


class _CursorMoved(Exception):
    pass


def get_cursor(db: Database, account: str) -> str | None:
    with db.begin() as conn:
        return conn.execute(GET_CURSOR, {"account": account}).scalar()


def store_page(
    db: Database,
    account: str,
    old_cursor: str,
    new_cursor: str,
    payments: Sequence[IncomingPayment],
) -> int | None:
    """Store the page's payments and move the cursor in one transaction.

    Returns how many rows were new, or None (nothing written) when the stored cursor is no
    longer ``old_cursor``: another ingester got there first.
    """
    try:
        with db.begin() as conn:
            if not _advance_cursor(conn, account, old_cursor, new_cursor):
                raise _CursorMoved
            inserted = 0
            for payment in payments:
                if conn.execute(INSERT_PAYMENT, asdict(payment)).first() is not None:
                    inserted += 1
            return inserted
    except _CursorMoved:
        return None


def _advance_cursor(conn: Connection, account: str, old: str, new: str) -> bool:
    params = {"account": account, "old": old, "new": new}
    if conn.execute(ADVANCE_CURSOR, params).first() is not None:
        return True
    if conn.execute(GET_CURSOR, params).first() is not None:
        return False  # a stored cursor exists and differs from the one we read from
    return conn.execute(CREATE_CURSOR, params).first() is not None


# --- matching -----------------------------------------------------------------------------------

SET_ACTOR = sa.text(
    "SELECT set_config('billpay.actor', :actor, true), set_config('billpay.detail', :detail, true)"
)

LOCK_NEXT_UNMATCHED = sa.text(
    """
    SELECT id, operation_id, transaction_hash, from_account, from_muxed, amount, memo_type, memo,
           ledger_time
      FROM queue_match_payments
     ORDER BY id
     LIMIT 1
       FOR UPDATE SKIP LOCKED
    """
)

LOCK_ORDER = sa.text(
    """
    SELECT id, reference, status, amount_cngn, expires_at, expires_at > now() AS open
      FROM bill_payments
     WHERE reference = :reference
       FOR UPDATE
    """
)

RECORD_OUTCOME = sa.text(
    """
    UPDATE incoming_payments
       SET match_outcome = :outcome, bill_payment_id = :bill_id, matched_at = now()
     WHERE id = :payment_id AND match_outcome IS NULL
    RETURNING id
    """
)

MARK_ORDER_PAID = sa.text(
    """
    UPDATE bill_payments
       SET status = 'cngn_received', incoming_payment_id = :payment_id, paid_at = :paid_at,
           updated_at = now()
     WHERE id = :bill_id AND status = 'pending_payment' AND incoming_payment_id IS NULL
    RETURNING id
    """
)

LINK_PAYMENT = sa.text(
    """
    UPDATE bill_payments SET incoming_payment_id = :payment_id, updated_at = now()
     WHERE id = :bill_id AND status = 'pending_payment' AND incoming_payment_id IS NULL
    RETURNING id
    """
)

TRANSITION_TO_REFUND = sa.text("SELECT transition_bill_to_refund(:bill_id, :reason)")

INSERT_REFUND = sa.text(
    """
    INSERT INTO refunds (incoming_payment_id, bill_payment_id, destination, amount, memo, reason,
                         status, hold_reason)
    VALUES (:payment_id, :bill_id, :destination, :amount, :memo, :reason, :status, :hold_reason)
    ON CONFLICT (incoming_payment_id) DO NOTHING
    RETURNING id
    """
)


class ConflictError(RuntimeError):
    """A compare-and-set found the row in another state than the lock said it was in."""


def set_actor(conn: Connection, actor: str, detail: str = "") -> None:
    conn.execute(SET_ACTOR, {"actor": actor, "detail": detail})


def lock_next_unmatched(conn: Connection) -> dict[str, Any] | None:
    row = conn.execute(LOCK_NEXT_UNMATCHED).mappings().first()
    return dict(row) if row is not None else None


def lock_order(conn: Connection, reference: str) -> dict[str, Any] | None:
    row = conn.execute(LOCK_ORDER, {"reference": reference}).mappings().first()
    return dict(row) if row is not None else None


def record_outcome(
    conn: Connection, payment_id: int, outcome: str, bill_id: int | None = None
) -> None:
    params = {"payment_id": payment_id, "outcome": outcome, "bill_id": bill_id}
    if conn.execute(RECORD_OUTCOME, params).first() is None:
        raise ConflictError(f"incoming payment {payment_id} already has a match outcome")


def mark_order_paid(conn: Connection, bill_id: int, payment_id: int, paid_at: datetime) -> None:
    params = {"bill_id": bill_id, "payment_id": payment_id, "paid_at": paid_at}
    if conn.execute(MARK_ORDER_PAID, params).first() is None:
        raise ConflictError(f"bill {bill_id} is no longer pending_payment")


def refund_for_amount_mismatch(conn: Connection, bill_id: int, payment_id: int) -> None:
    """Link the payment to the order, then pending_payment -> refund_initiated (+ refund row)."""
    params = {"bill_id": bill_id, "payment_id": payment_id}
    if conn.execute(LINK_PAYMENT, params).first() is None:
        raise ConflictError(f"bill {bill_id} is no longer pending_payment")
    reason = {"bill_id": bill_id, "reason": "amount_mismatch"}
    if not conn.execute(TRANSITION_TO_REFUND, reason).scalar():
        raise ConflictError(f"bill {bill_id} could not move to refund_initiated")


def insert_refund(
    conn: Connection,
    *,
    payment_id: int,
    destination: str,
    amount: Decimal,
    memo: str,
    reason: str,
    bill_id: int | None = None,
    held: bool = False,
) -> int | None:
    params = {
        "payment_id": payment_id,
        "bill_id": bill_id,
        "destination": destination,
        "amount": amount,
        "memo": memo,
        "reason": reason,
        "status": "held" if held else "pending",
        "hold_reason": reason if held else None,
    }
    return conn.execute(INSERT_REFUND, params).scalar()
