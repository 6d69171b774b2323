"""The single source of every deployment's schedule, parameters and concurrency.

``billpay serve`` builds its deployments from this list and ``prefect.yaml`` is rendered from it
(``billpay deployments yaml``); tests/unit/test_deployments.py proves the committed prefect.yaml
matches, so the two cannot drift.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

WORK_POOL = "billpay"
DEFAULT_TAGS = ("billpay",)


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    entrypoint: str  # "flows/process_bills.py:process_bills"
    description: str
    interval_seconds: int | None = None
    cron: str | None = None
    timezone: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    concurrency_limit: int | None = 1
    collision_strategy: str = "CANCEL_NEW"
    # Run by billpay serve's in-process executor (deployments/executor.py) instead of Prefect's
    # runner, which starts a fresh process for every run.
    in_process: bool = False

    def load_flow(self) -> Any:
        path, _, attr = self.entrypoint.partition(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        return getattr(module, attr)

    def as_yaml_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "entrypoint": self.entrypoint,
            "tags": list(DEFAULT_TAGS),
            "parameters": dict(self.parameters),
            "work_pool": {"name": WORK_POOL},
            "schedules": [],
        }
        if self.interval_seconds is not None:
            out["schedules"].append({"interval": self.interval_seconds, "active": True})
        if self.cron is not None:
            schedule: dict[str, Any] = {"cron": self.cron, "active": True}
            if self.timezone:
                schedule["timezone"] = self.timezone
            out["schedules"].append(schedule)
        if self.concurrency_limit is not None:
            out["concurrency_limit"] = {
                "limit": self.concurrency_limit,
                "collision_strategy": self.collision_strategy,
            }
        return out


PIPELINE: tuple[DeploymentSpec, ...] = (
    DeploymentSpec(
        "pipeline",
        "flows/pipeline.py:pipeline",
        "Every 10 s: expire -> ingest + match -> bills (one task per bill) -> refunds -> "
        "notifications. Run in-process by `billpay serve` (no process per tick)",
        interval_seconds=10,
        # No slot to hold: the server hands each tick to one executor, ticks never queue
        # (an overrun skips, visibly), and two boxes may each run a tick (leases keep them
        # on disjoint rows).
        concurrency_limit=None,
        in_process=True,
    ),
    DeploymentSpec(
        "reprocess-stuck",
        "flows/reprocess_stuck.py:reprocess_stuck",
        "Manual: re-drive a chosen batch (requeue, requery or refund); dry run first",
        parameters={"dry_run": True},
        concurrency_limit=None,
    ),
)


REPORTS: tuple[DeploymentSpec, ...] = (
    DeploymentSpec(
        "report-success-rate",
        "flows/report_success_rate.py:report_success_rate",
        "Success rate per bill type and biller over rolling windows (1h, 24h, 7d)",
        interval_seconds=900,
    ),
    DeploymentSpec(
        "report-provider-performance",
        "flows/report_provider_performance.py:report_provider_performance",
        "Calls, outcomes and latency per provider and operation over rolling windows",
        interval_seconds=900,
    ),
    DeploymentSpec(
        "daily-report",
        "flows/daily_report.py:daily_report",
        "Both reports for the previous day in Africa/Lagos",
        cron="0 6 * * *",
        timezone="Africa/Lagos",
    ),
)


CATALOGUE: tuple[DeploymentSpec, ...] = (
    DeploymentSpec(
        "sync-catalogue",
        "flows/sync_catalogue.py:sync_catalogue",
        "Daily: both providers' catalogues into the catalogue tables (prices, vanished billers)",
        cron="0 3 * * *",  # a quiet Lagos hour, before the morning's orders
        timezone="Africa/Lagos",
    ),
)


def all_specs() -> tuple[DeploymentSpec, ...]:
    return PIPELINE + REPORTS + CATALOGUE


def render_prefect_yaml() -> str:
    import yaml

    document = {
        "name": "billpay",
        "prefect-version": "3.9.1",
        "pull": [
            {
                "prefect.deployments.steps.set_working_directory": {
                    "directory": "{{ $BILLPAY_HOME }}"
                }
            }
        ],
        "deployments": [spec.as_yaml_dict() for spec in all_specs()],
    }
    header = (
        "# Generated from deployments/registry.py by `billpay deployments yaml > prefect.yaml`.\n"
        "# Do not edit by hand: tests/unit/test_deployments.py fails when the two differ.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, width=100)
