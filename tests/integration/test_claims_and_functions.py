"""Claims (SKIP LOCKED + lease), the guarded helper functions, and migrations."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from billpay.bills.decision import Decision, ErrorNote
from billpay.states import BillState
from billpay.store import bills
from billpay.store.migrations import pending_migrations, upgrade
from tests.factories import attach_payment, bill_in_state


def test_two_threads_claiming_get_disjoint_rows(db):
    for _ in range(40):
        bill_in_state(db, BillState.PROCESSING_BILL)
    results: dict[str, list[int]] = {}
    barrier = threading.Barrier(2)

    def worker(name: str) -> None:
        barrier.wait()
        got: list[int] = []
        while batch := bills.claim(db, "queue_pay_bills", worker=name, lease_seconds=60, limit=7):
            got += [row["id"] for row in batch]
        results[name] = got

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not set(results["a"]) & set(results["b"])
    assert len(results["a"]) + len(results["b"]) == 40


def test_live_lease_is_not_claimable_and_expired_lease_is(db):
    bill = bill_in_state(db, BillState.PROCESSING_BILL)
    assert [
        r["id"] for r in bills.claim(db, "queue_pay_bills", worker="w1", lease_seconds=60, limit=10)
    ] == [bill["id"]]
    assert bills.claim(db, "queue_pay_bills", worker="w2", lease_seconds=60, limit=10) == []
    with db.begin() as conn:  # the lease of w1 (a dead worker) runs out
        conn.execute(
            sa.text(
                "UPDATE bill_payments SET claimed_until = now() - interval '1 second' WHERE id=:id"
            ),
            {"id": bill["id"]},
        )
    claimed = bills.claim(db, "queue_pay_bills", worker="w2", lease_seconds=60, limit=10)
    assert [(r["id"], r["claimed_by"]) for r in claimed] == [(bill["id"], "w2")]
    # w1 comes back to life: its compare-and-set no longer applies
    with db.begin() as conn:
        delivered = Decision(BillState.PROCESSING_BILL, BillState.COMPLETED, summary="delivered")
        assert not bills.apply(conn, bill["id"], delivered, worker="w1", actor="w1")
        assert bills.apply(conn, bill["id"], delivered, worker="w2", actor="w2")


def test_claim_queries_use_the_partial_indexes(db):
    with db.begin() as conn:
        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
        for view, index in [
            ("queue_pay_bills", "bill_payments_q_processing"),
            ("queue_retry_bills", "bill_payments_q_retry"),
            ("queue_requery_bills", "bill_payments_q_provider_processing"),
            ("queue_verify_accounts", "bill_payments_q_cngn_received"),
        ]:
            plan = conn.execute(
                sa.text(
                    f"EXPLAIN (FORMAT JSON) SELECT id FROM {view} LIMIT 10 FOR UPDATE SKIP LOCKED"
                )
            ).scalar_one()
            assert index in str(plan), (view, plan)


def test_retry_is_scheduled_only_from_the_state_the_step_saw(db):
    paying = bill_in_state(db, BillState.PROCESSING_BILL)
    done = bill_in_state(db, BillState.COMPLETED)
    soon = datetime.now(UTC) + timedelta(seconds=10)
    retry = Decision(
        BillState.PROCESSING_BILL,
        BillState.RETRY_SCHEDULED,
        summary="timeout",
        retry_count=1,
        next_attempt_at=soon,
        error=ErrorNote("timeout", "transient"),
    )
    with db.begin() as conn:
        for row in (paying, done):
            bills.lease(conn, row["id"], worker="t", seconds=60)
        assert bills.apply(conn, paying["id"], retry, worker="t", actor="t")
        assert not bills.apply(conn, done["id"], retry, worker="t", actor="t")
        row = bills.get_by_id(conn, paying["id"])
    assert row["status"] == "retry_scheduled" and row["retry_count"] == 1
    assert row["next_attempt_at"] > row["updated_at"]
    assert row["claimed_by"] is None and row["last_error_class"] == "transient"


def test_refund_transition_refuses_completed_and_creates_one_refund(db):
    completed = bill_in_state(db, BillState.COMPLETED)
    attach_payment(db, completed)
    failed = bill_in_state(db, BillState.PROVIDER_FAILED)
    payment_id = attach_payment(db, failed)
    with db.begin() as conn:
        assert not bills.send_to_refund(conn, completed["id"], "oops", actor="t")
        assert bills.send_to_refund(conn, failed["id"], "provider_failed", actor="t")
        assert not bills.send_to_refund(conn, failed["id"], "provider_failed", actor="t")
        refunds = conn.execute(
            sa.text("SELECT incoming_payment_id, amount, memo, destination, reason FROM refunds")
        ).all()
        assert bills.get_by_id(conn, completed["id"])["status"] == "completed"
    assert refunds == [
        (
            payment_id,
            Decimal("1000.0000000"),
            f"REFUND-{failed['reference']}",
            "GUSER",
            "provider_failed",
        )
    ]


def test_refund_mark_confirmed_confirms_once_and_marks_bill_refunded(db):
    bill = bill_in_state(db, BillState.ACCOUNT_INVALID)
    attach_payment(db, bill)
    with db.begin() as conn:
        assert bills.send_to_refund(conn, bill["id"], "account_invalid", actor="t")
        refund_id = conn.execute(sa.text("SELECT id FROM refunds")).scalar_one()
        assert conn.execute(
            sa.text("SELECT refund_mark_confirmed(:r, 'hash1', 't', '')"), {"r": refund_id}
        ).scalar()
        assert not conn.execute(
            sa.text("SELECT refund_mark_confirmed(:r, 'hash2', 't', '')"), {"r": refund_id}
        ).scalar()
        row = bills.get_by_id(conn, bill["id"])
    assert row["status"] == "refunded" and row["refunded_at"] is not None
    states = [e["to_state"] for e in bills.events_for(db, bill["id"])]
    assert states[-3:] == ["refund_initiated", "refund_processing", "refunded"]


def test_upgrade_twice_is_a_no_op_and_concurrent_upgrades_are_safe(pg_server):
    import uuid

    name = f"billpay_mig_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = pg_server.set(database=name)
    try:
        results: list[list[str]] = []
        threads = [threading.Thread(target=lambda: results.append(upgrade(url))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        applied = sorted(results, key=len)
        assert applied[0] == [] and "0001_schema" in applied[1]
        assert upgrade(url) == []
        assert pending_migrations(url) == []
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
