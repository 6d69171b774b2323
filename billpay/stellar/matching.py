"""Matching: every stored incoming payment gets exactly one recorded outcome.

First what the money is, whatever it names:

* from a treasury account (``BILLPAY_TREASURY_ACCOUNTS``) or the cNGN issuer: ``treasury``,
  never refunded (this is how operators fund the system account); except that cNGN naming a
  payable order is matched like any payment (an operator paying for a customer), and treasury
  money naming an order that is not payable (or none) enqueues an operator alert
  (``treasury_payment_names_order``);
* account creation or a merge into the system account (native XLM): ``held_for_review`` with a
  held refund row when Horizon gave the amount (hold_reason ``account_funding``), never sent
  back on its own;
* any asset other than (configured code, configured issuer): ``wrong_asset`` and a refund in
  the asset received, or with ``BILLPAY_WRONG_ASSET_POLICY=hold`` a held one.

Then which order it pays. An order is named by a text memo exactly ``BILL-<ref>`` or by the muxed
id of the M-address it was paid to (system account + the order's id; contract transfers carry no
memo, so only the muxed id counts for them). Both present and naming different orders (or one
naming none): ``held_for_review``, hold_reason ``reference_conflict``.

* order payable, same stroops: ``matched``; the order moves to cngn_received with this payment
  and paid_at = ledger time.
* same, amount differs: ``amount_mismatch``; the payment is linked to the order, which moves to
  refund_initiated (``transition_bill_to_refund`` creates the refund row).
* the order exists but is not payable (expired, already paid, past expires_at, any other state):
  ``order_not_payable``; a refund row without bill (the order is unchanged).
* nothing names an order: ``unknown_reference`` and a refund, or with
  ``BILLPAY_UNKNOWN_REFERENCE_POLICY=hold``: ``held_for_review`` and a refund row with status
  ``held`` (hold_reason ``unknown_reference``) for an operator to release.

A refund to a contract (C-address) payer starts held (``contract_payer``): a classic payment
cannot reach it (the refunds insert trigger of sql/0009 decides this for every refund row).

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

from billpay.config import Settings, UnknownReferencePolicy, WrongAssetPolicy
from billpay.money import cngn_to_stroops
from billpay.orders import reference_from_memo
from billpay.stellar.memos import refund_memo_for_payment, refund_memo_for_reference
from billpay.store import incoming as store
from billpay.store.engine import Database

MAX_MUXED_ORDER_ID = 2**63 - 1  # bill_payments.muxed_id is a bigint: a larger id names no order
ACCOUNT_FUNDING_TYPES = frozenset({"create_account", "account_merge"})


class MatchOutcome(StrEnum):
    """Kept in step with the CHECK constraint of incoming_payments.match_outcome (sql/0009)."""

    MATCHED = "matched"
    AMOUNT_MISMATCH = "amount_mismatch"
    ORDER_NOT_PAYABLE = "order_not_payable"
    UNKNOWN_REFERENCE = "unknown_reference"
    HELD_FOR_REVIEW = "held_for_review"
    WRONG_ASSET = "wrong_asset"
    TREASURY = "treasury"


@dataclass(frozen=True, slots=True)
class MatchSummary:
    processed: int
    outcomes: dict[str, int] = field(default_factory=dict)
    refunds_created: int = 0


@dataclass(frozen=True, slots=True)
class FundsDecision:
    """An outcome decided by what the money is, before any order is looked at."""

    outcome: MatchOutcome
    refund_reason: str | None  # None: no refund row
    held: bool = False


def memo_reference(memo_type: str | None, memo: str | None) -> str | None:
    """The order reference a payment names: only a text memo that is exactly BILL-<reference>."""
    return reference_from_memo(memo) if memo_type == "text" else None


def is_treasury(sender: str, settings: Settings) -> bool:
    return sender == settings.cngn_issuer or sender in settings.treasury_accounts


def is_our_asset(payment: dict[str, Any], settings: Settings) -> bool:
    return (
        payment["asset_type"] != "native"
        and payment["asset_code"] == settings.cngn_asset_code
        and payment["asset_issuer"] == settings.cngn_issuer
    )


def decide_funds(payment: dict[str, Any], settings: Settings) -> FundsDecision | None:
    """Pure rule: treasury, account funding or wrong asset; None when it is cNGN for an order."""
    if is_treasury(payment["from_account"], settings):
        return FundsDecision(MatchOutcome.TREASURY, None)
    if payment["operation_type"] in ACCOUNT_FUNDING_TYPES:
        reason = "account_funding" if payment["amount"] is not None else None
        return FundsDecision(MatchOutcome.HELD_FOR_REVIEW, reason, held=True)
    if not is_our_asset(payment, settings):
        held = settings.wrong_asset_policy == WrongAssetPolicy.HOLD
        return FundsDecision(MatchOutcome.WRONG_ASSET, "wrong_asset", held=held)
    return None


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
    funds = decide_funds(payment, settings)
    if funds is not None and funds.outcome == MatchOutcome.TREASURY:
        return _match_treasury(conn, payment, settings, actor)
    if funds is not None:
        store.record_outcome(conn, payment["id"], funds.outcome.value)
        if funds.refund_reason is None:  # nothing to list in `billpay refund held`: tell them
            store.alert_held_without_refund(
                conn,
                payment_id=payment["id"],
                operation_id=payment["operation_id"],
                operation_type=payment["operation_type"],
            )
            return funds.outcome, False
        return funds.outcome, _refund(conn, payment, funds.refund_reason, held=funds.held)
    named = _named_order(conn, payment)
    if named is _CONFLICT:
        store.record_outcome(conn, payment["id"], MatchOutcome.HELD_FOR_REVIEW.value)
        return MatchOutcome.HELD_FOR_REVIEW, _refund(conn, payment, "reference_conflict", held=True)
    return _match_order(conn, payment, named, settings, actor)


def _match_order(
    conn: Connection,
    payment: dict[str, Any],
    order: dict[str, Any] | None,
    settings: Settings,
    actor: str,
) -> tuple[MatchOutcome, bool]:
    """The outcome of cNGN naming ``order`` (None: naming none), recorded with its effects."""
    audit = {"actor": actor, "detail": f"incoming payment {payment['operation_id']}"}
    outcome = decide(payment["amount"], order, settings.unknown_reference_policy)
    store.record_outcome(conn, payment["id"], outcome.value, order["id"] if order else None)
    if outcome == MatchOutcome.MATCHED:
        store.mark_order_paid(conn, order["id"], payment["id"], payment["ledger_time"], **audit)
        return outcome, False
    if outcome == MatchOutcome.AMOUNT_MISMATCH:
        store.refund_for_amount_mismatch(conn, order["id"], payment["id"], **audit)
        return outcome, True
    if outcome == MatchOutcome.ORDER_NOT_PAYABLE:
        memo = refund_memo_for_reference(order["reference"])
        return outcome, _refund(conn, payment, "order_not_payable", memo=memo)
    held = outcome == MatchOutcome.HELD_FOR_REVIEW
    return outcome, _refund(conn, payment, "unknown_reference", held=held)


def _match_treasury(
    conn: Connection, payment: dict[str, Any], settings: Settings, actor: str
) -> tuple[MatchOutcome, bool]:
    """Treasury money that names a payable order with its exact amount pays it (an operator
    paying for a customer); any other is funding, never refunded, with an operator alert when it named an order: the
    operator meant to pay something and did not."""
    names_something = payment["to_muxed_id"] is not None or (
        payment["operation_type"] != "invoke_host_function"
        and memo_reference(payment["memo_type"], payment["memo"]) is not None
    )
    orderable = payment["operation_type"] not in ACCOUNT_FUNDING_TYPES and is_our_asset(
        payment, settings
    )
    if names_something and orderable:
        named = _named_order(conn, payment)
        # Only an exact payment pays the order: a treasury transfer with another amount is
        # funding that named an order by mistake (refunding it, and the order with it, would
        # send the operator's float back and cancel the customer's order).
        if named is not _CONFLICT and named is not None and _pays_exactly(payment, named, settings):
            return _match_order(conn, payment, named, settings, actor)
    store.record_outcome(conn, payment["id"], MatchOutcome.TREASURY.value)
    if names_something:
        store.alert_treasury_names_order(
            conn,
            payment_id=payment["id"],
            operation_id=payment["operation_id"],
            memo=payment["memo"],
            to_muxed_id=payment["to_muxed_id"],
        )
    return MatchOutcome.TREASURY, False


def _pays_exactly(payment: dict[str, Any], order: dict[str, Any], settings: Settings) -> bool:
    """Whether ``payment`` is exactly what the payable ``order`` asks for."""
    policy = settings.unknown_reference_policy
    return decide(payment["amount"], order, policy) == MatchOutcome.MATCHED


_CONFLICT: Any = object()


def _named_order(conn: Connection, payment: dict[str, Any]) -> dict[str, Any] | None | Any:
    """The (locked) order the memo or the muxed id names, None when neither names one, or
    _CONFLICT when both are present and do not name the same order."""
    # A contract transfer cannot carry a memo: only its muxed id identifies an order.
    contract = payment["operation_type"] == "invoke_host_function"
    reference = None if contract else memo_reference(payment["memo_type"], payment["memo"])
    muxed_id = payment["to_muxed_id"]
    by_memo = store.lock_order(conn, reference) if reference else None
    if muxed_id is None:
        return by_memo
    by_muxed = (
        store.lock_order_by_muxed_id(conn, int(muxed_id))
        if muxed_id <= MAX_MUXED_ORDER_ID
        else None
    )
    if reference is None:
        return by_muxed
    if by_memo is None or by_muxed is None or by_memo["id"] != by_muxed["id"]:
        return _CONFLICT
    return by_memo


def _refund(
    conn: Connection,
    payment: dict[str, Any],
    reason: str,
    *,
    held: bool = False,
    memo: str | None = None,
) -> bool:
    """A refund the order does not own (refunds.bill_payment_id NULL); the order is unchanged.
    Its asset is the payment's (set by the refunds insert trigger)."""
    refund_id = store.insert_refund(
        conn,
        payment_id=payment["id"],
        destination=payment["from_muxed"] or payment["from_account"],
        amount=payment["amount"],
        memo=memo or refund_memo_for_payment(payment["id"]),
        reason=reason,
        held=held,
    )
    return refund_id is not None
