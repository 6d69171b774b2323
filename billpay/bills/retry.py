"""Step: a retry that is due goes back to paying (the pay step chooses the provider)."""

from __future__ import annotations

from dataclasses import replace

from billpay.bills.context import StepContext, StepResult, skipped
from billpay.bills.pay import pay_bill
from billpay.states import BillState

S = BillState


def retry_bill(ctx: StepContext, bill_id: int) -> StepResult:
    row = ctx.load(bill_id)
    if row["status"] != S.RETRY_SCHEDULED:
        return skipped(row, "retry")
    if not ctx.begin(bill_id, S.RETRY_SCHEDULED, S.PROCESSING_BILL, f"retry {row['retry_count']}"):
        return skipped(row, "retry")
    return replace(pay_bill(ctx, bill_id), stage="retry", before=str(S.RETRY_SCHEDULED))
