"""Step: pay a verified bill through the chosen provider.

Safe to run again after a crash at any line: the provider slot is taken first, then the attempt
(with its fixed reference) is committed, then the call goes out. A bill with an open attempt is
requeried, never paid again under a new reference.

The whole step sees one catalogue snapshot (``one_snapshot``): the route chosen, the price
checked and the codes the adapter sends all come from the same version, so a sync landing
mid-step cannot send a bill to a provider whose listing just vanished.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy.engine import Connection

from billpay.bills import policy
from billpay.bills.context import StepContext, StepResult, enqueue_alert, persist, skipped
from billpay.bills.policy import BillFacts, Conditions
from billpay.orders import BillOrder
from billpay.providers.base import (
    BillProvider,
    ErrorClass,
    NotSupported,
    PaymentOutcome,
    PaymentResult,
    make_attempt_reference,
)
from billpay.states import BillState
from billpay.store import attempts as attempt_store
from billpay.store import bills as bill_store
from billpay.store.catalogue import one_snapshot
from billpay.tokens import mask_account

log = logging.getLogger(__name__)
S = BillState


def pay_bill(ctx: StepContext, bill_id: int) -> StepResult:
    with one_snapshot():
        return _pay_bill(ctx, bill_id)


def conditions_for(ctx: StepContext, bill_id: int, order: BillOrder) -> Conditions:
    """The rules' conditions for a bill's pay or requery answer: its route and pay history."""
    with ctx.db.connect() as conn:
        attempts = attempt_store.pay_attempts(conn, bill_id)
    return replace(ctx.conditions(order), history=policy.PayHistory.from_attempts(attempts))


def _pay_bill(ctx: StepContext, bill_id: int) -> StepResult:
    row = ctx.load(bill_id)
    if row["status"] != S.PROCESSING_BILL:
        return skipped(row, "pay")
    bill, order = BillFacts.from_row(row), bill_store.to_order(row)
    if bill.attempt_reference:
        return persist(ctx, row, policy.open_attempt_found(bill, ctx.now()), "pay")
    when = conditions_for(ctx, bill_id, order)
    previous = list(when.history.providers)
    name = policy.choose_provider(
        when.route,
        previous,
        bill.last_error_class,
        bill.retry_count,
        ctx.settings,
        when.history.definitive,
    )
    if name is None:
        return record_answer(ctx, row, policy.no_route_result(order), None, "pay", when)
    provider = ctx.router.get(name)
    # Take the provider slot first: the attempt is committed only once the call can go out
    # at once, so a worker never sits on a committed attempt while its lease runs out.
    with ctx.guard(name):
        reference = make_attempt_reference(order.reference, len(previous) + 1, ctx.now())
        with ctx.db.begin() as conn:
            # Still ours (lease not taken over), still without an open attempt.
            if not bill_store.open_attempt(
                conn,
                bill_id,
                worker=ctx.worker,
                provider=name,
                reference=reference,
                lease=ctx.settings.lease_seconds,
            ):
                return skipped(row, "pay")
            attempt_id = attempt_store.start_pay_attempt(
                conn,
                bill_id=bill_id,
                provider=name,
                reference=reference,
                attempt_no=len(previous) + 1,
                is_fallback=bool(previous) and previous[-1] != name,
            )
        # committed: from here on a crash leaves an open attempt that will be requeried
        log.info(
            "paying %s via %s ref=%s account=%s",
            order.reference,
            name,
            reference,
            mask_account(order.account_number),
        )
        result = _pay_or_refuse(provider, order, reference)
    row = {**row, "provider": name, "attempt_reference": reference}
    # The same route; the clock of the answer.
    return record_answer(ctx, row, result, attempt_id, "pay", replace(when, now=ctx.now()))


def _pay_or_refuse(provider: BillProvider, order: BillOrder, reference: str) -> PaymentResult:
    """The provider's answer; an adapter refusing the bill as not sold there (NotSupported,
    raised while building the request, before anything is sent) is a definitive failure that
    closes the committed attempt as not sent, so the bill falls back or is refunded instead of
    leaving an attempt open for ever."""
    try:
        return provider.pay(order, reference)
    except NotSupported as exc:
        log.warning("%s refused %s before sending: %s", provider.name, order.reference, exc)
        return PaymentResult(
            PaymentOutcome.FAILED,
            ErrorClass.PERMANENT,
            reason_code="not_supported",
            message=f"not sent: {exc.message}",
        )


def record_answer(
    ctx: StepContext,
    row: Mapping[str, Any],
    result: PaymentResult,
    attempt_id: int | None,
    stage: str,
    when: Conditions,
) -> StepResult:
    """Decide on a pay or requery answer; save it with the call record in one transaction."""
    bill = BillFacts.from_row(row)
    if bill.status is S.PROVIDER_PROCESSING:
        decision = policy.after_requery(bill, result, when)
    else:
        decision = policy.after_pay(bill, result, when)
    charged = policy.charged_amount_alert(bill, bill_store.to_order(row), result)
    if charged is not None:  # on the bill's events (the decision's audit text) and to operators
        decision = replace(decision, detail=f"{decision.detail}; {charged.text}".lstrip("; "))

    def record(conn: Connection) -> None:
        if charged is not None:
            enqueue_alert(conn, row["id"], charged)
        if attempt_id is not None and result.call is not None:
            attempt_store.finish_attempt(conn, attempt_id, result.call)
        elif attempt_id is not None:  # an adapter that reported no call record
            error_class = str(result.error_class) if result.error_class else None
            attempt_store.close_attempt(conn, attempt_id, str(result.outcome), error_class)
        elif result.call is not None:
            attempt_store.record_call(conn, row["id"], result.call)

    return persist(ctx, row, decision, stage, record=record)
