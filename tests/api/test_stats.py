"""``GET /api/bills/stats``: the report flows' numbers, over the calling client's orders only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from billpay import reports
from billpay.states import BillState
from billpay.store import api_clients
from billpay.store import reports as report_store
from tests.api.conftest import ApiServer
from tests.factories import force_state, new_order


def _client_id(api: ApiServer, key: str) -> int:
    from billpay.api import keys

    return int(api_clients.by_key_hash(api.runtime.db, keys.key_hash(key))["id"])


def _bill(api: ApiServer, client_id: int, state: BillState, minutes_ago: int, **extra: Any) -> int:
    now = datetime.now(UTC)
    row = new_order(api.runtime.db, "1000")
    paid = now - timedelta(minutes=minutes_ago)
    columns: dict[str, Any] = {"api_client_id": client_id, "paid_at": paid, "provider": "vtpass"}
    if state is BillState.COMPLETED:
        columns["completed_at"] = paid + timedelta(seconds=30)
    if state is BillState.REFUNDED:
        columns["refund_reason"] = "account_invalid"
    with api.runtime.db.begin() as conn:
        force_state(conn, row["id"], state, **columns)
        conn.execute(
            sa.text(
                "INSERT INTO provider_attempts (bill_payment_id, provider, operation, reference,"
                " started_at, finished_at, latency_ms, outcome)"
                " VALUES (:bill, 'vtpass', 'pay', :ref, :at, :at, :latency, :outcome)"
            ),
            {
                "bill": row["id"],
                "ref": f"R{row['id']}",
                "at": paid,
                "latency": extra.get("latency", 100),
                "outcome": "success" if state is BillState.COMPLETED else "failed",
            },
        )
    return int(row["id"])


def _overall(body: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in body["success_rate"] if r["bill_type"] == "*" and r["biller"] == "*")


def test_stats_count_only_the_calling_clients_orders(api: ApiServer) -> None:
    mine, theirs = api.new_key("wallet-a"), api.new_key("wallet-b")
    a, b = _client_id(api, mine), _client_id(api, theirs)
    _bill(api, a, BillState.COMPLETED, 10, latency=120)
    _bill(api, a, BillState.COMPLETED, 20, latency=80)
    _bill(api, a, BillState.REFUNDED, 30)
    for minutes in (5, 6, 7, 8):
        _bill(api, b, BillState.REFUNDED, minutes)
    with api.client(mine) as http:
        body = http.get("/api/bills/stats", params={"window": "1h"}).json()
    assert body["scope"] == "client" and body["window"] == "1h"
    overall = _overall(body)
    assert (overall["paid"], overall["completed"], overall["refunded"]) == (3, 2, 1)
    assert overall["success_rate"] == "0.6667"
    assert Decimal(overall["cngn_volume"]) == Decimal("3000")
    pay = next(
        r
        for r in body["provider_performance"]
        if r["provider"] == "vtpass" and r["operation"] == "pay"
    )
    assert pay["calls"] == 3 and pay["success"] == 2 and pay["failed"] == 1
    with api.client(theirs) as http:
        other = _overall(http.get("/api/bills/stats", params={"window": "1h"}).json())
    assert (other["paid"], other["completed"], other["refunded"]) == (4, 0, 4)


def test_stats_are_the_report_flows_numbers(api: ApiServer) -> None:
    # With one client's orders only, its stats equal the global report the flows compute.
    key = api.new_key("wallet-a")
    a = _client_id(api, key)
    for n, state in enumerate([BillState.COMPLETED, BillState.REFUNDED, BillState.COMPLETED]):
        _bill(api, a, state, 60 * (n + 1), latency=50 + 70 * n)
    with api.client(key) as http:
        body = http.get("/api/bills/stats", params={"window": "7d"}).json()
    windows = [
        reports.Window(
            "7d",
            datetime.fromisoformat(body["window_start"]),
            datetime.fromisoformat(body["window_end"]),
        )
    ]
    since, until = reports.covering(windows)
    bills = report_store.read_bills(api.runtime.db, since, until)
    attempts = report_store.read_attempts(api.runtime.db, since, until)
    key_columns = len(reports.SNAPSHOT_KEY)
    expected = reports.to_records(
        reports.success_rate_report(bills, windows)[
            list(reports.SUCCESS_RATE_COLUMNS[key_columns:])
        ]
    )
    performance = reports.to_records(
        reports.provider_performance_report(attempts, bills, windows)[
            list(reports.PROVIDER_COLUMNS[key_columns:])
        ]
    )
    assert body["success_rate"] == expected
    assert body["provider_performance"] == performance


def test_an_empty_window_is_one_row_of_zeros(api: ApiServer) -> None:
    with api.client(api.new_key("wallet-a")) as http:
        body = http.get("/api/bills/stats").json()
    assert body["window"] == "24h"
    assert _overall(body)["paid"] == 0 and _overall(body)["success_rate"] is None


def test_a_bad_window_is_422_naming_it(api: ApiServer) -> None:
    with api.client(api.new_key("wallet-a")) as http:
        for window in ("0h", "31d", "15m", "2w", "day", "", "24", "9999999999h"):
            answer = http.get("/api/bills/stats", params={"window": window})
            assert answer.status_code == 422, (window, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert [e["field"] for e in answer.json()["errors"]] == ["window"]
        assert http.get("/api/bills/stats", params={"window": "30d"}).status_code == 200
