"""What every 10-second flow does per stage: claim a batch, map a task over it, summarise."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prefect import get_run_logger, unmapped


def collect(futures: Any, summary: dict[str, Any]) -> dict[str, Any]:
    """Wait for mapped task runs; count the ones that advanced their row and the ones that
    failed (a failed task left its row in a correct, resumable state)."""
    for future in futures:
        future.wait()
        state = future.state
        if state.is_completed():
            result = state.result()
            summary["advanced"] += int(bool(result.get("advanced")))
            if "results" in summary:
                summary["results"].append(result)
        else:
            summary["failed"] += 1
    return summary


def run_mapped(
    stage: str,
    rows: Sequence[dict[str, Any]],
    task: Any,
    worker: str,
    release: Callable[[list[int]], Any] | None = None,
) -> dict[str, Any]:
    """Fan ``task`` out over claimed rows; count what advanced and what failed.

    A failed task leaves its row in a correct state; its lease is given back at the end of the
    stage so the next tick picks it up (instead of waiting for the lease to run out).
    """
    summary: dict[str, Any] = {"claimed": len(rows), "advanced": 0, "failed": 0, "results": []}
    if rows:
        futures = task.map(
            [row["id"] for row in rows], [row["reference"] for row in rows], unmapped(worker)
        )
        collect(futures, summary)
        if release is not None:
            release([row["id"] for row in rows])
    get_run_logger().info(
        "%s: claimed=%d advanced=%d failed=%d",
        stage,
        summary["claimed"],
        summary["advanced"],
        summary["failed"],
    )
    return summary


def one_line(summary: dict[str, dict[str, Any]]) -> str:
    return "; ".join(
        f"{stage} claimed={s['claimed']} advanced={s['advanced']} failed={s['failed']}"
        for stage, s in summary.items()
    )
