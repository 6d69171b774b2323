"""Provider webhook hints and the reversal re-check of delivered VTpass bills, through the
writers of ``sql/0018_webhooks_and_reversals.sql``. Queries: ``sql/queries/reversals.sql``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from billpay.store.engine import Database
from billpay.store.queries import query


def provider_hint(
    db: Database, provider: str, reference: str, *, reversal: bool, actor: str, detail: str
) -> str:
    """A webhook named pay attempt ``reference`` at ``provider``: make its requery (or, for a
    ``reversal`` of a delivered VTpass bill, its re-check) due now. Never a state change.
    Returns what it did: ``requery_due``, ``recheck_due``, ``closed_attempt``, ``no_action``
    ``hint_ignored`` or ``unknown_reference`` (``bill_provider_hint``, sql/0018 and 0022)."""
    params = {
        "provider": provider,
        "reference": reference,
        "reversal": reversal,
        "actor": actor,
        "detail": detail,
    }
    with db.begin() as conn:
        return str(conn.execute(query("bill_provider_hint"), params).scalar_one())


def claim_rechecks(
    db: Database, *, worker: str, lease_seconds: int, limit: int, delay_seconds: int
) -> list[dict[str, Any]]:
    """Lease up to ``limit`` delivered VTpass bills due for their one re-check."""
    params = {"worker": worker, "lease": lease_seconds, "limit": limit, "delay": delay_seconds}
    # No schedule: only hinted ones, through their own index (every delivered bill is unchecked).
    name = "claim_reversal_rechecks" if delay_seconds > 0 else "claim_hinted_reversal_rechecks"
    with db.begin() as conn:
        rows = conn.execute(query(name), params).mappings().all()
    return sorted((dict(row) for row in rows), key=lambda row: row["id"])


def mark_checked(
    conn: Connection, bill_id: int, *, worker: str, hints: int, delay_seconds: int, detail: str
) -> str | None:
    """The re-check is over (still delivered, or given up): ``checked``, never again; unless a
    reversal webhook came since the claim (``hints`` moved: ``asked_again`` in a minute) or the
    check was an early one (``early``: the scheduled re-check still runs). None: not ours
    (another worker holds it, or it is no longer completed). See ``bill_reversal_checked``."""
    params = {
        "id": bill_id,
        "worker": worker,
        "hints": hints,
        "delay": delay_seconds,
        "actor": worker,
        "detail": detail,
    }
    done = conn.execute(query("bill_reversal_checked"), params).scalar()
    return None if done is None else str(done)


def follow_up(
    conn: Connection, bill_id: int, *, worker: str, hints: int, at: datetime, detail: str
) -> bool:
    """A re-check opened by a reversal webhook read "still delivered": ask again at ``at``
    (the requery may show the reversal later than the webhook came). See sql/0022."""
    params = {"id": bill_id, "worker": worker, "hints": hints, "at": at, "actor": worker}
    return bool(
        conn.execute(query("bill_reversal_follow_up"), params | {"detail": detail}).scalar()
    )


def check_later(conn: Connection, bill_id: int, *, worker: str, hints: int, at: datetime) -> bool:
    """The re-check could not tell: try again at ``at`` (within a minute if a reversal
    webhook came since the claim)."""
    params = {"id": bill_id, "worker": worker, "hints": hints, "next_check_at": at}
    return bool(conn.execute(query("bill_reversal_check_later"), params).scalar())


def reverse(conn: Connection, bill_id: int, *, worker: str, detail: str, reason: str) -> bool:
    """completed -> reversed -> refund_initiated with its refund row (once: a bill no longer
    completed, or not leased to ``worker``, is left alone and this returns False)."""
    params = {"id": bill_id, "worker": worker, "actor": worker, "detail": detail}
    return bool(conn.execute(query("bill_reverse"), params | {"reason": reason}).scalar())
