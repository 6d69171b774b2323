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
    """Send one outbox row to its destination (its API client's webhook, or the default);
    record sent, or the failure and when to try again."""
    label = str((row["payload"] or {}).get("reference") or row["kind"])
    message = notifications.render(row["kind"], row["audience"], row["payload"])
    body = message.body(row["id"], row["payload"])
    target: notifications.Destination | None = None
    try:
        target = _destination(runtime, row)
        channel = notifications.deliver(
            message,
            body,
            webhook_url=target.url,
            secret=target.secret,
            client=runtime.webhook_client if target.url else None,
        )
    except notifications.DeliveryError as exc:
        # which client's endpoint failed matters once there are many; never its URL
        error = f"{target.describe()}: {exc}" if target and target.owner != "default" else str(exc)
        return _failed(runtime, row, worker, label, error)
    outbox.mark_sent(runtime.db, row["id"], worker=worker)
    where = target.describe() if channel == "webhook" else channel
    return {"reference": label, "advanced": True, "failed": False, "detail": f"sent via {where}"}


def _destination(runtime: App, row: dict[str, Any]) -> notifications.Destination:
    """The claim row carries its bill's API client (NULLs when there is none)."""
    settings = runtime.settings
    return notifications.destination(
        row["audience"],
        client_name=row.get("client_name"),
        client_webhook_url=row.get("client_webhook_url"),
        client_webhook_salt=row.get("client_webhook_salt"),
        default_url=settings.webhook_url,
        master_secret=settings.webhook_secret.get_secret_value(),
    )


def _failed(
    runtime: App, row: dict[str, Any], worker: str, label: str, error: str
) -> dict[str, Any]:
    """Back off in the database; after the last try the row is failed (and surfaced)."""
    settings = runtime.settings
    steps = settings.notify_backoff_seconds or [30]
    backoff = steps[min(int(row["attempts"]), len(steps) - 1)]
    status = outbox.mark_attempt_failed(
        runtime.db,
        row["id"],
        worker=worker,
        error=error,
        backoff_seconds=backoff,
        max_attempts=settings.notify_max_attempts,
    )
    gave_up = status == "failed"
    detail = (
        f"gave up after {settings.notify_max_attempts} tries: {error}"
        if gave_up
        else f"retry in {backoff}s: {error}"
    )
    return {"reference": label, "advanced": False, "failed": gave_up, "detail": detail}


def deliver_batch(runtime: App, rows: list[dict[str, Any]], worker: str) -> list[dict[str, Any]]:
    """Every row of a claimed batch, a few at a time, in the order claimed."""
    if not rows:
        return []
    with ThreadPoolExecutor(max_workers=min(DELIVERY_THREADS, len(rows))) as pool:
        return list(pool.map(lambda row: deliver(runtime, row, worker), rows))
