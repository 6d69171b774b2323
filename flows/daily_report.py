"""``daily-report`` (06:00 Africa/Lagos): both reports for the previous calendar day."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow

from billpay import reports
from tasks import reports as report_tasks
from tasks.runtime import get_runtime


@flow(name="daily-report")
def daily_report(
    as_of: datetime | None = None,
    timezone: str = reports.REPORT_TIMEZONE,
    trend_days: int = 7,
    rate_threshold: float = 0.05,
    p95_threshold: float = 0.25,
) -> dict[str, Any]:
    """Both reports for the calendar day before ``as_of`` (local to ``timezone``), stored with
    window_label ``day`` and as_of = that day's end: rerunning the same day replaces it."""
    window = reports.Window.previous_day(report_tasks.resolve_as_of(as_of), timezone)
    options = report_tasks.ReportOptions(window.end, trend_days, rate_threshold, p95_threshold)
    db = get_runtime().db
    return {
        "day": window.start.isoformat(),
        "success_rate": report_tasks.success_rate_snapshot(
            db, [window], key="daily-report-success-rate", options=options
        ),
        "provider_performance": report_tasks.provider_performance_snapshot(
            db, [window], key="daily-report-provider-performance", options=options
        ),
    }
