"""``process-refunds``: build, sign, submit and confirm cNGN refunds (one source account,
submissions serialised by an advisory lock)."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from billpay.stellar import refunds
from flows.stages import collect
from tasks.runtime import get_runtime
from tasks.stellar import process_refund, send_failed_bills_to_refund


@flow(name="process-refunds", task_runner=ThreadPoolTaskRunner(max_workers=4))
def process_refunds(batch_size: int | None = None) -> dict[str, Any]:
    runtime = get_runtime()
    worker = runtime.worker_id()
    limit = batch_size or runtime.settings.batch_size
    sent = send_failed_bills_to_refund(worker, limit)
    refunds.requeue_held_refunds(runtime.db)
    rows = refunds.claim_refunds(runtime.db, worker, limit, runtime.settings.lease_seconds)
    summary = {"claimed": len(rows), "advanced": 0, "failed": 0, "note": f"newly decided={sent}"}
    if rows:
        labels = [row.memo.removeprefix("REFUND-") for row in rows]
        futures = process_refund.map([row.id for row in rows], labels, unmapped(worker))
        collect(futures, summary)
    get_run_logger().info(
        "refund: claimed=%d confirmed=%d failed=%d",
        summary["claimed"],
        summary["advanced"],
        summary["failed"],
    )
    return {"refund": summary}
