"""``ingest-payments``: Horizon pages since the cursor -> incoming_payments -> match to orders."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from tasks.runtime import get_runtime
from tasks.stellar import ingest_horizon_payments, match_incoming_payments


@flow(name="ingest-payments")
def ingest_payments(match_limit: int = 500) -> dict[str, Any]:
    runtime = get_runtime()
    worker = runtime.worker_id()
    ingested = ingest_horizon_payments()
    matched = match_incoming_payments(worker, match_limit)
    logger = get_run_logger()
    logger.info(
        "ingest: pages=%d stored=%d stop=%s cursor=%s%s",
        ingested["pages"],
        ingested["payments_stored"],
        ingested["stop_reason"],
        ingested["cursor"],
        f" error={ingested['error']}" if ingested.get("error") else "",
    )
    logger.info(
        "match: processed=%d outcomes=%s refunds=%d",
        matched["processed"],
        matched["outcomes"],
        matched["refunds_created"],
    )
    return {
        "ingest": {
            "claimed": ingested["records_seen"],
            "advanced": ingested["payments_stored"],
            "failed": int(bool(ingested.get("error"))),
            "note": str(ingested["stop_reason"]),
        },
        "match": {
            "claimed": matched["processed"],
            "advanced": matched["outcomes"].get("matched", 0),
            "failed": 0,
            "note": ", ".join(f"{k}={v}" for k, v in matched["outcomes"].items()),
        },
    }
