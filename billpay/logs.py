"""What libraries log is masked too: SQLAlchemy's result rows (DEBUG; ``hide_parameters`` does
not cover them) never reach a log, and httpx's request lines (INFO) have the account numbers in
their query strings masked (Flutterwave's validate sends ``customer=<meter>``)."""

from __future__ import annotations

import logging

from billpay.tokens import mask_text


class _NoRowValues(logging.Filter):
    """Rows hold tokens, meters and phones: drop them (the statements are still logged)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "Row %r"


class _MaskedArguments(logging.Filter):
    """Tokens and long numbers in a record's arguments (a URL) masked before formatting."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                mask_text(str(arg)) if not isinstance(arg, int) else arg for arg in record.args
            )
        return True


def mask_library_logs() -> None:
    """Install the filters once (idempotent): called where engines and clients are built."""
    for name, kind in (("sqlalchemy.engine.Engine", _NoRowValues), ("httpx", _MaskedArguments)):
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())
