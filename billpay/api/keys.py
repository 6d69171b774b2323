"""API keys and client webhook secrets: made here, stored only as what cannot be used.

A key is ``bp_`` plus 32 random bytes (URL-safe base64); the database keeps its SHA-256 (a
256-bit random key needs no slow hash). A client's webhook signing secret is
HMAC-SHA256(BILLPAY_WEBHOOK_SECRET, the client's random salt): never stored, re-derived to sign.
"""

from __future__ import annotations

import hashlib
import secrets

# Delivery re-derives client secrets and may not import billpay.api: the function lives there.
from billpay.notifications import webhook_secret

__all__ = ["KEY_PREFIX", "PREFIX_LENGTH", "key_hash", "new_key", "new_salt", "webhook_secret"]

KEY_PREFIX = "bp_"
PREFIX_LENGTH = 10  # what `apikey create` shows and the table keeps to tell keys apart


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_salt() -> str:
    return secrets.token_hex(16)
