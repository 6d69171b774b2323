"""API keys and client webhook secrets: made here, stored only as what cannot be used.

A key is ``bp_`` plus 32 random bytes (URL-safe base64); the database keeps its SHA-256 (a
256-bit random key needs no slow hash). A client's webhook signing secret is
HMAC-SHA256(BILLPAY_WEBHOOK_SECRET, the client's random salt): never stored, re-derived to sign.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "bp_"
PREFIX_LENGTH = 10  # what `apikey create` shows and the table keeps to tell keys apart


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_salt() -> str:
    return secrets.token_hex(16)


def webhook_secret(master_secret: str, salt: str) -> str:
    """The client's signing secret: HMAC of its salt under the server's webhook secret."""
    digest = hmac.new(master_secret.encode(), f"billpay-client:{salt}".encode(), hashlib.sha256)
    return "whsec_" + digest.hexdigest()
