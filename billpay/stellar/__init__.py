"""Stellar: detect incoming cNGN (ingest), match it to orders, refund on the ledger.

The pipeline calls only what is exported here; nothing in this package imports Prefect.
"""

from __future__ import annotations

from billpay.stellar.horizon import HorizonClient, HorizonError
from billpay.stellar.ingest import IngestConfigError, IngestSummary, StopReason, ingest_payments
from billpay.stellar.matching import MatchOutcome, MatchSummary, match_payments
from billpay.stellar.refunds import (
    RefundResult,
    RefundStatus,
    claim_refunds,
    process_refund,
    release_held_refund,
    requeue_held_refunds,
)
from billpay.store.refunds import RefundRow

__all__ = [
    "HorizonClient",
    "HorizonError",
    "IngestConfigError",
    "IngestSummary",
    "MatchOutcome",
    "MatchSummary",
    "RefundResult",
    "RefundRow",
    "RefundStatus",
    "StopReason",
    "claim_refunds",
    "ingest_payments",
    "match_payments",
    "process_refund",
    "release_held_refund",
    "requeue_held_refunds",
]
