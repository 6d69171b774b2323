"""Report builders on hand-made frames: windows, rounding, percentiles, requery matching,
empty windows, change detection, presentation, and the layering rules."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from billpay import reports

AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _bills(rows: list[tuple]) -> pd.DataFrame:
    """rows: (bill_type, biller, status, provider, minutes_ago_paid, seconds_to_complete,
    amount, reason)."""
    records = []
    for bill_type, biller, status, provider, ago, seconds, amount, reason in rows:
        paid = AS_OF - timedelta(minutes=ago)
        records.append(
            {
                "bill_type": bill_type,
                "biller": biller,
                "status": status,
                "provider": provider,
                "refund_reason": reason,
                "amount_cngn": Decimal(amount),
                "paid_at": paid,
                "completed_at": paid + timedelta(seconds=seconds) if seconds is not None else None,
            }
        )
    frame = pd.DataFrame(records)
    frame["paid_at"] = pd.to_datetime(frame["paid_at"], utc=True)
    frame["completed_at"] = pd.to_datetime(frame["completed_at"], utc=True)
    frame["amount_cngn"] = frame["amount_cngn"].astype(object)
    return frame


def _attempts(rows: list[tuple]) -> pd.DataFrame:
    """rows: (provider, operation, ref_key, minutes_ago, latency, outcome, error, fallback,
    finished)."""
    frame = pd.DataFrame(
        rows,
        columns=[
            "provider",
            "operation",
            "ref_key",
            "ago",
            "latency_ms",
            "outcome",
            "error_class",
            "is_fallback",
            "finished",
        ],
    )
    frame["started_at"] = pd.to_datetime(
        [AS_OF - timedelta(minutes=float(m)) for m in frame.pop("ago")], utc=True
    )
    frame["latency_ms"] = frame["latency_ms"].astype("float64")
    frame["ref_key"] = frame["ref_key"].astype("int64")
    for column in ("provider", "operation", "outcome", "error_class"):
        frame[column] = frame[column].astype("category")
    return frame


NO_BILLS = _bills([("airtime", "mtn", "completed", "vtpass", 10, 5, "1", None)]).iloc[0:0]


def test_parse_window_accepts_minutes_hours_days_weeks():
    assert reports.parse_window("15m") == timedelta(minutes=15)
    assert reports.parse_window("1h") == timedelta(hours=1)
    assert reports.parse_window(" 24H ") == timedelta(hours=24)
    assert reports.parse_window("7d") == timedelta(days=7)
    assert reports.parse_window("2w") == timedelta(days=14)
    for bad in ("", "0h", "h", "1y", "1.5h", "-1h"):
        with pytest.raises(ValueError):
            reports.parse_window(bad)


def test_previous_day_is_midnight_to_midnight_in_lagos():
    window = reports.Window.previous_day(datetime(2026, 11, 21, 5, 0, tzinfo=UTC))  # 06:00 WAT
    assert (window.label, window.start, window.end) == (
        "day",
        datetime(2026, 11, 19, 23, 0, tzinfo=UTC),
        datetime(2026, 11, 20, 23, 0, tzinfo=UTC),
    )
    # 23:30 UTC is already the next day in Lagos
    late = reports.Window.previous_day(datetime(2026, 11, 20, 23, 30, tzinfo=UTC))
    assert late.start == datetime(2026, 11, 20, 23, 0, tzinfo=UTC) - timedelta(days=1)


def test_ratio_rounds_half_up_like_postgres_numeric():
    assert reports.ratio(1, 32) == Decimal("0.0313")  # float round() would say 0.0312
    assert reports.ratio(2, 3) == Decimal("0.6667")
    assert reports.ratio(0, 5) == Decimal("0")
    assert reports.ratio(3, 0) is None


def test_success_rate_window_membership_is_by_paid_at():
    bills = _bills(
        [
            ("airtime", "mtn", "completed", "vtpass", 10, 30, "100", None),
            ("airtime", "mtn", "refunded", "vtpass", 20, None, "50.0000001", "account_invalid"),
            ("airtime", "mtn", "completed", "vtpass", 90, 10, "1", None),  # outside 1h
            ("airtime", "mtn", "completed", "vtpass", -1, 10, "1", None),  # after as_of
        ]
    )
    report = reports.success_rate_report(bills, [reports.Window.rolling("1h", AS_OF)])
    total = report[(report["bill_type"] == "*") & (report["biller"] == "*")].iloc[0]
    assert (total["paid"], total["completed"], total["refunded"], total["settled"]) == (2, 1, 1, 2)
    assert total["cngn_volume"] == Decimal("150.0000001")
    assert total["refunds_by_reason"] == {"account_invalid": 1}
    assert total["time_to_complete_p50_s"] == 30.0
    assert list(report.columns) == list(reports.SUCCESS_RATE_COLUMNS)


def test_percentiles_use_linear_interpolation_like_percentile_cont():
    latencies = [10, 20, 30, 40, 1000]
    attempts = _attempts(
        [
            ("vtpass", "pay", i + 1, 5, lat, "success", None, False, True)
            for i, lat in enumerate(latencies)
        ]
    )
    report = reports.provider_performance_report(
        attempts, NO_BILLS, [reports.Window.rolling("1h", AS_OF)]
    )
    row = report[(report["provider"] == "vtpass")].iloc[0]
    expected = np.percentile(latencies, [50, 95, 99], method="linear")
    assert [row["latency_p50_ms"], row["latency_p95_ms"], row["latency_p99_ms"]] == pytest.approx(
        list(expected)
    )
    assert row["latency_p95_ms"] == pytest.approx(40 + 0.8 * 960)


def test_requery_counts_only_when_it_follows_the_pay_of_the_same_reference():
    attempts = _attempts(
        [
            ("vtpass", "pay", 1, 30, 100, "pending", None, False, True),
            ("vtpass", "requery", 1, 20, 50, "success", None, False, True),  # follows pay 1
            ("vtpass", "pay", 2, 30, 100, "success", None, False, True),
            ("vtpass", "requery", 2, 40, 50, "failed", None, False, True),  # before pay 2
            ("vtpass", "pay", 3, 30, 100, "success", None, True, True),
            ("vtpass", "verify", 0, 30, 100, "success", None, False, True),
        ]
    )
    flags = reports.needed_requery(attempts)
    assert flags.tolist() == [True, False, False, False, False, False]
    report = reports.provider_performance_report(
        attempts, NO_BILLS, [reports.Window.rolling("1h", AS_OF)]
    )
    pay = report[(report["provider"] == "vtpass") & (report["operation"] == "pay")].iloc[0]
    assert (pay["pay_attempts_requeried"], pay["requery_share"], pay["fallbacks"]) == (
        1,
        Decimal("0.3333"),
        1,
    )


def test_time_to_token_comes_from_electricity_bills_completed_via_the_provider():
    bills = _bills(
        [
            ("electricity", "ikeja-electric", "completed", "flutterwave", 10, 12, "10", None),
            ("electricity", "ikeja-electric", "completed", "flutterwave", 10, 20, "10", None),
            ("airtime", "mtn", "completed", "flutterwave", 10, 999, "10", None),  # no token
            ("electricity", "ikeja-electric", "refunded", "flutterwave", 10, None, "10", "x"),
        ]
    )
    attempts = _attempts([("flutterwave", "pay", 1, 10, 100, "success", None, False, True)])
    report = reports.provider_performance_report(
        attempts, bills, [reports.Window.rolling("1h", AS_OF)]
    )
    pay = report[(report["provider"] == "flutterwave") & (report["operation"] == "pay")].iloc[0]
    assert pay["tokens_delivered"] == 2
    assert (pay["time_to_token_p50_s"], pay["time_to_token_p95_s"]) == pytest.approx((16, 19.6))


def test_empty_windows_give_one_zero_row_without_division_by_zero():
    windows = reports.rolling_windows(["1h", "24h"], AS_OF)
    success = reports.success_rate_report(NO_BILLS, windows)
    assert success[["window_label", "bill_type", "biller", "paid"]].values.tolist() == [
        ["1h", "*", "*", 0],
        ["24h", "*", "*", 0],
    ]
    assert success["success_rate"].tolist() == [None, None]
    providers = reports.provider_performance_report(_attempts([]), NO_BILLS, windows)
    assert providers[["provider", "operation", "calls"]].values.tolist() == [["*", "*", 0]] * 2
    assert reports.is_no_data(providers, "calls")


def test_detect_changes_flags_moves_beyond_thresholds_only():
    def snap(rate, p95):
        return pd.DataFrame(
            {
                "window_label": ["24h", "24h"],
                "provider": ["vtpass", "flutterwave"],
                "operation": ["pay", "pay"],
                "success_rate": rate,
                "latency_p95_ms": p95,
            }
        )

    before = snap([Decimal("0.99"), Decimal("0.90")], [400.0, 1000.0])
    after = snap([Decimal("0.97"), Decimal("0.80")], [600.0, 1100.0])
    changes = reports.detect_changes(
        after,
        before,
        keys=["provider", "operation"],
        thresholds={"success_rate": ("abs", 0.05), "latency_p95_ms": ("rel", 0.25)},
    )
    assert sorted((c.provider, c.metric) for c in changes.itertuples()) == [
        ("flutterwave", "success_rate"),
        ("vtpass", "latency_p95_ms"),
    ]
    assert reports.detect_changes(
        after,
        before.iloc[0:0],
        keys=["provider", "operation"],
        thresholds={"success_rate": ("abs", 0.0)},
    ).empty


def test_records_are_json_safe_and_money_stays_exact():
    bills = _bills([("water", "lagos-water", "completed", "flutterwave", 5, 3, "0.1000001", None)])
    report = reports.success_rate_report(bills, [reports.Window.rolling("1h", AS_OF)])
    records = reports.to_records(report)
    json.dumps(records)
    assert records[0]["cngn_volume"] == "0.1000001"
    assert records[0]["as_of"] == "2026-11-20T12:00:00+00:00"
    flat = reports.to_records(report, flat=True)
    assert all(not isinstance(v, dict) for row in flat for v in row.values())
    assert reports.to_csv(report).splitlines()[0] == ",".join(reports.SUCCESS_RATE_COLUMNS)


def test_summary_markdown_embeds_the_chart_and_lists_changes():
    bills = _bills(
        [
            ("airtime", "mtn", "completed", "vtpass", 60 * 24 * d + 65, 10 + d, "1", None)
            for d in range(3)
        ]
    )
    series = reports.success_daily_series(bills, as_of=AS_OF, days=7)
    assert len(series) == 3 and series["success_rate"].tolist() == [1.0, 1.0, 1.0]
    png = reports.render_trend_png(
        series, group="bill_type", title="t", panels=[("success_rate", "rate")]
    )
    assert png is not None and png.startswith(b"\x89PNG")
    assert (
        reports.render_trend_png(
            series.iloc[0:0], group="bill_type", title="t", panels=[("success_rate", "rate")]
        )
        is None
    )
    report = reports.success_rate_report(bills, reports.rolling_windows(["1h", "7d"], AS_OF))
    changes = pd.DataFrame(
        [
            {
                "window_label": "7d",
                "bill_type": "airtime",
                "biller": "mtn",
                "metric": "success_rate",
                "before": 0.9,
                "after": 1.0,
                "change": 0.1,
            }
        ]
    )
    markdown = reports.summary_markdown(
        title="Bill success rate",
        report=report,
        keys=["bill_type", "biller"],
        columns=reports.SUCCESS_RATE_SUMMARY_COLUMNS,
        count_column="paid",
        changes=changes,
        change_subject="biller",
        chart_png=png,
    )
    assert "## Window 1h\n\nno data" in markdown
    assert "**airtime / mtn** (7d): success_rate 0.9 → 1 (+0.1000)" in markdown
    assert "![trend](data:image/png;base64,iVBOR" in markdown


def test_report_deployments_name_flows_and_schedules():
    from deployments.registry import REPORTS

    by_name = {spec.name: spec for spec in REPORTS}
    assert set(by_name) == {"report-success-rate", "report-provider-performance", "daily-report"}
    assert by_name["report-success-rate"].interval_seconds == 900
    assert by_name["report-provider-performance"].interval_seconds == 900
    daily = by_name["daily-report"]
    assert (daily.cron, daily.timezone) == ("0 6 * * *", "Africa/Lagos")
    for name, spec in by_name.items():
        assert spec.load_flow().name == name
        assert spec.entrypoint.startswith(f"flows/{name.replace('-', '_')}.py:")


def test_domain_report_modules_do_not_import_prefect():
    code = (
        "import sys, billpay.reports, billpay.store.reports, billpay.report_cli; "
        "sys.exit(1 if any(m == 'prefect' or m.startswith('prefect.') for m in sys.modules) "
        "else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_scheduled_start_time_from_prefect_gives_tz_aware_windows():
    """Prefect hands a run's scheduled start over as its own DateTime (pendulum); windows built
    from it used to come out naive, and every scheduled report run failed comparing them."""
    from prefect.client.schemas.objects import FlowRun

    run = FlowRun(
        flow_id="00000000-0000-0000-0000-000000000000",
        expected_start_time="2026-12-01T21:23:20.123+00:00",
    )
    as_of = reports.as_utc(run.expected_start_time).replace(microsecond=0)
    window = reports.rolling_windows(["1h"], as_of)[0]
    assert type(window.start) is datetime and window.start.tzinfo is UTC
    assert window.end == datetime(2026, 12, 1, 21, 23, 20, tzinfo=UTC)
    moments = pd.Series(pd.to_datetime([datetime(2026, 12, 1, 21, 0, tzinfo=UTC)]))
    assert window.contains(moments).tolist() == [True]
