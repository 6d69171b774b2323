"""Re-driving stuck bills by hand (the ``reprocess-stuck`` flow): find, plan, and apply only what
the state machine allows. A dry run plans and changes nothing."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from billpay.bills import policy
from billpay.bills.context import StepContext, persist
from billpay.bills.requery import requery_bill
from billpay.states import BillState
from billpay.store import Database
from billpay.store import bills as bill_store

S = BillState


class Action(StrEnum):
    REQUEUE = "requeue"  # release the lease and make the bill due now
    REQUERY = "requery"  # ask the provider about the open attempt now
    REFUND = "refund"  # send to refund: only where no money can have reached a provider


TERMINAL = {S.COMPLETED, S.REFUNDED, S.EXPIRED}
# How long an operator's requery holds the bill (the requery itself takes seconds).
OPERATOR_LEASE_SECONDS = 120


@dataclass
class Plan:
    reference: str
    bill_id: int
    status: str
    action: str
    allowed: bool
    why: str
    done: str = ""

    def as_row(self) -> dict[str, Any]:
        """What the artifact and the flow's result show (the bill id is internal)."""
        return {k: v for k, v in asdict(self).items() if k != "bill_id"}


def find(
    db: Database,
    *,
    references: list[str] | None,
    state: str | None,
    older_than_minutes: int,
    limit: int,
) -> list[dict[str, Any]]:
    if references:
        return bill_store.by_references(db, [r.strip().upper() for r in references], limit)
    if state is None:
        raise ValueError("give references, or a state (with older_than_minutes)")
    return bill_store.waiting_in_state(
        db,
        S(state),
        minutes=older_than_minutes,
        limit=limit,  # S(): a clear error for a typo
    )


def plan(row: dict[str, Any], action: Action, *, pay_attempts: int) -> Plan:
    status = S(row["status"])
    base = dict(
        reference=row["reference"], bill_id=row["id"], status=str(status), action=str(action)
    )
    if status in TERMINAL:
        return Plan(**base, allowed=False, why=f"{status} is final")
    if action is Action.REQUEUE:
        if status is S.PENDING_PAYMENT:
            return Plan(
                **base, allowed=False, why="waiting for the user's payment; nothing to requeue"
            )
        return Plan(**base, allowed=True, why="release the lease and make it due now")
    if action is Action.REQUERY:
        if status in (S.PROVIDER_PROCESSING, S.PROCESSING_BILL) and row["attempt_reference"]:
            return Plan(
                **base,
                allowed=True,
                why=f"open attempt {row['attempt_reference']} at {row['provider']}",
            )
        return Plan(**base, allowed=False, why="no open provider attempt to ask about")
    # refund
    if status in (S.ACCOUNT_INVALID, S.PROVIDER_FAILED):
        return Plan(**base, allowed=True, why="definitive failure: refund")
    if status is S.RETRY_SCHEDULED and not row["attempt_reference"]:
        return Plan(
            **base, allowed=True, why="last attempt definitively failed: give up and refund"
        )
    if status is S.VERIFYING_ACCOUNT and pay_attempts == 0:
        return Plan(**base, allowed=True, why="never sent to a provider: refund")
    return Plan(
        **base,
        allowed=False,
        why=f"money may have moved to a provider in {status}: requery it instead",
    )


def apply(ctx: StepContext, item: Plan, action: Action, actor: str) -> str:
    """Carry out one allowed plan; returns what was done."""
    if action is Action.REQUEUE:
        with ctx.db.begin() as conn:
            bill_store.requeue(conn, item.bill_id, actor=actor, detail="requeued by operator")
        return "requeued: due now"
    row = ctx.load(item.bill_id)
    if action is Action.REQUERY:
        # One transaction: due now (even if the requery below fails) and leased to this worker,
        # so no scheduled requery can take the bill in between.
        with ctx.db.begin() as conn:
            if item.status == S.PROCESSING_BILL:
                decision = policy.operator_requery(policy.BillFacts.from_row(row), ctx.now())
                bill_store.apply(conn, item.bill_id, decision, worker=None, actor=actor)
            bill_store.lease(conn, item.bill_id, worker=ctx.worker, seconds=OPERATOR_LEASE_SECONDS)
        return f"requeried: {requery_bill(ctx, item.bill_id).detail}"
    # From the state the plan was made for: if the bill moved meanwhile, the writer refuses.
    done = persist(ctx, row, policy.operator_refund(S(item.status)), "refund", operator=actor)
    if done.advanced:  # this call applied it (not someone before us)
        return "sent to refund"
    return "refund not applied (state changed meanwhile)"


def markdown(items: list[Plan], action: Action, dry_run: bool) -> str:
    head = (
        f"# reprocess-stuck: {action} ({'dry run: nothing changed' if dry_run else 'applied'})\n\n"
    )
    if not items:
        return head + "No bills matched.\n"
    lines = ["| reference | state | allowed | found | did |", "|---|---|---|---|---|"]
    for item in items:
        did = item.done or ("would " + str(action) if item.allowed and dry_run else "-")
        lines.append(
            f"| {item.reference} | {item.status} | {'yes' if item.allowed else 'no'} | {item.why} | {did} |"
        )
    return head + "\n".join(lines) + "\n"
