"""Acceptance A (no database part): whatever a provider sends, every adapter operation returns an
outcome, never raises, and returns only storable text (no NUL, no lone surrogate, no NaN)."""

from __future__ import annotations

import json
import math

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billpay.providers.base import (
    AccountCheck,
    Catalogue,
    ErrorClass,
    PaymentOutcome,
    PaymentResult,
)
from tests.hostile import BOM, adapter_calls, answers, storable, strings_in

# Twelve operations per example; a hundred examples take about 3 s.
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _finite_numbers_only(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite_numbers_only(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite_numbers_only(v) for v in value)
    return True


def assert_outcome_and_storable(operation: str, result: object) -> None:
    if operation.split(".")[1].startswith("verify"):
        assert isinstance(result, AccountCheck)
        if result.valid is None:
            assert result.error_class is not None
    elif operation.endswith("catalogue"):
        assert isinstance(result, Catalogue)
    else:
        assert isinstance(result, PaymentResult)
        assert isinstance(result.outcome, PaymentOutcome)
    for text in strings_in(result):
        assert storable(text), (operation, text[:80])
        assert len(text) <= 1000, operation
    call = getattr(result, "call", None)
    if call is not None:
        assert _finite_numbers_only(call.response_summary)
        json.dumps(call.response_summary, allow_nan=False)


@PROPERTY
@given(answers())
def test_every_adapter_operation_survives_any_answer(answer: httpx.Response) -> None:
    for operation, result in adapter_calls(answer):
        assert_outcome_and_storable(operation, result)


@PROPERTY
@given(
    st.sampled_from(["[" * 100_000, '{"token":' * 5000 + "1" + "}" * 5000, "9" * 5000]),
    st.sampled_from([b"", BOM]),
)
def test_recursion_and_digit_limits_are_outcomes_not_exceptions(text: str, prefix: bytes) -> None:
    answer = httpx.Response(200, content=prefix + text.encode())
    for operation, result in adapter_calls(answer):
        assert_outcome_and_storable(operation, result)
        if isinstance(result, PaymentResult):
            # We may have been charged: a body we cannot read is never FAILED.
            assert result.outcome is PaymentOutcome.UNKNOWN, operation
        if isinstance(result, AccountCheck) and result.call is not None:
            assert (result.valid, result.error_class) == (None, ErrorClass.TRANSIENT)
