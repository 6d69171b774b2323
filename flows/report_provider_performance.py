"""``report-provider-performance`` (every 15 minutes): calls, outcomes, latency and fallbacks per
provider and operation over rolling windows; stored in ``report_provider_performance``
(idempotent for one as_of) and published as a table artifact plus a markdown summary."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow

from billpay import reports
from tasks import reports as report_tasks
from tasks.runtime import get_runtime

DEFAULT_WINDOWS = list(reports.DEFAULT_WINDOWS)


@flow(name="report-provider-performance")
def report_provider_performance(
    windows: list[str] = DEFAULT_WINDOWS,  # noqa: B006 - a Prefect parameter, never mutated
    as_of: datetime | None = None,
    trend_days: int = 7,
    rate_threshold: float = 0.05,
    p95_threshold: float = 0.25,
) -> dict[str, Any]:
    """Provider performance per provider and operation over rolling windows ending at ``as_of``."""
    options = report_tasks.ReportOptions(
        report_tasks.resolve_as_of(as_of), trend_days, rate_threshold, p95_threshold
    )
    return report_tasks.provider_performance_snapshot(
        get_runtime().db,
        reports.rolling_windows(windows, options.as_of),
        key="report-provider-performance",
        options=options,
    )
