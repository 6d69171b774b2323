"""The demo as an operator sees it in the Prefect UI: the reports run as deployments (so their
artifacts are there), and after serve stops, the run history is checked: pipeline runs per
state, no run left Pending or Running, at most 5% of pipeline runs cancelled."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from deployments import prefect_runs

REPORTS = ("report-success-rate", "report-provider-performance")
MAX_CANCELLED_SHARE = 0.05
TERMINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def run_reports(api: str, seconds: float = 150) -> dict[str, str]:
    """Start each report deployment now (as "Run" in the UI does) and wait for it to end."""
    started: dict[str, str] = {}
    with httpx.Client(base_url=api, timeout=30) as client:
        for name in REPORTS:
            deployment = client.get(f"/deployments/name/{name}/{name}").raise_for_status().json()
            started[name] = _create_run(client, deployment["id"])
        states = dict.fromkeys(REPORTS, "Scheduled")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, run_id in started.items():
                run = client.get(f"/flow_runs/{run_id}").json()
                states[name] = run["state_name"] if run["state_type"] in TERMINAL else "..."
            if all(state != "..." for state in states.values()):
                break
            time.sleep(2)
    return states


def _create_run(client: httpx.Client, deployment_id: str, tries: int = 5) -> str:
    """A run of the deployment now; a busy SQLite server may answer 503 for a moment."""
    for attempt in range(tries):
        response = client.post(f"/deployments/{deployment_id}/create_flow_run", json={})
        if response.status_code != 503 or attempt == tries - 1:
            return str(response.raise_for_status().json()["id"])
        time.sleep(2)
    raise AssertionError("unreachable")


@dataclass
class RunHistory:
    pipeline: dict[str, int]
    unfinished: list[str]
    artifacts: list[str] = field(default_factory=list)

    @property
    def cancelled_share(self) -> float:
        total = sum(self.pipeline.values())
        cancelled = sum(n for state, n in self.pipeline.items() if state in ("Cancelled",))
        return cancelled / total if total else 0.0

    @property
    def ok(self) -> bool:
        return (
            bool(self.pipeline.get("Completed"))
            and not self.unfinished
            and self.cancelled_share <= MAX_CANCELLED_SHARE
            and all(any(key.startswith(name) for key in self.artifacts) for name in REPORTS)
        )

    def lines(self) -> list[str]:
        states = ", ".join(f"{n} {state}" for state, n in sorted(self.pipeline.items()))
        return [
            f"pipeline runs: {states or 'none'} "
            f"({self.cancelled_share:.0%} cancelled; at most {MAX_CANCELLED_SHARE:.0%} allowed)",
            f"runs left Pending or Running after serve stopped: {len(self.unfinished)}"
            + (f" ({', '.join(self.unfinished)})" if self.unfinished else ""),
            f"report artifacts: {', '.join(sorted(self.artifacts)) or 'none'}",
        ]


def run_history(api: str, since: datetime) -> RunHistory:
    runs = prefect_runs.flow_runs_since(api, since)
    body: dict[str, Any] = {"artifacts": {"key": {"exists_": True}}, "limit": 200}
    artifacts = httpx.post(f"{api}/artifacts/filter", json=body, timeout=30).json()
    return RunHistory(
        pipeline=prefect_runs.run_states(runs, "pipeline"),
        unfinished=prefect_runs.unfinished(runs),
        artifacts=sorted({a["key"] for a in artifacts if a.get("key")}),
    )
