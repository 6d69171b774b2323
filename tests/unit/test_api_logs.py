"""What the API tells and logs about its internals: event actors as public categories, and
uvicorn's traceback of an answered 500 cut to a masked line."""

from __future__ import annotations

import logging
import sys

from billpay.api.orders import _public_event
from billpay.logs import mask_library_logs


def test_event_actors_are_public_categories_and_operator_notes_stay_with_us() -> None:
    assert _public_event("api:my-wallet", "") == {"actor": "api", "detail": ""}
    assert _public_event("vm-7:31871:ab12cd34", "verified")["actor"] == "billpay"
    assert _public_event("webhook:vtpass", "vtpass webhook (delivered): requery due now") == {
        "actor": "provider webhook",
        "detail": "vtpass webhook (delivered): requery due now",
    }
    operator = _public_event("operator:ada", "VTpass ticket 123, spoke to Chidi on 08031234567")
    assert operator == {"actor": "operator", "detail": "settled by our operations team"}


def test_uvicorns_traceback_of_an_answered_500_is_one_masked_line() -> None:
    mask_library_logs()
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = logging.getLogger("uvicorn.error")
    handler = Keep()
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError(
                "DETAIL: Failing row contains (5, 08031234567, 1234567890123456789012)"
            )
        except RuntimeError:
            logger.error("Exception in ASGI application\n", exc_info=sys.exc_info())
    finally:
        logger.removeHandler(handler)
    [record] = seen
    assert record.exc_info is None
    text = record.getMessage()
    assert "Exception in ASGI application" in text and "RuntimeError" in text
    assert "08031234567" not in text and "1234567890123456789012" not in text
