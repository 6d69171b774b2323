"""`billpay status` and the stage heartbeat on a real database, as an operator runs them."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from billpay.cli import app
from billpay.states import BillState
from billpay.status import pipeline_status
from billpay.store.stages import PIPELINE_STAGES, record_stage
from tests.db_reads import one_row
from tests.factories import add_incoming_payment, bill_in_state, new_order

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch, database_url):
    monkeypatch.setenv("BILLPAY_DATABASE_URL", database_url.render_as_string(hide_password=False))
    return database_url


def _all_stages_ok(db) -> None:
    for stage in PIPELINE_STAGES:
        record_stage(db, stage, ok=True, summary={"claimed": 0})


def _backdate(db, table: str, column: str, seconds: int, **where: str) -> None:
    ((key, value),) = where.items()
    with db.begin() as conn:
        conn.execute(
            sa.text(
                f"UPDATE {table} SET {column} = now() - make_interval(secs => :s) WHERE {key} = :v"
            ),
            {"s": seconds, "v": value},
        )


def test_record_stage_upserts_one_row_and_counts_runs_and_failures(db):
    record_stage(db, "bills", ok=True, summary={"claimed": 3})
    record_stage(db, "bills", ok=False, error="provider timeout")
    record_stage(db, "bills", ok=True, summary={"claimed": 1})
    row = one_row(db, "SELECT * FROM pipeline_stages WHERE stage = 'bills'")
    assert row["runs"] == 3 and row["failures"] == 1 and row["last_ok"] is True
    assert row["last_summary"] == {"claimed": 1}
    # The failure's time and error stay for the operator after the stage recovered.
    assert row["last_error"] == "provider timeout"
    assert row["last_success_at"] >= row["last_failure_at"] is not None
    assert row["last_run_at"].utcoffset() is not None  # timezone-aware, database clock
    assert one_row(db, "SELECT count(*) AS n FROM pipeline_stages")["n"] == 1


def test_a_fresh_database_says_every_stage_never_ran_and_exits_1(cli_env):
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    for stage in PIPELINE_STAGES:
        assert any(line.startswith(stage) and "never ran  STALE" in line for line in lines)
    assert "horizon       no cursor yet" in lines
    assert "oldest        no bill waiting on the pipeline" in lines
    assert "Is `billpay serve` running?" in lines[-1]


def test_recent_successes_exit_0_and_show_each_stages_age(cli_env, db):
    _all_stages_ok(db)
    _backdate(db, "pipeline_stages", "last_success_at", 30, stage="bills")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "bills         last ok 30s ago" in result.stdout.splitlines()
    assert "STALE" not in result.stdout
    stale = runner.invoke(app, ["status", "--stale-after", "20"])
    assert stale.exit_code == 1
    assert "bills         last ok 30s ago  STALE" in stale.stdout.splitlines()
    assert "STALE (no success within 20s): bills (last ok 30s ago)." in stale.stdout


def test_a_bill_left_in_flight_shows_as_the_oldest_with_its_age(cli_env, db):
    stuck = bill_in_state(db, BillState.PROVIDER_PROCESSING)
    _backdate(db, "bill_payments", "updated_at", 900, reference=stuck["reference"])
    later = bill_in_state(db, BillState.RETRY_SCHEDULED)
    _backdate(db, "bill_payments", "updated_at", 100, reference=later["reference"])
    unpaid = new_order(db)  # waits for its customer, not for us: never "oldest"
    _backdate(db, "bill_payments", "updated_at", 5000, reference=unpaid["reference"])
    status = pipeline_status(db)
    assert status.oldest_bill is not None
    assert status.oldest_bill.reference == stuck["reference"]
    assert status.oldest_bill.status == "provider_processing"
    assert 900 <= status.oldest_bill.age_seconds < 960
    result = runner.invoke(app, ["status"])
    assert f"oldest        {stuck['reference']} provider_processing, unchanged for" in result.stdout


def test_queue_depths_count_the_rows_each_stage_could_claim(db):
    for _ in range(2):
        bill_in_state(db, BillState.PROCESSING_BILL)
    bill_in_state(db, BillState.CNGN_RECEIVED)
    bill_in_state(db, BillState.COMPLETED)  # terminal: in no count
    new_order(db)
    with db.begin() as conn:
        add_incoming_payment(conn, memo="BILL-NOSUCHREF")
    status = pipeline_status(db)
    assert status.open_bills == {"cngn_received": 1, "pending_payment": 1, "processing_bill": 2}
    assert status.queues["queue_pay_bills"] == 2
    assert status.queues["queue_verify_accounts"] == 1
    assert status.queues["queue_match_payments"] == 1
    assert status.queues["queue_refunds"] == 0 and status.queues["queue_expire_orders"] == 0
    assert status.newest_payment is not None and status.newest_payment.received_age_seconds < 60


def test_a_failing_stage_shows_its_error_masked_and_the_json_is_plain(cli_env, db):
    _all_stages_ok(db)
    error = "vtpass refused meter 1111111111111 for 08031234567: " + "x" * 1000
    record_stage(db, "bills", ok=False, error=error)
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0  # the last success is still recent
    line = next(line for line in result.stdout.splitlines() if line.startswith("bills"))
    assert "last run failed: vtpass refused meter *********1111 for *******4567: xxx" in line
    assert "1111111111111" not in result.stdout and "08031234567" not in result.stdout
    report = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
    bills = next(s for s in report["stages"] if s["stage"] == "bills")
    assert bills["last_error"].startswith("vtpass refused meter *********1111")
    assert len(bills["last_error"]) == 500 and bills["failures"] == 1 and bills["runs"] == 2
    assert report["ok"] is True and report["stale_stages"] == []
    assert isinstance(bills["last_success_age_seconds"], int)
    assert datetime.fromisoformat(report["checked_at"]).utcoffset() is not None


def test_json_of_a_fresh_database_lists_the_stale_stages_and_exits_1(cli_env):
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["stale_stages"] == list(PIPELINE_STAGES)
    assert "billpay serve" in result.stderr


def test_an_unmigrated_database_is_reported_not_crashed_on(monkeypatch, database_url):
    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP TABLE pipeline_stages"))
    admin.dispose()
    monkeypatch.setenv("BILLPAY_DATABASE_URL", database_url.render_as_string(hide_password=False))
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 2
    assert "billpay db upgrade" in result.stderr
