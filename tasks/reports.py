"""Prefect tasks of the reporting flows: names, retry policy and artifacts. No SQL here (that is
``billpay.store.reports``) and no metric logic (that is ``billpay.reports``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from billpay import reports
from billpay.store import Database
from billpay.store import reports as report_store
from tasks.policy import retry_on_transient

# Inputs are a Database and DataFrames: never hash them for a cache key, never cache results.
_TASK = {"cache_policy": NO_CACHE, "persist_result": False}
_READ = {**_TASK, "retries": 2, "retry_delay_seconds": 5, "retry_condition_fn": retry_on_transient}


@task(name="read-bills-for-report", **_READ)
def read_bills(db: Database, since: datetime, until: datetime) -> pd.DataFrame:
    return report_store.read_bills(db, since, until)


@task(name="read-provider-attempts-for-report", **_READ)
def read_attempts(db: Database, since: datetime, until: datetime) -> pd.DataFrame:
    return report_store.read_attempts(db, since, until)


@task(name="build-success-rate-report", **_TASK)
def build_success_rate(bills: pd.DataFrame, windows: Sequence[reports.Window]) -> pd.DataFrame:
    return reports.success_rate_report(bills, windows)


@task(name="build-provider-performance-report", **_TASK)
def build_provider_performance(
    attempts: pd.DataFrame, bills: pd.DataFrame, windows: Sequence[reports.Window]
) -> pd.DataFrame:
    return reports.provider_performance_report(attempts, bills, windows)


@task(name="previous-success-rate-snapshot", **_READ)
def previous_success_rate(db: Database, as_of: datetime, labels: list[str]) -> pd.DataFrame:
    return report_store.previous_success_rate_snapshot(db, as_of, labels)


@task(name="previous-provider-snapshot", **_READ)
def previous_provider(db: Database, as_of: datetime, labels: list[str]) -> pd.DataFrame:
    return report_store.previous_provider_snapshot(db, as_of, labels)


@task(name="write-success-rate-snapshot", **_READ)
def write_success_rate(db: Database, report: pd.DataFrame) -> int:
    return report_store.write_success_rate_snapshot(db, report)


@task(name="write-provider-snapshot", **_READ)
def write_provider(db: Database, report: pd.DataFrame) -> int:
    return report_store.write_provider_snapshot(db, report)


def _description(title: str, report: pd.DataFrame) -> str:
    labels = ", ".join(dict.fromkeys(report["window_label"]))
    return f"{title}: windows {labels}, as of {report['as_of'].max().isoformat()}"


@task(name="publish-success-rate-artifacts", **_TASK)
def publish_success_rate(
    report: pd.DataFrame,
    previous: pd.DataFrame,
    bills: pd.DataFrame,
    *,
    as_of: datetime,
    key: str,
    trend_days: int = 7,
    rate_threshold: float = 0.05,
    p95_threshold: float = 0.25,
) -> dict[str, Any]:
    """A table artifact of the whole report and a markdown summary: what moved beyond the
    thresholds since the previous snapshot, the report per window, a trend chart."""
    keys = ["bill_type", "biller"]
    changes = reports.detect_changes(
        report,
        previous,
        keys=keys,
        thresholds={
            "success_rate": ("abs", rate_threshold),
            "time_to_complete_p95_s": ("rel", p95_threshold),
        },
    )
    series = reports.success_daily_series(bills, as_of=as_of, days=trend_days)
    chart = reports.render_trend_png(
        series,
        group="bill_type",
        title=f"Success rate by bill type, last {trend_days} days",
        panels=[
            ("success_rate", "success rate"),
            ("time_to_complete_p95_s", "p95 to complete (s)"),
        ],
    )
    markdown = reports.summary_markdown(
        title="Bill success rate",
        report=report,
        keys=keys,
        columns=reports.SUCCESS_RATE_SUMMARY_COLUMNS,
        count_column="paid",
        changes=changes,
        change_subject="bill type or biller",
        chart_png=chart,
    )
    table_id = create_table_artifact(
        table=reports.to_records(report, flat=True),
        key=key,
        description=_description("Bill success rate", report),
    )
    summary_id = create_markdown_artifact(
        markdown=markdown,
        key=f"{key}-summary",
        description=_description("Bill success rate summary", report),
    )
    return {
        "table": str(table_id),
        "summary": str(summary_id),
        "changes": len(changes),
        "chart": chart is not None,
    }


@task(name="publish-provider-performance-artifacts", **_TASK)
def publish_provider_performance(
    report: pd.DataFrame,
    previous: pd.DataFrame,
    attempts: pd.DataFrame,
    *,
    as_of: datetime,
    key: str,
    trend_days: int = 7,
    rate_threshold: float = 0.05,
    p95_threshold: float = 0.25,
) -> dict[str, Any]:
    keys = ["provider", "operation"]
    changes = reports.detect_changes(
        report,
        previous,
        keys=keys,
        thresholds={
            "success_rate": ("abs", rate_threshold),
            "latency_p95_ms": ("rel", p95_threshold),
        },
    )
    series = reports.provider_daily_series(attempts, as_of=as_of, days=trend_days)
    chart = reports.render_trend_png(
        series,
        group="provider",
        title=f"Pay calls by provider, last {trend_days} days",
        panels=[("success_rate", "success rate"), ("latency_p95_ms", "p95 latency (ms)")],
    )
    markdown = reports.summary_markdown(
        title="Provider performance",
        report=report,
        keys=keys,
        columns=reports.PROVIDER_SUMMARY_COLUMNS,
        count_column="calls",
        changes=changes,
        change_subject="provider",
        chart_png=chart,
    )
    table_id = create_table_artifact(
        table=reports.to_records(report, flat=True),
        key=key,
        description=_description("Provider performance", report),
    )
    summary_id = create_markdown_artifact(
        markdown=markdown,
        key=f"{key}-summary",
        description=_description("Provider performance summary", report),
    )
    return {
        "table": str(table_id),
        "summary": str(summary_id),
        "changes": len(changes),
        "chart": chart is not None,
    }


def read_range(
    windows: Sequence[reports.Window], as_of: datetime, trend_days: int
) -> tuple[datetime, datetime]:
    """One read covers every window and the trend chart's days."""
    since, until = reports.covering(windows)
    return min(since, reports.as_utc(as_of) - timedelta(days=trend_days)), until
