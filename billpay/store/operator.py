"""Rows operators settle by hand: held refunds and quarantined Horizon records
(``sql/queries/operator.sql``). Every act records who and why."""

from __future__ import annotations

from typing import Any

from billpay.store import refunds as refund_store
from billpay.store.engine import Database
from billpay.store.queries import query


def held_refunds(db: Database, limit: int = 100) -> list[dict[str, Any]]:
    with db.connect() as conn:
        return [dict(r) for r in conn.execute(query("held_refunds"), {"limit": limit}).mappings()]


def release_refund(db: Database, refund_id: int, *, actor: str, note: str) -> bool:
    """A held refund may go (back to pending), with the operator's note. False if not held."""
    released = refund_store.release_held_refund(db, refund_id, actor=actor)
    if released:
        with db.begin() as conn:
            params = {"id": refund_id, "actor": actor, "note": note}
            conn.execute(query("note_refund_release"), params)
    return released


def open_quarantine(db: Database, limit: int = 100) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(query("open_quarantine"), {"limit": limit}).mappings()
        return [dict(r) for r in rows]


def resolve_quarantine(db: Database, record_id: int, *, actor: str, note: str) -> bool:
    """Mark a quarantined record settled by hand. False if there is no such open record."""
    with db.begin() as conn:
        params = {"id": record_id, "actor": actor, "note": note}
        return conn.execute(query("resolve_quarantine"), params).scalar() is not None
