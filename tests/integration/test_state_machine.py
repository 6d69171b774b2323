"""The state machine: Python table == SQL table, and the trigger enforces it."""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa

from billpay.states import ALLOWED_TRANSITIONS, BillState, transition_pairs
from billpay.store import bills
from tests.factories import PREPAID_ELECTRICITY, force_state, new_order


def test_python_and_sql_transition_tables_are_identical(db):
    with db.connect() as conn:
        sql_pairs = set(
            conn.execute(
                sa.text("SELECT from_state, to_state FROM bill_state_transitions")
            ).tuples()
        )
        check = conn.execute(
            sa.text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'bill_payments_status_check'"
            )
        ).scalar_one()
    assert sql_pairs == transition_pairs()
    assert all(f"'{state.value}'" in check for state in BillState)
    assert len(BillState) == 14


def test_every_allowed_transition_applies_and_every_other_is_rejected(db):
    bill = new_order(db, "5000", **PREPAID_ELECTRICITY)
    for source, target in itertools.product(BillState, BillState):
        if source == target:
            continue
        with db.begin() as conn:
            force_state(conn, bill["id"], source)
        allowed = target in ALLOWED_TRANSITIONS[source]
        with db.begin() as conn:
            if allowed:
                ok = conn.execute(
                    sa.text("UPDATE bill_payments SET status = :t WHERE id = :id"),
                    {"t": str(target), "id": bill["id"]},
                ).rowcount
                assert ok == 1, f"{source} -> {target} should apply"
            else:
                with pytest.raises(sa.exc.IntegrityError, match="invalid bill transition"):
                    conn.execute(
                        sa.text("UPDATE bill_payments SET status = :t WHERE id = :id"),
                        {"t": str(target), "id": bill["id"]},
                    )


def test_plain_sql_invalid_transition_raises(db):
    new_order(db, "5000", **PREPAID_ELECTRICITY)
    with (
        db.begin() as conn,
        pytest.raises(sa.exc.IntegrityError, match="pending_payment -> completed"),
    ):
        conn.execute(
            sa.text("UPDATE bill_payments SET status='completed' WHERE status='pending_payment'")
        )


def test_orders_must_start_pending(db):
    with (
        db.begin() as conn,
        pytest.raises(sa.exc.IntegrityError, match="must be created as pending_payment"),
    ):
        conn.execute(
            sa.text(
                "INSERT INTO bill_payments (reference, bill_type, biller, account_number, customer_phone,"
                " amount_kobo, amount_cngn, expires_at, status) VALUES ('X', 'airtime', 'mtn', '0803',"
                " '0803', 100, 1, now(), 'completed')"
            )
        )


def test_status_writers_are_compare_and_set_and_write_events(db):
    bill = new_order(db, "5000", **PREPAID_ELECTRICITY)
    with db.begin() as conn:
        force_state(conn, bill["id"], BillState.CNGN_RECEIVED)
        bills.lease(conn, bill["id"], worker="flow-run-1", seconds=60)
    with db.begin() as conn:
        assert bills.begin_step(
            conn,
            bill["id"],
            BillState.CNGN_RECEIVED,
            BillState.VERIFYING_ACCOUNT,
            worker="flow-run-1",
            detail="matched",
        )
    with db.begin() as conn:
        # the row is no longer cngn_received: the same CAS does not apply a second time
        assert not bills.begin_step(
            conn,
            bill["id"],
            BillState.CNGN_RECEIVED,
            BillState.VERIFYING_ACCOUNT,
            worker="flow-run-1",
            detail="again",
        )
    events = bills.events_for(db, bill["id"])
    assert [(e["from_state"], e["to_state"]) for e in events][-1] == (
        "cngn_received",
        "verifying_account",
    )
    assert events[-1]["actor"] == "flow-run-1"
    assert events[-1]["detail"] == "matched"
