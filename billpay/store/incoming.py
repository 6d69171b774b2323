"""SQL for incoming cNGN payments: the ingest cursor, storing pages, and matching them to orders.

Every function takes a connection already inside a transaction, except the two that own one
(:func:`get_cursor`, :func:`store_page`). Queries: ``sql/queries/incoming.sql``; the order's
status changes are the status writers of ``sql/0007_status_writers.sql``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from billpay.store import notifications as outbox
from billpay.store.engine import Database
from billpay.store.queries import query

QUARANTINE_ALERT = "ingest_record_quarantined"
HELD_WITHOUT_REFUND_ALERT = "inbound_transfer_held_without_refund"
TREASURY_REFERENCE_ALERT = "treasury_payment_names_order"

# --- ingest -------------------------------------------------------------------------------------


class _CursorMoved(Exception):
    pass


def get_cursor(db: Database, account: str) -> str | None:
    with db.begin() as conn:
        return conn.execute(query("get_ingest_cursor"), {"account": account}).scalar()


@dataclass(frozen=True, slots=True)
class PageWritten:
    payments: int  # new incoming_payments rows
    quarantined: int  # new ingest_quarantine rows


def store_page(
    db: Database,
    account: str,
    old_cursor: str,
    new_cursor: str,
    payments: Sequence[Mapping[str, Any]],
    quarantined: Sequence[Mapping[str, Any]] = (),
) -> PageWritten | None:
    """Store the page's payments (one mapping of ``incoming_payments`` columns each) and its
    quarantined records (with an operator alert each), and move the cursor, in one transaction.

    Returns how many rows were new, or None (nothing written) when the stored cursor is no
    longer ``old_cursor``: another ingester got there first.
    """
    try:
        with db.begin() as conn:
            if not _advance_cursor(conn, account, old_cursor, new_cursor):
                raise _CursorMoved
            inserted = 0
            for payment in payments:
                row = conn.execute(query("insert_incoming_payment"), dict(payment)).first()
                inserted += row is not None
            held = sum(_quarantine(conn, account, record) for record in quarantined)
            return PageWritten(inserted, held)
    except _CursorMoved:
        return None


def _quarantine(conn: Connection, account: str, record: Mapping[str, Any]) -> bool:
    """One quarantined record and its operator alert; a replayed page adds neither again."""
    params = {
        "account": account,
        "record_key": record["record_key"],
        "paging_token": record["paging_token"],
        "record": json.dumps(record["record"]),
        "error": record["error"],
    }
    quarantine_id = conn.execute(query("insert_quarantined_record"), params).scalar()
    if quarantine_id is None:
        return False
    outbox.enqueue(
        conn,
        kind=QUARANTINE_ALERT,
        payload={
            "quarantine_id": quarantine_id,
            "paging_token": record["paging_token"],
            "error": record["error"][:200],
        },
        dedupe_key=f"quarantine:{quarantine_id}",
    )
    return True


def _advance_cursor(conn: Connection, account: str, old: str, new: str) -> bool:
    params = {"account": account, "old": old, "new": new}
    if conn.execute(query("advance_ingest_cursor"), params).first() is not None:
        return True
    if conn.execute(query("get_ingest_cursor"), params).first() is not None:
        return False  # a stored cursor exists and differs from the one we read from
    return conn.execute(query("create_ingest_cursor"), params).first() is not None


# --- matching -----------------------------------------------------------------------------------


class ConflictError(RuntimeError):
    """A compare-and-set found the row in another state than the lock said it was in."""


def lock_next_unmatched(conn: Connection) -> dict[str, Any] | None:
    row = conn.execute(query("lock_next_unmatched_payment")).mappings().first()
    return dict(row) if row is not None else None


def lock_order(conn: Connection, reference: str) -> dict[str, Any] | None:
    params = {"reference": reference}
    row = conn.execute(query("lock_order_by_reference"), params).mappings().first()
    return dict(row) if row is not None else None


def lock_order_by_muxed_id(conn: Connection, muxed_id: int) -> dict[str, Any] | None:
    """The order whose M-address carries ``muxed_id`` (sql/0016), locked FOR UPDATE."""
    row = conn.execute(query("lock_order_by_muxed_id"), {"muxed_id": muxed_id}).mappings().first()
    return dict(row) if row else None


def record_outcome(
    conn: Connection, payment_id: int, outcome: str, bill_id: int | None = None
) -> None:
    params = {"payment_id": payment_id, "outcome": outcome, "bill_id": bill_id}
    if conn.execute(query("record_match_outcome"), params).first() is None:
        raise ConflictError(f"incoming payment {payment_id} already has a match outcome")


def mark_order_paid(
    conn: Connection, bill_id: int, payment_id: int, paid_at: datetime, **audit: str | None
) -> None:
    """``bill_mark_paid``: pending_payment -> cngn_received. ``audit``: actor, detail."""
    _move_order(conn, "bill_mark_paid", bill_id, audit, payment_id=payment_id, paid_at=paid_at)


def refund_for_amount_mismatch(
    conn: Connection, bill_id: int, payment_id: int, **audit: str | None
) -> None:
    """Link the payment to the order, then pending_payment -> refund_initiated (+ refund row)."""
    _move_order(conn, "bill_refund_amount_mismatch", bill_id, audit, payment_id=payment_id)


def _move_order(
    conn: Connection, writer: str, bill_id: int, audit: dict[str, str | None], **params: Any
) -> None:
    """Run the status writer ``writer`` on a pending order; the audit event names the actor."""
    params |= {"bill_id": bill_id, "actor": audit.get("actor"), "detail": audit.get("detail")}
    if not conn.execute(query(writer), params).scalar():
        raise ConflictError(f"bill {bill_id} is no longer pending_payment")


def alert_treasury_names_order(
    conn: Connection,
    *,
    payment_id: int,
    operation_id: str,
    memo: str | None,
    to_muxed_id: int | None,
) -> bool:
    """Operator alert: treasury money named an order it did not pay (recorded as treasury)."""
    return outbox.enqueue(
        conn,
        kind=TREASURY_REFERENCE_ALERT,
        payload={
            "incoming_payment_id": payment_id,
            "operation_id": operation_id,
            "memo": memo,
            "to_muxed_id": to_muxed_id,
        },
        dedupe_key=f"treasury-reference:{payment_id}",
    )


def alert_held_without_refund(
    conn: Connection, *, payment_id: int, operation_id: str, operation_type: str
) -> bool:
    """Operator alert: value arrived that is held for a person but has no refund row to list
    (an account merge: Horizon's record does not say how much XLM it moved)."""
    return outbox.enqueue(
        conn,
        kind=HELD_WITHOUT_REFUND_ALERT,
        payload={
            "incoming_payment_id": payment_id,
            "operation_id": operation_id,
            "operation_type": operation_type,
        },
        dedupe_key=f"held-without-refund:{payment_id}",
    )


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
    return conn.execute(query("insert_refund_without_order"), params).scalar()
