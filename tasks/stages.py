"""The pipeline's stages, one task run each per tick: claim a batch per state from the queue
views, fan the provider calls out as mapped tasks (one per bill, one per refund), deliver the
notifications as one batch. A stage that finds nothing costs one cheap task run."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prefect import get_run_logger, task, unmapped

from billpay.bills import advance, reversal
from billpay.bills import refund as refund_decision
from billpay.bills.context import NeedsAttention
from billpay.bills.expire import expire_due_orders
from billpay.states import BillState
from billpay.stellar import ingest, matching, refunds
from billpay.store import bills as bill_store
from billpay.store import notifications as outbox
from billpay.store import stages as stage_store
from tasks import notifications
from tasks.bills import advance_bill, step_context
from tasks.policy import TASK_DEFAULTS
from tasks.runtime import get_runtime

STAGE_NAMES = tuple(stage.name for stage in advance.STAGES)


class StageNeedsAttention(NeedsAttention):
    """A stage did its work but some of it needs an operator: the task shows as failed and
    the pipeline still records what the stage did."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


def _summary(claimed: int, advanced: int = 0, failed: int = 0, note: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"claimed": claimed, "advanced": advanced, "failed": failed}
    if note:
        out["note"] = note
    return out


def _collect(futures: Iterable[Any]) -> tuple[int, int]:
    """Wait for mapped task runs: how many advanced their row, how many failed (a failed task
    left its row in a correct, resumable state)."""
    advanced = failed = 0
    for future in futures:
        future.wait()
        if future.state.is_completed():
            advanced += int(bool(future.state.result().get("advanced")))
        else:
            failed += 1
    return advanced, failed


@task(name="expire-orders", **TASK_DEFAULTS)
def expire_orders(limit: int = 500) -> dict[str, Any]:
    """Unpaid orders past their expiry end as ``expired`` (a late payment is refunded)."""
    expired = expire_due_orders(get_runtime().db, limit=limit)
    return _summary(len(expired), len(expired))


@task(name="ingest-payments", **TASK_DEFAULTS)
def ingest_payments(worker: str, match_limit: int = 500) -> dict[str, Any]:
    """Horizon pages since the cursor -> incoming_payments (once each) -> matched to orders."""
    runtime = get_runtime()
    seen = ingest.ingest_payments(runtime.db, runtime.settings, runtime.horizon)
    matched = matching.match_payments(runtime.db, runtime.settings, actor=worker, limit=match_limit)
    if seen.error:
        get_run_logger().warning("ingest stopped: %s", seen.error)
    if seen.quarantined:
        get_run_logger().warning(
            "%d unreadable Horizon record(s) quarantined: billpay quarantine list", seen.quarantined
        )
    note = str(seen.stop_reason) + (f", quarantined={seen.quarantined}" if seen.quarantined else "")
    return {
        "ingest": _summary(seen.records_seen, seen.payments_stored, int(bool(seen.error)), note),
        "match": _summary(
            matched.processed,
            matched.outcomes.get("matched", 0),
            note=", ".join(f"{k}={v}" for k, v in matched.outcomes.items()),
        ),
        "cursor": seen.cursor,
    }


@task(name="process-bills", **TASK_DEFAULTS)
def process_bills(worker: str, batch_size: int) -> dict[str, Any]:
    """A batch per state (verify, pay, requery, retry), then one ``bill-<reference>`` task per
    claimed bill that takes it as far as it can go now."""
    runtime = get_runtime()
    claimed: list[tuple[dict[str, Any], str]] = []
    futures: list[Any] = []
    try:
        for stage in advance.STAGES:
            rows = bill_store.claim(
                runtime.db,
                stage.queue,
                worker=worker,
                lease_seconds=runtime.settings.lease_seconds,
                limit=batch_size,
            )
            claimed.extend((row, stage.name) for row in rows)
        if not claimed:
            return _summary(0)
        futures = advance_bill.map(
            [row["id"] for row, _ in claimed],
            [row["reference"] for row, _ in claimed],
            [stage for _, stage in claimed],
            unmapped(worker),
        )
        advanced, failed = _collect(futures)
    finally:
        # A bill whose task failed keeps a correct state; give its lease back at once so the
        # next tick picks it up instead of waiting for the lease to run out. Only once every
        # bill task has ended: a lease is never given back under a step still running.
        for future in futures:
            future.wait()
        bill_store.release(runtime.db, [row["id"] for row, _ in claimed], worker=worker)
    by_stage = {name: sum(1 for _, s in claimed if s == name) for name in STAGE_NAMES}
    note = " ".join(f"{name}={count}" for name, count in by_stage.items() if count)
    return _summary(len(claimed), advanced, failed, note)


@task(name="recheck-deliveries", **TASK_DEFAULTS)
def recheck_deliveries(worker: str, batch_size: int) -> dict[str, Any]:
    """Delivered VTpass bills due for their one re-check (a while after delivery, or now after
    a reversal webhook) are requeried in this task run; a reversal goes to refund."""
    results = reversal.recheck_due_deliveries(step_context(worker), limit=batch_size)
    if not results:
        return _summary(0)
    reversed_ = [r.reference for r in results if r.after == str(BillState.REFUND_INITIATED)]
    summary = _summary(
        len(results),
        sum(1 for r in results if r.advanced),
        note=f"reversed={len(reversed_)}" if reversed_ else "",
    )
    alerts = [r.alert for r in results if r.alert]
    if alerts:
        raise StageNeedsAttention("; ".join(a for a in alerts if a), summary)
    return summary


@task(name="refund-payment", task_run_name="refund-{label}", **TASK_DEFAULTS)
def process_refund(refund_id: int, label: str, worker: str) -> dict[str, Any]:
    runtime = get_runtime()
    result = refunds.process_refund(
        runtime.db, runtime.settings, runtime.horizon, refund_id, worker
    )
    if result.alert:
        raise NeedsAttention(f"refund {label}: {result.message}")
    return {
        "reference": label,
        "advanced": result.status == refunds.RefundStatus.CONFIRMED,
        "status": str(result.status),
        "detail": result.message,
        "tx_hash": result.tx_hash,
    }


@task(name="process-refunds", **TASK_DEFAULTS)
def process_refunds(worker: str, batch_size: int) -> dict[str, Any]:
    """Bills that cannot be paid go to refund; refunds are built, signed, submitted and
    confirmed (one source account: submissions are serialised by an advisory lock)."""
    runtime = get_runtime()
    sent = refund_decision.send_failed_bills_to_refund(
        runtime.db,
        worker=worker,
        lease_seconds=runtime.settings.lease_seconds,
        limit=batch_size,
    )
    refunds.requeue_held_refunds(runtime.db)
    rows = refunds.claim_refunds(runtime.db, worker, batch_size, runtime.settings.lease_seconds)
    if not rows:
        return _summary(0, note=f"newly decided={sent}" if sent else "")
    labels = [row.memo.removeprefix("REFUND-") for row in rows]
    futures = process_refund.map([row.id for row in rows], labels, unmapped(worker))
    advanced, failed = _collect(futures)
    return _summary(len(rows), advanced, failed, f"newly decided={sent}")


@task(name="dispatch-notifications", **TASK_DEFAULTS)
def dispatch_notifications(worker: str, batch_size: int) -> dict[str, Any]:
    """Customer receipts and operator alerts: one claimed batch, delivered in this task run."""
    runtime = get_runtime()
    rows = outbox.claim(
        runtime.db, worker=worker, lease_seconds=runtime.settings.lease_seconds, limit=batch_size
    )
    results = notifications.deliver_batch(runtime, rows, worker)
    summary = _summary(
        len(rows),
        sum(1 for r in results if r["advanced"]),
        sum(1 for r in results if r["failed"]),
    )
    logger = get_run_logger()
    for result in results:
        if not result["advanced"]:
            logger.warning("notify %s: %s", result["reference"], result["detail"])
    given_up = [r["reference"] for r in results if r["failed"]]
    if given_up:
        raise StageNeedsAttention(
            f"gave up on {len(given_up)} notification(s): {', '.join(given_up)}", summary
        )
    return summary


def empty_summary(failed: int = 0, note: str = "") -> dict[str, Any]:
    return _summary(0, 0, failed, note)


def record(stage: str, *, ok: bool, summary: dict[str, Any], error: str | None = None) -> None:
    """What ``billpay status`` reads: each stage's last run and last success, in the database.
    Never fails the tick: the stage's own work is already committed."""
    try:
        stage_store.record_stage(get_runtime().db, stage, ok=ok, summary=summary, error=error)
    except Exception:  # noqa: BLE001 - bookkeeping must not turn a good tick into a failed one
        get_run_logger().warning("could not record stage %s", stage, exc_info=True)


def one_line(summary: dict[str, Any]) -> str:
    return "; ".join(
        f"{stage} claimed={s['claimed']} advanced={s['advanced']} failed={s['failed']}"
        for stage, s in summary.items()
        if isinstance(s, dict)
    )
