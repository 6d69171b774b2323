"""SQL for cNGN refunds: claims with a lease, the envelope lifecycle, holds and confirmation.

A refund row's ``status`` means:
  pending    no envelope in flight; build one when due
  submitted  a signed envelope is stored (before its first POST) and may be on the ledger
  held       not sendable without a change (recipient cannot receive, or policy): see hold_reason
  confirmed  on the ledger; ``tx_hash`` is the proof
The bill, when there is one, follows: refund_initiated while pending, refund_processing while an
envelope is stored, refunded on confirmation. Queries: ``sql/queries/refunds.sql``; every status
change is a status writer of ``sql/0007_status_writers.sql`` (it checks the state and the lease
itself and records the actor for the bill's audit trail).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from billpay.store.engine import Database
from billpay.store.queries import query


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
    # The asset to send back: always the one the payment brought (sql/0009 trigger).
    asset_type: str = "credit_alphanum4"
    asset_code: str | None = None  # None: native XLM
    asset_issuer: str | None = None


_FIELDS = tuple(f.name for f in fields(RefundRow))


class RefundConflict(RuntimeError):
    """The refund row was not in the state this step expects (another worker moved it)."""


def _row(mapping: Any) -> RefundRow:
    return RefundRow(**{name: mapping[name] for name in _FIELDS})


# What a status writer returning false means, by writer.
_CONFLICTS = {
    "refund_mark_submitted": "is no longer pending without an envelope",
    "refund_park": "is no longer pending without an envelope",
    "refund_reset": "no longer holds envelope {tx_hash}",
}


def _write(db: Database, name: str, refund: RefundRow, params: dict[str, Any]) -> None:
    """Run the status writer ``name``; false means another worker moved (or leases) the row."""
    with db.begin() as conn:
        if not conn.execute(query(name), params).scalar():
            why = _CONFLICTS[name].format(tx_hash=refund.tx_hash)
            raise RefundConflict(f"refund {refund.id} {why}")


def _set_aside(
    status: str,
    hold_reason: str | None,
    last_error: str | None,
    result_codes: dict[str, Any] | None,
    next_attempt_at: datetime | None,
) -> dict[str, Any]:
    """The parameters every "not now" change shares (park, reset, recheck)."""
    return {
        "status": status,
        "hold_reason": hold_reason,
        "last_error": last_error,
        "result_codes": json.dumps(result_codes) if result_codes is not None else None,
        "next_attempt_at": next_attempt_at,
    }


def claim_refunds(db: Database, actor: str, limit: int, lease_seconds: int) -> list[RefundRow]:
    """Lease up to ``limit`` due refunds (pending or submitted) to ``actor``."""
    params = {"actor": actor, "limit": limit, "lease_seconds": lease_seconds}
    with db.begin() as conn:
        rows = conn.execute(query("claim_refunds"), params).mappings().all()
    return sorted((_row(r) for r in rows), key=lambda r: r.id)


def get_refund(db: Database, refund_id: int) -> RefundRow | None:
    with db.begin() as conn:
        row = conn.execute(query("get_refund"), {"id": refund_id}).mappings().first()
    return _row(row) if row is not None else None


@contextmanager
def source_account_lock(db: Database, account: str) -> Iterator[None]:
    """A session advisory lock per source account: one build/submit at a time, across processes.

    Held on its own connection, so no transaction stays open during HTTP calls; a dead process's
    lock goes with its connection.
    """
    key = {"key": f"billpay:stellar-source:{account}"}
    with db.engine.connect() as conn:
        conn.execute(query("lock_source_account"), key)
        conn.commit()
        try:
            yield
        finally:
            conn.execute(query("unlock_source_account"), key)
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
        "actor": actor,
        "detail": f"refund {refund.id} envelope {tx_hash}",
    }
    _write(db, "refund_mark_submitted", refund, params)


def note_submit_attempt(db: Database, refund: RefundRow) -> int:
    """Count the attempt before the POST: a crash after it still counts as possibly sent."""
    params = {"id": refund.id, "tx_hash": refund.tx_hash}
    with db.begin() as conn:
        attempts = conn.execute(query("note_refund_submit_attempt"), params).scalar()
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
        "actor": actor,
        "detail": f"refund {refund.id} envelope {refund.tx_hash} discarded",
        **_set_aside(status, hold_reason, last_error, result_codes, next_attempt_at),
    }
    _write(db, "refund_reset", refund, params)


def park(
    db: Database,
    refund: RefundRow,
    *,
    status: str,
    next_attempt_at: datetime | None,
    hold_reason: str | None = None,
    last_error: str | None = None,
    result_codes: dict[str, Any] | None = None,
    actor: str | None = None,
) -> None:
    """A refund with no envelope: hold it (status held) or requeue it (pending) for later.

    ``actor`` is the lease holder; without one, only an unleased (or expired) row is parked.
    """
    params = {
        "id": refund.id,
        "actor": actor,
        **_set_aside(status, hold_reason, last_error, result_codes, next_attempt_at),
    }
    _write(db, "refund_park", refund, params)


def recheck_later(
    db: Database,
    refund: RefundRow,
    *,
    next_attempt_at: datetime,
    last_error: str | None = None,
    result_codes: dict[str, Any] | None = None,
) -> None:
    """The envelope stays (it may still land); look again at ``next_attempt_at``."""
    params = {
        "id": refund.id,
        **_set_aside(refund.status, None, last_error, result_codes, next_attempt_at),
    }
    with db.begin() as conn:
        conn.execute(query("refund_recheck_later"), params)


def confirm(db: Database, refund: RefundRow, tx_hash: str, actor: str) -> bool:
    """``refund_mark_confirmed``: refund confirmed, its bill (if any) refunded."""
    params = {
        "id": refund.id,
        "tx_hash": tx_hash,
        "actor": actor,
        "detail": f"refund {refund.id} confirmed {tx_hash}",
    }
    with db.begin() as conn:
        return bool(conn.execute(query("refund_mark_confirmed"), params).scalar())


def requeue_held_refunds(
    db: Database, reasons: list[str], limit: int = 100, *, actor: str = "refund-recheck"
) -> list[int]:
    """Held refunds whose recheck time has come, for the given hold reasons, back to pending."""
    params = {"reasons": reasons, "limit": limit, "actor": actor}
    with db.begin() as conn:
        rows = conn.execute(query("refund_release_due"), params).scalars().all()
    return sorted(rows)


def release_held_refund(db: Database, refund_id: int, *, actor: str = "operator") -> bool:
    """An operator decided a held refund may go: back to pending. False if it was not held."""
    params = {"id": refund_id, "actor": actor}
    with db.begin() as conn:
        return bool(conn.execute(query("refund_release"), params).scalar())
