"""Electricity (STS) tokens: find them in provider bodies, format, validate and mask them.

Providers send the token in many shapes: ``"Token : 2636 2054 4059 8275 7802"``, dashed,
spaced, inside Flutterwave's ``extra`` (a string or a dict) or VTpass's ``purchased_code``,
``mainToken``, ``token`` and requery ``extras``. We store the 20 digits and format on display.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

TOKEN_DIGITS = 20
# Twenty digits, optionally in groups separated by spaces or dashes, not part of a longer number.
_TOKEN_PATTERN = re.compile(r"(?<![0-9])[0-9](?:[ \-]{0,3}[0-9]){19}(?![0-9])")
_SEPARATORS = re.compile(r"[\s\-]")
# Keys searched first, in order, when a dict is given (normalised: lower case, no "_", "-" or
# spaces, so ``MainToken`` and ``main_token`` count); then any other key naming a token, and bonus
# tokens last: the main token is what the customer types first.
_PREFERRED_KEYS = (
    "token",
    "maintoken",
    "purchasedcode",
    "rechargetoken",
    "tokencode",
    "extras",
    "extra",
)
# Key-change tokens are also 20 digits but are not what the customer types first.
_SKIP_KEY_PARTS = ("reset", "configure", "kct")
_LAST_KEY_PARTS = ("bonus",)
# Provider bodies are shallow; a token is never buried deeper than this.
_MAX_DEPTH = 8


def _normalised(key: object) -> str:
    return re.sub(r"[\s_\-]", "", str(key)).lower()


def _from_string(text: str) -> str | None:
    match = _TOKEN_PATTERN.search(text[:10_000])
    return _SEPARATORS.sub("", match.group(0)) if match else None


def _token_keys(mapping: Mapping[Any, Any]) -> Iterable[Any]:
    by_name: dict[str, list[Any]] = {}
    for key in mapping:
        by_name.setdefault(_normalised(key), []).append(key)
    named = [k for name in _PREFERRED_KEYS for k in by_name.get(name, ())]
    others, last = [], []
    for name, originals in by_name.items():
        if name in _PREFERRED_KEYS or any(part in name for part in _SKIP_KEY_PARTS):
            continue
        if "token" in name or name == "pin":
            target = last if any(part in name for part in _LAST_KEY_PARTS) else others
            target.extend(originals)
    yield from (*named, *others, *last)


def extract_token(value: object, _depth: int = 0) -> str | None:
    """The first 20-digit token in ``value`` (str, dict or list), as bare digits, or None.

    In dicts only token-ish keys are searched (any spelling), so references such as
    Flutterwave's ``tx_ref`` (``CF-FLYAPI-20240324091413750321``) are never mistaken for a
    token. Never raises, whatever the shape or depth of ``value``.
    """
    if value is None or isinstance(value, bool) or _depth > _MAX_DEPTH:
        return None
    if isinstance(value, int):
        return _from_string(str(value)) if abs(value) < 10**40 else None
    if isinstance(value, str):
        return _from_string(value)
    if isinstance(value, Mapping):
        for key in _token_keys(value):
            if found := extract_token(value[key], _depth + 1):
                return found
        return None
    if isinstance(value, list | tuple):
        for item in value[:50]:
            if found := extract_token(item, _depth + 1):
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


# In free text a token may be grouped by anything a gateway or a person puts between digits
# (dots, slashes, underscores, no-break and zero-width spaces). Masking only: extraction keeps
# _TOKEN_PATTERN, so a dotted or slashed number elsewhere in a body never becomes the token.
_TOKEN_SEPARATORS = r"[\s.\-/_\u200b-\u200d\u2060]{0,3}"
_TOKEN_IN_TEXT = re.compile(rf"(?<![0-9])[0-9](?:{_TOKEN_SEPARATORS}[0-9]){{19}}(?![0-9])")
# Keys quoted back in error messages: an Authorization header's value, Flutterwave and Paystack
# key shapes. A key runs to the next space, quote or bracket.
_KEY_IN_TEXT = re.compile(
    r"\b(?:(bearer)\s+|flw(?:seck|pubk)[-_]|[sp]k_(?:live|test)_)[^\s\"'`,;()<>\[\]{}]+",
    re.IGNORECASE,
)
REDACTED = "[redacted]"
# Emails: the local part is the identifying bit. The lookbehind starts a match only at the start
# of a run of local-part characters: without it a long run with no "@" is scanned again from
# every position (quadratic: 1.3 s for 32k characters).
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*"
    r"@([A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+)"
)
# Nigerian phones however they are written: +234 803 123 4567, 0803-123-4567, (0803) 123 4567.
_PHONE = re.compile(
    r"(?<![0-9])(?:\+?234[ .\-]?\(?0?\)?|\(?0)[789][01][0-9]\)?(?:[ .\-]?[0-9]){7}(?![0-9])"
)
# Meters, smart cards and accounts however they are grouped ('IUC 70 2723 4567', 'meter 45012
# 345678'): digit groups of any size joined by single spaces or hyphens, or by a dot before three
# or more digits (so the ".00" of an amount never joins a number); _mask_digits masks the run when
# it totals ten digits or more. The second lookbehind refuses to start on the visible tail of a
# number masked before ("****-7802", "*** 4567"), which would otherwise be masked again.
_GROUPED_NUMBER = re.compile(r"(?<![0-9])(?<!\*[ .\-])[0-9]+(?:[ \-][0-9]+|\.[0-9]{3,})+(?![0-9])")
# Kept whole, never masked: our attempt references (billpay.providers.base.make_attempt_reference:
# a Lagos YYYYMMDDHHII stamp, the bill reference, "A" and the attempt number; the stamp alone is a
# 12-digit run) and dates with their times (2026-12-01 10:30:00.000000), which are digit runs
# joined by hyphens and spaces.
_STAMP = (
    r"(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])(?:[01][0-9]|2[0-3])[0-5][0-9]"
)
_DATE = r"(?:19|20)[0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
_KEPT_IN_TEXT = re.compile(
    rf"(?<![0-9A-Za-z]){_STAMP}[0-9A-Z]{{1,40}}A[0-9]{{1,4}}(?![0-9A-Za-z])"
    rf"|(?<![0-9]){_DATE}(?:[ T][0-9]{{2}}:[0-9]{{2}}(?::[0-9]{{2}}(?:\.[0-9]{{1,6}})?)?)?(?![0-9])"
)
# Six or more digits in free text: meters (11-13), phones (11; 13 with 234), smart cards (10),
# water accounts (6+). Shorter numbers (HTTP statuses, counts, years) stay readable.
_LONG_NUMBER = re.compile(r"(?<![0-9])[0-9]{6,}(?![0-9])")
# In references only numbers that stand alone (not glued to letters, as in "BPUSSD<20 digits>")
# and are as long as a token (20) or a smart card, meter or phone (10-13 digits) are masked:
# transaction ids (19, 26 digits, prefixed ids) and short counters are what support looks up.
_TOKEN_IN_REFERENCE = re.compile(
    rf"(?<![0-9A-Za-z])[0-9](?:{_TOKEN_SEPARATORS}[0-9]){{19}}(?![0-9A-Za-z])"
)
_ACCOUNT_IN_REFERENCE = re.compile(r"(?<![0-9A-Za-z])[0-9]{10,13}(?![0-9A-Za-z])")


def _mask_digits(match: re.Match[str]) -> str:
    """Every digit but the last four starred; separators kept so the shape stays readable."""
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    if digits < 10:
        return text
    out, seen = [], 0
    for char in text:
        if char.isdigit():
            seen += 1
            out.append(char if seen > digits - 4 else "*")
        else:
            out.append(char)
    return "".join(out)


def _mask_token_in_text(match: re.Match[str]) -> str:
    digits = re.sub(r"[^0-9]", "", match.group(0))
    return "****-****-****-****-" + digits[-4:]


def _mask_key(match: re.Match[str]) -> str:
    return f"{match.group(1)} {REDACTED}" if match.group(1) else REDACTED


# A secret shorter than this (an unset key, a short account) would garble ordinary text.
MIN_SECRET_CHARS = 6
# What may stand between two characters of a quoted secret: "0803-123-4567", "(0803) 123 4567",
# "AB 1234 X", "FLWSECK_TEST-..." all hide the same characters.
_SECRET_GAP = r"[^0-9A-Za-z]{0,3}"


@functools.lru_cache(maxsize=512)
def _secret_pattern(secret: str) -> re.Pattern[str] | None:
    """``secret`` found whatever separates its characters and in any case. A secret of digits only
    (a meter, a phone) is matched only as a whole number, never inside a longer one (a token)."""
    chars = [c for c in secret if c.isascii() and c.isalnum()]
    if len(chars) < MIN_SECRET_CHARS:
        return None
    pattern = _SECRET_GAP.join(re.escape(c) for c in chars)
    if all(c.isdigit() for c in chars):
        pattern = rf"(?<![0-9]){pattern}(?![0-9])"
    return re.compile(pattern, re.IGNORECASE)


def remove_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every quoted ``secret`` (our key values; the customer's account and phone
    for the call at hand) replaced by ``[redacted]``, however its characters are separated."""
    for secret in sorted(set(secrets), key=len, reverse=True):  # a longer one may contain another
        pattern = _secret_pattern(secret) if secret else None
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
    return text


def _outside_kept(text: str, mask: Callable[[str], str]) -> str:
    """``mask`` applied to the text between attempt references and dates, which stay whole."""
    parts, start = [], 0
    for kept in _KEPT_IN_TEXT.finditer(text):
        parts += [mask(text[start : kept.start()]), kept.group(0)]
        start = kept.end()
    parts.append(mask(text[start:]))
    return "".join(parts)


def _masked(
    text: str, secrets: Iterable[str], tokens: re.Pattern[str], numbers: re.Pattern[str]
) -> str:
    # Keys first: the digit rules below would otherwise half-mask a key and hide it from these.
    text = _KEY_IN_TEXT.sub(_mask_key, remove_secrets(text, secrets))

    def digits(part: str) -> str:
        part = tokens.sub(_mask_token_in_text, part)
        part = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", part)
        part = _PHONE.sub(_mask_digits, part)
        part = _GROUPED_NUMBER.sub(_mask_digits, part)
        return numbers.sub(lambda m: mask_account(m.group(0)), part)

    return _outside_kept(text, digits)


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Free text (an error message, a body excerpt) safe to store and log: every token in it
    masked as :func:`mask_token` does (whatever separates its groups); phones (any spacing),
    numbers of ten digits or more however grouped, and other numbers of six digits or more as
    :func:`mask_account` does; emails to their first letter and domain; ``secrets`` (our
    configured key values, the customer's account and phone: see :func:`remove_secrets`), bearer
    credentials and Flutterwave/Paystack-shaped keys replaced by ``[redacted]``. Our attempt
    references and dates stay whole.

    Every pattern runs in linear time, so any length may be passed (logs pass whole messages)."""
    return _masked(text, secrets, _TOKEN_IN_TEXT, _LONG_NUMBER)


def mask_reference(text: str, secrets: Iterable[str] = ()) -> str:
    """A reference found in a provider body, masked like free text except that digit runs are
    masked only when they stand alone and are as long as a token or an account (20, 10-13
    digits): providers echo meters and phones under reference keys, while their transaction ids
    must stay readable for support."""
    return _masked(text, secrets, _TOKEN_IN_REFERENCE, _ACCOUNT_IN_REFERENCE)
