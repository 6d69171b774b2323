"""``pipeline`` (every 10 s): one run does the whole tick, in order, so a bill paid on the
ledger can be matched, verified, paid and receipted within one run:

expire -> ingest + match -> bills (verify -> pay -> due requery/retry, one task per bill)
-> refunds (one task per refund) -> notifications (one task per batch) -> recheck (delivered
VTpass bills requeried once more for a reversal, one task per batch: last, so a slow provider
there never holds up a refund or a receipt; a reversal's refund goes out the next tick).

Each stage is a task run (the UI's run graph shows the stages and, under them, the per-bill
and per-refund runs). A stage that fails is recorded and the tick goes on: every stage works
from the database, so the next tick resumes whatever this one left.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from billpay.tokens import mask_text
from tasks import stages
from tasks.runtime import get_runtime

# Threads for the mapped provider calls of one stage (the provider call guard bounds the calls
# per provider; this only has to exceed it).
MAX_TASK_THREADS = 32


@flow(
    name="pipeline",
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_TASK_THREADS),
    log_prints=False,
)
def pipeline(batch_size: int | None = None, match_limit: int = 500) -> dict[str, Any]:
    runtime = get_runtime()
    worker = runtime.worker_id()
    limit = batch_size or runtime.settings.batch_size
    summary: dict[str, Any] = {}
    summary["expire"] = _stage("expire", stages.expire_orders)
    ingested = _stage("ingest", stages.ingest_payments, worker, match_limit)
    summary["ingest"] = ingested.get("ingest", ingested)
    summary["match"] = ingested.get("match", stages.empty_summary())
    summary["bills"] = _stage("bills", stages.process_bills, worker, limit)
    summary["refund"] = _stage("refunds", stages.process_refunds, worker, limit)
    summary["notify"] = _stage("notify", stages.dispatch_notifications, worker, limit)
    summary["recheck"] = _stage("recheck", stages.recheck_deliveries, worker, limit)
    get_run_logger().info("pipeline: %s", stages.one_line(summary))
    return summary


def _stage(name: str, task: Any, *args: Any) -> dict[str, Any]:
    """Run one stage; a failed stage is counted, logged and recorded, and the tick goes on."""
    state = task(*args, return_state=True)
    if state.is_completed():
        result = state.result()
        if name == "ingest":  # one task run ingests and matches; status shows both
            stages.record("ingest", ok=True, summary=result["ingest"])
            stages.record("match", ok=True, summary=result["match"])
        else:
            stages.record(name, ok=True, summary=result)
        return result
    error = state.result(raise_on_failure=False)
    summary = getattr(error, "summary", None) or stages.empty_summary(failed=1, note=str(error))
    stages.record(name, ok=False, summary=summary, error=str(error))
    get_run_logger().error("stage %s failed: %s", name, mask_text(str(error)))
    return summary
