"""Deliver one claimed batch of the outbox (signed webhooks or the log) in one task run;
failures back off in the database, so a row is never lost and never sent twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from billpay import notifications
from billpay.app import App
from billpay.store import notifications as outbox

DELIVERY_THREADS = 8  # webhooks are independent HTTP calls; the outbox row is the unit of work


def deliver(runtime: App, row: dict[str, Any], worker: str) -> dict[str, Any]:
    """Send one outbox row; record sent, or the failure and when to try again."""
    settings = runtime.settings
    label = str((row["payload"] or {}).get("reference") or row["kind"])
    message = notifications.render(row["kind"], row["audience"], row["payload"])
    body = message.body(row["id"], row["payload"])
    try:
        channel = notifications.deliver(
            message,
            body,
            webhook_url=settings.webhook_url,
            secret=settings.webhook_secret.get_secret_value(),
            client=runtime.webhook_client if settings.webhook_url else None,
        )
    except notifications.DeliveryError as exc:
        steps = settings.notify_backoff_seconds or [30]
        backoff = steps[min(int(row["attempts"]), len(steps) - 1)]
        status = outbox.mark_attempt_failed(
            runtime.db,
            row["id"],
            worker=worker,
            error=str(exc),
            backoff_seconds=backoff,
            max_attempts=settings.notify_max_attempts,
        )
        gave_up = status == "failed"
        detail = (
            f"gave up after {settings.notify_max_attempts} tries: {exc}"
            if gave_up
            else f"retry in {backoff}s: {exc}"
        )
        return {"reference": label, "advanced": False, "failed": gave_up, "detail": detail}
    outbox.mark_sent(runtime.db, row["id"], worker=worker)
    return {"reference": label, "advanced": True, "failed": False, "detail": f"sent via {channel}"}


def deliver_batch(runtime: App, rows: list[dict[str, Any]], worker: str) -> list[dict[str, Any]]:
    """Every row of a claimed batch, a few at a time, in the order claimed."""
    if not rows:
        return []
    with ThreadPoolExecutor(max_workers=min(DELIVERY_THREADS, len(rows))) as pool:
        return list(pool.map(lambda row: deliver(runtime, row, worker), rows))
