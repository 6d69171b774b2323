"""``expire-orders``: unpaid orders past their expiry end as ``expired`` (a late payment to an
expired order is refunded by the matcher)."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from billpay.bills.expire import expire_due_orders
from tasks.runtime import get_runtime


@flow(name="expire-orders")
def expire_orders(limit: int = 500) -> dict[str, Any]:
    runtime = get_runtime()
    expired = expire_due_orders(runtime.db, limit=limit)
    get_run_logger().info("expire: expired=%d", len(expired))
    return {
        "expire": {
            "claimed": len(expired),
            "advanced": len(expired),
            "failed": 0,
            "references": expired,
        }
    }
