"""Rows operators settle by hand: held refunds and quarantined Horizon records
(``sql/queries/operator.sql``; the refund status writers are those of ``sql/queries/refunds.sql``).
Every act records who and why."""

from __future__ import annotations

from typing import Any

from billpay.store.engine import Database
from billpay.store.queries import query


def held_refunds(db: Database, limit: int = 100) -> list[dict[str, Any]]:
    with db.connect() as conn:
        return [dict(r) for r in conn.execute(query("held_refunds"), {"limit": limit}).mappings()]


def release_refund(db: Database, refund_id: int, *, actor: str, note: str) -> bool:
    """A held refund may go (back to pending), with the operator's note, in one transaction.
    False if it was not held."""
    with db.begin() as conn:
        released = bool(
            conn.execute(query("refund_release"), {"id": refund_id, "actor": actor}).scalar()
        )
        if released:
            params = {"id": refund_id, "actor": actor, "note": note}
            conn.execute(query("note_refund_release"), params)
    return released


def settle_refund(
    db: Database, refund_id: int, *, tx_hash: str, actor: str, note: str
) -> str | None:
    """A held refund returned by hand in transaction ``tx_hash``: confirmed with it (its bill, if
    any, refunded), audited, in one transaction. None when done, else why not. A settled refund
    is confirmed, so nothing can release and send it a second time."""
    with db.begin() as conn:
        status = conn.execute(query("lock_refund_status"), {"id": refund_id}).scalar()
        if status is None:
            return f"no refund {refund_id}"
        if status != "held":
            return (
                f"refund {refund_id} is {status}, not held: only a held refund is settled by hand"
            )
        detail = f"refund {refund_id} settled by hand in {tx_hash}: {note}"
        params = {"id": refund_id, "tx_hash": tx_hash, "actor": actor, "detail": detail}
        if not conn.execute(query("refund_mark_confirmed"), params).scalar():
            return f"refund {refund_id} could not be confirmed with {tx_hash}"
        conn.execute(query("note_refund_release"), {"id": refund_id, "actor": actor, "note": note})
    return None


def open_quarantine(db: Database, limit: int = 100) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(query("open_quarantine"), {"limit": limit}).mappings()
        return [dict(r) for r in rows]


def resolve_quarantine(db: Database, record_id: int, *, actor: str, note: str) -> bool:
    """Mark a quarantined record settled by hand. False if there is no such open record."""
    with db.begin() as conn:
        params = {"id": record_id, "actor": actor, "note": note}
        return conn.execute(query("resolve_quarantine"), params).scalar() is not None
