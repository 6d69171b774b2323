"""VTpass's request_id rule: the sandbox refuses (085) a request_id whose stamp is not its
current Lagos minute, as VTpass does, and the pipeline's rules for an 085."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from billpay.bills import policy
from billpay.catalogue import Catalogue
from billpay.config import Settings
from billpay.orders import BillOrder, BillType
from billpay.providers.base import (
    NOT_FOUND_GRACE,
    ErrorClass,
    PaymentOutcome,
    PaymentResult,
    make_attempt_reference,
)
from billpay.providers.vtpass import VTpassProvider
from billpay.sandbox.options import SandboxOptions
from billpay.sandbox.providers import (
    REQUEST_ID_TOLERANCE,
    SANDBOX_VTPASS_API_KEY,
    SANDBOX_VTPASS_SECRET_KEY,
    ProviderSandboxConfig,
    mount_providers,
    provider_env,
)
from billpay.states import BillState
from tests.unit.test_policy import bill, when

NOW = datetime(2026, 12, 2, 9, 30, 20, tzinfo=UTC)  # 10:30:20 in Lagos
HEADERS = {"api-key": SANDBOX_VTPASS_API_KEY, "secret-key": SANDBOX_VTPASS_SECRET_KEY}
S = BillState


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> _Clock:
    return _Clock(NOW)


@pytest.fixture
def vtpass(clock: _Clock) -> Iterator[TestClient]:
    app = FastAPI()
    mount_providers(app, SandboxOptions(), ProviderSandboxConfig(clock=clock))
    with TestClient(app, base_url="http://sandbox.test") as client:
        yield client


def _pay(client: TestClient, request_id: Any) -> dict[str, Any]:
    body = {"request_id": request_id, "serviceID": "mtn", "amount": 500, "phone": "08031234567"}
    answer = client.post("/vtpass/api/pay", json=body, headers=HEADERS)
    assert answer.status_code == 200
    return answer.json()


def _stamped(at: datetime, suffix: str = "7K3M9QZ2XAA1") -> str:
    return make_attempt_reference(suffix, 1, at)[:12] + suffix


@pytest.mark.parametrize(
    "offset",
    [timedelta(0), -REQUEST_ID_TOLERANCE, REQUEST_ID_TOLERANCE, timedelta(seconds=-30)],
    ids=["now", "oldest-taken", "furthest-ahead-taken", "same-minute"],
)
def test_a_request_id_stamped_with_about_the_current_lagos_minute_is_taken(
    vtpass: TestClient, offset: timedelta
) -> None:
    answer = _pay(vtpass, _stamped(NOW + offset))
    assert answer["code"] == "000"
    assert answer["content"]["transactions"]["status"] == "delivered"


STALE = _stamped(NOW - REQUEST_ID_TOLERANCE - timedelta(minutes=1))


@pytest.mark.parametrize(
    "request_id",
    [
        STALE,
        _stamped(NOW - timedelta(hours=1)),  # a UTC clock's stamp: an hour behind Lagos
        _stamped(NOW - timedelta(days=1)),  # yesterday, this very minute
        _stamped(NOW + REQUEST_ID_TOLERANCE + timedelta(minutes=1)),  # ahead of VTpass's clock
        "20261202103",  # 11 characters
        "2026-12-02-10:30X",  # not alphanumeric
        "202613021030ABC",  # month 13
        "\u0662\u0660\u0662\u0666\u0661\u0662\u0660\u0662\u0661\u0660\u0663\u0660A",  # Arabic digits
        "ABCDEFGHIJKLMN",
        12345678901234,
        None,
    ],
    ids=[
        "stale", "utc-stamp", "yesterday", "future", "11-chars", "punctuation", "no-such-month",
        "arabic-digits", "no-stamp", "a-number", "missing",
    ],
)  # fmt: skip
def test_a_stale_future_or_malformed_request_id_is_refused_with_085(
    vtpass: TestClient, request_id: Any
) -> None:
    answer = _pay(vtpass, request_id)
    assert answer["code"] == "085"
    assert answer["response_description"].startswith("IMPROPER REQUEST ID")


def test_twelve_characters_are_enough(vtpass: TestClient) -> None:
    assert _pay(vtpass, _stamped(NOW, suffix=""))["code"] == "000"


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_a_refused_request_id_is_recorded_nowhere(
    vtpass: TestClient, clock: _Clock, offset: timedelta
) -> None:
    """Once VTpass's clock agrees with the stamp, the same request_id is a first pay (not 014)."""
    request_id = _stamped(NOW + offset)
    assert _pay(vtpass, request_id)["code"] == "085"
    clock.now = NOW + offset
    assert _pay(vtpass, request_id)["code"] == "000"
    assert _pay(vtpass, request_id)["code"] == "014"


# --- what the pipeline makes of an 085 --------------------------------------------------------

AIRTIME = BillOrder(
    reference="7K3M9QZ2XA",
    bill_type=BillType.AIRTIME,
    biller="mtn",
    account_number="08031234567",
    amount_kobo=50_000,
    phone="08031234567",
)


@pytest.fixture
def adapter(vtpass: TestClient, clock: _Clock) -> VTpassProvider:
    fields = {k.removeprefix("BILLPAY_").lower(): v for k, v in provider_env("").items()}
    settings = Settings(**(fields | {"vtpass_base_url": "http://sandbox.test/vtpass/api"}))
    return VTpassProvider(settings, vtpass, clock=clock, catalogue=Catalogue.builtin())


def test_the_adapter_pays_a_fresh_attempt_and_reads_085_as_a_refused_reference(
    adapter: VTpassProvider,
) -> None:
    fresh = adapter.pay(AIRTIME, make_attempt_reference(AIRTIME.reference, 1, NOW))
    assert fresh.outcome is PaymentOutcome.SUCCESS and not fresh.reference_refused
    old = make_attempt_reference(AIRTIME.reference, 2, NOW - timedelta(minutes=7))
    refused = adapter.pay(AIRTIME, old)
    assert refused.outcome is PaymentOutcome.FAILED and refused.reason_code == "085"
    assert refused.reference_refused and not refused.duplicate_reference
    # On a pay (stamped as it is sent) 085 means our clock is off: ours to fix, so it waits and
    # alerts instead of spending the user's retries towards a refund.
    assert refused.error_class is ErrorClass.CONFIGURATION
    assert refused.message and "IMPROPER REQUEST ID" in refused.message


OPEN = {"provider": "vtpass", "attempt_reference": "202612021030AB12CDA1"}
REFUSED = PaymentResult(
    PaymentOutcome.FAILED, ErrorClass.CONFIGURATION, reason_code="085", reference_refused=True
)
NOT_FOUND = PaymentResult(
    PaymentOutcome.FAILED, ErrorClass.TRANSIENT, reason_code="015", not_found=True
)


def test_an_085_on_a_fresh_pay_waits_and_alerts_without_spending_a_retry() -> None:
    paying = bill(S.PROCESSING_BILL, retry_count=2, **OPEN)
    decision = policy.after_pay(paying, REFUSED, when(["vtpass"]))
    assert decision.target is S.RETRY_SCHEDULED and decision.refund_reason is None
    assert decision.retry_count == 2
    assert decision.alert is not None and decision.alert.kind == "provider_configuration"


def test_an_085_on_a_fallback_route_moves_to_the_next_provider_at_once() -> None:
    paying = bill(S.PROCESSING_BILL, **OPEN)
    decision = policy.after_pay(paying, REFUSED, when(["vtpass", "flutterwave"]))
    assert decision.target is S.RETRY_SCHEDULED and "fallback to flutterwave" in decision.summary


def test_a_resend_refused_085_keeps_the_attempt_open_with_no_error_class() -> None:
    """Refused unrecorded: nothing about the first request; no clock problem of ours."""
    processing = bill(S.PROVIDER_PROCESSING, requery_count=1, **OPEN)
    decision = policy.after_resend(processing, REFUSED, when(["vtpass"]))
    assert decision.target is S.PROVIDER_PROCESSING and decision.refund_reason is None
    assert decision.retry_count is None and decision.alert is None
    assert decision.error is not None and decision.error.error_class is None
    assert "too old" in decision.detail


def test_after_a_refused_resend_the_references_own_grace_decides() -> None:
    """The refused resend was recorded nowhere, so it is not a request in flight: a "not found"
    past the reference's grace is believed even a minute after the resend (a new attempt
    follows), unlike a resend that may be in flight."""
    started = NOW - timedelta(minutes=1)
    kept = policy.distrust_not_found(
        NOT_FOUND, resend_outcome=policy.RESEND_REFUSED, resend_started_at=started, now=NOW
    )
    assert kept is NOT_FOUND
    in_flight = policy.distrust_not_found(
        NOT_FOUND, resend_outcome="failed", resend_started_at=started, now=NOW
    )
    assert in_flight.outcome is PaymentOutcome.UNKNOWN
    assert NOT_FOUND_GRACE > timedelta(minutes=1)
