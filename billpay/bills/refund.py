"""Step: the refund decision for bills left waiting in ``account_invalid`` / ``provider_failed``
(a crash between deciding the failure and creating the refund). The refund itself moves on the
ledger in ``billpay.stellar.refunds``."""

from __future__ import annotations

from billpay.bills import policy
from billpay.store import Database
from billpay.store import bills as bill_store


def send_failed_bills_to_refund(
    db: Database, *, worker: str, lease_seconds: int, limit: int
) -> int:
    """Claim such bills and refund each; returns how many refunds were created."""
    rows = bill_store.claim(
        db, "queue_bills_to_refund", worker=worker, lease_seconds=lease_seconds, limit=limit
    )
    moved = 0
    for row in rows:
        reason = policy.refund_reason_for(row["status"], row["last_error"])
        with db.begin() as conn:
            moved += int(bill_store.send_to_refund(conn, row["id"], reason, actor=worker))
    return moved
