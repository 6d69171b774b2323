"""Transaction memos as Horizon reports them, and the refund memo we send back.

Horizon gives ``memo_type`` (none|text|id|hash|return), ``memo`` (absent when empty) and, for
text memos, ``memo_bytes`` (base64 of the raw bytes, which need not be UTF-8). We store text we
can trust: valid UTF-8 without NUL. Anything else is stored escaped (``\\xff``), which can never
equal ``BILL-<reference>`` (the reference alphabet has no backslash), so it matches no order and
is refunded as ``unknown_reference`` while the raw bytes stay readable for an operator.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from billpay.orders import REFUND_MEMO_PREFIX

MAX_MEMO_BYTES = 28
MEMO_TYPES = frozenset({"none", "text", "id", "hash", "return"})


@dataclass(frozen=True, slots=True)
class Memo:
    type: str  # none | text | id | hash | return (lowercase, as Horizon writes it)
    value: str | None


def _escape(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="backslashreplace")
    return text.replace("\x00", "\\x00")


def text_from_bytes(raw: bytes) -> str:
    """Valid UTF-8 without NUL as is; anything else escaped (PostgreSQL text cannot hold NUL)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _escape(raw)
    return text if "\x00" not in text else _escape(raw)


def memo_from_transaction(transaction: dict[str, Any]) -> Memo:
    """The memo of a joined Horizon transaction object."""
    memo_type = str(transaction.get("memo_type") or "none").lower()
    if memo_type not in MEMO_TYPES:
        memo_type = "none"
    if memo_type == "none":
        return Memo("none", None)
    if memo_type == "text":
        return Memo("text", _text_memo(transaction))
    value = transaction.get("memo")
    return Memo(memo_type, None if value is None else text_from_bytes(_raw(value)))


def _text_memo(transaction: dict[str, Any]) -> str | None:
    encoded = transaction.get("memo_bytes")
    if encoded:
        try:
            return text_from_bytes(base64.b64decode(str(encoded), validate=True))
        except (binascii.Error, ValueError):
            pass  # fall back to the rendered memo
    value = transaction.get("memo")
    return None if value is None else text_from_bytes(_raw(value))


def _raw(value: Any) -> bytes:
    # surrogatepass: a lone surrogate in hostile JSON becomes bytes that decode as invalid
    # UTF-8, so it is stored escaped instead of raising.
    return str(value).encode("utf-8", "surrogatepass")


def refund_memo_for_reference(reference: str) -> str:
    return _checked(f"{REFUND_MEMO_PREFIX}{reference}")


def refund_memo_for_payment(incoming_payment_id: int) -> str:
    """For a payment that names no order: ``REFUND-P<id>`` (at most 27 bytes for a bigint)."""
    return _checked(f"{REFUND_MEMO_PREFIX}P{incoming_payment_id}")


def _checked(memo: str) -> str:
    if len(memo.encode()) > MAX_MEMO_BYTES:
        raise ValueError(f"memo {memo!r} is longer than {MAX_MEMO_BYTES} bytes")
    return memo
