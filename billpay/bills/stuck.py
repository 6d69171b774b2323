"""Re-driving stuck bills by hand (the ``reprocess-stuck`` flow): find, plan, and apply only what
the state machine allows. A dry run plans and changes nothing."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from billpay.bills import advance, policy
from billpay.bills.context import StepContext, persist
from billpay.states import BillState
from billpay.store import Database
from billpay.store import attempts as attempt_store
from billpay.store import bills as bill_store

S = BillState


class Action(StrEnum):
    REQUEUE = "requeue"  # release the lease and make the bill due now
    REQUERY = "requery"  # ask the provider about the open attempt now
    REFUND = "refund"  # send to refund: only where no money can have reached a provider


TERMINAL = {S.COMPLETED, S.REFUNDED, S.EXPIRED}
# How long an operator's action holds the bill (a requery takes seconds).
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
    attempt_reference: str | None = None  # the open attempt the plan was made for

    def as_row(self) -> dict[str, Any]:
        """What the artifact and the flow's result show (the bill id and attempt are internal)."""
        hidden = ("bill_id", "attempt_reference")
        return {k: v for k, v in asdict(self).items() if k not in hidden}


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


def plan_for(db: Database, row: dict[str, Any], action: Action) -> Plan:
    """:func:`plan` for a row as read now (its pay attempts counted)."""
    with db.connect() as conn:
        attempts = len(attempt_store.pay_attempts(conn, row["id"]))
    return plan(row, action, pay_attempts=attempts)


def plan(row: dict[str, Any], action: Action, *, pay_attempts: int) -> Plan:
    status = S(row["status"])
    base: dict[str, Any] = dict(
        reference=row["reference"],
        bill_id=row["id"],
        status=str(status),
        action=str(action),
        attempt_reference=row["attempt_reference"],
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
    """Carry out one allowed plan; returns what was done, or why nothing was.

    The plan was made from an earlier read, and other plans were applied (with provider calls)
    since. So the bill is first claimed the way the pipeline claims (no live lease held by
    anyone else; a requeue takes the lease over) and only while it is still in the state, with
    the open attempt, the plan saw; then it is planned again from that fresh row. No pipeline
    worker holds it meanwhile.
    """
    with ctx.db.begin() as conn:
        row = bill_store.claim_as_planned(
            conn,
            item.bill_id,
            worker=ctx.worker,
            lease_seconds=OPERATOR_LEASE_SECONDS,
            status=S(item.status),
            attempt_reference=item.attempt_reference,
            # A requeue exists to take a dead worker's lease back; every writer checks the
            # lease holder, so the old holder writes nothing afterwards.
            take_over=action is Action.REQUEUE,
        )
    if row is None:
        return "not applied: " + why_not_claimed(ctx, item)
    try:
        fresh = plan_for(ctx.db, row, action)
        if not fresh.allowed:
            return f"not applied: {fresh.why}"
        return carry_out(ctx, row, action, actor)
    finally:
        bill_store.release(ctx.db, [item.bill_id], worker=ctx.worker)


def carry_out(ctx: StepContext, row: dict[str, Any], action: Action, actor: str) -> str:
    """The action on a bill this worker has just claimed as planned."""
    bill_id = row["id"]
    if action is Action.REQUEUE:
        with ctx.db.begin() as conn:
            bill_store.requeue(conn, bill_id, actor=actor, detail="requeued by operator")
        return "requeued: due now"
    if action is Action.REQUERY:
        if row["status"] == S.PROCESSING_BILL:
            # One transaction: due now (even if the requery below fails) and still leased to
            # this worker, so no scheduled requery can take the bill in between.
            with ctx.db.begin() as conn:
                decision = policy.operator_requery(policy.BillFacts.from_row(row), ctx.now())
                bill_store.apply(conn, bill_id, decision, worker=ctx.worker, actor=actor)
                bill_store.claim_as_planned(
                    conn,
                    bill_id,
                    worker=ctx.worker,
                    lease_seconds=OPERATOR_LEASE_SECONDS,
                    status=S.PROVIDER_PROCESSING,
                    attempt_reference=row["attempt_reference"],
                )
        return f"requeried: {advance.run_step(ctx, advance.REQUERY, bill_id).detail}"
    done = persist(ctx, row, policy.operator_refund(S(row["status"])), "refund", actor=actor)
    if done.advanced:  # this call applied it (not someone before us)
        return "sent to refund"
    return "refund not applied (state changed meanwhile)"


def why_not_claimed(ctx: StepContext, item: Plan) -> str:
    """Why a planned bill could not be claimed: it changed since planning, or is leased."""
    row = ctx.load(item.bill_id)
    if row["status"] != item.status or row["attempt_reference"] != item.attempt_reference:
        now = f"{row['status']} attempt {row['attempt_reference'] or 'none'}"
        was = f"{item.status} attempt {item.attempt_reference or 'none'}"
        return f"changed since planning (planned on {was}, now {now})"
    if row["claimed_until"] is None:  # released in between: the next run will claim it
        return "could not be claimed just now; run it again"
    return f"leased by {row['claimed_by']} until {row['claimed_until']:%H:%M:%S}Z"


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
