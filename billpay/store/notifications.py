"""The notifications outbox: enqueue (in the caller's transaction), claim, settle."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from billpay.store.engine import Database


def enqueue(
    conn: Connection,
    *,
    kind: str,
    payload: dict[str, Any],
    audience: str = "operator",
    bill_id: int | None = None,
    dedupe_key: str | None = None,
) -> bool:
    """Write an outbox row in the caller's transaction; a repeated ``dedupe_key`` is a no-op."""
    row = conn.execute(
        sa.text(
            "INSERT INTO notifications (bill_payment_id, kind, audience, payload, dedupe_key)"
            " VALUES (:bill, :kind, :audience, CAST(:payload AS jsonb), :dedupe)"
            " ON CONFLICT (dedupe_key) DO NOTHING RETURNING id"
        ),
        {
            "bill": bill_id,
            "kind": kind,
            "audience": audience,
            "payload": json.dumps(payload, default=str),
            "dedupe": dedupe_key,
        },
    ).first()
    return row is not None


def claim(db: Database, *, worker: str, lease_seconds: int, limit: int) -> list[dict[str, Any]]:
    with db.begin() as conn:
        rows = (
            conn.execute(
                sa.text(
                    """
                WITH picked AS (
                    SELECT id FROM queue_notifications ORDER BY next_attempt_at, id
                    LIMIT :limit FOR UPDATE SKIP LOCKED
                )
                UPDATE notifications n
                   SET claimed_by = :worker, claimed_until = now() + make_interval(secs => :lease)
                  FROM picked WHERE n.id = picked.id
                RETURNING n.*
                """
                ),
                {"limit": limit, "worker": worker, "lease": lease_seconds},
            )
            .mappings()
            .all()
        )
    return sorted((dict(row) for row in rows), key=lambda row: row["id"])


def mark_sent(db: Database, notification_id: int, *, worker: str) -> bool:
    with db.begin() as conn:
        return (
            conn.execute(
                sa.text(
                    "UPDATE notifications SET status = 'sent', sent_at = now(), attempts = attempts + 1,"
                    " claimed_by = NULL, claimed_until = NULL, last_error = NULL"
                    " WHERE id = :id AND status = 'pending' AND claimed_by = :worker RETURNING id"
                ),
                {"id": notification_id, "worker": worker},
            ).first()
            is not None
        )


def mark_attempt_failed(
    db: Database,
    notification_id: int,
    *,
    worker: str,
    error: str,
    backoff_seconds: int,
    max_attempts: int,
) -> str | None:
    """Count a failed delivery; after ``max_attempts`` the row is marked ``failed``."""
    with db.begin() as conn:
        return conn.execute(
            sa.text(
                "UPDATE notifications SET attempts = attempts + 1, last_error = :error,"
                " status = CASE WHEN attempts + 1 >= :max THEN 'failed' ELSE 'pending' END,"
                " next_attempt_at = now() + make_interval(secs => :backoff),"
                " claimed_by = NULL, claimed_until = NULL"
                " WHERE id = :id AND status = 'pending' AND claimed_by = :worker RETURNING status"
            ),
            {
                "id": notification_id,
                "worker": worker,
                "error": error[:500],
                "max": max_attempts,
                "backoff": backoff_seconds,
            },
        ).scalar()
