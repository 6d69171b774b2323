"""Step: re-verify the account with the providers before paying (load, call, decide, apply)."""

from __future__ import annotations

from billpay.bills import policy
from billpay.bills.context import StepContext, StepResult, persist, skipped
from billpay.bills.policy import BillFacts
from billpay.orders import BillOrder
from billpay.providers.base import AccountCheck, BillProvider
from billpay.states import BillState
from billpay.store import attempts as attempt_store
from billpay.store import bills as bill_store

S = BillState


def verify_account(ctx: StepContext, bill_id: int) -> StepResult:
    row = ctx.load(bill_id)
    if row["status"] not in (S.CNGN_RECEIVED, S.VERIFYING_ACCOUNT):
        return skipped(row, "verify")
    if row["status"] == S.CNGN_RECEIVED and not ctx.begin(
        bill_id, S.CNGN_RECEIVED, S.VERIFYING_ACCOUNT, "re-verifying the account"
    ):
        return skipped(row, "verify")
    bill, order = BillFacts.from_row(row), bill_store.to_order(row)
    if not policy.needs_provider_verify(order):
        check = AccountCheck(valid=True, message="format and network checked")
        return persist(ctx, row, policy.verified(bill, check), "verify")
    providers = ctx.router.route(order)
    if not providers:
        configured = set(ctx.settings.route_for(str(order.bill_type))) <= ctx.router.names()
        decision = policy.verify_without_route(bill, order, ctx.conditions(), configured=configured)
        return persist(ctx, row, decision, "verify")
    check = ask_providers(ctx, bill_id, order, providers)
    decision = policy.after_verify(bill, order, check, ctx.conditions())
    return persist(ctx, row, decision, "verify")


def ask_providers(
    ctx: StepContext, bill_id: int, order: BillOrder, providers: list[BillProvider]
) -> AccountCheck:
    """The first definitive answer wins; a provider that cannot answer (down, our credentials,
    not its product) hands over to the next one in the route. Every call is recorded."""
    check = AccountCheck(valid=None)
    for provider in providers:
        with ctx.guard(provider.name):
            check = provider.verify_account(order)
        if check.call is not None:
            with ctx.db.begin() as conn:
                attempt_store.record_call(conn, bill_id, check.call)
        if check.valid is not None:
            break
    return check
