"""``reprocess-stuck`` (manual): re-drive a chosen batch. The parameters become a form in the UI;
``dry_run`` is on by default and only reports what would be done."""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from billpay.bills import stuck
from tasks.bills import step_context
from tasks.runtime import get_runtime


@flow(name="reprocess-stuck")
def reprocess_stuck(
    references: list[str] | None = None,
    state: str | None = None,
    older_than_minutes: int = 15,
    action: Literal["requeue", "requery", "refund"] = "requeue",
    limit: int = 50,
    dry_run: bool = True,
) -> dict[str, Any]:
    runtime = get_runtime()
    logger = get_run_logger()
    chosen = stuck.Action(action)
    rows = stuck.find(
        runtime.db,
        references=references,
        state=state,
        older_than_minutes=older_than_minutes,
        limit=limit,
    )
    worker = runtime.worker_id()
    ctx = step_context(worker)
    plans = []
    for row in rows:
        item = stuck.plan_for(runtime.db, row, chosen)
        if item.allowed and not dry_run:  # apply claims the bill and plans it again first
            item.done = stuck.apply(ctx, item, chosen, actor=f"reprocess-stuck:{worker}")
        plans.append(item)
        logger.info(
            "%s %s: %s%s",
            item.reference,
            item.status,
            item.why,
            f" -> {item.done}" if item.done else "",
        )
    create_markdown_artifact(
        markdown=stuck.markdown(plans, chosen, dry_run),
        key="reprocess-stuck",
        description="what reprocess-stuck found and did",
    )
    return {"action": action, "dry_run": dry_run, "bills": [p.as_row() for p in plans]}
