"""Electricity (STS) tokens: find them in provider bodies, format, validate and mask them.

Providers send the token in many shapes: ``"Token : 2636 2054 4059 8275 7802"``, dashed,
spaced, inside Flutterwave's ``extra`` (a string or a dict) or VTpass's ``purchased_code``,
``mainToken``, ``token`` and requery ``extras``. We store the 20 digits and format on display.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

TOKEN_DIGITS = 20
# Twenty digits, optionally in groups separated by spaces or dashes, not part of a longer number.
_TOKEN_PATTERN = re.compile(r"(?<![0-9])[0-9](?:[ \-]{0,3}[0-9]){19}(?![0-9])")
_SEPARATORS = re.compile(r"[\s\-]")
# Keys searched first, in order, when a dict is given; then any other key naming a token.
_PREFERRED_KEYS = (
    "token",
    "Token",
    "mainToken",
    "purchased_code",
    "recharge_token",
    "extras",
    "extra",
)
# Key-change tokens are also 20 digits but are not what the customer types first.
_SKIP_KEY_PARTS = ("reset", "configure", "kct")


def _from_string(text: str) -> str | None:
    match = _TOKEN_PATTERN.search(text)
    return _SEPARATORS.sub("", match.group(0)) if match else None


def _token_keys(mapping: Mapping[str, Any]) -> Iterable[str]:
    seen: set[str] = set()
    for key in _PREFERRED_KEYS:
        if key in mapping:
            seen.add(key)
            yield key
    for key in mapping:
        lowered = str(key).lower()
        if key in seen or any(part in lowered for part in _SKIP_KEY_PARTS):
            continue
        if "token" in lowered or lowered in ("extra", "extras", "pin"):
            yield key


def extract_token(value: object) -> str | None:
    """The first 20-digit token in ``value`` (str, dict or list), as bare digits, or None.

    In dicts only token-ish keys are searched, so references such as Flutterwave's
    ``tx_ref`` (``CF-FLYAPI-20240324091413750321``) are never mistaken for a token.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str):
        return _from_string(value)
    if isinstance(value, Mapping):
        for key in _token_keys(value):
            if found := extract_token(value[key]):
                return found
        return None
    if isinstance(value, list | tuple):
        for item in value:
            if found := extract_token(item):
                return found
    return None


def is_valid_token(value: str | None) -> bool:
    """True when ``value`` is 20 digits, optionally separated by spaces or dashes."""
    compact = _SEPARATORS.sub("", value or "")
    return len(compact) == TOKEN_DIGITS and compact.isdigit() and compact.isascii()


def _digits(token: str) -> str:
    if not is_valid_token(token):
        raise ValueError("an electricity token has 20 digits")
    return _SEPARATORS.sub("", token)


def format_token(token: str) -> str:
    """``"26362054405982757802"`` -> ``"2636-2054-4059-8275-7802"``."""
    digits = _digits(token)
    return "-".join(digits[i : i + 4] for i in range(0, TOKEN_DIGITS, 4))


def mask_token(token: str | None) -> str | None:
    """``"****-****-****-****-7802"``: safe for logs. Anything not a token becomes ``"****"``."""
    if token is None:
        return None
    if not is_valid_token(token):
        return "****"
    return "****-****-****-****-" + _digits(token)[-4:]


def mask_account(value: str | None, keep: int = 4) -> str:
    """``"1212121212"`` -> ``"******1212"``: for logs (smart cards, meters, phones)."""
    text = value or ""
    if len(text) <= keep:
        return "*" * len(text)
    return "*" * (len(text) - keep) + text[-keep:]


# Six or more digits in free text: meters (11-13), phones (11; 13 with 234), smart cards (10),
# water accounts (6+). Shorter numbers (HTTP statuses, counts, years) stay readable.
_LONG_NUMBER = re.compile(r"(?<![0-9])[0-9]{6,}(?![0-9])")


def mask_text(text: str) -> str:
    """Free text (an error message) safe to store and log: every token in it masked as
    :func:`mask_token` does, every other long number as :func:`mask_account` does."""
    text = _TOKEN_PATTERN.sub(lambda m: mask_token(m.group(0)) or "****", text)
    return _LONG_NUMBER.sub(lambda m: mask_account(m.group(0)), text)
