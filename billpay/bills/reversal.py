"""Reversals: a delivered VTpass bill is requeried once more, a while after delivery (or at once
when a reversal webhook names it), and a reversal (code 040 / status ``reversed``) refunds its
cNGN: completed -> reversed -> refund_initiated, through ``bill_reverse`` (sql/0018), whose
refund row is unique per incoming payment, so the cNGN goes back at most once.

Only the requery decides. Still delivered: the re-check is over (once); but when a reversal
webhook opened it, it follows up (``REVERSAL_FOLLOWUP_SECONDS``) and then tells an operator. No clear answer: try
again later, at most ``RECHECK_MAX_TRIES`` times, then give up with an operator alert. Anything
but an explicit reversal never refunds a delivered bill. Flutterwave documents no reversal, so
only VTpass bills are re-checked.

``after_recheck`` is the rule (pure); ``recheck_due_deliveries`` claims, asks and saves.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from billpay.bills.advance import describe_error
from billpay.bills.context import StepContext, StepResult, enqueue_alert
from billpay.bills.decision import Alert
from billpay.providers.base import ErrorClass, PaymentOutcome, PaymentResult
from billpay.providers.vtpass import TOKEN_PENDING
from billpay.states import BillState
from billpay.store import attempts as attempt_store
from billpay.store import bills as bill_store
from billpay.store import reversals as reversal_store

log = logging.getLogger(__name__)
S = BillState

STAGE = "recheck"
# A re-check that could not tell asks again after these (its own schedule, not the pending
# requery's seconds: a VTpass outage of an hour or two must not use up the tries), then stops
# and tells an operator: about 10.7 hours of asking in all.
RECHECK_BACKOFF_SECONDS = (600, 1800, 3600, 10800, 21600)
RECHECK_MAX_TRIES = len(RECHECK_BACKOFF_SECONDS) + 1
# A re-check opened by a reversal webhook that reads "still delivered" asks again after these
# (VTpass does not say whether its requery shows the reversal before its webhook comes), then
# closes with an operator alert: a reversal is never dropped on the first "delivered".
REVERSAL_FOLLOWUP_SECONDS = (900, 7200)
# Re-checks of one batch run side by side (each also bounded by the provider's slots): a slow
# provider must not hold the stage for batch x timeout.
RECHECK_THREADS = 8
# The refund reason of a reversal (billpay.notifications.REFUND_REASONS explains it).
REVERSAL_REASON = "provider_reversed"


class RecheckAction(StrEnum):
    CONFIRMED = "confirmed"  # still delivered: the re-check is over
    REVERSE = "reverse"  # the provider reversed it: refund
    FOLLOW_UP = "follow_up"  # still delivered after a reversal webhook: ask again later
    LATER = "later"  # no clear answer: ask again at next_check_at
    GIVE_UP = "give_up"  # no clear answer RECHECK_MAX_TRIES times: over, an operator looks


@dataclass(frozen=True, slots=True)
class Recheck:
    action: RecheckAction
    detail: str
    next_check_at: datetime | None = None
    alert: Alert | None = None


def after_recheck(
    reference: str,
    bill_id: int,
    checks_so_far: int,
    result: PaymentResult,
    now: datetime,
    followups: int | None = None,
) -> Recheck:
    """The re-check's answer for a delivered bill that has had ``checks_so_far`` tries;
    ``followups`` is None for a scheduled re-check, else how many follow-ups a re-check that
    a reversal webhook opened has had."""
    said = f"{result.outcome}: {result.message or result.reason_code or ''}".strip()
    if result.reversed:
        return Recheck(RecheckAction.REVERSE, f"reversed by the provider ({said})")
    # A delivered prepaid bill already has its token: "delivered, no token in this answer" is
    # still delivered here (while paying it would mean "wait for the token").
    if result.outcome is PaymentOutcome.SUCCESS or result.reason_code == TOKEN_PENDING:
        return _still_delivered(reference, bill_id, followups, now)
    tries = checks_so_far + 1
    if tries >= RECHECK_MAX_TRIES:
        detail = f"re-check gave up after {tries} tries, last {said}"
        alert = Alert(
            kind="reversal_check_failed",
            text=f"{reference}: {detail}",
            dedupe_key=f"reversal-check-failed:{bill_id}",
            payload={"reference": reference, "tries": tries, "last": said},
        )
        return Recheck(RecheckAction.GIVE_UP, detail, alert=alert)
    # A delivered bill the provider now calls failed (not reversed) is odd: ask again, and
    # tell an operator once, but never refund on it.
    alert = None
    if result.outcome is PaymentOutcome.FAILED and result.error_class is not ErrorClass.TRANSIENT:
        alert = Alert(
            kind="delivered_bill_reported_failed",
            text=f"{reference}: delivered, but the provider's requery now says {said}",
            dedupe_key=f"delivered-failed:{bill_id}",
            payload={"reference": reference, "answer": said},
        )
    backoff = RECHECK_BACKOFF_SECONDS[min(tries, len(RECHECK_BACKOFF_SECONDS)) - 1]
    return Recheck(
        RecheckAction.LATER,
        f"re-check unclear ({said}); again in {backoff}s",
        next_check_at=now + timedelta(seconds=backoff),
        alert=alert,
    )


def _still_delivered(reference: str, bill_id: int, followups: int | None, now: datetime) -> Recheck:
    if followups is None:
        return Recheck(RecheckAction.CONFIRMED, "re-checked: still delivered")
    if followups < len(REVERSAL_FOLLOWUP_SECONDS):
        wait = REVERSAL_FOLLOWUP_SECONDS[followups]
        return Recheck(
            RecheckAction.FOLLOW_UP,
            f"re-checked after a reversal webhook: still delivered; again in {wait}s",
            next_check_at=now + timedelta(seconds=wait),
        )
    detail = f"re-checked {followups + 1} times after a reversal webhook: still delivered"
    alert = Alert(
        kind="provider_reversal_unconfirmed",
        text=f"{reference}: VTpass sent a reversal webhook, but its requery still says "
        "delivered; check the transaction on the VTpass dashboard",
        dedupe_key=f"reversal-unconfirmed:{bill_id}",
        payload={"reference": reference, "checks": followups + 1},
    )
    return Recheck(RecheckAction.CONFIRMED, detail, alert=alert)


def reversal_reason(result: PaymentResult) -> str:
    return f"{REVERSAL_REASON}: {result.reason_code or 'reversed'}"[:200]


# --- the stage ------------------------------------------------------------------------------


def recheck_due_deliveries(ctx: StepContext, *, limit: int) -> list[StepResult]:
    """Claim the delivered VTpass bills due for their re-check and re-check them (in this
    call, a few at a time: they are few, and a batch costs the pipeline one task run)."""
    rows = reversal_store.claim_rechecks(
        ctx.db,
        worker=ctx.worker,
        lease_seconds=ctx.settings.lease_seconds,
        limit=limit,
        delay_seconds=ctx.settings.reversal_recheck_seconds,
    )
    if not rows:
        return []
    with ThreadPoolExecutor(max_workers=min(RECHECK_THREADS, len(rows))) as pool:
        return list(pool.map(lambda row: _recheck_safely(ctx, row), rows))


def _recheck_safely(ctx: StepContext, row: Mapping[str, Any]) -> StepResult:
    """A re-check that raised waits its backoff (counted as a try) instead of coming back
    with every lease."""
    try:
        return recheck_delivered(ctx, row)
    except Exception as exc:  # noqa: BLE001 - one bill's trouble must not stop the others
        error = describe_error(exc, ctx)
        log.warning("re-check of %s raised %s", row["reference"], error)
        failed = PaymentResult(PaymentOutcome.UNKNOWN, reason_code="step_raised", message=error)
        return _save(ctx, row, failed, None)


def recheck_delivered(ctx: StepContext, row: Mapping[str, Any]) -> StepResult:
    """Requery one claimed delivered bill and save what the answer means."""
    reference = row.get("attempt_reference")
    if not reference or not row.get("provider"):
        nothing = PaymentResult(PaymentOutcome.UNKNOWN, reason_code="no_attempt_reference")
        return _save(ctx, row, nothing, None, give_up=True)
    order = bill_store.to_order(row)
    provider = ctx.router.get(row["provider"])
    with ctx.guard(provider.name):
        result = provider.requery(order, reference)
    return _save(ctx, row, result, result)


def _save(
    ctx: StepContext,
    row: Mapping[str, Any],
    result: PaymentResult,
    recorded: PaymentResult | None,
    *,
    give_up: bool = False,
) -> StepResult:
    checks = RECHECK_MAX_TRIES if give_up else int(row.get("reversal_checks") or 0)
    followups = row.get("reversal_followups")
    decision = after_recheck(
        row["reference"],
        int(row["id"]),
        checks,
        result,
        ctx.now(),
        None if followups is None else int(followups),
    )
    bill_id, worker = int(row["id"]), ctx.worker
    hints = int(row.get("reversal_hints") or 0)
    with ctx.db.begin() as conn:
        if recorded is not None and recorded.call is not None:
            attempt_store.record_call(conn, bill_id, recorded.call)
        if decision.action is RecheckAction.REVERSE:
            ok = reversal_store.reverse(
                conn, bill_id, worker=worker, detail=decision.detail, reason=reversal_reason(result)
            )
        elif decision.action is RecheckAction.FOLLOW_UP:
            assert decision.next_check_at is not None
            ok = reversal_store.follow_up(
                conn,
                bill_id,
                worker=worker,
                hints=hints,
                at=decision.next_check_at,
                detail=decision.detail,
            )
        elif decision.action is RecheckAction.LATER:
            assert decision.next_check_at is not None
            ok = reversal_store.check_later(
                conn, bill_id, worker=worker, hints=hints, at=decision.next_check_at
            )
        else:
            done = reversal_store.mark_checked(
                conn,
                bill_id,
                worker=worker,
                hints=hints,
                delay_seconds=ctx.settings.reversal_recheck_seconds,
                detail=decision.detail,
            )
            ok = done is not None
            if done == "asked_again":  # a webhook came while we asked: not over, no alert
                decision = Recheck(RecheckAction.LATER, "a reversal webhook came meanwhile")
        if ok and decision.alert is not None:
            enqueue_alert(conn, bill_id, decision.alert)
    after = S.REFUND_INITIATED if ok and decision.action is RecheckAction.REVERSE else S.COMPLETED
    return StepResult(
        row["reference"],
        STAGE,
        str(row["status"]),
        str(after),
        decision.detail,
        advanced=ok and decision.action not in (RecheckAction.LATER, RecheckAction.FOLLOW_UP),
        alert=decision.alert.text if decision.alert and ok else None,
    )
