"""Issuing and revoking API clients (``billpay apikey create|revoke``)."""

from __future__ import annotations

import re
from typing import Any

from billpay.api import keys
from billpay.store import Database, api_clients

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class ClientError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def create(
    db: Database, name: str, *, webhook_url: str | None, master_secret: str
) -> dict[str, Any]:
    """A new client; the answer holds its ``key`` (and webhook ``signing_secret``) this once."""
    name = name.strip().lower()
    if not NAME.match(name):
        raise ClientError(
            "name", "use 1-64 of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
        )
    if webhook_url is not None:
        webhook_url = webhook_url.strip()
        if not re.match(r"^https?://[^\s/]+", webhook_url):
            raise ClientError("webhook_url", "must be an http:// or https:// URL")
        if not master_secret:
            raise ClientError(
                "webhook_url",
                "set BILLPAY_WEBHOOK_SECRET first: client signing secrets derive from it",
            )
    key = keys.new_key()
    salt = keys.new_salt()
    row = api_clients.insert(
        db,
        name=name,
        key_prefix=key[: keys.PREFIX_LENGTH],
        key_hash=keys.key_hash(key),
        webhook_salt=salt,
        webhook_url=webhook_url,
    )
    if row is None:
        raise ClientError("name", f"a client named {name!r} exists; revoke it first")
    out: dict[str, Any] = {
        "name": row["name"],
        "key": key,
        "key_prefix": row["key_prefix"],
        "webhook_url": row["webhook_url"],
        "created_at": row["created_at"].isoformat(),
    }
    if webhook_url:
        out["webhook_signing_secret"] = keys.webhook_secret(master_secret, salt)
    return out


def revoke(db: Database, name: str) -> dict[str, Any]:
    row = api_clients.revoke(db, name.strip().lower())
    if row is None:
        raise ClientError("name", f"no live client named {name!r}")
    return {
        "name": row["name"],
        "key_prefix": row["key_prefix"],
        "revoked_at": row["revoked_at"].isoformat(),
    }
