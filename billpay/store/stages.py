"""The pipeline's heartbeat: each stage records how its run ended (``pipeline_stages``), so
``billpay status`` can tell from the database alone whether the pipeline is moving."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from billpay.store.engine import Database
from billpay.store.queries import query
from billpay.tokens import mask_text

# The stages of one pipeline tick, in the order they run; `billpay status` expects each of them.
PIPELINE_STAGES = ("expire", "ingest", "match", "bills", "refunds", "notify", "recheck")
MAX_ERROR_CHARS = 500  # the table's CHECK: an error is a note for an operator, not a traceback


def record_stage(
    db: Database,
    stage: str,
    *,
    ok: bool,
    summary: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """One run of ``stage`` ended: ``ok`` or not, with its summary (counts) and error text.

    Tokens, meters and phones in ``error`` and in the summary's strings are masked before they
    are stored; the error is cut to MAX_ERROR_CHARS.
    """
    params = {
        "stage": stage,
        "ok": ok,
        "error": error_note(error),
        "summary": json.dumps(_masked(summary), default=str) if summary is not None else None,
    }
    with db.begin() as conn:
        conn.execute(query("record_stage"), params)


def error_note(error: str | None) -> str | None:
    """``error`` as stored: masked first (so a cut cannot leave part of a number in clear),
    then cut to MAX_ERROR_CHARS."""
    if error is None:
        return None
    return mask_text(error)[:MAX_ERROR_CHARS]


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {str(k): _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value
