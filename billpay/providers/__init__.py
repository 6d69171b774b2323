"""Bill provider adapters: Flutterwave and VTpass pay bills; Paystack is declared unsupported.

The pipeline needs only this module's names; see ``base`` for how to read results.
"""

from __future__ import annotations

from billpay.providers.base import (
    AccountCheck,
    BillProvider,
    CallRecord,
    Catalogue,
    ErrorClass,
    NotSupported,
    Operation,
    PaymentOutcome,
    PaymentResult,
    Product,
    ProviderError,
    make_attempt_reference,
)
from billpay.providers.routing import ProviderRouter, build_providers

__all__ = [
    "AccountCheck",
    "BillProvider",
    "CallRecord",
    "Catalogue",
    "ErrorClass",
    "NotSupported",
    "Operation",
    "PaymentOutcome",
    "PaymentResult",
    "Product",
    "ProviderError",
    "ProviderRouter",
    "build_providers",
    "make_attempt_reference",
]
