"""``dispatch-notifications``: deliver the outbox (customer receipts and operator alerts)."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from billpay.store import notifications as outbox
from flows.stages import collect
from tasks.notifications import deliver_notification
from tasks.runtime import get_runtime


@flow(name="dispatch-notifications", task_runner=ThreadPoolTaskRunner(max_workers=8))
def dispatch_notifications(batch_size: int | None = None) -> dict[str, Any]:
    runtime = get_runtime()
    worker = runtime.worker_id()
    rows = outbox.claim(
        runtime.db,
        worker=worker,
        lease_seconds=runtime.settings.lease_seconds,
        limit=batch_size or runtime.settings.batch_size,
    )
    summary = {"claimed": len(rows), "advanced": 0, "failed": 0}
    if rows:
        references = [str((row["payload"] or {}).get("reference") or row["kind"]) for row in rows]
        futures = deliver_notification.map(rows, references, unmapped(worker))
        collect(futures, summary)
    get_run_logger().info(
        "notify: claimed=%d advanced=%d failed=%d",
        summary["claimed"],
        summary["advanced"],
        summary["failed"],
    )
    return {"notify": summary}
