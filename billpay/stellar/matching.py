"""Matching: every stored incoming payment gets exactly one recorded outcome.

* text memo exactly ``BILL-<ref>``, order payable, same stroops: ``matched``;
  the order moves to cngn_received with this payment and paid_at = ledger time.
* same, amount differs: ``amount_mismatch``; the payment is linked to the order, which moves to
  refund_initiated (``transition_bill_to_refund`` creates the refund row).
* the order exists but is not payable (expired, already paid, past expires_at, any other state):
  ``order_not_payable``; a refund row without bill (the order is unchanged).
* no memo, a non-text memo, or no such order: ``unknown_reference`` and a refund, or with
  ``BILLPAY_UNKNOWN_REFERENCE_POLICY=hold``: ``held_for_review`` and a refund row with status
  ``held`` (hold_reason ``unknown_reference``) for an operator to release.

"Payable" is ``status = pending_payment AND expires_at > now()`` on the database clock, the same
clock the expire job uses, so the outcome does not depend on which job runs first. Each payment
is handled in its own transaction: the payment row is locked with SKIP LOCKED (two matchers never
take the same payment), the order row FOR UPDATE (expiry and matching cannot interleave), and the
outcome, the order change and the refund row commit together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy.engine import Connection

from billpay.config import Settings, UnknownReferencePolicy
from billpay.money import cngn_to_stroops
from billpay.orders import reference_from_memo
from billpay.stellar.memos import refund_memo_for_payment, refund_memo_for_reference
from billpay.store import incoming as store
from billpay.store.engine import Database


class MatchOutcome(StrEnum):
    MATCHED = "matched"
    AMOUNT_MISMATCH = "amount_mismatch"
    ORDER_NOT_PAYABLE = "order_not_payable"
    UNKNOWN_REFERENCE = "unknown_reference"
    HELD_FOR_REVIEW = "held_for_review"


@dataclass(frozen=True, slots=True)
class MatchSummary:
    processed: int
    outcomes: dict[str, int] = field(default_factory=dict)
    refunds_created: int = 0


def memo_reference(memo_type: str | None, memo: str | None) -> str | None:
    """The order reference a payment names: only a text memo that is exactly BILL-<reference>."""
    return reference_from_memo(memo) if memo_type == "text" else None


def decide(
    amount: Decimal, order: dict[str, Any] | None, policy: UnknownReferencePolicy
) -> MatchOutcome:
    """Pure rule: the outcome for a payment of ``amount`` naming ``order`` (None: names none)."""
    if order is None:
        if policy == UnknownReferencePolicy.HOLD:
            return MatchOutcome.HELD_FOR_REVIEW
        return MatchOutcome.UNKNOWN_REFERENCE
    if order["status"] != "pending_payment" or not order["open"]:
        return MatchOutcome.ORDER_NOT_PAYABLE
    if cngn_to_stroops(amount) != cngn_to_stroops(order["amount_cngn"]):
        return MatchOutcome.AMOUNT_MISMATCH
    return MatchOutcome.MATCHED


def match_payments(db: Database, settings: Settings, actor: str, limit: int = 100) -> MatchSummary:
    """Record an outcome for up to ``limit`` unmatched payments, oldest first."""
    outcomes: dict[str, int] = {}
    refunds = 0
    processed = 0
    while processed < limit:
        with db.begin() as conn:
            payment = store.lock_next_unmatched(conn)
            if payment is None:
                break
            outcome, refund_created = _match_one(conn, payment, settings, actor)
        processed += 1
        outcomes[outcome.value] = outcomes.get(outcome.value, 0) + 1
        refunds += int(refund_created)
    return MatchSummary(processed, outcomes, refunds)


def _match_one(
    conn: Connection, payment: dict[str, Any], settings: Settings, actor: str
) -> tuple[MatchOutcome, bool]:
    audit = {"actor": actor, "detail": f"incoming payment {payment['operation_id']}"}
    reference = memo_reference(payment["memo_type"], payment["memo"])
    order = store.lock_order(conn, reference) if reference else None
    outcome = decide(payment["amount"], order, settings.unknown_reference_policy)
    bill_id = order["id"] if order else None
    store.record_outcome(conn, payment["id"], outcome.value, bill_id)
    if outcome == MatchOutcome.MATCHED:
        store.mark_order_paid(conn, order["id"], payment["id"], payment["ledger_time"], **audit)
        return outcome, False
    if outcome == MatchOutcome.AMOUNT_MISMATCH:
        store.refund_for_amount_mismatch(conn, order["id"], payment["id"], **audit)
        return outcome, True
    return outcome, _refund_without_order(conn, payment, order, outcome)


def _refund_without_order(
    conn: Connection, payment: dict[str, Any], order: dict[str, Any] | None, outcome: MatchOutcome
) -> bool:
    """A refund the order does not own (refunds.bill_payment_id NULL); the order is unchanged."""
    if outcome == MatchOutcome.ORDER_NOT_PAYABLE:
        memo, reason = refund_memo_for_reference(order["reference"]), "order_not_payable"
    else:
        memo, reason = refund_memo_for_payment(payment["id"]), "unknown_reference"
    refund_id = store.insert_refund(
        conn,
        payment_id=payment["id"],
        destination=payment["from_muxed"] or payment["from_account"],
        amount=payment["amount"],
        memo=memo,
        reason=reason,
        held=outcome == MatchOutcome.HELD_FOR_REVIEW,
    )
    return refund_id is not None
