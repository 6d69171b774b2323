"""Prefect tasks of the reporting flows: names, retry policy and artifacts. No SQL here (that is
``billpay.store.reports``) and no metric logic (that is ``billpay.reports``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from billpay import reports
from billpay.store import Database
from billpay.store import reports as report_store
from tasks.policy import TASK_DEFAULTS, UNCACHED

# Reads and writes retry transient database errors; building and publishing do not retry.
DATABASE_TASK = {**TASK_DEFAULTS, "retry_delay_seconds": 5}


@task(name="read-bills-for-report", **DATABASE_TASK)
def read_bills(db: Database, since: datetime, until: datetime) -> pd.DataFrame:
    return report_store.read_bills(db, since, until)


@task(name="read-provider-attempts-for-report", **DATABASE_TASK)
def read_attempts(db: Database, since: datetime, until: datetime) -> pd.DataFrame:
    return report_store.read_attempts(db, since, until)


@task(name="build-success-rate-report", **UNCACHED)
def build_success_rate(bills: pd.DataFrame, windows: Sequence[reports.Window]) -> pd.DataFrame:
    return reports.success_rate_report(bills, windows)


@task(name="build-provider-performance-report", **UNCACHED)
def build_provider_performance(
    attempts: pd.DataFrame, bills: pd.DataFrame, windows: Sequence[reports.Window]
) -> pd.DataFrame:
    return reports.provider_performance_report(attempts, bills, windows)


@task(name="previous-success-rate-snapshot", **DATABASE_TASK)
def previous_success_rate(db: Database, as_of: datetime, labels: list[str]) -> pd.DataFrame:
    return report_store.previous_success_rate_snapshot(db, as_of, labels)


@task(name="previous-provider-snapshot", **DATABASE_TASK)
def previous_provider(db: Database, as_of: datetime, labels: list[str]) -> pd.DataFrame:
    return report_store.previous_provider_snapshot(db, as_of, labels)


@task(name="write-success-rate-snapshot", **DATABASE_TASK)
def write_success_rate(db: Database, report: pd.DataFrame) -> int:
    return report_store.write_success_rate_snapshot(db, report)


@task(name="write-provider-snapshot", **DATABASE_TASK)
def write_provider(db: Database, report: pd.DataFrame) -> int:
    return report_store.write_provider_snapshot(db, report)


def _description(title: str, report: pd.DataFrame) -> str:
    labels = ", ".join(dict.fromkeys(report["window_label"]))
    return f"{title}: windows {labels}, as of {report['as_of'].max().isoformat()}"


@dataclass(frozen=True)
class ReportOptions:
    """One report run's moment and the thresholds its summary flags changes by."""

    as_of: datetime
    trend_days: int = 7
    rate_threshold: float = 0.05
    p95_threshold: float = 0.25


@dataclass(frozen=True)
class ReportLayout:
    """How one report is summarised: its keys, the columns watched for changes, its chart."""

    title: str
    keys: tuple[str, str]  # the chart has a line per value of the first
    summary_columns: tuple[str, ...]
    count_column: str
    change_subject: str
    chart_title: str  # formatted with trend_days
    # (success_rate, its label), (a p95 column, its label): the two columns watched for changes,
    # success_rate by an absolute and the p95 by a relative threshold
    panels: tuple[tuple[str, str], tuple[str, str]]


SUCCESS_RATE = ReportLayout(
    title="Bill success rate",
    keys=("bill_type", "biller"),
    summary_columns=reports.SUCCESS_RATE_SUMMARY_COLUMNS,
    count_column="paid",
    change_subject="bill type or biller",
    chart_title="Success rate by bill type, last {trend_days} days",
    panels=(("success_rate", "success rate"), ("time_to_complete_p95_s", "p95 to complete (s)")),
)
PROVIDER_PERFORMANCE = ReportLayout(
    title="Provider performance",
    keys=("provider", "operation"),
    summary_columns=reports.PROVIDER_SUMMARY_COLUMNS,
    count_column="calls",
    change_subject="provider",
    chart_title="Pay calls by provider, last {trend_days} days",
    panels=(("success_rate", "success rate"), ("latency_p95_ms", "p95 latency (ms)")),
)


@task(name="publish-report-artifacts", **UNCACHED)
def publish_report(
    layout: ReportLayout,
    report: pd.DataFrame,
    previous: pd.DataFrame,
    series: pd.DataFrame,
    *,
    key: str,
    options: ReportOptions,
) -> dict[str, Any]:
    """A table artifact of the whole report and a markdown summary: what moved beyond the
    thresholds since the previous snapshot, the report per window, a trend chart."""
    keys = list(layout.keys)
    changes = reports.detect_changes(
        report,
        previous,
        keys=keys,
        thresholds={
            "success_rate": ("abs", options.rate_threshold),
            layout.panels[1][0]: ("rel", options.p95_threshold),
        },
    )
    chart = reports.render_trend_png(
        series,
        group=layout.keys[0],
        title=layout.chart_title.format(trend_days=options.trend_days),
        panels=list(layout.panels),
    )
    markdown = reports.summary_markdown(
        title=layout.title,
        report=report,
        keys=keys,
        columns=layout.summary_columns,
        count_column=layout.count_column,
        changes=changes,
        change_subject=layout.change_subject,
        chart_png=chart,
    )
    table_id = create_table_artifact(
        table=reports.to_records(report, flat=True),
        key=key,
        description=_description(layout.title, report),
    )
    summary_id = create_markdown_artifact(
        markdown=markdown,
        key=f"{key}-summary",
        description=_description(f"{layout.title} summary", report),
    )
    return {
        "table": str(table_id),
        "summary": str(summary_id),
        "changes": len(changes),
        "chart": chart is not None,
    }


# One task, shown under each report's own name in the UI.
publish_success_rate = publish_report.with_options(name="publish-success-rate-artifacts")
publish_provider_performance = publish_report.with_options(
    name="publish-provider-performance-artifacts"
)


def read_range(
    windows: Sequence[reports.Window], as_of: datetime, trend_days: int
) -> tuple[datetime, datetime]:
    """One read covers every window and the trend chart's days."""
    since, until = reports.covering(windows)
    return min(since, reports.as_utc(as_of) - timedelta(days=trend_days)), until


# What the report flows compose (plain functions: the tasks above are the steps).


def resolve_as_of(as_of: datetime | None) -> datetime:
    """The given moment, else the run's scheduled start (so a retried scheduled run rewrites the
    same snapshot), else now; whole seconds, UTC."""
    if as_of is None:
        from prefect.runtime import flow_run

        scheduled = flow_run.scheduled_start_time
        as_of = scheduled if isinstance(scheduled, datetime) else datetime.now(UTC)
    return reports.as_utc(as_of).replace(microsecond=0)


def success_rate_snapshot(
    db: Database, windows: Sequence[reports.Window], *, key: str, options: ReportOptions
) -> dict[str, Any]:
    """Read, build, store and publish the success-rate report for ``windows``."""
    since, until = read_range(windows, options.as_of, options.trend_days)
    bills = read_bills(db, since, until)
    report = build_success_rate(bills, windows)
    previous = previous_success_rate(db, windows[0].end, [w.label for w in windows])
    written = write_success_rate(db, report)
    series = reports.success_daily_series(bills, as_of=options.as_of, days=options.trend_days)
    artifacts = publish_success_rate(
        SUCCESS_RATE, report, previous, series, key=key, options=options
    )
    return _snapshot_summary("success rate", written, windows, artifacts)


def provider_performance_snapshot(
    db: Database, windows: Sequence[reports.Window], *, key: str, options: ReportOptions
) -> dict[str, Any]:
    """Read, build, store and publish the provider-performance report for ``windows``."""
    since, until = read_range(windows, options.as_of, options.trend_days)
    attempts = read_attempts(db, since, until)
    report = build_provider_performance(attempts, read_bills(db, since, until), windows)
    previous = previous_provider(db, windows[0].end, [w.label for w in windows])
    written = write_provider(db, report)
    series = reports.provider_daily_series(attempts, as_of=options.as_of, days=options.trend_days)
    artifacts = publish_provider_performance(
        PROVIDER_PERFORMANCE, report, previous, series, key=key, options=options
    )
    return _snapshot_summary("provider performance", written, windows, artifacts)


def _snapshot_summary(
    name: str, written: int, windows: Sequence[reports.Window], artifacts: dict[str, Any]
) -> dict[str, Any]:
    labels = [w.label for w in windows]
    as_of = windows[0].end.isoformat()
    get_run_logger().info(
        "%s: %d rows for windows %s as of %s, %d changes",
        name,
        written,
        labels,
        as_of,
        artifacts["changes"],
    )
    return {"rows": written, "windows": labels, "as_of": as_of, "artifacts": artifacts}
