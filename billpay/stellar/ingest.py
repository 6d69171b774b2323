"""Ingestion: Horizon payment pages -> ``incoming_payments``, cursor moved in the same transaction.

Every inbound value transfer on a page becomes one row (:mod:`billpay.stellar.records` says
what is inbound); a record that claims to be inbound but cannot be read is quarantined with an
operator alert, in the same transaction, and the cursor moves past it. The cursor moves to the
last record's paging token, else to the page's next link, else to the last usable token with
the records after it quarantined (:func:`next_cursor`): no single record can hold it for good.
Only a page we cannot read at all (not a list of records) or a Horizon failure ends the run,
with the cursor where the last committed page left it; the summary says why.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from billpay.config import Settings
from billpay.stellar.horizon import PAGE_LIMIT, HorizonClient, HorizonError
from billpay.stellar.records import (
    TOKEN,
    IncomingPayment,
    MalformedRecord,
    clean_text,
    inbound_transfers,
    record_key,
    sanitise,
)
from billpay.store import incoming as store
from billpay.store.engine import Database

log = logging.getLogger(__name__)

__all__ = [
    "IncomingPayment",
    "IngestConfigError",
    "IngestSummary",
    "ParsedPage",
    "QuarantinedRecord",
    "StopReason",
    "ingest_payments",
    "parse_page",
]


class IngestConfigError(RuntimeError):
    """Ingestion cannot start: there is no stored cursor and no configured start."""


class StopReason(StrEnum):
    CAUGHT_UP = "caught_up"  # an empty page: nothing newer on Horizon
    PAGE_BUDGET = "page_budget"  # the per-run page budget is used; the next run continues
    HORIZON_ERROR = "horizon_error"  # timeout, 429, 5xx or a malformed page; cursor unchanged
    CURSOR_MOVED = "cursor_moved"  # another ingester advanced the cursor first
    # Records without a usable paging token end the page: quarantined, the cursor waits before
    # them until a later record (or the page's next link) gives it a token to move to.
    CURSOR_HELD = "cursor_held"


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
    quarantined: int = 0  # new quarantine rows


@dataclass(frozen=True, slots=True)
class QuarantinedRecord:
    record_key: str
    paging_token: str | None
    record: Any  # sanitised: round-trips through jsonb
    error: str


@dataclass(frozen=True, slots=True)
class ParsedPage:
    payments: list[IncomingPayment]
    last_paging_token: str | None  # None: no usable token on the page, the cursor stays
    quarantined: list[QuarantinedRecord] = field(default_factory=list)


def _quarantine(record: Any, exc: BaseException) -> QuarantinedRecord:
    token = record.get("paging_token") if isinstance(record, dict) else None
    return QuarantinedRecord(
        record_key=record_key(record),
        paging_token=clean_text(token, 100) if isinstance(token, str) else None,
        record=sanitise(record),
        error=clean_text(f"{type(exc).__name__}: {exc}", 500),
    )


def _paging_token(record: Any) -> str | None:
    """The record's paging token when it is one the cursor column (and Horizon) can take: the
    same check as record ids, so no record can make the cursor update fail."""
    token = record.get("paging_token") if isinstance(record, dict) else None
    return token if isinstance(token, str) and TOKEN.fullmatch(token) else None


def next_cursor(records: list[Any], link_cursor: str | None) -> tuple[str | None, int]:
    """Where the cursor moves after this page, and how many records it moves past.

    The last record's paging token; else the cursor of the page's next link; else the last
    usable token on the page, the records after it held back (quarantined: the cursor waits
    before them until a later record gives it a token to move to). None: the page has no usable
    token at all and the cursor stays."""
    last = _paging_token(records[-1]) if records else None
    if last is not None:
        return last, len(records)
    if isinstance(link_cursor, str) and TOKEN.fullmatch(link_cursor):
        return link_cursor, len(records)
    for index in range(len(records) - 1, -1, -1):
        token = _paging_token(records[index])
        if token is not None:
            return token, index + 1
    return None, 0


def parse_page(
    records: list[Any], settings: Settings, link_cursor: str | None = None
) -> ParsedPage:
    """Inbound transfers and quarantined records of one page, and where the cursor moves
    (:func:`next_cursor`; ``last_paging_token`` None: it stays). Never raises for a record."""
    cursor, passed = next_cursor(records, link_cursor)
    payments: list[IncomingPayment] = []
    quarantined: list[QuarantinedRecord] = []
    for record in records[:passed]:
        try:
            payments.extend(inbound_transfers(record, settings.system_account))
        except Exception as exc:
            # One bad record must not stop ingestion for everyone: whatever it raises
            # (MalformedRecord or a defect we did not foresee), it is stored for an operator.
            quarantined.append(_quarantine(record, exc))
    for record in records[passed:]:
        held = MalformedRecord("no usable paging_token: the cursor cannot move past this record")
        quarantined.append(_quarantine(record, held))
    return ParsedPage(payments, cursor, quarantined)


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
    pages = seen = stored = quarantined = 0

    def summary(reason: StopReason, error: str | None = None, retry_after: float | None = None):
        return IngestSummary(
            reason, pages, seen, stored, start, cursor, error, retry_after, quarantined
        )

    while pages < max(settings.ingest_page_budget, 1):
        try:
            fetched = horizon.payments_page(settings.system_account, cursor, page_limit)
        except HorizonError as exc:
            log.warning("ingest stopped at cursor %s: %s", cursor, exc)
            return summary(StopReason.HORIZON_ERROR, str(exc), exc.retry_after)
        if not fetched.records:
            return summary(StopReason.CAUGHT_UP)
        page = parse_page(fetched.records, settings, fetched.next_cursor)
        for bad in page.quarantined:
            log.error("ingest quarantined record %s: %s", bad.record_key, bad.error)
        new_cursor = page.last_paging_token or cursor
        written = store.store_page(
            db,
            settings.system_account,
            cursor,
            new_cursor,
            [asdict(payment) for payment in page.payments],
            [asdict(bad) for bad in page.quarantined],
        )
        if written is None:
            return summary(StopReason.CURSOR_MOVED)
        pages += 1
        seen += len(fetched.records)
        stored += written.payments
        quarantined += written.quarantined
        if new_cursor == cursor:
            # No progress: asking again would serve the same page. The next run retries.
            return summary(StopReason.CURSOR_HELD)
        cursor = new_cursor
    return summary(StopReason.PAGE_BUDGET)
