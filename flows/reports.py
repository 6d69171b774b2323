"""Reporting flows: ``report-success-rate`` and ``report-provider-performance`` (rolling windows,
every 15 minutes) and ``daily-report`` (the previous day in Africa/Lagos, 06:00 Lagos).

Each run reads the rows once, builds the report with pandas, replaces its snapshot in
``report_success_rate`` / ``report_provider_performance`` (idempotent for one as_of) and
publishes a table artifact plus a markdown summary with a trend chart. Parameters carry no
settings: the database comes from ``Settings()`` (BILLPAY_*), built when the run starts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger

from billpay import reports
from billpay.config import Settings
from billpay.store import Database, connect
from tasks import reports as report_tasks

DEFAULT_WINDOWS = list(reports.DEFAULT_WINDOWS)


@contextmanager
def _database() -> Iterator[Database]:
    db = connect(Settings())
    try:
        yield db
    finally:
        db.dispose()


def resolve_as_of(as_of: datetime | None) -> datetime:
    """The given moment, else the run's scheduled start (so a retried scheduled run rewrites the
    same snapshot), else now; whole seconds, UTC."""
    if as_of is None:
        from prefect.runtime import flow_run

        scheduled = flow_run.scheduled_start_time
        as_of = scheduled if isinstance(scheduled, datetime) else datetime.now(UTC)
    return reports.as_utc(as_of).replace(microsecond=0)


def _success_rate(
    db: Database,
    windows: Sequence[reports.Window],
    *,
    as_of: datetime,
    key: str,
    trend_days: int,
    rate_threshold: float,
    p95_threshold: float,
) -> dict[str, Any]:
    since, until = report_tasks.read_range(windows, as_of, trend_days)
    bills = report_tasks.read_bills(db, since, until)
    report = report_tasks.build_success_rate(bills, windows)
    labels = [w.label for w in windows]
    previous = report_tasks.previous_success_rate(db, windows[0].end, labels)
    written = report_tasks.write_success_rate(db, report)
    artifacts = report_tasks.publish_success_rate(
        report,
        previous,
        bills,
        as_of=as_of,
        key=key,
        trend_days=trend_days,
        rate_threshold=rate_threshold,
        p95_threshold=p95_threshold,
    )
    get_run_logger().info(
        "success rate: %d rows for windows %s as of %s, %d changes",
        written,
        labels,
        windows[0].end.isoformat(),
        artifacts["changes"],
    )
    return {
        "rows": written,
        "windows": labels,
        "as_of": windows[0].end.isoformat(),
        "artifacts": artifacts,
    }


def _provider_performance(
    db: Database,
    windows: Sequence[reports.Window],
    *,
    as_of: datetime,
    key: str,
    trend_days: int,
    rate_threshold: float,
    p95_threshold: float,
) -> dict[str, Any]:
    since, until = report_tasks.read_range(windows, as_of, trend_days)
    attempts = report_tasks.read_attempts(db, since, until)
    bills = report_tasks.read_bills(db, since, until)
    report = report_tasks.build_provider_performance(attempts, bills, windows)
    labels = [w.label for w in windows]
    previous = report_tasks.previous_provider(db, windows[0].end, labels)
    written = report_tasks.write_provider(db, report)
    artifacts = report_tasks.publish_provider_performance(
        report,
        previous,
        attempts,
        as_of=as_of,
        key=key,
        trend_days=trend_days,
        rate_threshold=rate_threshold,
        p95_threshold=p95_threshold,
    )
    get_run_logger().info(
        "provider performance: %d rows for windows %s as of %s, %d changes",
        written,
        labels,
        windows[0].end.isoformat(),
        artifacts["changes"],
    )
    return {
        "rows": written,
        "windows": labels,
        "as_of": windows[0].end.isoformat(),
        "artifacts": artifacts,
    }


@flow(name="report-success-rate")
def report_success_rate_flow(
    windows: list[str] = DEFAULT_WINDOWS,  # noqa: B006 - Prefect parameters, never mutated
    as_of: datetime | None = None,
    trend_days: int = 7,
    rate_threshold: float = 0.05,
    p95_threshold: float = 0.25,
) -> dict[str, Any]:
    """Success rate per bill type and biller over rolling windows ending at ``as_of``."""
    moment = resolve_as_of(as_of)
    with _database() as db:
        return _success_rate(
            db,
            reports.rolling_windows(windows, moment),
            as_of=moment,
            key="report-success-rate",
            trend_days=trend_days,
            rate_threshold=rate_threshold,
            p95_threshold=p95_threshold,
        )


@flow(name="report-provider-performance")
def report_provider_performance_flow(
    windows: list[str] = DEFAULT_WINDOWS,  # noqa: B006 - Prefect parameters, never mutated
    as_of: datetime | None = None,
    trend_days: int = 7,
    rate_threshold: float = 0.05,
    p95_threshold: float = 0.25,
) -> dict[str, Any]:
    """Provider performance per provider and operation over rolling windows ending at ``as_of``."""
    moment = resolve_as_of(as_of)
    with _database() as db:
        return _provider_performance(
            db,
            reports.rolling_windows(windows, moment),
            as_of=moment,
            key="report-provider-performance",
            trend_days=trend_days,
            rate_threshold=rate_threshold,
            p95_threshold=p95_threshold,
        )


@flow(name="daily-report")
def daily_report_flow(
    as_of: datetime | None = None,
    timezone: str = reports.REPORT_TIMEZONE,
    trend_days: int = 7,
    rate_threshold: float = 0.05,
    p95_threshold: float = 0.25,
) -> dict[str, Any]:
    """Both reports for the calendar day before ``as_of`` (local to ``timezone``), stored with
    window_label ``day`` and as_of = that day's end: rerunning the same day replaces it."""
    window = reports.Window.previous_day(resolve_as_of(as_of), timezone)
    options = {
        "as_of": window.end,
        "trend_days": trend_days,
        "rate_threshold": rate_threshold,
        "p95_threshold": p95_threshold,
    }
    with _database() as db:
        return {
            "day": window.start.isoformat(),
            "success_rate": _success_rate(db, [window], key="daily-report-success-rate", **options),
            "provider_performance": _provider_performance(
                db, [window], key="daily-report-provider-performance", **options
            ),
        }
