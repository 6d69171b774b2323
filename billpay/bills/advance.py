"""One bill, as far as it can go now: the step its state asks for, then the next one while the
bill is due for it (verify -> pay, retry -> pay, a requery already due). The pipeline runs this
once per claimed bill per tick, so the happy path costs one task run, not one per step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from billpay.bills.context import StepContext, StepResult
from billpay.bills.pay import pay_bill
from billpay.bills.requery import requery_bill
from billpay.bills.retry import retry_bill
from billpay.bills.verify import verify_account
from billpay.states import BillState
from billpay.store import bills as bill_store

S = BillState
Step = Callable[[StepContext, int], StepResult]


@dataclass(frozen=True)
class Stage:
    name: str
    queue: str  # the view that says the bill is due for this step
    run: Step


VERIFY = Stage("verify", "queue_verify_accounts", verify_account)
PAY = Stage("pay", "queue_pay_bills", pay_bill)
REQUERY = Stage("requery", "queue_requery_bills", requery_bill)
RETRY = Stage("retry", "queue_retry_bills", retry_bill)

# The per-state queues a tick claims, in pipeline order.
STAGES: tuple[Stage, ...] = (VERIFY, PAY, REQUERY, RETRY)

# What a bill needs next, by the state a step left it in.
NEXT: dict[BillState, Stage] = {
    S.VERIFYING_ACCOUNT: VERIFY,
    S.PROCESSING_BILL: PAY,
    S.PROVIDER_PROCESSING: REQUERY,
    S.RETRY_SCHEDULED: RETRY,
}

MAX_STEPS = 4  # verify, pay, a due requery, a due retry: never a loop within one tick


def advance_bill(ctx: StepContext, bill_id: int, first: Stage) -> list[StepResult]:
    """Run ``first`` on a bill this worker claimed, then each next step it is due for.

    Between steps the bill is claimed again through its queue view, so a step that is not due
    (a requery waiting for its backoff) or a bill leased elsewhere ends the chain; the next
    tick picks it up. An alert does not end the chain (our credentials refused at one provider
    hand the bill to the next at once); the caller reports the alerts when the chain ends.
    """
    results = [first.run(ctx, bill_id)]
    while len(results) < MAX_STEPS:
        last = results[-1]
        following = NEXT.get(S(last.after)) if last.advanced else None
        if following is None or not bill_store.claim_one(
            ctx.db,
            bill_id,
            following.queue,
            worker=ctx.worker,
            lease_seconds=ctx.settings.lease_seconds,
        ):
            break
        results.append(following.run(ctx, bill_id))
    return results
