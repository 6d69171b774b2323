"""Deliver one outbox row: signed webhook or the log; failures back off in the database."""

from __future__ import annotations

from typing import Any

from prefect import task

from billpay import notifications
from billpay.store import notifications as outbox
from tasks.policy import TASK_DEFAULTS
from tasks.runtime import get_runtime


@task(
    name="deliver-notification",
    task_run_name="notify-{reference}",
    **{**TASK_DEFAULTS, "retries": 1, "retry_delay_seconds": 2},
)
def deliver_notification(row: dict[str, Any], reference: str, worker: str) -> dict[str, Any]:
    runtime = get_runtime()
    settings = runtime.settings
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
        if status == "failed":
            raise RuntimeError(
                f"gave up on notification {row['id']} after "
                f"{settings.notify_max_attempts} tries: {exc}"
            ) from exc
        return {"reference": reference, "advanced": False, "detail": f"retry in {backoff}s: {exc}"}
    outbox.mark_sent(runtime.db, row["id"], worker=worker)
    return {"reference": reference, "advanced": True, "detail": f"sent via {channel}"}
