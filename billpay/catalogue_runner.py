"""Catalogue sync, the doing half: read each provider's whole catalogue through its adapter,
then let the store apply the pure diff (billpay.catalogue_sync) in one transaction.

A provider is all or nothing: if any of its calls fails or answers something unreadable, nothing
is applied for it (outcome ``failed``, the detail names the call), so a failed call can never
make billers look vanished. ``billpay catalogue sync`` and the ``sync-catalogue`` flow call
:func:`sync_provider`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from billpay.catalogue_sync import (
    FLUTTERWAVE_CATEGORIES,
    PROVIDERS,
    VTPASS_IDENTIFIERS,
    ListedBiller,
    ListedItem,
    Listing,
    Stored,
    SyncReport,
    diff,
    product_codes,
)
from billpay.orders import BillType
from billpay.providers.base import ProviderError
from billpay.store import catalogue_sync as store
from billpay.store.engine import Database

log = logging.getLogger(__name__)


class ListingFailed(Exception):
    """One call of a provider's catalogue failed; ``str()`` names it."""


def read_vtpass(adapter: Any) -> Listing:
    """Every VTpass service of the identifiers we sell, with its variations (airtime has none)."""
    billers: list[ListedBiller] = []
    for identifier, bill_type in VTPASS_IDENTIFIERS.items():
        for service in adapter.services(identifier):
            if bill_type == BillType.AIRTIME:
                billers.append(service)
                continue
            items, fee = adapter.variations(service.code)
            fee = service.fee_kobo or fee
            billers.append(replace(service, items=tuple(items), fee_kobo=fee))
    return Listing("vtpass", tuple(billers))


def read_flutterwave(adapter: Any) -> Listing:
    """Every Flutterwave biller of the categories we sell from, with its items."""
    listed = set(adapter.category_codes())
    billers: list[ListedBiller] = []
    for category in FLUTTERWAVE_CATEGORIES:
        if category not in listed:
            continue  # not offered any more: its billers vanish (within the refusal guard)
        for biller in adapter.listed_billers(category):
            billers.append(replace(biller, items=tuple(adapter.items(biller.code))))
    return Listing("flutterwave", tuple(billers))


READERS = {"vtpass": read_vtpass, "flutterwave": read_flutterwave}


def read_listing(provider: str, adapter: Any) -> Listing:
    """The provider's whole catalogue, or ListingFailed naming the call that failed."""
    try:
        return READERS[provider](adapter)
    except ProviderError as exc:
        raise ListingFailed(exc.message) from exc


def sync_provider(db: Database, provider: str, adapter: Any, *, force: bool = False) -> SyncReport:
    """Read, diff, apply (one transaction) and record one provider's catalogue."""
    started_at = datetime.now(UTC)
    try:
        listing = read_listing(provider, adapter)
    except ListingFailed as exc:
        log.warning("catalogue sync %s failed: %s", provider, exc)
        return store.record_failure(db, provider, started_at, f"nothing applied: {exc}")
    report = store.sync(db, provider, lambda stored: diff(listing, stored, force=force), started_at)
    log.info("catalogue sync %s: %s %s", provider, report.outcome, dict(report.counts))
    return report


def sync_all(
    db: Database,
    providers: Mapping[str, Any],
    *,
    only: str | None = None,
    force: bool = False,
) -> list[SyncReport]:
    names = [only] if only else list(PROVIDERS)
    return [sync_provider(db, name, providers[name], force=force) for name in names]


def map_biller(db: Database, provider: str, code: str, biller_code: str) -> str | None:
    """An operator maps a listed biller to ours (outcome ``mapped``); its items get our product
    codes by the sync's own rules. None when done, else why not."""

    def products(stored: Stored, code_: str, bill_type: str) -> dict[str, str | None]:
        biller = stored.billers[code_]
        items = tuple(
            ListedItem(i.code, i.name, i.amount_kobo, i.fee_kobo, i.label)
            for i in biller.items.values()
            if not i.vanished
        )
        listed = ListedBiller(code_, biller.name, biller.category or "", None, items=items)
        return product_codes(provider, biller_code, bill_type, listed, biller)

    return store.map_biller(db, provider, code, biller_code, products)
