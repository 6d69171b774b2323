"""Bill provider adapters: Flutterwave and VTpass pay bills; Paystack is declared unsupported.

The pipeline needs only these names; ``base`` says how to read results, ``registry`` lists
the adapters.
"""

from __future__ import annotations

from billpay.providers.base import BillProvider, ErrorClass, PaymentOutcome, make_attempt_reference
from billpay.providers.registry import build_providers
from billpay.providers.routing import ProviderRouter

__all__ = [
    "BillProvider",
    "ErrorClass",
    "PaymentOutcome",
    "ProviderRouter",
    "build_providers",
    "make_attempt_reference",
]
