"""Re-driving stuck bills by hand (the ``reprocess-stuck`` flow): find, plan, and apply only what
the state machine allows. A dry run plans and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from billpay.processing import Processor
from billpay.states import BillState
from billpay.store import Database
from billpay.store import bills as bill_store

S = BillState


class Action(StrEnum):
    REQUEUE = "requeue"  # release the lease and make the bill due now
    REQUERY = "requery"  # ask the provider about the open attempt now
    REFUND = "refund"  # send to refund: only where no money can have reached a provider


TERMINAL = {S.COMPLETED, S.REFUNDED, S.EXPIRED}


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
        return {
            "reference": self.reference,
            "status": self.status,
            "action": self.action,
            "allowed": self.allowed,
            "why": self.why,
            "done": self.done,
        }


def find(
    db: Database,
    *,
    references: list[str] | None,
    state: str | None,
    older_than_minutes: int,
    limit: int,
) -> list[dict[str, Any]]:
    with db.connect() as conn:
        if references:
            rows = conn.execute(
                sa.text(
                    "SELECT * FROM bill_payments WHERE reference = ANY(:refs) ORDER BY id LIMIT :limit"
                ),
                {"refs": [r.strip().upper() for r in references], "limit": limit},
            ).mappings()
        else:
            if state is None:
                raise ValueError("give references, or a state (with older_than_minutes)")
            S(state)  # a clear error for a typo
            rows = conn.execute(
                sa.text(
                    "SELECT * FROM bill_payments WHERE status = :state"
                    " AND updated_at < now() - make_interval(mins => :mins) ORDER BY updated_at LIMIT :limit"
                ),
                {"state": state, "mins": older_than_minutes, "limit": limit},
            ).mappings()
        return [dict(row) for row in rows]


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


def apply(db: Database, processor: Processor, item: Plan, action: Action, actor: str) -> str:
    """Carry out one allowed plan; returns what was done."""
    if action is Action.REQUEUE:
        with db.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE bill_payments SET claimed_by = NULL, claimed_until = NULL,"
                    " next_attempt_at = CASE WHEN status IN ('provider_processing', 'retry_scheduled',"
                    " 'verifying_account') THEN now() ELSE next_attempt_at END"
                    " WHERE id = :id"
                ),
                {"id": item.bill_id},
            )
            bill_store.append_event(conn, item.bill_id, item.status, actor, "requeued by operator")
        return "requeued: due now"
    if action is Action.REQUERY:
        with db.begin() as conn:
            if item.status == S.PROCESSING_BILL:
                bill_store.transition(
                    conn,
                    item.bill_id,
                    S.PROCESSING_BILL,
                    S.PROVIDER_PROCESSING,
                    actor=actor,
                    detail="operator requery",
                    next_attempt_at=datetime.now(UTC),  # due even if the requery below fails
                )
            conn.execute(
                sa.text(
                    "UPDATE bill_payments SET claimed_by = :w, claimed_until = now() + interval '2 minutes'"
                    " WHERE id = :id"
                ),
                {"w": processor.worker, "id": item.bill_id},
            )
        return f"requeried: {processor.requery(item.bill_id).detail}"
    with db.begin() as conn:
        state = S(item.status)
        if state is S.VERIFYING_ACCOUNT:
            bill_store.transition(
                conn, item.bill_id, state, S.RETRY_SCHEDULED, actor=actor, detail="operator refund"
            )
            state = S.RETRY_SCHEDULED
        if state is S.RETRY_SCHEDULED:
            bill_store.transition(
                conn, item.bill_id, state, S.PROVIDER_FAILED, actor=actor, detail="operator refund"
            )
        ok = bill_store.transition_to_refund(conn, item.bill_id, "operator_refund", actor=actor)
    return "sent to refund" if ok else "refund not applied (state changed meanwhile)"


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
