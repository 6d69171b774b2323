"""The bill state machine. ``sql/`` mirrors ALLOWED_TRANSITIONS in ``bill_state_transitions``;
a test proves the two are identical and a trigger rejects anything else."""

from __future__ import annotations

from enum import StrEnum


class BillState(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    CNGN_RECEIVED = "cngn_received"
    VERIFYING_ACCOUNT = "verifying_account"
    ACCOUNT_INVALID = "account_invalid"
    PROCESSING_BILL = "processing_bill"
    PROVIDER_PROCESSING = "provider_processing"
    COMPLETED = "completed"
    # A delivered bill the provider took back later (VTpass code 040): the cNGN is refunded.
    REVERSED = "reversed"
    RETRY_SCHEDULED = "retry_scheduled"
    PROVIDER_FAILED = "provider_failed"
    REFUND_INITIATED = "refund_initiated"
    REFUND_PROCESSING = "refund_processing"
    REFUNDED = "refunded"
    EXPIRED = "expired"


S = BillState

ALLOWED_TRANSITIONS: dict[BillState, frozenset[BillState]] = {
    S.PENDING_PAYMENT: frozenset({S.CNGN_RECEIVED, S.REFUND_INITIATED, S.EXPIRED}),
    S.CNGN_RECEIVED: frozenset({S.VERIFYING_ACCOUNT}),
    S.VERIFYING_ACCOUNT: frozenset({S.PROCESSING_BILL, S.ACCOUNT_INVALID, S.RETRY_SCHEDULED}),
    S.ACCOUNT_INVALID: frozenset({S.REFUND_INITIATED}),
    S.PROCESSING_BILL: frozenset(
        {S.PROVIDER_PROCESSING, S.COMPLETED, S.RETRY_SCHEDULED, S.PROVIDER_FAILED}
    ),
    S.PROVIDER_PROCESSING: frozenset({S.COMPLETED, S.RETRY_SCHEDULED, S.PROVIDER_FAILED}),
    S.COMPLETED: frozenset({S.REVERSED}),
    S.REVERSED: frozenset({S.REFUND_INITIATED}),
    S.RETRY_SCHEDULED: frozenset({S.PROCESSING_BILL, S.PROVIDER_FAILED}),
    S.PROVIDER_FAILED: frozenset({S.REFUND_INITIATED}),
    S.REFUND_INITIATED: frozenset({S.REFUND_PROCESSING}),
    S.REFUND_PROCESSING: frozenset({S.REFUNDED, S.REFUND_INITIATED}),
    S.REFUNDED: frozenset(),
    S.EXPIRED: frozenset(),
}


def transition_pairs() -> set[tuple[str, str]]:
    return {(src.value, dst.value) for src, dsts in ALLOWED_TRANSITIONS.items() for dst in dsts}
