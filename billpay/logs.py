"""What libraries log is masked too: SQLAlchemy's result rows (DEBUG; ``hide_parameters`` does
not cover them) never reach a log, and httpx's request lines (INFO) have no query values or user
info (Flutterwave's validate sends ``customer=<meter>``; a client's webhook URL may carry a
token), nor uvicorn's access lines (the API's history query names a phone or an account)."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from billpay.tokens import mask_text


class _NoRowValues(logging.Filter):
    """Rows hold tokens, meters and phones: drop them (the statements are still logged)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "Row %r"


class _MaskedArguments(logging.Filter):
    """Tokens and long numbers in a record's arguments (a URL) masked before formatting; a
    URL's user info and query values dropped (a client's webhook URL may carry its own
    credential there, and a provider's query only account numbers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                mask_text(_without_query_values(str(arg))) if not isinstance(arg, int) else arg
                for arg in record.args
            )
        return True


class _MaskedTraceback(logging.Filter):
    """uvicorn logs an exception the API already answered (its 500) with the full traceback,
    whose message can quote a failing row (PostgreSQL's ``DETAIL: Failing row contains``): keep
    the line and a masked one-line summary of the exception, not the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            summary = mask_text(f"{type(exc).__name__}: {exc}")[:300]
            record.msg, record.args = "%s (%s)", (mask_text(record.getMessage()), summary)
            record.exc_info, record.exc_text = None, None
        return True


def _without_query_values(text: str) -> str:
    """``https://u:p@host/p?token=abc`` -> ``https://host/p?token=***`` (and a served path
    ``/api/bills/history?phone=080...`` -> ``/api/bills/history?phone=***``); other text
    unchanged."""
    if text.startswith("/"):
        path, _, query = text.partition("?")
        if not query:
            return text
        names = [name for name, _ in parse_qsl(query, keep_blank_values=True)]
        return f"{path}?" + "&".join(f"{name}=***" for name in names)
    if not text.startswith(("http://", "https://")):
        return text
    try:
        parts = urlsplit(text)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a log line must never raise: keep only what precedes the query
        return text.split("?", 1)[0].rsplit("@", 1)[-1]
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
    query = "&".join(f"{name}=***" for name in names)
    return urlunsplit((parts.scheme, host + port, parts.path, query, ""))


def mask_library_logs() -> None:
    """Install the filters once (idempotent): called where engines and clients are built."""
    for name, kind in (
        ("sqlalchemy.engine.Engine", _NoRowValues),
        ("httpx", _MaskedArguments),
        # the API's access log: GET /api/bills/history?phone=... must not log the phone
        ("uvicorn.access", _MaskedArguments),
        ("uvicorn.error", _MaskedTraceback),
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())
