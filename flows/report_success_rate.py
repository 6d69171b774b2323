"""``report-success-rate`` (every 15 minutes): success rate per bill type and biller over rolling
windows. Each run reads the rows once, builds the report with pandas, replaces its snapshot in
``report_success_rate`` (idempotent for one as_of) and publishes a table artifact plus a
markdown summary with a trend chart. The database is the process's App (BILLPAY_*)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow

from billpay import reports
from tasks import reports as report_tasks
from tasks.runtime import get_runtime

DEFAULT_WINDOWS = list(reports.DEFAULT_WINDOWS)


@flow(name="report-success-rate")
def report_success_rate(
    windows: list[str] = DEFAULT_WINDOWS,  # noqa: B006 - a Prefect parameter, never mutated
    as_of: datetime | None = None,
    trend_days: int = 7,
    rate_threshold: float = 0.05,
    p95_threshold: float = 0.25,
) -> dict[str, Any]:
    """Success rate per bill type and biller over rolling windows ending at ``as_of``."""
    options = report_tasks.ReportOptions(
        report_tasks.resolve_as_of(as_of), trend_days, rate_threshold, p95_threshold
    )
    return report_tasks.success_rate_snapshot(
        get_runtime().db,
        reports.rolling_windows(windows, options.as_of),
        key="report-success-rate",
        options=options,
    )
