"""The catalogue sync's store: read one provider's rows of the 0019 tables, apply a
:class:`~billpay.catalogue_sync.SyncPlan` in one transaction (with its catalogue_syncs row and
its operator alerts), list the catalogue for ``billpay catalogue show``, map a biller by hand.

Queries: ``sql/queries/catalogue_sync.sql``. The diff itself is pure (billpay.catalogue_sync).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from billpay.catalogue_sync import (
    CatalogueAlert,
    Mapped,
    Outcome,
    Stored,
    StoredBiller,
    StoredItem,
    SyncPlan,
    SyncReport,
    alerts,
    failure_alert,
    new_biller_from_listing,
)
from billpay.store import notifications as outbox
from billpay.store.engine import Database
from billpay.store.queries import query

Planner = Callable[[Stored], SyncPlan]
COUNTS = ("billers", "items", "added", "changed", "vanished")


def load(conn: Connection, provider: str) -> Stored:
    """What the tables hold for ``provider`` (vanished rows included), and our billers."""
    ours = {r.code: r.bill_type for r in conn.execute(query("catalogue_our_billers"))}
    items: dict[str, dict[str, StoredItem]] = {}
    for r in conn.execute(query("catalogue_provider_items"), {"provider": provider}).mappings():
        items.setdefault(r["provider_biller"], {})[r["code"]] = StoredItem(
            r["code"],
            r["product_code"],
            r["name"],
            r["amount_kobo"],
            r["fee_kobo"],
            r["label"],
            r["vanished"],
        )
    billers = {}
    for r in conn.execute(query("catalogue_provider_billers"), {"provider": provider}).mappings():
        fields = {k: r[k] for k in r.keys() if k != "code"}
        billers[r["code"]] = StoredBiller(code=r["code"], items=items.get(r["code"], {}), **fields)
    return Stored(billers=billers, our_billers=ours)


def _apply(conn: Connection, plan: SyncPlan, now: datetime) -> None:
    provider = plan.provider
    for new in plan.new_billers:
        params = {"code": new.code, "bill_type": str(new.bill_type), "name": new.name}
        conn.execute(query("catalogue_insert_our_biller"), params)
    # Vanish first: a code that replaces another for the same biller of ours may then take its
    # place under the one-code-per-biller index.
    if plan.vanished_billers:
        params = {"provider": provider, "codes": list(plan.vanished_billers), "now": now}
        conn.execute(query("catalogue_vanish_billers"), params)
    gone: dict[str, list[str]] = {}
    for biller, item in plan.vanished_items:
        gone.setdefault(biller, []).append(item)
    for biller, codes in gone.items():
        params = {"provider": provider, "biller": biller, "codes": codes, "now": now}
        conn.execute(query("catalogue_vanish_biller_items"), params)
    for row in plan.rows:
        conn.execute(
            query("catalogue_upsert_provider_biller"),
            {
                "provider": provider,
                "code": row.code,
                "biller_code": row.biller_code,
                "bill_type": row.bill_type,
                "category": row.category,
                "name": row.name,
                "min_amount_kobo": row.min_amount_kobo,
                "max_amount_kobo": row.max_amount_kobo,
                "fee_kobo": row.fee_kobo,
                "displaced": row.displaced,
                "now": now,
            },
        )
        _clear_products(conn, provider, row.code, [item.code for item in row.items])
        for item in row.items:
            conn.execute(
                query("catalogue_upsert_provider_item"),
                {
                    "provider": provider,
                    "biller": row.code,
                    "code": item.code,
                    "product_code": item.product_code,
                    "name": item.name,
                    "amount_kobo": item.amount_kobo,
                    "fee_kobo": item.fee_kobo,
                    "label": item.label,
                    "now": now,
                },
            )


def _clear_products(conn: Connection, provider: str, biller: str, codes: list[str]) -> None:
    if codes:
        params = {"provider": provider, "biller": biller, "codes": codes}
        conn.execute(query("catalogue_clear_item_products"), params)


def record(
    conn: Connection,
    provider: str,
    outcome: Outcome,
    started_at: datetime,
    counts: dict[str, int],
    detail: str,
) -> SyncReport:
    counts = {k: int(counts.get(k, 0)) for k in COUNTS}  # a failure saw nothing: zeros
    params = {"provider": provider, "outcome": str(outcome), "started_at": started_at,
              "detail": detail[:1000] or None, **counts}  # fmt: skip
    row = conn.execute(query("catalogue_record_sync"), params).one()
    return SyncReport(provider, outcome, counts, detail, row.id, row.finished_at)


def _dedupe_key(alert: CatalogueAlert, sync_id: int, now: datetime) -> str:
    head = f"{alert.kind}:{alert.payload.get('provider')}"
    if alert.once_per == "day":
        return f"{head}:{now.astimezone(UTC).date().isoformat()}"
    if alert.once_per == "content":
        text = json.dumps(alert.payload, sort_keys=True, default=str)
        return f"{head}:{hashlib.sha256(text.encode()).hexdigest()[:32]}"
    return f"{head}:{sync_id}"


def _enqueue(conn: Connection, alert: CatalogueAlert, sync_id: int, now: datetime) -> None:
    outbox.enqueue(
        conn,
        kind=alert.kind,
        payload=alert.payload,
        audience="operator",
        dedupe_key=_dedupe_key(alert, sync_id, now),
    )


def sync(db: Database, provider: str, planner: Planner, started_at: datetime) -> SyncReport:
    """Lock the provider's rows, read them, plan (pure), apply, record and alert: one
    transaction. A refused plan applies nothing but is recorded and alerted."""
    with db.begin() as conn:
        conn.execute(query("catalogue_sync_lock"), {"provider": provider})
        plan = planner(load(conn, provider))
        now = conn.execute(query("catalogue_now")).scalar_one()
        if plan.outcome != Outcome.REFUSED:
            _apply(conn, plan, now)
        report = record(conn, provider, plan.outcome, started_at, plan.counts(), plan.detail)
        for alert in alerts(plan):
            _enqueue(conn, alert, int(report.sync_id or 0), now)
    return report


def record_failure(db: Database, provider: str, started_at: datetime, detail: str) -> SyncReport:
    """A sync that applied nothing (the provider's listing unreadable, or a bug): recorded in
    its own transaction, operators told once a day per provider."""
    with db.begin() as conn:
        report = record(conn, provider, Outcome.FAILED, started_at, {}, detail)
        now = conn.execute(query("catalogue_now")).scalar_one()
        _enqueue(conn, failure_alert(provider, report.detail), int(report.sync_id or 0), now)
    return report


def map_biller(
    db: Database,
    provider: str,
    code: str,
    biller_code: str,
    products: Callable[[Stored, str, str], dict[str, str | None]],
) -> Mapped:
    """An operator maps a listed provider biller to ours; its items get our product codes
    (``products(stored, code, bill_type)``). Ours is created from the provider's row (its bill
    type and name) when it does not exist yet and can be."""
    with db.begin() as conn:
        conn.execute(query("catalogue_sync_lock"), {"provider": provider})
        stored = load(conn, provider)
        listed = stored.billers.get(code)
        if listed is None or listed.vanished:
            return Mapped(False, f"{provider} lists no biller {code} (run billpay catalogue sync)")
        created = ""
        bill_type = stored.our_billers.get(biller_code)
        if bill_type is None and listed.biller_code:  # a typo must not move live sales
            return Mapped(False, f"no biller of ours is coded {biller_code} ({provider} {code} "
                          f"sells {listed.biller_code}: only an unmapped one creates ours)")  # fmt: skip
        if bill_type is None:
            new = new_biller_from_listing(biller_code, listed.bill_type, listed.name)
            if new is None:
                return Mapped(False, f"no biller of ours is coded {biller_code}, and {provider} "
                              f"{code} cannot make one (its bill type is not known, or the code "
                              "is not lowercase letters, digits and dashes)")  # fmt: skip
            params = {"code": new.code, "bill_type": str(new.bill_type), "name": new.name}
            conn.execute(query("catalogue_insert_our_biller"), params)
            bill_type = str(new.bill_type)
            created = f"created our biller {new.code} ({bill_type}, {new.name!r}); "
        holder = next(
            (c for c, b in stored.billers.items()
             if b.biller_code == biller_code and not b.vanished and c != code), None,
        )  # fmt: skip
        if holder is not None:
            return Mapped(False, f"{provider} already sells {biller_code} under {holder}")
        params = {"provider": provider, "code": code, "biller_code": biller_code,
                  "bill_type": bill_type}  # fmt: skip
        conn.execute(query("catalogue_map_provider_biller"), params)
        chosen = products(stored, code, bill_type)
        live = [c for c, i in listed.items.items() if not i.vanished]
        _clear_products(conn, provider, code, live)  # then set them: see the query
        for item, product in chosen.items():
            conn.execute(
                query("catalogue_set_item_product"),
                {"provider": provider, "biller": code, "code": item, "product_code": product},
            )
        counts = {"billers": 1, "items": len(listed.items), "changed": 1}
        record(conn, provider, Outcome.MAPPED, datetime.now(UTC), counts,
               f"{provider} {code} mapped to {biller_code} by an operator")  # fmt: skip
    return Mapped(True, f"{created}{provider} {code} now sells {biller_code}")


def show(db: Database, bill_type: str | None = None) -> list[dict[str, Any]]:
    """Every provider biller, mapped or not, each with its items, for ``catalogue show``."""
    with db.connect() as conn:
        rows = conn.execute(query("catalogue_show"), {"bill_type": bill_type}).mappings().all()
    billers: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        key = (r["provider"], r["code"])
        if key not in billers:
            billers[key] = {k: r[k] for k in _BILLER_COLUMNS} | {"items": []}
        if r["item_code"] is not None:
            billers[key]["items"].append({k: r[k] for k in _ITEM_COLUMNS})
    return list(billers.values())


_BILLER_COLUMNS = (
    "provider", "code", "biller_code", "biller_name", "bill_type", "category", "name",
    "min_amount_kobo", "max_amount_kobo", "fee_kobo", "first_seen_at", "last_seen_at",
    "vanished_at",
)  # fmt: skip
_ITEM_COLUMNS = (
    "item_code", "product_code", "item_name", "amount_kobo", "item_fee_kobo", "label",
    "item_last_seen_at", "item_vanished_at",
)  # fmt: skip


def last_syncs(db: Database) -> list[dict[str, Any]]:
    with db.connect() as conn:
        return [dict(r) for r in conn.execute(query("catalogue_last_syncs")).mappings()]
