"""Step: ask the provider about an open attempt (pending, unknown, or found open after a crash)."""

from __future__ import annotations

from billpay.bills.context import NeedsAttention, StepContext, StepResult, skipped
from billpay.bills.pay import record_answer
from billpay.states import BillState
from billpay.store import bills as bill_store

S = BillState


def requery_bill(ctx: StepContext, bill_id: int) -> StepResult:
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
    return record_answer(ctx, row, result, None, "requery", ctx.conditions(order))
