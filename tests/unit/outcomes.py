"""Short names for outcomes and error classes, so expectation tables read as tables."""

from __future__ import annotations

from billpay.providers.base import ErrorClass, PaymentOutcome

S, P = PaymentOutcome.SUCCESS, PaymentOutcome.PENDING
F, U = PaymentOutcome.FAILED, PaymentOutcome.UNKNOWN
T, PERM, ACC = ErrorClass.TRANSIENT, ErrorClass.PERMANENT, ErrorClass.ACCOUNT_INVALID
FLOAT, CONF = ErrorClass.INSUFFICIENT_FLOAT, ErrorClass.CONFIGURATION
