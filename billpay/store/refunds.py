"""SQL for cNGN refunds: claims with a lease, the envelope lifecycle, holds and confirmation.

A refund row's ``status`` means:
  pending    no envelope in flight; build one when due
  submitted  a signed envelope is stored (before its first POST) and may be on the ledger
  held       not sendable without a change (recipient cannot receive, or policy): see hold_reason
  confirmed  on the ledger; ``tx_hash`` is the proof
The bill, when there is one, follows: refund_initiated while pending, refund_processing while an
envelope is stored, refunded on confirmation (``mark_refund_processed``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from billpay.store.engine import Database


@dataclass(frozen=True, slots=True)
class RefundRow:
    id: int
    incoming_payment_id: int
    bill_payment_id: int | None
    destination: str
    amount: Decimal
    memo: str
    reason: str
    status: str
    hold_reason: str | None
    envelope_xdr: str | None
    tx_hash: str | None
    sequence: int | None
    max_time: datetime | None
    submit_attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    claimed_by: str | None
    claimed_until: datetime | None


_COLUMNS = ", ".join(RefundRow.__dataclass_fields__)

CLAIM = sa.text(
    f"""
    WITH next AS (
        SELECT id FROM queue_refunds
         ORDER BY next_attempt_at NULLS FIRST, id
         LIMIT :limit
           FOR UPDATE SKIP LOCKED
    )
    UPDATE refunds r
       SET claimed_by = :actor,
           claimed_until = now() + make_interval(secs => :lease_seconds),
           updated_at = now()
      FROM next
     WHERE r.id = next.id
    RETURNING {", ".join(f"r.{c}" for c in RefundRow.__dataclass_fields__)}
    """
)

GET = sa.text(f"SELECT {_COLUMNS} FROM refunds WHERE id = :id")

SOURCE_LOCK = sa.text("SELECT pg_advisory_lock(hashtextextended(:key, 0))")
SOURCE_UNLOCK = sa.text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")

SET_ACTOR = sa.text(
    "SELECT set_config('billpay.actor', :actor, true), set_config('billpay.detail', :detail, true)"
)

STORE_ENVELOPE = sa.text(
    """
    UPDATE refunds
       SET status = 'submitted', envelope_xdr = :xdr, tx_hash = :tx_hash, sequence = :sequence,
           max_time = :max_time, submit_attempts = 0, next_attempt_at = NULL, updated_at = now()
     WHERE id = :id AND status = 'pending' AND envelope_xdr IS NULL
    RETURNING id
    """
)

NOTE_SUBMIT = sa.text(
    """
    UPDATE refunds
       SET submit_attempts = submit_attempts + 1, submitted_at = coalesce(submitted_at, now()),
           updated_at = now()
     WHERE id = :id AND status = 'submitted' AND tx_hash = :tx_hash
    RETURNING submit_attempts
    """
)

# Only after the envelope cannot be on the ledger: see billpay.stellar.refunds.
DISCARD_ENVELOPE = sa.text(
    """
    UPDATE refunds
       SET status = :status, hold_reason = :hold_reason, envelope_xdr = NULL, tx_hash = NULL,
           sequence = NULL, max_time = NULL, submit_attempts = 0, last_error = :last_error,
           result_codes = CAST(:result_codes AS jsonb), next_attempt_at = :next_attempt_at,
           claimed_by = NULL, claimed_until = NULL, updated_at = now()
     WHERE id = :id AND status = 'submitted' AND tx_hash = :tx_hash
    RETURNING id
    """
)

# A refund without an envelope: put it on hold or back in the queue for later.
PARK = sa.text(
    """
    UPDATE refunds
       SET status = :status, hold_reason = :hold_reason, last_error = :last_error,
           result_codes = CAST(:result_codes AS jsonb), next_attempt_at = :next_attempt_at,
           claimed_by = NULL, claimed_until = NULL, updated_at = now()
     WHERE id = :id AND status = 'pending' AND envelope_xdr IS NULL
    RETURNING id
    """
)

# The envelope stays (it may still land): look again at next_attempt_at.
RECHECK_LATER = sa.text(
    """
    UPDATE refunds
       SET last_error = :last_error, result_codes = CAST(:result_codes AS jsonb),
           next_attempt_at = :next_attempt_at, claimed_by = NULL, claimed_until = NULL,
           updated_at = now()
     WHERE id = :id AND status = :status
    RETURNING id
    """
)

BILL_TO_PROCESSING = sa.text(
    """
    UPDATE bill_payments SET status = 'refund_processing', updated_at = now()
     WHERE id = :bill_id AND status = 'refund_initiated'
    """
)

BILL_BACK_TO_INITIATED = sa.text(
    """
    UPDATE bill_payments SET status = 'refund_initiated', updated_at = now()
     WHERE id = :bill_id AND status = 'refund_processing'
    """
)

CONFIRM = sa.text("SELECT mark_refund_processed(:id, :tx_hash)")

REQUEUE_HELD = sa.text(
    """
    UPDATE refunds
       SET status = 'pending', hold_reason = NULL, next_attempt_at = NULL, updated_at = now()
     WHERE id IN (SELECT id FROM refunds
                   WHERE status = 'held' AND hold_reason = ANY(:reasons)
                     AND next_attempt_at <= now()
                   ORDER BY next_attempt_at, id
                   LIMIT :limit
                     FOR UPDATE SKIP LOCKED)
    RETURNING id
    """
)


RELEASE_HELD = sa.text(
    """
    UPDATE refunds
       SET status = 'pending', hold_reason = NULL, next_attempt_at = NULL, updated_at = now()
     WHERE id = :id AND status = 'held'
    RETURNING id
    """
)


class RefundConflict(RuntimeError):
    """The refund row was not in the state this step expects (another worker moved it)."""


def _row(mapping: Any) -> RefundRow:
    return RefundRow(**dict(mapping))


def _codes(result_codes: dict[str, Any] | None) -> str | None:
    return json.dumps(result_codes) if result_codes is not None else None


def _set_actor(conn: Connection, actor: str, detail: str) -> None:
    conn.execute(SET_ACTOR, {"actor": actor, "detail": detail})


def claim_refunds(db: Database, actor: str, limit: int, lease_seconds: int) -> list[RefundRow]:
    """Lease up to ``limit`` due refunds (pending or submitted) to ``actor``."""
    params = {"actor": actor, "limit": limit, "lease_seconds": lease_seconds}
    with db.begin() as conn:
        rows = conn.execute(CLAIM, params).mappings().all()
    return sorted((_row(r) for r in rows), key=lambda r: r.id)


def get_refund(db: Database, refund_id: int) -> RefundRow | None:
    with db.begin() as conn:
        row = conn.execute(GET, {"id": refund_id}).mappings().first()
    return _row(row) if row is not None else None


@contextmanager
def source_account_lock(db: Database, account: str) -> Iterator[None]:
    """A session advisory lock per source account: one build/submit at a time, across processes.

    Held on its own connection, so no transaction stays open during HTTP calls; a dead process's
    lock goes with its connection.
    """
    key = f"billpay:stellar-source:{account}"
    with db.engine.connect() as conn:
        conn.execute(SOURCE_LOCK, {"key": key})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(SOURCE_UNLOCK, {"key": key})
            conn.commit()


def store_envelope(
    db: Database,
    refund: RefundRow,
    *,
    xdr: str,
    tx_hash: str,
    sequence: int,
    max_time: datetime,
    actor: str,
) -> None:
    """Persist the signed envelope before the first submit; the bill moves to refund_processing."""
    params = {
        "id": refund.id,
        "xdr": xdr,
        "tx_hash": tx_hash,
        "sequence": sequence,
        "max_time": max_time,
    }
    with db.begin() as conn:
        _set_actor(conn, actor, f"refund {refund.id} envelope {tx_hash}")
        if conn.execute(STORE_ENVELOPE, params).first() is None:
            raise RefundConflict(f"refund {refund.id} is no longer pending without an envelope")
        if refund.bill_payment_id is not None:
            conn.execute(BILL_TO_PROCESSING, {"bill_id": refund.bill_payment_id})


def note_submit_attempt(db: Database, refund: RefundRow) -> int:
    """Count the attempt before the POST: a crash after it still counts as possibly sent."""
    with db.begin() as conn:
        attempts = conn.execute(NOTE_SUBMIT, {"id": refund.id, "tx_hash": refund.tx_hash}).scalar()
    if attempts is None:
        raise RefundConflict(f"refund {refund.id} no longer holds envelope {refund.tx_hash}")
    return int(attempts)


def discard_envelope(
    db: Database,
    refund: RefundRow,
    *,
    actor: str,
    status: str = "pending",
    hold_reason: str | None = None,
    last_error: str | None = None,
    result_codes: dict[str, Any] | None = None,
    next_attempt_at: datetime | None = None,
) -> None:
    """Forget an envelope that cannot be on the ledger; the bill goes back to refund_initiated."""
    params = {
        "id": refund.id,
        "tx_hash": refund.tx_hash,
        "status": status,
        "hold_reason": hold_reason,
        "last_error": last_error,
        "result_codes": _codes(result_codes),
        "next_attempt_at": next_attempt_at,
    }
    with db.begin() as conn:
        _set_actor(conn, actor, f"refund {refund.id} envelope {refund.tx_hash} discarded")
        if conn.execute(DISCARD_ENVELOPE, params).first() is None:
            raise RefundConflict(f"refund {refund.id} no longer holds envelope {refund.tx_hash}")
        if refund.bill_payment_id is not None:
            conn.execute(BILL_BACK_TO_INITIATED, {"bill_id": refund.bill_payment_id})


def park(
    db: Database,
    refund: RefundRow,
    *,
    status: str,
    next_attempt_at: datetime | None,
    hold_reason: str | None = None,
    last_error: str | None = None,
    result_codes: dict[str, Any] | None = None,
) -> None:
    """A refund with no envelope: hold it (status held) or requeue it (pending) for later."""
    params = {
        "id": refund.id,
        "status": status,
        "hold_reason": hold_reason,
        "last_error": last_error,
        "result_codes": _codes(result_codes),
        "next_attempt_at": next_attempt_at,
    }
    with db.begin() as conn:
        if conn.execute(PARK, params).first() is None:
            raise RefundConflict(f"refund {refund.id} is no longer pending without an envelope")


def recheck_later(
    db: Database,
    refund: RefundRow,
    *,
    next_attempt_at: datetime,
    last_error: str | None = None,
    result_codes: dict[str, Any] | None = None,
) -> None:
    params = {
        "id": refund.id,
        "status": refund.status,
        "last_error": last_error,
        "result_codes": _codes(result_codes),
        "next_attempt_at": next_attempt_at,
    }
    with db.begin() as conn:
        conn.execute(RECHECK_LATER, params)


def confirm(db: Database, refund: RefundRow, tx_hash: str, actor: str) -> bool:
    """``mark_refund_processed``: refund confirmed, its bill (if any) refunded."""
    with db.begin() as conn:
        _set_actor(conn, actor, f"refund {refund.id} confirmed {tx_hash}")
        return bool(conn.execute(CONFIRM, {"id": refund.id, "tx_hash": tx_hash}).scalar())


def requeue_held_refunds(db: Database, reasons: list[str], limit: int = 100) -> list[int]:
    """Held refunds whose recheck time has come, for the given hold reasons, back to pending."""
    with db.begin() as conn:
        rows = conn.execute(REQUEUE_HELD, {"reasons": reasons, "limit": limit}).scalars().all()
    return sorted(rows)


def release_held_refund(db: Database, refund_id: int) -> bool:
    """An operator decided a held refund may go: back to pending. False if it was not held."""
    with db.begin() as conn:
        return conn.execute(RELEASE_HELD, {"id": refund_id}).first() is not None
