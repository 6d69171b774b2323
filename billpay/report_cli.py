"""``billpay report success-rate|provider-performance``: the reporting flows' numbers in a
terminal, computed on the spot (nothing is written). Mounted by billpay/cli.py as
``app.add_typer(report_app, name="report")``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer

from billpay import reports

report_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Success rate and provider performance reports (pandas, same numbers as the flows).",
)


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


WindowOption = Annotated[
    list[str] | None,
    typer.Option("--window", "-w", help="rolling window ending now: 15m, 1h, 24h, 7d (repeatable)"),
]
FormatOption = Annotated[OutputFormat, typer.Option("--format", "-f", help="table, json or csv")]
AsOfOption = Annotated[
    datetime | None,
    typer.Option("--as-of", help="end of the windows (ISO 8601, UTC when naive); default now"),
]


def _windows(labels: list[str] | None, as_of: datetime | None) -> list[reports.Window]:
    moment = reports.as_utc(as_of) if as_of else datetime.now(UTC).replace(microsecond=0)
    try:
        return reports.rolling_windows(labels or ["24h"], moment)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--window") from exc


ReportBuilder = Callable[[Any, datetime, datetime, list[reports.Window]], Any]


def _compute(labels: list[str] | None, as_of: datetime | None, build: ReportBuilder) -> Any:
    """``build(db, since, until, windows)`` over one read covering every window."""
    from billpay.app import App  # imported here: ``--help`` stays fast

    windows = _windows(labels, as_of)
    since, until = reports.covering(windows)
    with App.open() as root:
        return build(root.db, since, until, windows)


def _success_rate(db: Any, since: datetime, until: datetime, windows: list[reports.Window]) -> Any:
    from billpay.store import reports as report_store

    return reports.success_rate_report(report_store.read_bills(db, since, until), windows)


def _provider_performance(
    db: Any, since: datetime, until: datetime, windows: list[reports.Window]
) -> Any:
    from billpay.store import reports as report_store

    attempts = report_store.read_attempts(db, since, until)
    return reports.provider_performance_report(
        attempts, report_store.read_bills(db, since, until), windows
    )


def _print(
    report: Any, *, fmt: OutputFormat, title: str, columns: tuple[str, ...], count_column: str
) -> None:
    if fmt is OutputFormat.JSON:
        typer.echo(reports.to_json(report))
        return
    if fmt is OutputFormat.CSV:
        typer.echo(reports.to_csv(report), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for label, part in report.groupby("window_label", sort=False):
        start, end = part["window_start"].iloc[0], part["window_end"].iloc[0]
        heading = f"{title} — last {label} ({start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC)"
        if reports.is_no_data(part, count_column):
            console.print(f"[bold]{heading}[/bold]: {reports.NO_DATA}", soft_wrap=True)
            continue
        table = Table(title=heading, title_justify="left")
        for column in columns:
            table.add_column(column, justify="left" if column in _TEXT_COLUMNS else "right")
        for row in reports.to_records(part[list(columns)], flat=True):
            table.add_row(*(_shown(row[c]) for c in columns))
        console.print(table)


_TEXT_COLUMNS = frozenset({"bill_type", "biller", "provider", "operation", "error_classes"})


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


@dataclass(frozen=True)
class _Report:
    build: ReportBuilder
    title: str
    columns: tuple[str, ...]
    count_column: str  # zero in every row: the window has no data


SUCCESS_RATE = _Report(
    _success_rate, "Bill success rate", reports.SUCCESS_RATE_SUMMARY_COLUMNS, "paid"
)
PROVIDER_PERFORMANCE = _Report(
    _provider_performance, "Provider performance", reports.PROVIDER_SUMMARY_COLUMNS, "calls"
)


def _show(
    report: _Report, labels: list[str] | None, as_of: datetime | None, fmt: OutputFormat
) -> None:
    _print(
        _compute(labels, as_of, report.build),
        fmt=fmt,
        title=report.title,
        columns=report.columns,
        count_column=report.count_column,
    )


@report_app.command("success-rate")
def success_rate(
    window: WindowOption = None,
    fmt: FormatOption = OutputFormat.TABLE,
    as_of: AsOfOption = None,
) -> None:
    """Paid, completed, refunded, in flight, success/refund rate, time to complete and cNGN
    volume per bill type and biller (window membership: paid_at)."""
    _show(SUCCESS_RATE, window, as_of, fmt)


@report_app.command("provider-performance")
def provider_performance(
    window: WindowOption = None,
    fmt: FormatOption = OutputFormat.TABLE,
    as_of: AsOfOption = None,
) -> None:
    """Calls, outcomes, success rate, latency p50/p95/p99, error classes, fallbacks, requery
    share and electricity time to token per provider and operation (membership: started_at)."""
    _show(PROVIDER_PERFORMANCE, window, as_of, fmt)
