"""The rows ``billpay status`` reads (``sql/queries/status.sql``), in one read-only snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billpay.store.engine import Database
from billpay.store.queries import query


@dataclass(frozen=True)
class StatusRows:
    now: datetime  # the database clock when the snapshot was read
    stages: list[dict[str, Any]]  # pipeline_stages rows
    cursors: list[dict[str, Any]]  # ingest_cursors rows
    newest_payment: dict[str, Any] | None  # the last incoming payment stored
    open_bills: dict[str, int]  # bills per non-terminal status
    oldest_bill: dict[str, Any] | None
    queues: dict[str, int]  # queue view -> rows claimable now
    refunds: dict[str, int]  # refunds per status, confirmed left out
    notifications: dict[str, int]  # undelivered notifications per status
    quarantine: dict[str, Any] | None = None  # open quarantined records: open, oldest_at


def read_status(db: Database) -> StatusRows:
    """Every count from one REPEATABLE READ snapshot, so the numbers agree with each other."""
    with db.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            return StatusRows(
                now=conn.execute(query("status_clock")).scalar_one(),
                stages=_rows(conn, "status_stages"),
                cursors=_rows(conn, "status_ingest_cursors"),
                newest_payment=next(iter(_rows(conn, "status_newest_payment")), None),
                open_bills=_counts(conn, "status_open_bills_by_status"),
                oldest_bill=next(iter(_rows(conn, "status_oldest_open_bill")), None),
                queues=_counts(conn, "status_queue_depths"),
                refunds=_counts(conn, "status_refunds_by_status"),
                notifications=_counts(conn, "status_unsent_notifications"),
                quarantine=next(iter(_rows(conn, "status_quarantine")), None),
            )


def _rows(conn: Any, name: str) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(query(name)).mappings()]


def _counts(conn: Any, name: str) -> dict[str, int]:
    return {str(key): int(count) for key, count in conn.execute(query(name)).all()}
