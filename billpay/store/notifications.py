"""The notifications outbox: enqueue (in the caller's transaction), claim, settle.

Queries: ``sql/queries/notifications.sql``.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.engine import Connection

from billpay.store.engine import Database
from billpay.store.queries import query


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
        query("enqueue_notification"),
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
                query("claim_notifications"),
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
                query("mark_notification_sent"),
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
            query("mark_notification_attempt_failed"),
            {
                "id": notification_id,
                "worker": worker,
                "error": error[:500],
                "max": max_attempts,
                "backoff": backoff_seconds,
            },
        ).scalar()
