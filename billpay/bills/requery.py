"""Step: ask the provider about an open attempt (pending, unknown, or found open after a crash).

"Not found" is believed only after ``NOT_FOUND_GRACE`` (a request may not be recorded yet). A
bill whose pay request never left the process (killed between commit and send) would wait that
long for nothing, so for a provider that refuses reused references (VTpass) an early "not found"
sends the same pay request once more under the same reference: the provider either refuses it
(the first request arrived: keep requerying) or takes it as the first and only pay. The resend
is its own ``provider_attempts`` row (operation ``resend``, one per reference by a unique index)
committed before the call, like the pay attempt itself.

VTpass takes a ``request_id`` only while its stamp is about the current minute, so a resend of an
attempt older than that is refused (085) and recorded nowhere (outcome ``refused``): the attempt
then waits for its own grace, and once "not found" is believed a new attempt, stamped as it is
sent, pays.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from sqlalchemy.engine import Connection

from billpay.bills import policy
from billpay.bills.context import NeedsAttention, StepContext, StepResult, persist, skipped
from billpay.bills.pay import conditions_for, record_answer
from billpay.bills.policy import BillFacts, Resend
from billpay.orders import BillOrder
from billpay.providers.base import (
    BillProvider,
    NotSupported,
    PaymentOutcome,
    PaymentResult,
    rejects_duplicate_references,
)
from billpay.states import BillState
from billpay.store import attempts as attempt_store
from billpay.store import bills as bill_store
from billpay.store.catalogue import one_snapshot

log = logging.getLogger(__name__)
S = BillState
DUPLICATE = policy.RESEND_DUPLICATE


def _pay_unanswered(attempts: list[dict[str, Any]], reference: str) -> bool:
    """Whether the pay attempt under ``reference`` has no recorded answer: the process stopped
    between committing it and recording what the provider said (maybe before sending it)."""
    return any(a["reference"] == reference and a["finished_at"] is None for a in attempts)


def requery_bill(ctx: StepContext, bill_id: int) -> StepResult:
    with one_snapshot():  # the adapter and the rules read the same catalogue version
        return _requery_bill(ctx, bill_id)


def _requery_bill(ctx: StepContext, bill_id: int) -> StepResult:
    row = ctx.load(bill_id)
    if row["status"] != S.PROVIDER_PROCESSING:
        return skipped(row, "requery")
    reference = row["attempt_reference"]
    if not reference or not row["provider"]:
        raise NeedsAttention(f"{row['reference']}: provider_processing without an open attempt")
    order = bill_store.to_order(row)
    provider = ctx.router.get(row["provider"])
    with ctx.guard(provider.name):
        result = provider.requery(order, reference)
        if result.not_found:  # only then do an earlier resend and the pay's answer matter
            answer, result = _after_not_found(ctx, row, order, provider, result)
            if answer is not None:
                return answer
    return record_answer(ctx, row, result, None, "requery", conditions_for(ctx, bill_id, order))


def _after_not_found(
    ctx: StepContext,
    row: dict[str, Any],
    order: BillOrder,
    provider: BillProvider,
    result: PaymentResult,
) -> tuple[StepResult | None, PaymentResult]:
    """A requery that found nothing: judged against any earlier resend, and resent when the
    policy says so. Returns the resend's step result (None: not resent) and the requery answer
    to record otherwise."""
    reference = row["attempt_reference"]
    with ctx.db.connect() as conn:
        earlier = attempt_store.resend_of(conn, provider.name, reference)
        unanswered = _pay_unanswered(attempt_store.pay_attempts(conn, row["id"]), reference)
    result = policy.distrust_not_found(
        result,
        resend_outcome=earlier["outcome"] if earlier else None,
        resend_started_at=earlier["started_at"] if earlier else None,
        now=ctx.now(),
    )
    resend = policy.resend_after_requery(
        BillFacts.from_row(row),
        result,
        covered=rejects_duplicate_references(provider),
        resent=earlier is not None,
        unanswered=unanswered,
    )
    if resend is None:
        return None, result
    return _resend(ctx, row, order, provider, result, resend), result


def _resend(
    ctx: StepContext,
    row: dict[str, Any],
    order: BillOrder,
    provider: BillProvider,
    requeried: PaymentResult,
    resend: Resend,
) -> StepResult | None:
    """Send the open attempt's pay request once more (same reference) and decide on the answer;
    None when it was resent already or this worker lost the bill's lease (then the requery
    answer is recorded as usual, and the lease check of the status writer applies)."""
    with ctx.db.begin() as conn:
        resend_id = attempt_store.start_resend_attempt(
            conn,
            bill_id=row["id"],
            provider=provider.name,
            reference=resend.reference,
            attempt_no=None,
            worker=ctx.worker,
            lease_seconds=ctx.settings.lease_seconds,
        )
        if resend_id is None:  # resent already, or this worker no longer holds the bill
            return None
        if requeried.call is not None:  # the requery that found nothing, for the audit
            attempt_store.record_call(conn, row["id"], requeried.call)
    # committed: a crash from here on leaves the resend recorded, so it is never sent twice
    log.info(
        "resending %s via %s ref=%s: %s",
        order.reference,
        provider.name,
        resend.reference,
        resend.reason,
    )
    try:
        result = provider.pay(order, resend.reference)
    except NotSupported as exc:
        # Raised while building the request (the listing vanished): nothing was sent, like a
        # refused reference, so the attempt's own grace decides; the resend row is closed.
        log.warning("%s: resend of %s not sent: %s", provider.name, order.reference, exc)
        result = PaymentResult(
            PaymentOutcome.FAILED,
            reason_code="not_supported",
            message=f"resend not sent: {exc.message}",
            reference_refused=True,
        )
    decision = policy.after_resend(BillFacts.from_row(row), result, ctx.conditions(order))

    def record(conn: Connection) -> None:
        if result.call is None:  # an adapter that reported no call record
            error_class = str(result.error_class) if result.error_class else None
            attempt_store.close_attempt(conn, resend_id, _resend_outcome(result), error_class)
            return
        attempt_store.finish_attempt(
            conn, resend_id, replace(result.call, outcome=_resend_outcome(result))
        )

    return persist(ctx, row, decision, "requery", record=record)


def _resend_outcome(result: PaymentResult) -> str:
    if result.reference_refused:
        return policy.RESEND_REFUSED
    return DUPLICATE if result.duplicate_reference else str(result.outcome)
