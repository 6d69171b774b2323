"""Catalogue sync, the doing half: read each provider's whole catalogue through its adapter,
then let the store apply the pure diff (billpay.catalogue_sync) in one transaction.

The top-level listing calls (Flutterwave's categories and billers per category, VTpass's services
per identifier) are all or nothing: if one fails or answers something unreadable, nothing is
applied for that provider (outcome ``failed``, the detail names the call), so a failed call can
never make billers look vanished. One biller's items call (or one unreadable item row) only
holds that biller: its stored rows stay as they are, the rest applies, operators are told.
Anything else going wrong in one provider's sync is recorded ``failed`` too, operators are told,
and the next provider is still synced. ``billpay catalogue sync`` and the ``sync-catalogue`` flow
call :func:`sync_provider`.
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
    Mapped,
    Outcome,
    Stored,
    SyncReport,
    diff,
    product_codes,
)
from billpay.orders import BillType
from billpay.providers.base import ProviderError, masked_excerpt
from billpay.store import catalogue_sync as store
from billpay.store.engine import Database

log = logging.getLogger(__name__)


class ListingFailed(Exception):
    """One call of a provider's catalogue failed; ``str()`` names it."""


def _unreadable(exc: ProviderError) -> str:
    return exc.message or "unreadable"


def read_vtpass(adapter: Any) -> Listing:
    """Every VTpass service of the identifiers we sell, with its variations (airtime has none);
    a service whose variations cannot be read is listed held (``unreadable``)."""
    billers: list[ListedBiller] = []
    for identifier, bill_type in VTPASS_IDENTIFIERS.items():
        for service in adapter.services(identifier):
            if bill_type == BillType.AIRTIME:
                billers.append(service)
                continue
            try:
                items, fee = adapter.variations(service.code)
            except ProviderError as exc:
                billers.append(replace(service, unreadable=_unreadable(exc)))
                continue
            fee = service.fee_kobo or fee
            billers.append(replace(service, items=tuple(items), fee_kobo=fee))
    return Listing("vtpass", tuple(billers))


def read_flutterwave(adapter: Any) -> Listing:
    """Every Flutterwave biller of the categories we sell from, with its items; a biller whose
    items cannot be read is listed held (``unreadable``)."""
    listed = set(adapter.category_codes())
    billers: list[ListedBiller] = []
    for category in FLUTTERWAVE_CATEGORIES:
        if category not in listed:
            continue  # not offered any more: its billers vanish (within the refusal guards)
        for biller in adapter.listed_billers(category):
            try:
                items = tuple(adapter.items(biller.code))
            except ProviderError as exc:
                billers.append(replace(biller, unreadable=_unreadable(exc)))
                continue
            billers.append(replace(biller, items=items))
    return Listing("flutterwave", tuple(billers))


READERS = {"vtpass": read_vtpass, "flutterwave": read_flutterwave}


def read_listing(provider: str, adapter: Any) -> Listing:
    """The provider's whole catalogue, or ListingFailed naming the call that failed."""
    try:
        return READERS[provider](adapter)
    except ProviderError as exc:
        raise ListingFailed(exc.message) from exc


def sync_provider(db: Database, provider: str, adapter: Any, *, force: bool = False) -> SyncReport:
    """Read, diff, apply (one transaction) and record one provider's catalogue. A fault of this
    provider's sync (an unreadable listing, a bug, a database error) applies nothing and is
    recorded ``failed`` in a transaction of its own, operators told."""
    started_at = datetime.now(UTC)
    try:
        listing = read_listing(provider, adapter)
        report = store.sync(
            db, provider, lambda stored: diff(listing, stored, force=force), started_at
        )
    except ListingFailed as exc:
        log.warning("catalogue sync %s failed: %s", provider, exc)
        return store.record_failure(db, provider, started_at, f"nothing applied: {exc}")
    except Exception as exc:  # noqa: BLE001 - recorded and told; the other provider still runs
        detail = f"nothing applied: {type(exc).__name__}: {masked_excerpt(str(exc), 300)}"
        log.error("catalogue sync %s crashed: %s", provider, detail)
        return store.record_failure(db, provider, started_at, detail)
    log.info("catalogue sync %s: %s %s", provider, report.outcome, dict(report.counts))
    return report


def sync_all(
    db: Database,
    providers: Mapping[str, Any],
    *,
    only: str | None = None,
    force: bool = False,
) -> list[SyncReport]:
    """Every provider (or ``only``) in turn; one provider's failure never stops the next."""
    names = [only] if only else list(PROVIDERS)
    reports = []
    for name in names:
        try:
            reports.append(sync_provider(db, name, providers[name], force=force))
        except Exception as exc:  # noqa: BLE001 - not even the failure could be recorded
            detail = f"not recorded: {type(exc).__name__}: {masked_excerpt(str(exc), 300)}"
            log.error("catalogue sync %s: %s", name, detail)
            zeros = dict.fromkeys(("billers", "items", "added", "changed", "vanished"), 0)
            reports.append(SyncReport(name, Outcome.FAILED, zeros, detail))
    return reports


def map_biller(db: Database, provider: str, code: str, biller_code: str) -> Mapped:
    """An operator maps a listed biller to ours (outcome ``mapped``); its items get our product
    codes by the sync's own rules. Ours is created from the provider's row when missing (a new
    VTpass service: ``billpay catalogue map vtpass foreign-airtime foreign-airtime``)."""

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
