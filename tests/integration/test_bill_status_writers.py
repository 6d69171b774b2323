"""The bill status writers (sql/0006): each applies only from the state the step saw and only for
the lease holder, says whether it applied, and attributes the audit event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from billpay.bills import policy
from billpay.bills.decision import CLEAR_ERROR, Decision, ErrorNote
from billpay.states import BillState
from billpay.store import bills
from tests.factories import WATER, add_incoming_payment, force_state, new_order

S = BillState
SOON = datetime.now(UTC) + timedelta(minutes=5)


def _bill(db, state: S, *, lease: str | None = "w1", attempt: str | None = None) -> int:
    row = new_order(db, ttl=timedelta(hours=1), **WATER)
    with db.begin() as conn:
        payment = add_incoming_payment(conn)
        force_state(
            conn,
            row["id"],
            state,
            incoming_payment_id=payment,
            attempt_reference=attempt,
            provider="a",
        )
        if lease:
            bills.lease(conn, row["id"], worker=lease, seconds=60)
    return row["id"]


def _state(db, bill_id: int) -> dict:
    with db.connect() as conn:
        return bills.get_by_id(conn, bill_id)


CASES = [
    # (name, state, open attempt, decision, state after)
    (
        "verified",
        S.VERIFYING_ACCOUNT,
        None,
        Decision(S.VERIFYING_ACCOUNT, S.PROCESSING_BILL, "ok", detail="account ok", retry_count=0),
        S.PROCESSING_BILL,
    ),
    (
        "verify later",
        S.VERIFYING_ACCOUNT,
        None,
        Decision(
            S.VERIFYING_ACCOUNT,
            S.VERIFYING_ACCOUNT,
            "later",
            retry_count=1,
            next_attempt_at=SOON,
            error=ErrorNote("down", "transient"),
        ),
        S.VERIFYING_ACCOUNT,
    ),
    (
        "pending",
        S.PROCESSING_BILL,
        "R1",
        Decision(S.PROCESSING_BILL, S.PROVIDER_PROCESSING, "pending", detail="pending: 099"),
        S.PROVIDER_PROCESSING,
    ),
    (
        "delivered",
        S.PROVIDER_PROCESSING,
        "R1",
        Decision(
            S.PROVIDER_PROCESSING, S.COMPLETED, "delivered", token="1" * 20, error=CLEAR_ERROR
        ),
        S.COMPLETED,
    ),
    (
        "retry",
        S.PROCESSING_BILL,
        "R1",
        Decision(
            S.PROCESSING_BILL, S.RETRY_SCHEDULED, "retry", retry_count=1, next_attempt_at=SOON
        ),
        S.RETRY_SCHEDULED,
    ),
    (
        "give up",
        S.PROVIDER_PROCESSING,
        "R1",
        Decision(
            S.PROVIDER_PROCESSING, S.PROVIDER_FAILED, "failed", refund_reason="provider_failed: x"
        ),
        S.REFUND_INITIATED,
    ),
]


@pytest.mark.parametrize(("name", "state", "attempt", "decision", "after"), CASES)
def test_a_writer_applies_once_for_the_lease_holder_only(
    db, name, state, attempt, decision, after
) -> None:
    bill_id = _bill(db, state, attempt=attempt)
    with db.begin() as conn:
        assert not bills.apply(conn, bill_id, decision, worker="w2", actor="w2"), name
    assert _state(db, bill_id)["status"] == state
    with db.begin() as conn:
        assert bills.apply(conn, bill_id, decision, worker="w1", actor="w1"), name
    row = _state(db, bill_id)
    assert row["status"] == after and row["claimed_by"] is None
    if after is not state:
        assert bills.events_for(db, bill_id)[-1]["actor"] == "w1"
        with db.begin() as conn:  # the bill moved on: the same decision does not apply again
            assert not bills.apply(conn, bill_id, decision, worker="w1", actor="w1")


def test_a_bill_without_an_open_attempt_is_never_put_to_requery(db) -> None:
    bill_id = _bill(db, S.PROCESSING_BILL, attempt=None)
    decision = policy.open_attempt_found(policy.BillFacts.from_row(_state(db, bill_id)), SOON)
    with db.begin() as conn:
        assert not bills.apply(conn, bill_id, decision, worker="w1", actor="w1")
    assert _state(db, bill_id)["status"] == S.PROCESSING_BILL


def test_an_attempt_opens_only_once(db) -> None:
    bill_id = _bill(db, S.PROCESSING_BILL)
    opening = {"worker": "w1", "provider": "a", "lease": 60}
    with db.begin() as conn:
        assert bills.open_attempt(conn, bill_id, reference="R1", **opening)
        assert not bills.open_attempt(conn, bill_id, reference="R2", **opening)
    assert _state(db, bill_id)["attempt_reference"] == "R1"


@pytest.mark.parametrize(
    ("state", "account_invalid", "walk"),
    [
        (S.VERIFYING_ACCOUNT, True, ["account_invalid", "refund_initiated"]),
        (S.VERIFYING_ACCOUNT, False, ["retry_scheduled", "provider_failed", "refund_initiated"]),
        (S.RETRY_SCHEDULED, False, ["provider_failed", "refund_initiated"]),
        (S.PROVIDER_FAILED, False, ["refund_initiated"]),
    ],
)
def test_giving_up_walks_the_state_machine_to_one_refund(db, state, account_invalid, walk) -> None:
    bill_id = _bill(db, state, lease=None)
    decision = Decision(
        state,
        S.ACCOUNT_INVALID if account_invalid else S.PROVIDER_FAILED,
        "refund",
        detail="operator refund",
        refund_reason="operator_refund",
    )
    with db.begin() as conn:  # an operator: no lease
        assert bills.apply(conn, bill_id, decision, worker=None, actor="operator")
    events = bills.events_for(db, bill_id)[-len(walk) :]
    assert [e["to_state"] for e in events] == walk
    assert {e["actor"] for e in events} == {"operator"}
    assert events[-1]["detail"] == "operator_refund"
    with db.connect() as conn:
        refunds = conn.execute(
            sa.text("SELECT reason FROM refunds WHERE bill_payment_id = :id"), {"id": bill_id}
        ).scalars()
        assert list(refunds) == ["operator_refund"]


def test_a_writer_used_for_a_state_it_does_not_cover_is_an_error(db) -> None:
    bill_id = _bill(db, S.COMPLETED)
    wrong = Decision(S.COMPLETED, S.RETRY_SCHEDULED, "x", retry_count=1, next_attempt_at=SOON)
    with db.begin() as conn, pytest.raises(sa.exc.DBAPIError, match="does not move a bill"):
        bills.apply(conn, bill_id, wrong, worker="w1", actor="w1")


def test_requeue_gives_back_the_lease_makes_it_due_and_notes_who(db) -> None:
    bill_id = _bill(db, S.RETRY_SCHEDULED)
    with db.begin() as conn:
        assert bills.requeue(conn, bill_id, actor="ops", detail="requeued by operator")
    row = _state(db, bill_id)
    assert row["claimed_by"] is None and row["next_attempt_at"] <= datetime.now(UTC)
    last = bills.events_for(db, bill_id)[-1]
    assert (last["from_state"], last["to_state"], last["actor"]) == (
        "retry_scheduled",
        "retry_scheduled",
        "ops",
    )
