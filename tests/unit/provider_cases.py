"""What the adapter tests share: a fixed clock and attempt references, an order builder and the
documented provider bodies under tests/fixtures."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from billpay.config import Settings
from billpay.orders import BillOrder
from billpay.providers.base import make_attempt_reference

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NOW = datetime(2026, 11, 26, 13, 30, tzinfo=UTC)  # 14:30 in Lagos
REFERENCE = make_attempt_reference("7K3M9QZ2XA", 1, NOW)
# Older than the "not found" grace: a provider's "no such transaction" is then believed.
OLD_REFERENCE = make_attempt_reference("7K3M9QZ2XA", 1, NOW - timedelta(hours=1))


# Both adapters against fake hosts (respx answers them), with keys the masking tests look for.
VTPASS_URL = "https://vtpass.test/api"
FLW_URL = "https://flw.test/v3"
FLW_SECRET = "FLWSECK_TEST-abc-X"
SETTINGS = Settings(
    vtpass_base_url=VTPASS_URL,
    vtpass_api_key="api-KEY-123",
    vtpass_public_key="PK_public_456",
    vtpass_secret_key="SK_secret_789",
    flutterwave_base_url=FLW_URL,
    flutterwave_secret_key=FLW_SECRET,
    callback_url=None,
)


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def order_maker(**defaults: Any) -> Callable[..., BillOrder]:
    """An order builder: bill reference 7K3M9QZ2XA, then ``defaults``, then each call's changes."""
    base = {"reference": "7K3M9QZ2XA", "phone": "08031234567", **defaults}

    def order(**changes: Any) -> BillOrder:
        return BillOrder(**(base | changes))

    return order
