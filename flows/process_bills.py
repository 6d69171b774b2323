"""``process-bills``: verify accounts -> pay -> requery due -> due retries, in that order, so a
bill that is verified and delivered quickly completes within one tick."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from billpay.store import bills as bill_store
from flows.stages import one_line, run_mapped
from tasks.bills import pay_bill, requery_bill, retry_bill, verify_account
from tasks.runtime import get_runtime

STAGES = (
    ("verify", "queue_verify_accounts", verify_account),
    ("pay", "queue_pay_bills", pay_bill),
    ("requery", "queue_requery_bills", requery_bill),
    ("retry", "queue_retry_bills", retry_bill),
)


@flow(name="process-bills", task_runner=ThreadPoolTaskRunner(max_workers=32), log_prints=False)
def process_bills(batch_size: int | None = None) -> dict[str, Any]:
    runtime = get_runtime()
    worker = runtime.worker_id()
    limit = batch_size or runtime.settings.batch_size
    summary: dict[str, Any] = {}

    def release(ids: list[int]) -> None:
        bill_store.release(runtime.db, ids, worker=worker)

    for stage, queue, task in STAGES:
        rows = bill_store.claim(
            runtime.db,
            queue,
            worker=worker,
            lease_seconds=runtime.settings.lease_seconds,
            limit=limit,
        )
        summary[stage] = run_mapped(stage, rows, task, worker, release)
    get_run_logger().info("process-bills: %s", one_line(summary))
    return summary
