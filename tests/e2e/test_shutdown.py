"""Graceful shutdown: a pipeline process stopped with SIGTERM in the middle of a pay call gives
its leases back before it exits, so the next tick resumes the bill at once (no wait for the
lease) and pays it exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
import sqlalchemy as sa

from deployments.cli import run_tick
from tests.e2e.pipeline_helpers import bill_row, open_pay_attempt, pay_calls, place_order

pytestmark = pytest.mark.e2e

TABLES = ("bill_payments", "refunds", "notifications")


def _claimed(rt: Any) -> dict[str, list[tuple[int, str]]]:
    with rt.db.connect() as conn:
        return {
            table: [
                tuple(r)
                for r in conn.execute(
                    sa.text(f"SELECT id, claimed_by FROM {table} WHERE claimed_by IS NOT NULL")
                )
            ]
            for table in TABLES
        }


def test_sigterm_mid_pay_releases_leases_and_the_bill_is_paid_once(
    runtime, sandbox, database_url, tmp_path
):
    order = place_order(
        runtime, "electricity", "ikeja-electric", "1111111111111", "6000", account_type="prepaid"
    )
    sandbox.pay(order["memo"], order["amount_cngn"])
    sandbox.options.latency_ms = 6000  # the pay call is still at the provider when we stop
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),  # the session's harness: no new server
        **sandbox.env(),
        "BILLPAY_DATABASE_URL": database_url.render_as_string(hide_password=False),
        "BILLPAY_LEASE_SECONDS": "600",  # without a release the bill would wait 10 minutes
        "BILLPAY_PROVIDER_READ_TIMEOUT_SECONDS": "20",
    }
    log_path = tmp_path / "worker.log"
    log_file = log_path.open("wb")
    proc = subprocess.Popen(  # its own session: the killpg below also ends Prefect's server
        [sys.executable, "-m", "deployments.cli", "tick"],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not open_pay_attempt(runtime):
            assert time.monotonic() < deadline, "the worker never reached the pay call"
            assert proc.poll() is None, "the worker exited before paying"
            time.sleep(0.1)
        time.sleep(0.5)  # the request is at the provider
        held = _claimed(runtime)
        assert held["bill_payments"], "the worker should hold the bill's lease while paying"
        proc.send_signal(signal.SIGTERM)  # what systemd or docker stop sends
        # The leases come back at once, while the pay is still at the provider (a supervisor
        # may SIGKILL after a short grace period; the pay's answer cannot be waited for).
        released_by = time.monotonic() + 3
        while any(_claimed(runtime).values()) and time.monotonic() < released_by:
            time.sleep(0.1)
        released = _claimed(runtime)
        proc.wait(timeout=20)
    finally:
        try:  # the worker and anything it started (Prefect's temporary server)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        log_file.close()
    output = log_path.read_text(errors="replace")[-3000:]
    assert proc.returncode != 0, "a stopped tick should not report success"
    assert released == {table: [] for table in TABLES}, output
    assert _claimed(runtime) == {table: [] for table in TABLES}, output

    row = bill_row(runtime, order["reference"])
    # the answer came after the lease was given back, so the dying worker wrote nothing: the
    # open attempt is there for the next worker to requery
    assert row["status"] == "processing_bill" and row["attempt_reference"], output
    sandbox.options.latency_ms = 0
    for _ in range(4):  # at once: no lease to wait out
        run_tick()
        if bill_row(runtime, order["reference"])["status"] == "completed":
            break
    row = bill_row(runtime, order["reference"])
    assert row["status"] == "completed" and row["token"]
    assert sum(pay_calls(sandbox).values()) == 1
    assert len(sandbox.calls(operation="pay")) == 1
