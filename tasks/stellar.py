"""Stellar tasks: ingest Horizon payments, match them, and move refunds along."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import task

from billpay.bills import refund as refund_decision
from billpay.bills.context import NeedsAttention
from billpay.stellar import ingest, matching, refunds
from tasks.policy import TASK_DEFAULTS
from tasks.runtime import get_runtime


@task(name="ingest-horizon-payments", **TASK_DEFAULTS)
def ingest_horizon_payments() -> dict[str, Any]:
    runtime = get_runtime()
    summary = ingest.ingest_payments(runtime.db, runtime.settings, runtime.horizon)
    return asdict(summary)


@task(name="match-payments", **TASK_DEFAULTS)
def match_incoming_payments(worker: str, limit: int) -> dict[str, Any]:
    runtime = get_runtime()
    return asdict(matching.match_payments(runtime.db, runtime.settings, actor=worker, limit=limit))


@task(name="send-bills-to-refund", **TASK_DEFAULTS)
def send_failed_bills_to_refund(worker: str, limit: int) -> int:
    """Bills left in account_invalid / provider_failed (a crash between the two steps)."""
    runtime = get_runtime()
    return refund_decision.send_failed_bills_to_refund(
        runtime.db, worker=worker, lease_seconds=runtime.settings.lease_seconds, limit=limit
    )


@task(name="process-refund", task_run_name="refund-{label}", **TASK_DEFAULTS)
def process_refund(refund_id: int, label: str, worker: str) -> dict[str, Any]:
    runtime = get_runtime()
    result = refunds.process_refund(
        runtime.db, runtime.settings, runtime.horizon, refund_id, worker
    )
    out = {
        "reference": label,
        "advanced": result.status == refunds.RefundStatus.CONFIRMED,
        "status": str(result.status),
        "detail": result.message,
        "tx_hash": result.tx_hash,
    }
    if result.alert:
        raise NeedsAttention(f"refund {label}: {result.message}")
    return out
