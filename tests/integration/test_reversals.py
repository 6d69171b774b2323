"""Webhook hints and VTpass reversals on real PostgreSQL (sql/0018): a hint only makes a requery
or a re-check due, never changes a state; a reversal refunds the cNGN exactly once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from billpay.bills.context import StepContext
from billpay.bills.reversal import RECHECK_MAX_TRIES, recheck_due_deliveries
from billpay.catalogue import Catalogue
from billpay.providers.base import (
    ErrorClass,
    PaymentOutcome,
    PaymentResult,
)
from billpay.providers.routing import ProviderRouter
from billpay.states import BillState
from billpay.store import bills as bill_store
from billpay.store import reversals
from tests.db_reads import all_rows, scalar
from tests.factories import bill_at_provider
from tests.integration.test_processing import Scripted

BUILTIN = Catalogue.builtin()

S = BillState
REVERSED = PaymentResult(
    PaymentOutcome.FAILED, ErrorClass.PERMANENT, reason_code="040", reversed=True
)
DELIVERED = PaymentResult(PaymentOutcome.SUCCESS, reason_code="000:delivered")


def _bill(
    db, state: S, *, completed_ago: timedelta = timedelta(hours=2), **columns: Any
) -> tuple[int, str]:
    """A paid airtime bill in ``state`` with its pay attempt recorded (see bill_at_provider),
    completed ``completed_ago`` if ``state`` is completed: its id and the attempt's reference."""
    completed = datetime.now(UTC) - completed_ago if state is S.COMPLETED else None
    return bill_at_provider(db, state, completed_at=completed, **columns)


def _row(db, bill_id: int) -> dict[str, Any]:
    with db.connect() as conn:
        row = bill_store.get_by_id(conn, bill_id)
    assert row is not None
    return row


def _hint(db, reference: str, reversal: bool = False, provider: str = "vtpass") -> str:
    return reversals.provider_hint(
        db, provider, reference, reversal=reversal, actor="webhook:test", detail="hint"
    )


def _refunds(db, bill_id: int) -> list[tuple]:
    return all_rows(
        db, "SELECT reason, status FROM refunds WHERE bill_payment_id = :id", id=bill_id
    )


def _notifications(db, bill_id: int) -> list[tuple]:
    return all_rows(
        db,
        # bill_completed is the delivery's own receipt (set up by force_state)
        "SELECT kind, audience FROM notifications WHERE bill_payment_id = :id"
        " AND kind <> 'bill_completed' ORDER BY id",
        id=bill_id,
    )


def _ctx(settings, db, *answers: PaymentResult, recheck_seconds: int = 3600) -> StepContext:
    configured = settings.model_copy(
        update={"reversal_recheck_seconds": recheck_seconds, "requery_backoff_seconds": [60]}
    )
    vtpass = Scripted("vtpass", requeries=list(answers))
    return StepContext(
        db, configured, ProviderRouter({"vtpass": vtpass}, configured, catalogue=BUILTIN), "w1"
    )


# --- the hint writer ------------------------------------------------------------------------


def test_a_hint_makes_the_waiting_requery_due_now_and_changes_nothing_else(db):
    later = datetime.now(UTC) + timedelta(minutes=10)
    bill_id, ref = _bill(db, S.PROVIDER_PROCESSING, next_attempt_at=later, requery_count=3)
    assert _hint(db, ref) == "requery_due"
    row = _row(db, bill_id)
    assert row["status"] == "provider_processing" and row["requery_count"] == 3
    assert row["next_attempt_at"] <= datetime.now(UTC)
    assert row["attempt_reference"] == ref and row["token"] is None
    # a replay is harmless: still due, no second audit note
    assert _hint(db, ref) == "requery_due"
    notes = "SELECT count(*) FROM bill_payment_events WHERE bill_payment_id = :id AND actor = :a"
    assert scalar(db, notes, id=bill_id, a="webhook:test") == 1
    assert _refunds(db, bill_id) == []


def test_a_hint_for_an_unknown_or_closed_attempt_changes_nothing(db):
    later = datetime.now(UTC) + timedelta(minutes=10)
    bill_id, ref = _bill(db, S.RETRY_SCHEDULED, attempt=None, next_attempt_at=later)
    assert _hint(db, "2026120210307NOSUCHREFA1") == "unknown_reference"
    assert _hint(db, ref, provider="flutterwave") == "unknown_reference"
    assert _hint(db, ref) == "closed_attempt"
    assert _row(db, bill_id)["next_attempt_at"] == later


def test_a_reversal_hint_for_a_bill_never_completed_only_requeries_it(db):
    later = datetime.now(UTC) + timedelta(minutes=10)
    bill_id, ref = _bill(db, S.PROVIDER_PROCESSING, next_attempt_at=later)
    assert _hint(db, ref, reversal=True) == "requery_due"
    row = _row(db, bill_id)
    assert row["status"] == "provider_processing" and row["reversal_check_at"] is None
    assert _refunds(db, bill_id) == []
    # and no writer reverses it: bill_reverse moves only completed bills
    with db.begin() as conn:
        bill_store.lease(conn, bill_id, worker="w1", seconds=60)
        assert not reversals.reverse(conn, bill_id, worker="w1", detail="x", reason="r")
    assert _row(db, bill_id)["status"] == "provider_processing" and _refunds(db, bill_id) == []


def test_a_reversal_hint_reopens_a_delivered_bills_check_and_nothing_else_does(db):
    checked = datetime.now(UTC) - timedelta(minutes=2)
    bill_id, ref = _bill(db, S.COMPLETED, reversal_checked_at=checked)
    assert _hint(db, ref) == "no_action"  # an ordinary update for a delivered bill
    assert _row(db, bill_id)["reversal_checked_at"] is not None
    assert _hint(db, ref, reversal=True) == "recheck_due"
    row = _row(db, bill_id)
    assert row["status"] == "completed" and row["reversal_checked_at"] is None
    assert row["reversal_check_at"] <= datetime.now(UTC)
    assert _refunds(db, bill_id) == [] and _notifications(db, bill_id) == []


# --- the queue ----------------------------------------------------------------------------


def _claimed(db, delay: int) -> list[int]:
    rows = reversals.claim_rechecks(
        db, worker="w1", lease_seconds=60, limit=50, delay_seconds=delay
    )
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE bill_payments SET claimed_by = NULL, claimed_until = NULL"))
    return [row["id"] for row in rows]


def test_delivered_vtpass_bills_are_due_for_their_recheck_after_the_delay_only(db):
    old, _ = _bill(db, S.COMPLETED, completed_ago=timedelta(hours=2))
    fresh, _ = _bill(db, S.COMPLETED, completed_ago=timedelta(minutes=1))
    checked, _ = _bill(db, S.COMPLETED, reversal_checked_at=datetime.now(UTC))
    flutterwave, _ = _bill(db, S.COMPLETED, provider="flutterwave")
    assert _claimed(db, 3600) == [old]
    assert _claimed(db, 0) == []  # off: only a webhook makes one due
    for bill_id in (fresh, checked, flutterwave):
        with db.begin() as conn:
            conn.execute(
                sa.text("UPDATE bill_payments SET reversal_check_at = now() WHERE id = :id"),
                {"id": bill_id},
            )
    assert _claimed(db, 0) == [fresh]


# --- the re-check and the reversal ----------------------------------------------------------


def test_still_delivered_is_rechecked_once(settings, db):
    bill_id, ref = _bill(db, S.COMPLETED)
    results = recheck_due_deliveries(_ctx(settings, db, DELIVERED), limit=10)
    assert [(r.after, r.advanced) for r in results] == [("completed", True)]
    row = _row(db, bill_id)
    assert row["reversal_checked_at"] is not None and row["claimed_by"] is None
    # never again (the scripted provider has no second answer: a requery would raise)
    assert recheck_due_deliveries(_ctx(settings, db), limit=10) == []
    notes = [e["detail"] for e in bill_store.events_for(db, bill_id)]
    assert notes[-1] == "re-checked: still delivered"


def test_an_unclear_recheck_is_tried_again_later_then_given_up_with_an_alert(settings, db):
    bill_id, ref = _bill(db, S.COMPLETED)
    unknown = PaymentResult(PaymentOutcome.UNKNOWN, ErrorClass.TRANSIENT, reason_code="timeout")
    [first] = recheck_due_deliveries(_ctx(settings, db, unknown), limit=10)
    row = _row(db, bill_id)
    assert (first.after, first.advanced) == ("completed", False)
    assert row["reversal_checks"] == 1 and row["reversal_check_at"] > datetime.now(UTC)
    assert recheck_due_deliveries(_ctx(settings, db), limit=10) == []  # waits its backoff
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE bill_payments SET reversal_check_at = now(), reversal_checks = :n"
                " WHERE id = :id"
            ),
            {"id": bill_id, "n": RECHECK_MAX_TRIES - 1},
        )
    [last] = recheck_due_deliveries(_ctx(settings, db, unknown), limit=10)
    assert last.alert and "gave up" in last.alert
    assert _row(db, bill_id)["reversal_checked_at"] is not None
    assert _row(db, bill_id)["status"] == "completed" and _refunds(db, bill_id) == []
    assert _notifications(db, bill_id) == [("reversal_check_failed", "operator")]


def test_a_reversal_refunds_exactly_once_and_tells_customer_and_operators(settings, db):
    bill_id, ref = _bill(db, S.COMPLETED)
    [result] = recheck_due_deliveries(_ctx(settings, db, REVERSED), limit=10)
    assert result.after == "refund_initiated"
    row = _row(db, bill_id)
    assert row["status"] == "refund_initiated" and row["reversed_at"] is not None
    assert row["refund_reason"] == "provider_reversed: 040"
    events = [e["to_state"] for e in bill_store.events_for(db, bill_id)]
    assert events[-2:] == ["reversed", "refund_initiated"]
    assert _refunds(db, bill_id) == [("provider_reversed: 040", "pending")]
    assert _notifications(db, bill_id) == [
        ("bill_reversed", "customer"),
        ("provider_reversal", "operator"),
    ]
    # A replayed reversal: the webhook again, a second re-check, the writer called directly.
    assert _hint(db, ref, reversal=True) == "no_action"
    assert recheck_due_deliveries(_ctx(settings, db, REVERSED), limit=10) == []
    with db.begin() as conn:
        bill_store.lease(conn, bill_id, worker="w1", seconds=60)
        assert not reversals.reverse(conn, bill_id, worker="w1", detail="again", reason="again")
    assert _refunds(db, bill_id) == [("provider_reversed: 040", "pending")]
    assert len(_notifications(db, bill_id)) == 2


def _age(db, bill_id: int, **intervals: str) -> None:
    """Move the named timestamps of a bill into the past (time passing)."""
    sets = ", ".join(f"{column} = {column} - interval '{i}'" for column, i in intervals.items())
    with db.begin() as conn:
        conn.execute(sa.text(f"UPDATE bill_payments SET {sets} WHERE id = :id"), {"id": bill_id})


def test_a_reversal_hint_right_after_the_recheck_is_deferred_a_minute_never_dropped(settings, db):
    bill_id, ref = _bill(db, S.COMPLETED)
    recheck_due_deliveries(_ctx(settings, db, DELIVERED), limit=10)
    assert _row(db, bill_id)["reversal_checked_at"] is not None
    # a (real, or forged) reversal 30 s after the re-check: due again a minute after it
    assert _hint(db, ref, reversal=True) == "recheck_due"
    assert _hint(db, ref, reversal=True) == "recheck_due"  # a flood changes nothing more
    assert recheck_due_deliveries(_ctx(settings, db), limit=10) == []
    _age(db, bill_id, reversal_check_at="61 seconds")
    [result] = recheck_due_deliveries(_ctx(settings, db, REVERSED), limit=10)
    assert result.after == "refund_initiated"
    assert len(_refunds(db, bill_id)) == 1


def test_a_reversal_webhook_during_the_recheck_requery_keeps_the_check_open(settings, db):
    """The re-check asks VTpass (still delivered), VTpass reverses and its webhook lands while
    our requery is in flight: that answer predates the webhook, so it cannot close the check."""
    bill_id, ref = _bill(db, S.COMPLETED)

    @dataclass
    class WebhookDuringRequery(Scripted):
        def requery(self, order, reference):
            assert _hint(db, ref, reversal=True) == "recheck_due"  # concurrently
            return DELIVERED

    configured = settings.model_copy(update={"reversal_recheck_seconds": 3600})
    router = ProviderRouter(
        {"vtpass": WebhookDuringRequery("vtpass")}, configured, catalogue=BUILTIN
    )
    recheck_due_deliveries(StepContext(db, configured, router, "w1"), limit=10)
    assert _row(db, bill_id)["reversal_checked_at"] is None
    _age(db, bill_id, reversal_check_at="61 seconds")
    [result] = recheck_due_deliveries(_ctx(settings, db, REVERSED), limit=10)
    assert result.after == "refund_initiated"


def test_an_early_reversal_hint_does_not_use_up_the_scheduled_recheck(settings, db):
    """A forged reversal a minute after delivery makes a re-check run at once; VTpass says
    delivered. The scheduled re-check an hour after delivery must still run."""
    bill_id, ref = _bill(db, S.COMPLETED, completed_ago=timedelta(minutes=1))
    assert _hint(db, ref, reversal=True) == "recheck_due"
    [early] = recheck_due_deliveries(_ctx(settings, db, DELIVERED), limit=10)
    assert early.after == "completed"
    row = _row(db, bill_id)
    assert row["reversal_checked_at"] is None  # still open: a webhook's check follows up
    assert recheck_due_deliveries(_ctx(settings, db), limit=10) == []  # not due yet
    _age(db, bill_id, reversal_check_at="16 minutes")
    [later] = recheck_due_deliveries(_ctx(settings, db, REVERSED), limit=10)
    assert later.after == "refund_initiated"


def test_a_reversal_webhook_the_requery_does_not_show_yet_is_followed_up_then_alerted(settings, db):
    """VTpass's webhook says reversed, its requery still says delivered: we ask again after 15
    minutes and 2 hours, then close the check and tell an operator; nothing is refunded."""
    checked = datetime.now(UTC) - timedelta(days=2)
    bill_id, ref = _bill(
        db, S.COMPLETED, completed_ago=timedelta(days=2), reversal_checked_at=checked
    )
    assert _hint(db, ref, reversal=True) == "recheck_due"
    waits = []
    for _ in range(2):
        [result] = recheck_due_deliveries(_ctx(settings, db, DELIVERED), limit=10)
        assert result.after == "completed" and not result.advanced
        row = _row(db, bill_id)
        assert row["reversal_checked_at"] is None
        waits.append(round((row["reversal_check_at"] - datetime.now(UTC)).total_seconds(), -2))
        assert recheck_due_deliveries(_ctx(settings, db), limit=10) == []  # not due yet
        _age(db, bill_id, reversal_check_at="3 hours")
    assert waits == [900, 7200]
    [last] = recheck_due_deliveries(_ctx(settings, db, DELIVERED), limit=10)
    assert last.alert and "reversal webhook" in last.alert
    row = _row(db, bill_id)
    assert row["reversal_checked_at"] is not None and row["reversal_followups"] is None
    assert _notifications(db, bill_id) == [("provider_reversal_unconfirmed", "operator")]
    assert _refunds(db, bill_id) == [] and row["status"] == "completed"


def test_a_reversal_the_requery_shows_on_a_follow_up_is_refunded_once(settings, db):
    bill_id, ref = _bill(
        db,
        S.COMPLETED,
        completed_ago=timedelta(days=2),
        reversal_checked_at=datetime.now(UTC) - timedelta(days=2),
    )
    assert _hint(db, ref, reversal=True) == "recheck_due"
    recheck_due_deliveries(_ctx(settings, db, DELIVERED), limit=10)  # not yet
    _age(db, bill_id, reversal_check_at="16 minutes")
    [result] = recheck_due_deliveries(_ctx(settings, db, REVERSED), limit=10)
    assert result.after == "refund_initiated"
    assert len(_refunds(db, bill_id)) == 1
    assert recheck_due_deliveries(_ctx(settings, db, REVERSED), limit=10) == []


def test_forged_reversal_hints_reopen_a_finished_check_three_times_then_an_operator_looks(db):
    checked = datetime.now(UTC) - timedelta(minutes=5)
    bill_id, ref = _bill(db, S.COMPLETED, reversal_checked_at=checked)
    for reopens in (1, 2, 3):
        assert _hint(db, ref, reversal=True) == "recheck_due"
        assert _row(db, bill_id)["reversal_reopens"] == reopens
        with db.begin() as conn:  # its re-check ran and closed (as after its follow-ups)
            conn.execute(
                sa.text(
                    "UPDATE bill_payments SET reversal_checked_at = now() - interval '5 minutes',"
                    " reversal_check_at = NULL, reversal_followups = NULL WHERE id = :id"
                ),
                {"id": bill_id},
            )
    assert _hint(db, ref, reversal=True) == "hint_ignored"
    assert _hint(db, ref, reversal=True) == "hint_ignored"
    row = _row(db, bill_id)
    assert row["reversal_checked_at"] is not None and row["reversal_check_at"] is None
    assert _notifications(db, bill_id) == [("reversal_hints_ignored", "operator")]
    # a real reversal later is not lost: once the last check is a day old, a hint reopens it
    _age(db, bill_id, reversal_checked_at="25 hours")
    assert _hint(db, ref, reversal=True) == "recheck_due"
    assert _row(db, bill_id)["reversal_checked_at"] is None


def test_a_hint_for_a_check_already_due_writes_nothing_unless_a_recheck_is_in_flight(db):
    bill_id, ref = _bill(db, S.COMPLETED)
    assert _hint(db, ref, reversal=True) == "recheck_due"  # due now: the series is marked
    before = _row(db, bill_id)
    for _ in range(5):
        assert _hint(db, ref, reversal=True) == "recheck_due"
    assert _row(db, bill_id)["reversal_hints"] == before["reversal_hints"]
    with db.begin() as conn:  # a re-check holds the claim (past its lease, even): it is told
        conn.execute(
            sa.text(
                "UPDATE bill_payments SET claimed_by = 'w9', claimed_until = now()"
                " - interval '1 minute' WHERE id = :id"
            ),
            {"id": bill_id},
        )
    assert _hint(db, ref, reversal=True) == "recheck_due"
    assert _row(db, bill_id)["reversal_hints"] == before["reversal_hints"] + 1


def test_a_hint_flood_on_a_pending_bill_brings_its_requery_forward_once_a_minute(db):
    later = datetime.now(UTC) + timedelta(minutes=10)
    bill_id, ref = _bill(db, S.PROVIDER_PROCESSING, next_attempt_at=later)
    assert _hint(db, ref) == "requery_due"
    first = _row(db, bill_id)["next_attempt_at"]
    assert first <= datetime.now(UTC)
    with db.begin() as conn:  # the requery ran and set its backoff
        conn.execute(
            sa.text(
                "UPDATE bill_payments SET next_attempt_at = now() + interval '15 seconds'"
                " WHERE id = :id"
            ),
            {"id": bill_id},
        )
    events = len(bill_store.events_for(db, bill_id))
    for _ in range(5):
        assert _hint(db, ref) == "requery_due"
    row = _row(db, bill_id)
    assert row["next_attempt_at"] > datetime.now(UTC)  # not brought forward again
    assert len(bill_store.events_for(db, bill_id)) == events  # and no event per forged hint


def test_only_the_lease_holder_reverses(db):
    bill_id, ref = _bill(db, S.COMPLETED)
    with db.begin() as conn:
        bill_store.lease(conn, bill_id, worker="w2", seconds=60)
        assert not reversals.reverse(conn, bill_id, worker="w1", detail="x", reason="r")
        assert not reversals.mark_checked(
            conn, bill_id, worker="w1", hints=0, delay_seconds=0, detail="x"
        )
    assert _row(db, bill_id)["status"] == "completed" and _refunds(db, bill_id) == []


def test_the_recheck_claim_and_the_hint_lookup_use_their_indexes(db):
    with db.begin() as conn:
        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
        claim = conn.execute(
            sa.text(
                "EXPLAIN (FORMAT JSON) SELECT id FROM queue_reversal_rechecks"
                " LIMIT 10 FOR UPDATE SKIP LOCKED"
            )
        ).scalar_one()
        lookup = conn.execute(
            sa.text(
                "EXPLAIN (FORMAT JSON) SELECT bill_payment_id FROM provider_attempts"
                " WHERE provider = 'vtpass' AND reference = 'x' AND operation = 'pay'"
            )
        ).scalar_one()
    assert "bill_payments_q_reversal_recheck" in str(claim)
    assert "provider_attempts_pay_reference_key" in str(lookup)


def test_hints_timed_with_every_requery_cannot_keep_the_check_open_for_ever(settings, db):
    """Someone posts a reversal hint while each of our re-check requeries is in flight: each
    answer predates a hint, so it asks again, but at most 6 times; then the follow-ups run
    their course and the check closes with one alert, raised only when it closed."""
    bill_id, ref = _bill(db, S.COMPLETED)

    @dataclass
    class HintDuringRequery(Scripted):
        def requery(self, order, reference):
            _hint(db, ref, reversal=True)
            return DELIVERED

    configured = settings.model_copy(update={"reversal_recheck_seconds": 3600})
    router = ProviderRouter({"vtpass": HintDuringRequery("vtpass")}, configured, catalogue=BUILTIN)
    requeries = 0
    while _row(db, bill_id)["reversal_checked_at"] is None:
        assert requeries < 15, "the check never closed"
        assert _notifications(db, bill_id) == []  # no alert while it is open
        _age(db, bill_id, reversal_check_at="3 hours")
        requeries += len(
            recheck_due_deliveries(StepContext(db, configured, router, "w1"), limit=10)
        )
    assert 6 <= requeries <= 10
    assert _notifications(db, bill_id) == [("provider_reversal_unconfirmed", "operator")]
    assert _refunds(db, bill_id) == [] and _row(db, bill_id)["status"] == "completed"
