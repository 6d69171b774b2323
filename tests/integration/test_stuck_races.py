"""reprocess-stuck acts on fresh state (issue 12, defect 7): a plan made from an early read is
applied only after the bill is claimed the way the pipeline claims it and planned again; a bill
leased elsewhere or changed since planning is left alone and the plan row says why."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from billpay.bills import stuck
from billpay.providers.base import AccountCheck
from billpay.states import BillState
from tests.db_reads import scalar
from tests.factories import force_state
from tests.integration.test_processing import SUCCESS, _claim, _row, _setup

S = BillState


def _processing_with_open_attempt(settings, db) -> tuple[Any, Any, int]:
    """A bill whose pay attempt R1 is open in processing_bill (its worker died mid-call)."""
    ctx, providers, bill = _setup(settings, db, ["a"])
    providers["a"].checks.append(AccountCheck(valid=True))
    with db.begin() as conn:
        force_state(conn, bill, S.PROCESSING_BILL, provider="a", attempt_reference="R1")
    return ctx, providers, bill


def _refund_planned_in(settings, db, state: S) -> tuple[Any, int, stuck.Plan]:
    """A bill in ``state`` with no pay attempt, and an allowed refund plan made from it."""
    ctx, _, bill = _setup(settings, db, ["a"])
    with db.begin() as conn:
        force_state(conn, bill, state)
    item = stuck.plan(_row(db, bill), stuck.Action.REFUND, pay_attempts=0)
    assert item.allowed
    return ctx, bill, item


def _apply(ctx, item: stuck.Plan, action: stuck.Action) -> str:
    item.done = stuck.apply(ctx, item, action, actor="reprocess-stuck:test")
    return item.done


def test_a_bill_leased_by_the_pipeline_after_planning_is_left_alone(settings, db):
    ctx, providers, bill = _processing_with_open_attempt(settings, db)
    item = stuck.plan(_row(db, bill), stuck.Action.REQUERY, pay_attempts=1)
    assert item.allowed
    _claim(db, bill, worker="pipeline-w2")  # a tick claimed it between planning and applying
    done = _apply(ctx, item, stuck.Action.REQUERY)
    assert done.startswith("not applied: leased by pipeline-w2")
    row = _row(db, bill)
    assert (row["status"], row["claimed_by"]) == ("processing_bill", "pipeline-w2")
    assert providers["a"].requeries == [] and "leased by pipeline-w2" in stuck.markdown(
        [item], stuck.Action.REQUERY, dry_run=False
    )


def test_a_requery_planned_on_an_attempt_that_closed_meanwhile_strands_nothing(settings, db):
    ctx, providers, bill = _processing_with_open_attempt(settings, db)
    item = stuck.plan(_row(db, bill), stuck.Action.REQUERY, pay_attempts=1)
    with db.begin() as conn:  # meanwhile: R1 failed definitively, the retry began, no attempt
        force_state(conn, bill, S.PROCESSING_BILL, attempt_reference=None)
    done = _apply(ctx, item, stuck.Action.REQUERY)
    assert done == (
        "not applied: changed since planning (planned on processing_bill attempt R1,"
        " now processing_bill attempt none)"
    )
    row = _row(db, bill)  # not stranded in provider_processing without an attempt
    assert (row["status"], row["attempt_reference"], row["claimed_by"]) == (
        "processing_bill",
        None,
        None,
    )


def test_a_refund_planned_before_a_pay_attempt_opened_is_not_applied(settings, db):
    ctx, bill, item = _refund_planned_in(settings, db, S.RETRY_SCHEDULED)
    with db.begin() as conn:  # the retry went out: money may have moved
        force_state(conn, bill, S.PROCESSING_BILL, provider="a", attempt_reference="R2")
    assert _apply(ctx, item, stuck.Action.REFUND).startswith("not applied: changed since planning")
    assert scalar(db, "SELECT count(*) FROM refunds") == 0
    assert _row(db, bill)["status"] == "processing_bill"


def test_a_plan_no_longer_allowed_on_the_fresh_row_is_not_applied(settings, db):
    ctx, bill, item = _refund_planned_in(settings, db, S.VERIFYING_ACCOUNT)
    with db.begin() as conn:  # a pay attempt was recorded since the plan counted none
        conn.execute(
            sa.text(
                "INSERT INTO provider_attempts (bill_payment_id, provider, operation, reference)"
                " VALUES (:id, 'a', 'pay', 'R0')"
            ),
            {"id": bill},
        )
    done = _apply(ctx, item, stuck.Action.REFUND)
    assert done.startswith("not applied: money may have moved")
    assert scalar(db, "SELECT count(*) FROM refunds") == 0
    assert _row(db, bill)["claimed_by"] is None  # the operator's claim is given back


def test_an_unchanged_bill_is_claimed_requeried_and_released(settings, db):
    ctx, providers, bill = _processing_with_open_attempt(settings, db)
    item = stuck.plan(_row(db, bill), stuck.Action.REQUERY, pay_attempts=1)
    providers["a"].requeries.append(SUCCESS)
    assert _apply(ctx, item, stuck.Action.REQUERY) == "requeried: delivered"
    row = _row(db, bill)
    assert (row["status"], row["claimed_by"]) == ("completed", None)
