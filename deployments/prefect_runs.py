"""What the Prefect server recorded, read over its REST API (the benchmark and the demo
report it): flow runs per deployment and state, task runs, and anything left unfinished."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import httpx

UNFINISHED = ("PENDING", "RUNNING", "CANCELLING")
PAGE = 200


def flow_runs_since(api_url: str, since: datetime) -> list[dict[str, Any]]:
    """Every flow run expected to start after ``since``, with its deployment's name."""
    runs: list[dict[str, Any]] = []
    with httpx.Client(base_url=api_url, timeout=30) as client:
        names = {
            d["id"]: d["name"]
            for d in client.post("/deployments/filter", json={"limit": PAGE}).json()
        }
        while True:
            page = client.post(
                "/flow_runs/filter",
                json={
                    "flow_runs": {"expected_start_time": {"after_": since.isoformat()}},
                    "limit": PAGE,
                    "offset": len(runs),
                },
            ).json()
            runs.extend(page)
            if len(page) < PAGE:
                break
    for run in runs:
        run["deployment_name"] = names.get(run.get("deployment_id"), "(none)")
    return runs


def run_states(runs: list[dict[str, Any]], deployment: str | None = None) -> dict[str, int]:
    """Runs per state name (Completed, Cancelled, Skipped, Crashed, ...) that have started or
    been closed: future scheduled runs are not counted."""
    return dict(
        Counter(
            run["state_name"]
            for run in runs
            if (deployment is None or run["deployment_name"] == deployment)
            and run["state_type"] != "SCHEDULED"
        )
    )


def unfinished(runs: list[dict[str, Any]]) -> list[str]:
    """Runs left Pending or Running: after a clean stop there must be none."""
    return [
        f"{run['deployment_name']}/{run['name']} {run['state_name']}"
        for run in runs
        if run["state_type"] in UNFINISHED
    ]


def task_runs_since(api_url: str, since: datetime) -> int:
    body = {"task_runs": {"expected_start_time": {"after_": since.isoformat()}}}
    return int(httpx.post(f"{api_url}/task_runs/count", json=body, timeout=30).json())
