"""API clients: their keys (as hashes), names and webhook settings.

Queries: ``sql/queries/api.sql``.
"""

from __future__ import annotations

from typing import Any

from billpay.store.engine import Database
from billpay.store.queries import query


def insert(
    db: Database,
    *,
    name: str,
    key_prefix: str,
    key_hash: str,
    webhook_salt: str,
    webhook_url: str | None,
) -> dict[str, Any] | None:
    """The new client's row, or None when a live client already has ``name``."""
    with db.begin() as conn:
        row = (
            conn.execute(
                query("insert_api_client"),
                {
                    "name": name,
                    "key_prefix": key_prefix,
                    "key_hash": key_hash,
                    "webhook_url": webhook_url,
                    "webhook_salt": webhook_salt,
                },
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


def by_key_hash(db: Database, key_hash: str) -> dict[str, Any] | None:
    with db.connect() as conn:
        row = (
            conn.execute(query("api_client_by_key_hash"), {"key_hash": key_hash}).mappings().first()
        )
    return dict(row) if row else None


def by_id(db: Database, client_id: int) -> dict[str, Any] | None:
    with db.connect() as conn:
        row = conn.execute(query("api_client_by_id"), {"id": client_id}).mappings().first()
    return dict(row) if row else None


def revoke(db: Database, name: str) -> dict[str, Any] | None:
    """The revoked row, or None when no live client has ``name``."""
    with db.begin() as conn:
        row = conn.execute(query("revoke_api_client"), {"name": name}).mappings().first()
    return dict(row) if row else None
