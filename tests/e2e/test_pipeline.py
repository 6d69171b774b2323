"""The pipeline end to end: flows under Prefect's test harness, real PostgreSQL, the sandbox's
providers and Horizon. Each scenario asserts final states, events, the sandbox call log and the
ledger."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
import sqlalchemy as sa

from billpay.store import bills as bill_store
from billpay.tokens import is_valid_token
from deployments.cli import run_tick
from tests.db_reads import all_rows, scalar
from tests.e2e.pipeline_helpers import (
    bill_row,
    db_now,
    open_pay_attempt,
    pay_calls,
    place_order,
    refund_payments,
    runtime_with,
    ticks_until_settled,
)

pytestmark = pytest.mark.e2e


def _paid_electricity(runtime, sandbox, meter: str, amount: str, account_type: str) -> dict:
    """An ikeja-electric order the customer has paid on the ledger (not yet ingested)."""
    order = place_order(
        runtime, "electricity", "ikeja-electric", meter, amount, account_type=account_type
    )
    sandbox.pay(order["memo"], order["amount_cngn"])
    return order


def _settled(runtime, order: dict, final: str) -> dict:
    """Tick until the order settles; it must end in ``final``. Its bill row."""
    states = ticks_until_settled(runtime, [order["reference"]])
    assert states[order["reference"]] == final
    return bill_row(runtime, order["reference"])


def test_electricity_airtime_data_and_cable_complete_in_one_tick(runtime, sandbox):
    orders = [
        place_order(
            runtime,
            "electricity",
            "ikeja-electric",
            "1111111111111",
            "5000",
            account_type="prepaid",
        ),
        place_order(runtime, "airtime", "mtn", "08031234567", "500", phone="08031234567"),
        place_order(
            runtime,
            "data",
            "airtel-data",
            "08021234567",
            "1000",
            phone="08021234567",
            product="airtel-1gb-1000",
        ),
        place_order(runtime, "cable_tv", "dstv", "1212121212", "2950", product="dstv-padi"),
    ]
    for order in orders:
        sandbox.pay(order["memo"], order["amount_cngn"])
    run_tick()
    rows = {o["reference"]: bill_row(runtime, o["reference"]) for o in orders}
    assert {ref: row["status"] for ref, row in rows.items()} == {
        o["reference"]: "completed" for o in orders
    }
    electricity = rows[orders[0]["reference"]]
    assert is_valid_token(electricity["token"])
    events = [e["to_state"] for e in bill_store.events_for(runtime.db, electricity["id"])]
    assert events == [
        "pending_payment",
        "cngn_received",
        "verifying_account",
        "processing_bill",
        "completed",
    ]
    pays = pay_calls(sandbox)
    assert all(pays[row["attempt_reference"]] == 1 for row in rows.values())
    sent = "SELECT count(*) FROM notifications WHERE status = 'sent' AND kind = :kind"
    assert scalar(runtime.db, sent, kind="bill_completed") == 4


def test_pending_at_provider_is_requeried_until_delivered(runtime, sandbox):
    order = _paid_electricity(runtime, sandbox, "201000000000", "3000", "postpaid")
    run_tick()
    assert bill_row(runtime, order["reference"])["status"] == "provider_processing"
    row = _settled(runtime, order, "completed")
    assert pay_calls(sandbox)[row["attempt_reference"]] == 1
    assert sandbox.calls(operation="requery") or sandbox.calls(operation="status")


def test_read_timeout_on_pay_is_resolved_by_requery_with_one_pay_call(runtime, sandbox):
    order = _paid_electricity(runtime, sandbox, "300000000000", "2000", "postpaid")
    row = _settled(runtime, order, "completed")
    assert sum(pay_calls(sandbox).values()) == 1
    outcomes = all_rows(
        runtime.db,
        "SELECT operation, outcome FROM provider_attempts"
        " WHERE bill_payment_id = :id AND operation <> 'verify' ORDER BY id",
        id=row["id"],
    )
    assert outcomes[0] == ("pay", "unknown")
    assert outcomes[-1] == ("requery", "success")


def test_invalid_account_is_refunded_on_the_ledger(runtime, sandbox):
    order = _paid_electricity(runtime, sandbox, "1234567890123", "2500", "prepaid")
    row = _settled(runtime, order, "refunded")
    assert sum(pay_calls(sandbox).values()) == 0
    refunds = refund_payments(sandbox, runtime)
    assert len(refunds) == 1
    assert refunds[0]["amount"] == "2500.0000000"
    assert refunds[0]["transaction"]["memo"] == f"REFUND-{order['reference']}"
    events = [e["to_state"] for e in bill_store.events_for(runtime.db, row["id"])]
    assert events[-4:] == ["account_invalid", "refund_initiated", "refund_processing", "refunded"]


def test_wrong_amount_unknown_memo_and_late_payment_are_refunded_once(runtime, sandbox):
    wrong = place_order(runtime, "airtime", "mtn", "08031234567", "500", phone="08031234567")
    late = place_order(runtime, "airtime", "glo", "08051234567", "300", phone="08051234567")
    with runtime.db.begin() as conn:  # the order's time ran out
        conn.execute(
            sa.text(
                "UPDATE bill_payments SET expires_at = now() - interval '1 minute'"
                " WHERE reference = :r"
            ),
            {"r": late["reference"]},
        )
    run_tick()  # expire-orders runs first
    assert bill_row(runtime, late["reference"])["status"] == "expired"
    sandbox.pay(wrong["memo"], "499.9900000")
    sandbox.pay("BILL-NOSUCHREF", "123.0000000")
    sandbox.pay(late["memo"], late["amount_cngn"])
    for _ in range(3):
        run_tick()
    assert bill_row(runtime, wrong["reference"])["status"] == "refunded"
    assert bill_row(runtime, late["reference"])["status"] == "expired"
    refunds = refund_payments(sandbox, runtime)
    assert sorted(r["amount"] for r in refunds) == ["123.0000000", "300.0000000", "499.9900000"]
    with runtime.db.connect() as conn:
        reasons = dict(conn.execute(sa.text("SELECT amount::text, reason FROM refunds")).all())
        statuses = set(conn.execute(sa.text("SELECT status FROM refunds")).scalars())
    assert reasons == {
        "499.9900000": "amount_mismatch",
        "123.0000000": "unknown_reference",
        "300.0000000": "order_not_payable",
    }
    assert statuses == {"confirmed"}
    assert sum(pay_calls(sandbox).values()) == 0


def test_fallback_to_second_provider_after_definitive_failure(
    pipeline_settings, sandbox, prefect_harness
):
    from pydantic import SecretStr

    revoked = {"flutterwave_secret_key": SecretStr("FLWSECK_TEST-revoked")}
    with runtime_with(pipeline_settings, **revoked) as rt:
        order = _paid_electricity(rt, sandbox, "1111111111111", "4000", "prepaid")
        run_tick()
        row = bill_row(rt, order["reference"])
        assert row["status"] == "completed"
        assert row["provider"] == "vtpass"
        attempts = all_rows(
            rt.db,
            "SELECT provider, outcome, error_class, is_fallback FROM provider_attempts"
            " WHERE bill_payment_id = :id AND operation = 'pay' ORDER BY id",
            id=row["id"],
        )
        assert attempts == [
            ("flutterwave", "failed", "configuration", False),
            ("vtpass", "success", None, True),
        ]


def test_unreachable_providers_retry_then_refund(pipeline_settings, sandbox, prefect_harness):
    dead = "http://127.0.0.1:9"  # nothing listens: connection refused
    unreachable = {
        "flutterwave_base_url": f"{dead}/flutterwave/v3",
        "vtpass_base_url": f"{dead}/vtpass/api",
    }
    with runtime_with(pipeline_settings, **unreachable) as rt:
        order = _paid_electricity(rt, sandbox, "1111111111111", "1500", "prepaid")
        states = ticks_until_settled(rt, [order["reference"]], max_ticks=6)
        assert states[order["reference"]] == "refunded"
        row = bill_row(rt, order["reference"])
        assert row["retry_count"] == 3
        verifies = scalar(
            rt.db,
            "SELECT count(*) FROM provider_attempts WHERE bill_payment_id = :id"
            " AND operation = 'verify'",
            id=row["id"],
        )
        assert verifies == 8  # 4 rounds x 2 providers, then the refund


def test_two_pipeline_runs_at_once_pay_each_bill_once(runtime, sandbox):
    from flows.pipeline import pipeline
    from tasks.stages import ingest_payments

    orders = [
        place_order(runtime, "airtime", "mtn", f"0803123{i:04d}", "100", phone=f"0803123{i:04d}")
        for i in range(12)
    ]
    for order in orders:
        sandbox.pay(order["memo"], order["amount_cngn"])
    ingest_payments(runtime.worker_id())
    threads = [threading.Thread(target=pipeline) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run_tick()
    assert {bill_row(runtime, o["reference"])["status"] for o in orders} == {"completed"}
    pays = pay_calls(sandbox)
    assert sum(pays.values()) == 12 and set(pays.values()) == {1}


def test_worker_killed_mid_pay_resumes_after_lease_without_double_pay(
    runtime, sandbox, pipeline_settings, database_url
):
    order = _paid_electricity(runtime, sandbox, "1111111111111", "6000", "prepaid")
    sandbox.options.latency_ms = 4000  # every provider call now takes 4 s
    env = {
        **os.environ,
        **sandbox.env(),
        "BILLPAY_DATABASE_URL": database_url.render_as_string(hide_password=False),
        "BILLPAY_LEASE_SECONDS": "5",
        "BILLPAY_PROVIDER_READ_TIMEOUT_SECONDS": "10",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "deployments.cli", "tick"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not open_pay_attempt(runtime):  # recorded, committed, and the HTTP call under way
            assert time.monotonic() < deadline, "the worker never reached the pay call"
            assert proc.poll() is None, "the worker exited before paying"
            time.sleep(0.1)
        time.sleep(1.0)  # the request is at the provider, which takes 4 s to answer
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    row = bill_row(runtime, order["reference"])
    assert row["status"] == "processing_bill" and row["attempt_reference"]
    assert row["claimed_by"] is not None  # the dead worker's lease
    sandbox.options.latency_ms = 0
    time.sleep(max(0.0, (row["claimed_until"] - db_now(runtime)).total_seconds()) + 0.5)
    states = ticks_until_settled(runtime, [order["reference"]])
    assert states[order["reference"]] == "completed"
    assert sum(pay_calls(sandbox).values()) == 1


def test_sandbox_call_log_is_served(sandbox):
    assert httpx.get(f"{sandbox.url}/_sandbox/calls").json() == []


def test_a_price_rise_at_the_provider_before_our_sync_is_told_to_operators(runtime, sandbox):
    """DStv Padi costs 3,100 at VTpass now; our catalogue (not synced since) still says 2,950,
    so the order is collected at 2,950. The provider charges 3,100: the bill completes (the
    user got the product) and operators are told once, with the difference."""
    httpx.post(
        f"{sandbox.url}/vtpass/api/_sandbox/catalogue/dstv/price",
        json={"item": "dstv-padi", "amount": "3100.00"},
    ).raise_for_status()
    order = place_order(runtime, "cable_tv", "dstv", "1212121212", "2950", product="dstv-padi")
    sandbox.pay(order["memo"], order["amount_cngn"])
    row = _settled(runtime, order, "completed")
    assert row["provider"] == "vtpass" and row["amount_kobo"] == 295_000
    ((alert,),) = all_rows(
        runtime.db,
        "SELECT payload FROM notifications"
        " WHERE kind = 'provider_charged_different_amount' AND bill_payment_id = :id",
        id=row["id"],
    )
    assert alert["charged"] == "3100.00" and alert["collected"] == "2950.00"
    assert alert["above_collected"] is True
    assert "1212121212" not in str(alert)  # the smart card is never in an alert
    details = [e["detail"] or "" for e in bill_store.events_for(runtime.db, row["id"])]
    assert any("charged NGN 3,100.00" in d for d in details)
