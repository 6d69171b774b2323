"""Step: unpaid orders past their expiry end as ``expired`` (a late payment to an expired order
is refunded by the matcher)."""

from __future__ import annotations

from billpay.store import Database
from billpay.store import bills as bill_store

ACTOR = "expire-orders"


def expire_due_orders(db: Database, *, limit: int = 500) -> list[str]:
    """Expire a batch; returns the references."""
    return bill_store.expire_due_orders(db, actor=ACTOR, limit=limit)
