"""Ingestion: Horizon payment pages -> ``incoming_payments``, cursor moved in the same transaction.

Which records we keep is a pure rule (:func:`incoming_payment_from_record`); everything else on a
page is skipped but still moves the cursor past it. A Horizon failure ends the run cleanly with the
cursor where the last committed page left it; the summary says why the run stopped.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from billpay.config import Settings
from billpay.money import MoneyError, parse_cngn
from billpay.stellar.horizon import PAGE_LIMIT, HorizonClient, HorizonError
from billpay.stellar.memos import memo_from_transaction
from billpay.store import incoming as store
from billpay.store.engine import Database

log = logging.getLogger(__name__)

PAYMENT_TYPES = frozenset({"payment", "path_payment_strict_receive", "path_payment_strict_send"})


class IngestConfigError(RuntimeError):
    """Ingestion cannot start: there is no stored cursor and no configured start."""


class StopReason(StrEnum):
    CAUGHT_UP = "caught_up"  # an empty page: nothing newer on Horizon
    PAGE_BUDGET = "page_budget"  # the per-run page budget is used; the next run continues
    HORIZON_ERROR = "horizon_error"  # timeout, 429, 5xx or a malformed page; cursor unchanged
    CURSOR_MOVED = "cursor_moved"  # another ingester advanced the cursor first


@dataclass(frozen=True, slots=True)
class IncomingPayment:
    operation_id: str
    paging_token: str
    transaction_hash: str
    operation_type: str
    from_account: str
    from_muxed: str | None
    to_account: str
    asset_code: str
    asset_issuer: str
    amount: Decimal
    memo_type: str
    memo: str | None
    ledger: int | None
    ledger_time: datetime


@dataclass(frozen=True, slots=True)
class IngestSummary:
    stop_reason: StopReason
    pages: int  # pages committed
    records_seen: int
    payments_stored: int  # new rows (a replayed page stores nothing twice)
    start_cursor: str
    cursor: str  # where the stored cursor is now
    error: str | None = None
    retry_after: float | None = None


def _parse_time(value: Any) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def is_cngn_payment_to(record: dict[str, Any], account: str, code: str, issuer: str) -> bool:
    transaction = record.get("transaction") or {}
    successful = record.get("transaction_successful", transaction.get("successful"))
    return (
        record.get("type") in PAYMENT_TYPES
        and record.get("to") == account
        # A payment from the account to itself received nothing; refunding it would loop.
        and record.get("from") != account
        and record.get("asset_type") in ("credit_alphanum4", "credit_alphanum12")
        and record.get("asset_code") == code
        and record.get("asset_issuer") == issuer
        and successful is True
    )


def incoming_payment_from_record(
    record: dict[str, Any], account: str, code: str, issuer: str
) -> IncomingPayment | None:
    """The payment to store for this record, or None when the record is not cNGN to ``account``.

    For path payments ``amount`` is what the account received (never ``source_amount``).
    Raises KeyError/ValueError/MoneyError on a record that claims to be ours but is malformed.
    """
    if not is_cngn_payment_to(record, account, code, issuer):
        return None
    transaction = record.get("transaction") or {}
    memo = memo_from_transaction(transaction)
    ledger = transaction.get("ledger")
    return IncomingPayment(
        operation_id=str(record["id"]),
        paging_token=str(record["paging_token"]),
        transaction_hash=str(record["transaction_hash"]),
        operation_type=str(record["type"]),
        from_account=str(record["from"]),
        from_muxed=record.get("from_muxed") or None,
        to_account=str(record["to"]),
        asset_code=str(record["asset_code"]),
        asset_issuer=str(record["asset_issuer"]),
        amount=parse_cngn(record["amount"]),
        memo_type=memo.type,
        memo=memo.value,
        ledger=int(ledger) if ledger is not None else None,
        ledger_time=_parse_time(record.get("created_at") or transaction["created_at"]),
    )


@dataclass(frozen=True, slots=True)
class ParsedPage:
    payments: list[IncomingPayment]
    last_paging_token: str


def parse_page(records: list[dict[str, Any]], settings: Settings) -> ParsedPage:
    """Keep our payments; the cursor moves to the last record's paging token, kept or not."""
    kept: list[IncomingPayment] = []
    for record in records:
        payment = incoming_payment_from_record(
            record, settings.system_account, settings.cngn_asset_code, settings.cngn_issuer
        )
        if payment is not None:
            kept.append(payment)
    last = records[-1].get("paging_token")
    if not last:
        raise ValueError("record without paging_token")
    return ParsedPage(kept, str(last))


def starting_cursor(db: Database, settings: Settings) -> str:
    stored = store.get_cursor(db, settings.system_account)
    if stored is not None:
        return stored
    if settings.ingest_start_cursor is None or settings.ingest_start_cursor == "":
        raise IngestConfigError(
            "no Horizon cursor is stored for the system account and none is configured: set "
            "BILLPAY_INGEST_START_CURSOR (a paging token, or 0 to read from the beginning)"
        )
    return settings.ingest_start_cursor


def ingest_payments(
    db: Database, settings: Settings, horizon: HorizonClient, *, page_limit: int = PAGE_LIMIT
) -> IngestSummary:
    """Read pages after the stored cursor until an empty page or the page budget; one DB
    transaction per page stores its payments and moves the cursor."""
    if not settings.system_account or not settings.cngn_issuer:
        raise IngestConfigError("BILLPAY_SYSTEM_ACCOUNT and BILLPAY_CNGN_ISSUER must be set")
    start = cursor = starting_cursor(db, settings)
    pages = seen = stored = 0

    def summary(reason: StopReason, error: str | None = None, retry_after: float | None = None):
        return IngestSummary(reason, pages, seen, stored, start, cursor, error, retry_after)

    while pages < max(settings.ingest_page_budget, 1):
        try:
            records = horizon.payments_page(settings.system_account, cursor, page_limit)
            if not records:
                return summary(StopReason.CAUGHT_UP)
            page = parse_page(records, settings)
        except HorizonError as exc:
            log.warning("ingest stopped at cursor %s: %s", cursor, exc)
            return summary(StopReason.HORIZON_ERROR, str(exc), exc.retry_after)
        except (KeyError, ValueError, TypeError, MoneyError) as exc:
            log.warning("ingest stopped at cursor %s: malformed page: %r", cursor, exc)
            return summary(StopReason.HORIZON_ERROR, f"malformed page: {exc!r}")
        inserted = store.store_page(
            db,
            settings.system_account,
            cursor,
            page.last_paging_token,
            [asdict(payment) for payment in page.payments],
        )
        if inserted is None:
            return summary(StopReason.CURSOR_MOVED)
        pages += 1
        seen += len(records)
        stored += inserted
        cursor = page.last_paging_token
    return summary(StopReason.PAGE_BUDGET)
