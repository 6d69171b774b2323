"""Orders of API clients: creation under an Idempotency-Key, and one client's reads.

Queries: ``sql/queries/api_orders.sql``; the order row itself is written by
:func:`billpay.store.bills.insert_order`, the same writer the CLI uses.
"""

from __future__ import annotations

import json
from typing import Any

from billpay.store import bills
from billpay.store.engine import Database
from billpay.store.queries import query


class IdempotencyKeyReused(ValueError):
    """The key already created an order from a different request body."""


def _replay(earlier: Any) -> tuple[dict[str, Any], list[str]]:
    """An earlier request's order row and the warnings it was answered."""
    row = dict(earlier)
    for column in ("request_hash", "body_hash"):
        row.pop(column)
    return row, list(row.pop("idempotency_warnings") or [])


def create_once(
    db: Database,
    *,
    client_id: int,
    key: str,
    request_hash: str,
    body_hash: str,
    warnings: list[str],
    fields: dict[str, Any],
    actor: str,
) -> tuple[dict[str, Any], list[str], bool]:
    """The order this client's ``key`` names: created now from ``fields`` (``False``), or the
    one an earlier request with the same body created (``True``: a replay), with the warnings
    that request was answered. One transaction holds the key's advisory lock, inserts the order
    and records the key, so concurrent duplicates make one order. The same body means the same
    validated order (``request_hash``) or the same body as sent (``body_hash``); a different
    body under a used key raises :class:`IdempotencyKeyReused` and stores nothing."""
    params = {"client_id": client_id, "key": key}
    with db.begin() as conn:
        conn.execute(query("lock_idempotency_key"), params)
        earlier = conn.execute(query("idempotency_key_order"), params).mappings().first()
        if earlier is not None:
            if body_hash != earlier["body_hash"] and request_hash != earlier["request_hash"]:
                raise IdempotencyKeyReused(key)
            row, answered = _replay(earlier)
            return row, answered, True
        row = bills.insert_order(conn, **fields, api_client_id=client_id, actor=actor)
        conn.execute(
            query("insert_idempotency_key"),
            params
            | {
                "request_hash": request_hash,
                "body_hash": body_hash,
                "warnings": json.dumps(warnings),
                "bill_id": row["id"],
            },
        )
    return row, warnings, False


def replay_of(
    db: Database, *, client_id: int, key: str, body_hash: str
) -> tuple[dict[str, Any], list[str]] | None:
    """The order an earlier request with this very body (as sent) created under ``key``, if
    any: a replay is answered even when today's rules would refuse the body (a price changed,
    a biller no longer sold), because the order it names exists."""
    with db.connect() as conn:
        params = {"client_id": client_id, "key": key}
        earlier = conn.execute(query("idempotency_key_order"), params).mappings().first()
    if earlier is None or earlier["body_hash"] != body_hash:
        return None
    return _replay(earlier)


def order_of_client(db: Database, client_id: int, reference: str) -> dict[str, Any] | None:
    with db.connect() as conn:
        row = (
            conn.execute(
                query("client_order_by_reference"),
                {"client_id": client_id, "reference": reference},
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


def history(
    db: Database,
    client_id: int,
    *,
    limit: int,
    before_id: int | None = None,
    phone: str | None = None,
    accounts: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Up to ``limit`` of this client's orders, newest first, older than ``before_id``."""
    params = {
        "client_id": client_id,
        "limit": limit,
        "before_id": before_id,
        "phone": phone,
        "accounts": accounts,
    }
    with db.connect() as conn:
        return [dict(r) for r in conn.execute(query("client_order_history"), params).mappings()]


def latest_refund(db: Database, bill_id: int) -> dict[str, Any] | None:
    with db.connect() as conn:
        row = conn.execute(query("latest_refund_for_bill"), {"bill_id": bill_id}).mappings().first()
    return dict(row) if row else None
