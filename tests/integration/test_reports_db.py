"""Reports against real PostgreSQL: a known history, exact numbers per metric, windows,
empty windows, idempotent snapshots, and agreement with the SQL monitoring views."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa

from billpay import reports
from billpay.store import reports as store

AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)
S = timedelta(seconds=1)
H = timedelta(hours=1)
D = timedelta(days=1)

# (bill_type, biller, status, provider, paid_at, seconds to complete, amount, refund_reason)
BILLS = [
    (
        "electricity",
        "ikeja-electric",
        "completed",
        "flutterwave",
        AS_OF - 30 * M,
        40,
        "5000.5",
        None,
    ),
    ("electricity", "ikeja-electric", "completed", "vtpass", AS_OF - 50 * M, 100, "2000", None),
    (
        "electricity",
        "ikeja-electric",
        "refunded",
        "flutterwave",
        AS_OF - 40 * M,
        None,
        "1000",
        "provider_failed",
    ),
    ("airtime", "mtn", "completed", "vtpass", AS_OF - 5 * H, 10, "100.25", None),
    ("airtime", "mtn", "refunded", "vtpass", AS_OF - 6 * H, None, "200", "account_invalid"),
    ("airtime", "mtn", "provider_processing", "vtpass", AS_OF - 2 * H, None, "300", None),
    ("electricity", "ikeja-electric", "completed", "flutterwave", AS_OF - 3 * H, 60, "3000", None),
    ("data", "mtn-data", "completed", "vtpass", AS_OF - 3 * D, 20, "500", None),
    ("data", "mtn-data", "refunded", "vtpass", AS_OF - 3 * D, None, "400", "provider_failed"),
    ("cable_tv", "dstv", "completed", "vtpass", AS_OF - 10 * D, 30, "7000", None),
    # never paid: outside every report (and outside the view's paid counts)
    ("airtime", "mtn", "pending_payment", None, None, None, "50", None),
    ("airtime", "mtn", "expired", None, None, None, "60", None),
    ("airtime", "mtn", "refunded", None, None, None, "70", "amount_mismatch"),
]

# (provider, operation, reference, started_at, latency_ms, outcome, error_class, fallback,
#  finished)
ATTEMPTS = [
    ("flutterwave", "pay", "FW-1", AS_OF - 30 * M, 100, "success", None, False, True),
    ("flutterwave", "pay", "FW-2", AS_OF - 29 * M, 200, "unknown", "timeout", False, True),
    ("flutterwave", "pay", "FW-3", AS_OF - 28 * M, 400, "failed", "declined", True, True),
    ("flutterwave", "requery", "FW-2", AS_OF - 20 * M, 50, "success", None, False, True),
    ("flutterwave", "verify", None, AS_OF - 31 * M, 80, "success", None, False, True),
    ("flutterwave", "verify", None, AS_OF - 32 * M, 90, None, None, False, True),
    ("vtpass", "pay", "VT-1", AS_OF - 50 * M, 300, "success", None, True, True),
    ("vtpass", "pay", "VT-2", AS_OF - 45 * M, 500, "pending", None, False, True),
    ("vtpass", "requery", "VT-2", AS_OF - 40 * M, 60, "pending", None, False, True),
    ("vtpass", "pay", "VT-3", AS_OF - 10 * M, None, None, None, False, False),  # in progress
    ("vtpass", "verify", None, AS_OF - 55 * M, 120, "failed", "upstream_5xx", False, True),
    ("flutterwave", "pay", "FW-4", AS_OF - 5 * H, 1000, "success", None, False, True),
    ("flutterwave", "pay", "FW-5", AS_OF - 5 * H, 300, "success", None, False, True),
    # a requery *before* the pay of the same reference did not follow it
    ("flutterwave", "requery", "FW-5", AS_OF - 6 * H, 70, "failed", "not_found", False, True),
    ("vtpass", "pay", "VT-9", AS_OF - 10 * D, 9999, "failed", "declined", False, True),
]


def seed_history(db, shift: timedelta = timedelta(0)) -> None:
    """Insert BILLS and ATTEMPTS, every timestamp moved by ``shift``."""
    with db.begin() as conn:
        conn.execute(sa.text("ALTER TABLE bill_payments DISABLE TRIGGER bill_payments_guard"))
        for n, (bill_type, biller, status, provider, paid_at, seconds, amount, reason) in enumerate(
            BILLS
        ):
            paid = paid_at + shift if paid_at else None
            conn.execute(
                sa.text(
                    "INSERT INTO bill_payments (reference, bill_type, biller, account_number,"
                    " customer_phone, amount_kobo, amount_cngn, expires_at, status, provider,"
                    " paid_at, completed_at, refunded_at, refund_reason)"
                    " VALUES (:ref, :bill_type, :biller, '0000', '08030000000', 100, :amount,"
                    " :expires, :status, :provider, :paid, :completed, :refunded, :reason)"
                ),
                {
                    "ref": f"REF{n:07d}",
                    "bill_type": bill_type,
                    "biller": biller,
                    "amount": Decimal(amount),
                    "expires": AS_OF + shift,
                    "status": status,
                    "provider": provider,
                    "paid": paid,
                    "completed": paid + timedelta(seconds=seconds) if seconds else None,
                    "refunded": (paid or AS_OF + shift) + M if status == "refunded" else None,
                    "reason": reason,
                },
            )
        conn.execute(sa.text("ALTER TABLE bill_payments ENABLE TRIGGER bill_payments_guard"))
        for provider, operation, ref, started, latency, outcome, error, fallback, done in ATTEMPTS:
            conn.execute(
                sa.text(
                    "INSERT INTO provider_attempts (provider, operation, reference, started_at,"
                    " finished_at, latency_ms, outcome, error_class, is_fallback)"
                    " VALUES (:provider, :operation, :ref, :started, :finished, :latency,"
                    " :outcome, :error, :fallback)"
                ),
                {
                    "provider": provider,
                    "operation": operation,
                    "ref": ref,
                    "started": started + shift,
                    "finished": started + shift + timedelta(milliseconds=latency or 0)
                    if done
                    else None,
                    "latency": latency,
                    "outcome": outcome,
                    "error": error,
                    "fallback": fallback,
                },
            )


def _success(db, labels=("1h", "24h", "7d"), as_of=AS_OF):
    windows = reports.rolling_windows(labels, as_of)
    since, until = reports.covering(windows)
    return reports.success_rate_report(store.read_bills(db, since, until), windows)


def _providers(db, labels=("1h", "24h", "7d"), as_of=AS_OF):
    windows = reports.rolling_windows(labels, as_of)
    since, until = reports.covering(windows)
    return reports.provider_performance_report(
        store.read_attempts(db, since, until), store.read_bills(db, since, until), windows
    )


def _row(report, window, **keys) -> dict:
    part = report[report["window_label"] == window]
    for key, value in keys.items():
        part = part[part[key] == value]
    assert len(part) == 1, (window, keys, part)
    return part.iloc[0].to_dict()


def test_success_rate_per_biller_over_the_last_hour(db):
    seed_history(db)
    report = _success(db)
    row = _row(report, "1h", bill_type="electricity", biller="ikeja-electric")
    assert (row["paid"], row["completed"], row["refunded"], row["in_flight"], row["settled"]) == (
        3,
        2,
        1,
        0,
        3,
    )
    assert row["success_rate"] == Decimal("0.6667") and row["refund_rate"] == Decimal("0.3333")
    assert row["refunds_by_reason"] == {"provider_failed": 1}
    assert row["time_to_complete_p50_s"] == pytest.approx(70.0)
    assert row["time_to_complete_p95_s"] == pytest.approx(97.0)
    assert row["cngn_volume"] == Decimal("8000.5") and isinstance(row["cngn_volume"], Decimal)
    # nothing else was paid in the last hour: the overall row equals the only biller
    assert set(report[report["window_label"] == "1h"]["bill_type"]) == {"electricity", "*"}


def test_success_rate_over_24_hours_and_7_days(db):
    seed_history(db)
    report = _success(db)
    airtime = _row(report, "24h", bill_type="airtime", biller="mtn")
    assert (airtime["paid"], airtime["completed"], airtime["refunded"], airtime["in_flight"]) == (
        3,
        1,
        1,
        1,
    )
    assert (airtime["success_rate"], airtime["refund_rate"]) == (Decimal("0.5"), Decimal("0.5"))
    assert airtime["refunds_by_reason"] == {"account_invalid": 1}
    assert airtime["cngn_volume"] == Decimal("600.25")
    electricity = _row(report, "24h", bill_type="electricity", biller="*")
    assert electricity["success_rate"] == Decimal("0.75")
    assert electricity["time_to_complete_p50_s"] == pytest.approx(60.0)
    assert electricity["time_to_complete_p95_s"] == pytest.approx(96.0)
    total = _row(report, "24h", bill_type="*", biller="*")
    counts = (total["paid"], total["completed"], total["refunded"], total["in_flight"])
    assert counts == (7, 4, 2, 1)
    assert total["cngn_volume"] == Decimal("11600.75")
    assert total["time_to_complete_p50_s"] == pytest.approx(50.0)
    assert total["time_to_complete_p95_s"] == pytest.approx(94.0)
    week = _row(report, "7d", bill_type="*", biller="*")
    assert (week["paid"], week["completed"], week["refunded"]) == (9, 5, 3)
    assert (week["success_rate"], week["refund_rate"]) == (Decimal("0.625"), Decimal("0.375"))
    assert week["refunds_by_reason"] == {"account_invalid": 1, "provider_failed": 2}
    # the 10-day-old cable bill and the never-paid orders are in no window
    assert "cable_tv" not in set(report["bill_type"])


def test_provider_performance_last_hour_exact(db):
    seed_history(db)
    report = _providers(db)
    pay = _row(report, "1h", provider="flutterwave", operation="pay")
    assert (pay["calls"], pay["success"], pay["pending"], pay["failed"], pay["unknown"]) == (
        3,
        1,
        0,
        1,
        1,
    )
    assert pay["success_rate"] == Decimal("0.3333")
    assert (pay["latency_p50_ms"], pay["latency_p95_ms"], pay["latency_p99_ms"]) == pytest.approx(
        (200.0, 380.0, 396.0)
    )
    assert pay["error_classes"] == {"declined": 1, "timeout": 1}
    assert pay["fallbacks"] == 1
    assert (pay["pay_attempts_requeried"], pay["requery_share"]) == (1, Decimal("0.3333"))
    assert pay["tokens_delivered"] == 1
    assert (pay["time_to_token_p50_s"], pay["time_to_token_p95_s"]) == pytest.approx((40.0, 40.0))

    verify = _row(report, "1h", provider="flutterwave", operation="verify")
    # a finished call without an outcome counts as a call, not in the success denominator
    assert (verify["calls"], verify["success"], verify["success_rate"]) == (2, 1, Decimal("1"))
    assert verify["latency_p95_ms"] == pytest.approx(89.5)
    assert verify["requery_share"] is None and verify["tokens_delivered"] is None

    vtpass = _row(report, "1h", provider="vtpass", operation="pay")  # VT-3 is still in progress
    assert (vtpass["calls"], vtpass["success"], vtpass["pending"]) == (2, 1, 1)
    assert (vtpass["fallbacks"], vtpass["requery_share"]) == (1, Decimal("0.5"))
    assert vtpass["latency_p99_ms"] == pytest.approx(498.0)
    assert vtpass["time_to_token_p50_s"] == pytest.approx(100.0)

    every_pay = _row(report, "1h", provider="*", operation="pay")
    assert (every_pay["calls"], every_pay["success_rate"], every_pay["fallbacks"]) == (
        5,
        Decimal("0.4"),
        2,
    )
    assert (every_pay["latency_p50_ms"], every_pay["latency_p95_ms"]) == pytest.approx((300, 480))
    assert (every_pay["pay_attempts_requeried"], every_pay["requery_share"]) == (2, Decimal("0.4"))
    assert every_pay["tokens_delivered"] == 2
    assert every_pay["time_to_token_p95_s"] == pytest.approx(97.0)
    verify_all = _row(report, "1h", provider="vtpass", operation="verify")
    assert verify_all["error_classes"] == {"upstream_5xx": 1}
    assert verify_all["success_rate"] == Decimal("0")


def test_provider_windows_exclude_old_rows_and_requery_must_follow_the_pay(db):
    seed_history(db)
    report = _providers(db)
    pay = _row(report, "24h", provider="flutterwave", operation="pay")
    assert pay["calls"] == 5
    assert pay["latency_p50_ms"] == pytest.approx(300.0)
    assert (pay["pay_attempts_requeried"], pay["requery_share"]) == (1, Decimal("0.2"))
    assert pay["tokens_delivered"] == 2
    assert _row(report, "24h", provider="flutterwave", operation="requery")["calls"] == 2
    week = _row(report, "7d", provider="vtpass", operation="pay")
    assert week["calls"] == 2  # the 10-day-old VT-9 is outside
    assert "declined" not in week["error_classes"]


def test_empty_windows_say_no_data(db):
    seed_history(db)
    far = AS_OF + 30 * D
    success = _success(db, ("1h", "7d"), as_of=far)
    assert list(success["bill_type"]) == ["*", "*"]
    assert success["paid"].tolist() == [0, 0]
    assert success["success_rate"].tolist() == [None, None]
    assert success["cngn_volume"].tolist() == [Decimal(0), Decimal(0)]
    providers = _providers(db, ("15m",), as_of=far)
    assert providers[["provider", "operation", "calls"]].values.tolist() == [["*", "*", 0]]
    assert providers["success_rate"].tolist() == [None]
    assert reports.is_no_data(providers, "calls")
    markdown = reports.summary_markdown(
        title="t",
        report=providers,
        keys=["provider", "operation"],
        columns=["provider", "calls"],
        count_column="calls",
        changes=reports.detect_changes(
            providers, providers.iloc[0:0], keys=["provider", "operation"], thresholds={}
        ),
        change_subject="provider",
        chart_png=None,
    )
    assert "no data" in markdown


def test_same_as_of_twice_leaves_one_snapshot(db):
    seed_history(db)
    for _ in range(2):
        assert store.write_success_rate_snapshot(db, _success(db)) > 0
        assert store.write_provider_snapshot(db, _providers(db)) > 0
    with db.connect() as conn:
        snapshots = conn.execute(
            sa.text(
                "SELECT as_of, window_label, count(*) FROM report_success_rate"
                " GROUP BY 1, 2 ORDER BY 2"
            )
        ).all()
        provider_rows = conn.execute(
            sa.text("SELECT count(*) FROM report_provider_performance WHERE window_label = '1h'")
        ).scalar_one()
        stored = conn.execute(
            sa.text(
                "SELECT success_rate, cngn_volume, refunds_by_reason FROM report_success_rate"
                " WHERE window_label = '1h' AND bill_type = 'electricity' AND biller = 'ikeja-electric'"
            )
        ).one()
    assert [(s[1], s[2]) for s in snapshots] == [("1h", 3), ("24h", 5), ("7d", 7)]
    assert {s[0] for s in snapshots} == {AS_OF}
    assert provider_rows == len(_providers(db, ("1h",)))
    assert stored == (Decimal("0.6667"), Decimal("8000.5000000"), {"provider_failed": 1})


def test_previous_snapshot_and_changes(db):
    seed_history(db)
    earlier = AS_OF - 35 * M
    store.write_provider_snapshot(db, _providers(db, ("24h",), as_of=earlier))
    current = _providers(db, ("24h",))
    previous = store.previous_provider_snapshot(db, AS_OF, ["24h"])
    assert set(previous["as_of"]) == {earlier}
    changes = reports.detect_changes(
        current,
        previous,
        keys=["provider", "operation"],
        thresholds={"success_rate": ("abs", 0.05), "latency_p95_ms": ("rel", 0.25)},
    )
    # FW-1..3 (30 minutes ago) were not there 35 minutes ago: flutterwave pay 2/2 -> 3/5
    moved = {(c.provider, c.operation, c.metric) for c in changes.itertuples()}
    assert ("flutterwave", "pay", "success_rate") in moved
    assert ("vtpass", "pay", "success_rate") not in moved
    fw = changes[(changes["provider"] == "flutterwave") & (changes["operation"] == "pay")]
    assert fw[["before", "after"]].values.tolist() == [[1.0, 0.6]]


def test_pandas_reports_agree_with_the_sql_views(db):
    seed_history(db)
    with db.connect() as conn:
        now = conn.execute(sa.text("SELECT now()")).scalar_one()
        view_rates = (
            conn.execute(
                sa.text(
                    "SELECT * FROM bill_payments_success_rate WHERE paid > 0 ORDER BY bill_type, biller"
                )
            )
            .mappings()
            .all()
        )
        view_perf = (
            conn.execute(sa.text("SELECT * FROM provider_performance ORDER BY provider, operation"))
            .mappings()
            .all()
        )
    everything = ("36500d",)
    success = _success(db, everything, as_of=max(now, AS_OF) + H)
    success = success[(success["bill_type"] != "*") & (success["biller"] != "*")]
    assert len(success) == len(view_rates) == 4
    for view in view_rates:
        row = _row(success, "36500d", bill_type=view["bill_type"], biller=view["biller"])
        for column in (
            "paid",
            "completed",
            "refunded",
            "in_flight",
            "success_rate",
            "refund_rate",
            "cngn_volume",
        ):
            assert row[column] == view[column], (view["biller"], column)

    performance = _providers(db, everything, as_of=max(now, AS_OF) + H)
    performance = performance[performance["provider"] != "*"]
    assert len(performance) == len(view_perf) == 6
    for view in view_perf:
        row = _row(performance, "36500d", provider=view["provider"], operation=view["operation"])
        for column in ("calls", "success", "pending", "failed", "unknown", "success_rate"):
            assert row[column] == view[column], (view["provider"], view["operation"], column)
        for column in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms"):
            assert row[column] == pytest.approx(view[column], rel=1e-12), column


def test_report_cli_prints_the_same_numbers(db, settings, monkeypatch):
    import json

    from typer.testing import CliRunner

    from billpay.report_cli import report_app

    seed_history(db)
    monkeypatch.setenv("BILLPAY_DATABASE_URL", settings.database_url)
    runner = CliRunner()
    as_of = ["--as-of", AS_OF.isoformat()]
    result = runner.invoke(
        report_app, ["success-rate", "--window", "1h", "--format", "json", *as_of]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    row = next(r for r in rows if r["biller"] == "ikeja-electric")
    assert (row["paid"], row["success_rate"], row["cngn_volume"]) == (3, "0.6667", "8000.5")
    assert row["refunds_by_reason"] == {"provider_failed": 1}

    result = runner.invoke(report_app, ["provider-performance", "-w", "24h", "-f", "csv", *as_of])
    assert result.exit_code == 0, result.output
    header, *lines = result.output.splitlines()
    assert header.startswith("as_of,window_label,window_start,window_end,provider,operation,calls")
    assert any(line.split(",")[4:7] == ["flutterwave", "pay", "5"] for line in lines)

    result = runner.invoke(report_app, ["provider-performance", "--window", "15m", *as_of])
    assert result.exit_code == 0, result.output
    assert "no data" in result.output
    result = runner.invoke(report_app, ["success-rate", "--window", "24h", *as_of])
    assert result.exit_code == 0 and "Bill success rate" in result.output
    assert runner.invoke(report_app, ["success-rate", "--window", "soon"]).exit_code == 2


def test_reading_in_small_chunks_gives_the_same_frames(db):
    seed_history(db)
    with db.begin() as conn:  # an error class that looks like a number, only in a late chunk
        conn.execute(
            sa.text(
                "INSERT INTO provider_attempts (provider, operation, started_at, finished_at,"
                " latency_ms, outcome, error_class) VALUES ('vtpass', 'verify', :t, :t, 5, 'failed',"
                " '404')"
            ),
            {"t": AS_OF - M},
        )
    since, until = AS_OF - 30 * D, AS_OF
    whole = store.read_attempts(db, since, until).sort_values(["started_at", "operation"])
    chunked = store.read_attempts(db, since, until, chunk_rows=2)
    chunked = chunked.sort_values(["started_at", "operation"])
    assert len(whole) == len(chunked) == len(ATTEMPTS) + 1
    for column in ("provider", "operation", "outcome", "error_class"):
        assert isinstance(chunked[column].dtype, pd.CategoricalDtype)
        assert chunked[column].astype(object).tolist() == whole[column].astype(object).tolist()
    assert "404" in set(chunked["error_class"].dropna())
    bills_whole = store.read_bills(db, since, until)
    bills_chunked = store.read_bills(db, since, until, chunk_rows=3)
    assert sorted(bills_chunked["amount_cngn"]) == sorted(bills_whole["amount_cngn"])
    windows = reports.rolling_windows(["7d"], AS_OF)
    assert reports.provider_performance_report(chunked, bills_chunked, windows).equals(
        reports.provider_performance_report(whole, bills_whole, windows)
    )


def test_concurrent_writers_of_one_snapshot_leave_one_snapshot(db):
    import threading

    seed_history(db)
    report = _providers(db, ("24h",))
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def write() -> None:
        barrier.wait()
        try:
            store.write_provider_snapshot(db, report)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM report_provider_performance")).scalar()
    assert stored == len(report)
