"""Every bill decision, without a database: a case in, a decision out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from billpay.bills import policy
from billpay.bills.decision import CLEAR_ERROR, ErrorNote
from billpay.bills.policy import BillFacts
from billpay.config import Settings
from billpay.orders import BillOrder, BillType
from billpay.providers.base import (
    NOT_FOUND_GRACE,
    AccountCheck,
    CallRecord,
    ErrorClass,
    PaymentOutcome,
    PaymentResult,
)
from billpay.states import BillState

S = BillState
E = ErrorClass
NOW = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
TOKEN = "12345678901234567802"


@dataclass
class Rules:
    """The retry settings the rules read (the real Settings satisfy the same protocol)."""

    max_retries: int = 3
    pending_alert_seconds: int = 600

    def backoff_for_retry(self, attempt: int) -> int:
        return 10 * attempt

    def backoff_for_requery(self, attempt: int) -> int:
        return 5 * attempt


RULES = Rules()


def when(route=(), settings=RULES, now=NOW) -> policy.Conditions:
    return policy.Conditions(settings, now, route)


def bill(status: S = S.VERIFYING_ACCOUNT, **fields) -> BillFacts:
    facts = {
        "provider": None,
        "attempt_reference": None,
        "retry_count": 0,
        "requery_count": 0,
        "last_error_class": None,
        "updated_at": None,
    }
    return BillFacts(id=7, reference="AB12CD", status=status, **(facts | fields))


def order(bill_type: BillType = BillType.ELECTRICITY, amount_kobo: int = 500_000) -> BillOrder:
    return BillOrder(
        id=7,
        reference="AB12CD",
        bill_type=bill_type,
        biller="ikeja-electric",
        account_number="45012345678",
        amount_kobo=amount_kobo,
        phone="08031234567",
        account_type="prepaid",
    )


def result(outcome: PaymentOutcome, error_class: E | None = None, **fields) -> PaymentResult:
    return PaymentResult(outcome, error_class, **fields)


# --- verify --------------------------------------------------------------------------------


def test_a_valid_account_goes_to_paying_with_a_fresh_retry_budget() -> None:
    call = CallRecord(
        provider="vtpass",
        operation="verify",
        reference=None,
        started_at=NOW,
        finished_at=NOW,
        latency_ms=120,
        outcome="success",
        error_class=None,
        http_status=200,
    )
    check = AccountCheck(valid=True, customer_name="ADA OBI", address="1 Marina", call=call)
    decision = policy.after_verify(bill(retry_count=2), order(), check, when())
    assert (decision.source, decision.target, decision.after) == (
        S.VERIFYING_ACCOUNT,
        S.PROCESSING_BILL,
        S.PROCESSING_BILL,
    )
    assert decision.retry_count == 0 and decision.error == CLEAR_ERROR
    assert decision.verification == {
        "customer_name": "ADA OBI",
        "address": "1 Marina",
        "provider": "vtpass",
    }
    assert decision.detail == "account ok: ADA OBI" and decision.summary == "account verified"
    assert decision.refund_reason is None and decision.alert is None and decision.advances


@pytest.mark.parametrize(
    ("check", "reason"),
    [
        (AccountCheck(valid=False, message="meter not found"), "meter not found"),
        (AccountCheck(valid=False, reason_code="011"), "011"),
        (AccountCheck(valid=False), "account invalid"),
        (
            AccountCheck(valid=True, min_amount_kobo=1_000_000),
            "amount below the biller's minimum of NGN 10,000.00",
        ),
        (
            AccountCheck(valid=True, max_amount_kobo=100_000),
            "amount above the biller's maximum of NGN 1,000.00",
        ),
    ],
)
def test_an_invalid_account_or_amount_is_refunded_through_account_invalid(check, reason) -> None:
    decision = policy.after_verify(bill(), order(amount_kobo=500_000), check, when())
    assert decision.target is S.ACCOUNT_INVALID  # gives up through account_invalid
    assert decision.after is S.REFUND_INITIATED
    assert decision.refund_reason == "account_invalid"
    assert decision.error == ErrorNote(reason, "account_invalid")
    assert decision.summary == f"account invalid: {reason}" and decision.detail == reason


@pytest.mark.parametrize(
    ("error_class", "retries", "spent", "alert_kind"),
    [
        (None, 0, 1, None),  # nobody could say: transient
        (E.TRANSIENT, 2, 3, None),
        (E.INSUFFICIENT_FLOAT, 1, 2, "provider_insufficient_float"),
        (E.CONFIGURATION, 0, 0, "provider_configuration"),  # ours: retries not spent
        (E.CONFIGURATION, 3, 3, "provider_configuration"),  # ours: never refunded
    ],
)
def test_an_unanswered_verification_waits_and_asks_again(
    error_class, retries, spent, alert_kind
) -> None:
    check = AccountCheck(valid=None, error_class=error_class, message="provider down")
    decision = policy.after_verify(
        bill(retry_count=retries, provider="vtpass"), order(), check, when()
    )
    assert decision.target is S.VERIFYING_ACCOUNT and decision.after is S.VERIFYING_ACCOUNT
    assert not decision.advances and decision.refund_reason is None
    assert decision.retry_count == spent
    assert decision.next_attempt_at == NOW + timedelta(seconds=10 * (retries + 1))
    assert decision.error == ErrorNote("provider down", str(error_class or E.TRANSIENT))
    assert decision.summary == f"verify retry in {10 * (retries + 1)}s: provider down"
    if alert_kind is None:
        assert decision.alert is None
    else:
        assert decision.alert.kind == alert_kind
        assert decision.alert.dedupe_key == f"{error_class}:vtpass:2026120110"
        assert decision.alert.payload == {
            "reference": "AB12CD",
            "provider": "vtpass",
            "message": "provider down",
        }


def test_a_verification_that_failed_every_retry_is_refunded() -> None:
    check = AccountCheck(valid=None, error_class=E.TRANSIENT, message="timeout")
    decision = policy.after_verify(bill(retry_count=3), order(), check, when())
    assert decision.target is S.PROVIDER_FAILED and decision.after is S.REFUND_INITIATED
    assert decision.target is not S.ACCOUNT_INVALID  # through retry_scheduled instead
    assert decision.refund_reason == "provider_failed: verification failed 4 times: timeout"
    assert decision.error == ErrorNote("verification failed 4 times: timeout", "transient")
    assert decision.summary == "refunding: verification failed 4 times: timeout"


def test_no_adapter_for_the_route_at_verification_waits_and_alerts() -> None:
    decision = policy.verify_without_route(bill(retry_count=1), order(), when(), configured=False)
    assert decision.target is S.VERIFYING_ACCOUNT and decision.retry_count == 1
    assert decision.error == ErrorNote(
        "no configured provider serves electricity ikeja-electric", "configuration"
    )
    assert decision.alert is not None and decision.alert.kind == "provider_configuration"


def test_no_route_at_verification_refunds_as_the_pay_stage_does() -> None:
    # The catalogue no longer sells it on the route (settings routes are checked at start):
    # nothing was sent, so the bill is refunded instead of polling every 10 s forever.
    decision = policy.verify_without_route(bill(retry_count=0), order(), when())
    assert decision.target is S.PROVIDER_FAILED and decision.after is S.REFUND_INITIATED
    reason = "no provider on the route sells electricity ikeja-electric now"
    assert decision.refund_reason == f"provider_failed: {reason}"
    assert decision.error == ErrorNote(reason, "permanent")


@pytest.mark.parametrize(
    ("bill_type", "asks"),
    [(BillType.AIRTIME, False), (BillType.DATA, False), (BillType.ELECTRICITY, True)],
)
def test_only_bills_with_an_account_at_the_biller_are_verified_by_a_provider(
    bill_type, asks
) -> None:
    assert policy.needs_provider_verify(order(bill_type)) is asks


# --- choose a provider ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "previous", "last_class", "retries", "tried", "chosen"),
    [
        (["a", "b"], [], None, 0, (), "a"),  # first attempt: the first of the route
        ([], [], None, 0, (), None),  # nobody serves it
        (["a", "b"], ["a"], "permanent", 1, ("a",), "b"),  # definitive: next provider
        (["a", "b"], ["a"], "configuration", 0, ("a",), "b"),
        (["a", "b"], ["a"], "transient", 1, (), "a"),  # transient: the same again
        (["a", "b"], ["a"], "transient", 3, (), "b"),  # the last retry: the next one
        (["a", "b"], ["a", "b"], "transient", 3, ("a",), "b"),  # nobody after b: b again
        # x left the route (its listing vanished): never x again, the route's first untried
        (["a", "b"], ["x"], "permanent", 1, ("x",), "a"),
        (["a", "b"], ["x"], "transient", 1, (), "a"),
        (["a", "b"], ["a", "x"], "permanent", 2, ("a", "x"), "b"),
        (["a"], ["a", "x"], "permanent", 2, ("a", "x"), None),  # nobody left: no provider
        (["flutterwave"], ["vtpass"], "transient", 1, (), "flutterwave"),
        ([], ["vtpass"], "transient", 1, (), None),  # an empty route: no provider
    ],
)
def test_choose_provider_only_picks_providers_on_the_route(
    route, previous, last_class, retries, tried, chosen
) -> None:
    assert policy.choose_provider(route, previous, last_class, retries, RULES, tried) == chosen


def test_next_in_route() -> None:
    assert policy.next_in_route(["a", "b"], None) == "a"
    assert policy.next_in_route(["a", "b"], "a") == "b"
    assert policy.next_in_route(["a", "b"], "b") is None
    assert policy.next_in_route([], None) is None


def test_next_in_route_after_a_provider_that_left_the_route() -> None:
    assert policy.next_in_route(["flutterwave"], "vtpass") == "flutterwave"
    assert policy.next_in_route(["a", "b"], "z", tried=("a", "z")) == "b"
    assert policy.next_in_route(["a", "b"], "z", tried=("a", "b")) is None
    assert policy.next_in_route([], "z") is None


def test_a_permanent_failure_at_a_provider_that_left_the_route_falls_back() -> None:
    """vtpass's listing vanished while the bill was at it: flutterwave still sells the biller,
    so the bill goes there instead of being refunded."""
    facts = bill(S.PROCESSING_BILL, provider="vtpass", retry_count=0)
    answer = result(PaymentOutcome.FAILED, E.PERMANENT, reason_code="012")
    history = policy.PayHistory(("vtpass",), frozenset({"vtpass"}))
    decision = policy.after_pay(facts, answer, when_history(["flutterwave"], history))
    assert decision.target is S.RETRY_SCHEDULED and decision.refund_reason is None
    assert decision.summary.endswith("fallback to flutterwave")
    assert decision.next_attempt_at == NOW


def test_no_provider_left_at_pay_time_is_refunded() -> None:
    answer = policy.no_route_result(order())
    assert (answer.outcome, answer.error_class, answer.reason_code) == (
        PaymentOutcome.FAILED,
        E.PERMANENT,
        "no_route",
    )
    facts = bill(S.PROCESSING_BILL, provider="vtpass")
    decision = policy.after_pay(facts, answer, when([]))
    assert decision.after is S.REFUND_INITIATED
    assert decision.refund_reason == "provider_failed: no provider left for electricity " + (
        "ikeja-electric"
    )


def when_history(route, history, now=NOW) -> policy.Conditions:
    return policy.Conditions(RULES, now, route, history)


# --- after a pay or a requery --------------------------------------------------------------


@pytest.mark.parametrize("state", [S.PROCESSING_BILL, S.PROVIDER_PROCESSING])
def test_success_completes_with_the_token_masked_in_the_audit(state) -> None:
    decide = policy.after_pay if state is S.PROCESSING_BILL else policy.after_requery
    answer = result(PaymentOutcome.SUCCESS, token=TOKEN, units="12.5", provider_reference="T1")
    decision = decide(bill(state, provider="vtpass"), answer, when(["vtpass"]))
    assert (decision.source, decision.target) == (state, S.COMPLETED)
    assert (decision.token, decision.units, decision.provider_reference) == (TOKEN, "12.5", "T1")
    assert decision.detail == "delivered ****-****-****-****-7802" and TOKEN not in decision.detail
    assert decision.error == CLEAR_ERROR and decision.summary == "delivered"


def test_a_pending_pay_opens_a_requery_and_counts_as_progress() -> None:
    answer = result(PaymentOutcome.PENDING, reason_code="099", provider_reference="T9")
    decision = policy.after_pay(bill(S.PROCESSING_BILL, requery_count=4), answer, when())
    assert (decision.source, decision.target) == (S.PROCESSING_BILL, S.PROVIDER_PROCESSING)
    assert decision.advances and decision.requery_count == 0
    assert decision.next_attempt_at == NOW + timedelta(seconds=5)
    assert decision.error == ErrorNote("099", None) and decision.provider_reference == "T9"
    assert decision.summary == "pending, requery in 5s" and decision.detail == "pending: 099"
    assert decision.alert is None  # it only just went out


def test_an_unknown_requery_waits_longer_each_time_and_is_not_progress() -> None:
    answer = result(PaymentOutcome.UNKNOWN, E.TRANSIENT, message="read timeout")
    facts = bill(S.PROVIDER_PROCESSING, requery_count=2, updated_at=NOW - timedelta(seconds=30))
    decision = policy.after_requery(facts, answer, when())
    assert decision.target is S.PROVIDER_PROCESSING and not decision.advances
    assert decision.requery_count == 3
    assert decision.next_attempt_at == NOW + timedelta(seconds=20)
    assert decision.error == ErrorNote("read timeout", "transient")
    assert decision.alert is None


def test_a_bill_pending_too_long_alerts_once_per_attempt() -> None:
    since = NOW - timedelta(seconds=601)
    facts = bill(S.PROVIDER_PROCESSING, provider="vtpass", attempt_reference="R1", updated_at=since)
    decision = policy.after_requery(facts, result(PaymentOutcome.PENDING), when())
    assert decision.alert is not None
    assert decision.alert.kind == "bill_pending_too_long"
    assert decision.alert.dedupe_key == "pending-alert:7:R1"
    assert decision.alert.text == f"AB12CD pending at vtpass since {since:%Y-%m-%d %H:%M}Z"


@pytest.mark.parametrize(
    ("error_class", "route", "retries", "reason"),
    [
        (E.ACCOUNT_INVALID, ["a", "b"], 0, "provider_failed: 011"),  # even with a fallback
        (E.PERMANENT, ["a"], 0, "provider_failed: 011"),  # nobody left to try
        (None, ["a"], 0, "provider_failed: 011"),  # no class: permanent
        (E.TRANSIENT, ["a", "b"], 3, "provider_failed: 011"),  # retries spent
        (E.INSUFFICIENT_FLOAT, ["a"], 3, "provider_failed: 011"),
    ],
)
def test_a_definitive_failure_with_nothing_left_to_try_is_refunded(
    error_class, route, retries, reason
) -> None:
    facts = bill(S.PROCESSING_BILL, provider="a", retry_count=retries)
    answer = result(PaymentOutcome.FAILED, error_class, reason_code="011")
    decision = policy.after_pay(facts, answer, when(route))
    assert decision.target is S.PROVIDER_FAILED and decision.after is S.REFUND_INITIATED
    assert decision.refund_reason == reason
    assert decision.error == ErrorNote("011", str(error_class or E.PERMANENT))
    assert decision.summary == "failed, refunding: 011"


@pytest.mark.parametrize(
    ("error_class", "route", "retries", "spent", "wait", "then", "alert"),
    [
        (E.PERMANENT, ["a", "b"], 0, 1, 0, "fallback to b", None),  # next provider, now
        (E.TRANSIENT, ["a", "b"], 0, 1, 10, "retry in 10s", None),
        (E.TRANSIENT, ["a"], 2, 3, 30, "retry in 30s", None),
        (E.INSUFFICIENT_FLOAT, ["a"], 0, 1, 10, "retry in 10s", "provider_insufficient_float"),
        # ours: the retries are not spent; the wait grows with our failures, not the user's
        (E.CONFIGURATION, ["a"], 3, 3, 10, "retry in 10s", "provider_configuration"),
    ],
)
def test_a_failure_with_something_left_to_try_schedules_a_retry(
    error_class, route, retries, spent, wait, then, alert
) -> None:
    facts = bill(S.PROVIDER_PROCESSING, provider="a", retry_count=retries)
    answer = result(PaymentOutcome.FAILED, error_class, message="declined")
    decision = policy.after_requery(facts, answer, when(route))
    assert (decision.source, decision.target) == (S.PROVIDER_PROCESSING, S.RETRY_SCHEDULED)
    assert decision.retry_count == spent
    assert decision.next_attempt_at == NOW + timedelta(seconds=wait)
    assert decision.summary == f"failed ({error_class}): declined; {then}"
    assert decision.refund_reason is None
    assert (decision.alert.kind if decision.alert else None) == alert


def test_long_provider_messages_are_capped_in_errors_and_refund_reasons() -> None:
    answer = result(PaymentOutcome.FAILED, E.PERMANENT, message="x" * 900)
    decision = policy.after_pay(bill(S.PROCESSING_BILL, provider="a"), answer, when(["a"]))
    assert len(decision.error.message) == 500
    assert len(decision.refund_reason) == 200


# --- open attempts, operators, refund reasons ----------------------------------------------


def test_an_open_attempt_is_requeried_now_instead_of_paid_again() -> None:
    decision = policy.open_attempt_found(bill(S.PROCESSING_BILL, attempt_reference="R1"), NOW)
    assert (decision.target, decision.next_attempt_at) == (S.PROVIDER_PROCESSING, NOW)
    assert decision.detail == "open attempt R1: requery"
    assert decision.error is None and decision.requery_count is None  # left as they are


def test_operator_requery_and_refund() -> None:
    requery = policy.operator_requery(bill(S.PROCESSING_BILL), NOW)
    assert (requery.target, requery.next_attempt_at, requery.detail) == (
        S.PROVIDER_PROCESSING,
        NOW,
        "operator requery",
    )
    refund = policy.operator_refund(S.RETRY_SCHEDULED)
    assert refund.source is S.RETRY_SCHEDULED and refund.after is S.REFUND_INITIATED
    assert refund.refund_reason == "operator_refund" and refund.error is None


@pytest.mark.parametrize(
    ("status", "last_error", "reason"),
    [
        ("account_invalid", "meter not found", "account_invalid"),
        ("provider_failed", "declined", "provider_failed: declined"),
        ("provider_failed", None, "provider_failed: "),
    ],
)
def test_refund_reason_for_a_bill_left_waiting(status, last_error, reason) -> None:
    assert policy.refund_reason_for(status, last_error) == reason


def test_the_real_settings_drive_the_same_rules() -> None:
    settings = Settings(max_retries=1, retry_backoff_seconds=[7], requery_backoff_seconds=[3])
    answer = result(PaymentOutcome.FAILED, E.TRANSIENT, message="t")
    decision = policy.after_pay(
        bill(S.PROCESSING_BILL, provider="a"), answer, when(["a"], settings)
    )
    assert decision.next_attempt_at == NOW + timedelta(seconds=7)
    spent = policy.after_pay(
        bill(S.PROCESSING_BILL, provider="a", retry_count=1), answer, when(["a"], settings)
    )
    assert spent.after is S.REFUND_INITIATED


# --- not found early: the same-reference resend --------------------------------------------

OPEN = {"provider": "vtpass", "attempt_reference": "202612011130AB12CDA1"}
NOT_FOUND_YET = result(PaymentOutcome.PENDING, reason_code="015:too_early", not_found=True)
NOT_FOUND = result(PaymentOutcome.FAILED, E.TRANSIENT, reason_code="015", not_found=True)


def test_an_early_not_found_at_a_covered_provider_resends_the_same_reference_once() -> None:
    processing = bill(S.PROVIDER_PROCESSING, **OPEN)
    decide = policy.resend_after_requery
    resend = decide(processing, NOT_FOUND_YET, covered=True, resent=False, unanswered=True)
    assert resend is not None and resend.reference == OPEN["attempt_reference"]
    # Never twice for one attempt, never for an uncovered provider, never on other answers.
    assert decide(processing, NOT_FOUND_YET, covered=True, resent=True, unanswered=True) is None
    assert decide(processing, NOT_FOUND_YET, covered=False, resent=False, unanswered=True) is None
    for other in (NOT_FOUND, result(PaymentOutcome.PENDING), result(PaymentOutcome.UNKNOWN)):
        assert decide(processing, other, covered=True, resent=False, unanswered=True) is None


def test_an_attempt_whose_answer_was_recorded_is_never_resent() -> None:
    """A timeout or a 5xx was recorded: the request provably left us, so the early "not found"
    waits for the grace; only an attempt with no recorded answer may never have been sent."""
    processing = bill(S.PROVIDER_PROCESSING, **OPEN)
    assert (
        policy.resend_after_requery(
            processing, NOT_FOUND_YET, covered=True, resent=False, unanswered=False
        )
        is None
    )


def test_a_resend_that_delivers_completes_and_one_still_pending_stays_open() -> None:
    processing = bill(S.PROVIDER_PROCESSING, **OPEN)
    done = policy.after_resend(processing, result(PaymentOutcome.SUCCESS, token=TOKEN), when())
    assert done.target is S.COMPLETED and done.token == TOKEN
    pending = policy.after_resend(processing, result(PaymentOutcome.PENDING), when())
    assert pending.target is S.PROVIDER_PROCESSING and pending.refund_reason is None


@pytest.mark.parametrize(
    "answer",
    [
        result(PaymentOutcome.UNKNOWN, reason_code="014", duplicate_reference=True),
        result(PaymentOutcome.FAILED, E.PERMANENT, reason_code="016"),
        result(PaymentOutcome.FAILED, E.INSUFFICIENT_FLOAT, reason_code="018"),
        result(PaymentOutcome.FAILED, E.TRANSIENT, reason_code="connect_error"),
        result(PaymentOutcome.UNKNOWN, E.TRANSIENT, reason_code="read_timeout"),
    ],
)
def test_a_resend_refused_or_failed_never_fails_the_attempt(answer: PaymentResult) -> None:
    """The resend's refusal says nothing certain about the first request: requery decides."""
    processing = bill(S.PROVIDER_PROCESSING, requery_count=1, **OPEN)
    decision = policy.after_resend(processing, answer, when())
    assert decision.target is S.PROVIDER_PROCESSING
    assert decision.refund_reason is None and decision.retry_count is None
    assert decision.next_attempt_at is not None and decision.next_attempt_at > NOW
    if answer.duplicate_reference:
        assert "duplicate" in decision.detail


def _distrust(answer: PaymentResult, outcome: str | None, age: timedelta) -> PaymentResult:
    return policy.distrust_not_found(
        answer, resend_outcome=outcome, resend_started_at=NOW - age, now=NOW
    )


@pytest.mark.parametrize("outcome", ["duplicate", "pending", "success"])
def test_not_found_is_never_believed_once_a_resend_was_acknowledged(outcome: str) -> None:
    kept = _distrust(NOT_FOUND, outcome, timedelta(hours=5))
    assert kept.outcome is PaymentOutcome.UNKNOWN and kept.error_class is None
    decision = policy.after_requery(bill(S.PROVIDER_PROCESSING, **OPEN), kept, when())
    assert decision.target is S.PROVIDER_PROCESSING and decision.refund_reason is None


@pytest.mark.parametrize("outcome", [None, "unknown", "failed"])
def test_not_found_after_an_unacknowledged_resend_waits_the_grace_from_the_resend(
    outcome: str | None,
) -> None:
    """The resend is itself a request that may be in flight: the reference's own stamp is older
    and would give it less than the grace."""
    young = _distrust(NOT_FOUND, outcome, NOT_FOUND_GRACE - timedelta(minutes=1))
    assert young.outcome is PaymentOutcome.UNKNOWN
    assert _distrust(NOT_FOUND, outcome, NOT_FOUND_GRACE + timedelta(minutes=2)) is NOT_FOUND


def test_without_a_resend_or_for_other_answers_the_requery_answer_stands() -> None:
    no_resend = policy.distrust_not_found(
        NOT_FOUND, resend_outcome=None, resend_started_at=None, now=NOW
    )
    assert no_resend is NOT_FOUND
    found = result(PaymentOutcome.FAILED, E.PERMANENT, reason_code="016")
    assert _distrust(found, "duplicate", timedelta(0)) is found


# --- pays refused for our configuration (VTpass 085, 087...) -------------------------------


def configuration_history(failures: int, since: datetime | None) -> policy.PayHistory:
    return policy.PayHistory(("vtpass",) * failures, frozenset({"vtpass"}), failures, since)


def test_configuration_refusals_wait_longer_each_time_up_to_an_hour() -> None:
    """A VTpass-only route answering 085 every time: the waits grow (never a pay every 10 s
    for ever) and the user's retries are not spent."""
    settings = Settings(retry_backoff_seconds=[10, 60, 300], max_retries=3)
    facts = bill(S.PROCESSING_BILL, provider="vtpass", retry_count=1)
    answer = result(PaymentOutcome.FAILED, E.CONFIGURATION, reason_code="085")
    waits = []
    for earlier in range(10):
        history = configuration_history(earlier, NOW - timedelta(hours=1) if earlier else None)
        decision = policy.after_pay(
            facts, answer, policy.Conditions(settings, NOW, ["vtpass"], history)
        )
        assert decision.target is S.RETRY_SCHEDULED and decision.refund_reason is None
        assert decision.retry_count == 1  # ours: not the user's retries
        assert decision.alert is not None and decision.alert.kind == "provider_configuration"
        waits.append(int((decision.next_attempt_at - NOW).total_seconds()))
    assert waits == [10, 60, 300, 300, 600, 1200, 2400, 3600, 3600, 3600]


def test_configuration_refusals_for_a_day_refund_the_bill_and_alert() -> None:
    facts = bill(S.PROCESSING_BILL, provider="vtpass", retry_count=0)
    answer = result(PaymentOutcome.FAILED, E.CONFIGURATION, message="IMPROPER REQUEST ID")
    first = NOW - policy.CONFIGURATION_GIVE_UP
    decision = policy.after_pay(
        facts, answer, when_history(["vtpass"], configuration_history(30, first))
    )
    assert decision.target is S.PROVIDER_FAILED and decision.after is S.REFUND_INITIATED
    assert decision.refund_reason == "provider_failed: IMPROPER REQUEST ID"
    assert decision.alert is not None and decision.alert.kind == "bill_refunded_configuration"
    assert decision.alert.dedupe_key == f"refunded-configuration:{facts.id}"
    assert decision.alert.payload["failures"] == 31
    just_before = policy.after_pay(
        facts,
        answer,
        when_history(["vtpass"], configuration_history(30, first + timedelta(minutes=1))),
    )
    assert just_before.target is S.RETRY_SCHEDULED and just_before.refund_reason is None


def test_a_configuration_refusal_with_another_provider_falls_back_at_once() -> None:
    facts = bill(S.PROCESSING_BILL, provider="vtpass")
    answer = result(PaymentOutcome.FAILED, E.CONFIGURATION, reason_code="085")
    decision = policy.after_pay(facts, answer, when(["vtpass", "flutterwave"]))
    assert decision.target is S.RETRY_SCHEDULED and decision.next_attempt_at == NOW
    assert decision.summary.endswith("fallback to flutterwave")


def test_pay_history_reads_the_attempts() -> None:
    early, late = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    history = policy.PayHistory.from_attempts(
        [
            {"provider": "vtpass", "error_class": "transient", "started_at": early},
            {"provider": "vtpass", "error_class": "configuration", "started_at": early},
            {"provider": "flutterwave", "error_class": "permanent", "started_at": late},
            {"provider": "vtpass", "error_class": "configuration", "started_at": late},
        ]
    )
    assert history.providers == ("vtpass", "vtpass", "flutterwave", "vtpass")
    # A configuration refusal is ours to fix: vtpass is still worth trying again.
    assert history.definitive == {"flutterwave"}
    # Only the current run of refusals counts: the permanent failure in between ended the
    # first one, so the 24 h are counted from the latest refusal, not from two hours ago.
    assert (history.configuration_failures, history.configuration_since) == (1, late)


def test_refusals_count_from_the_first_of_an_unbroken_run() -> None:
    first, second = NOW - timedelta(hours=25), NOW - timedelta(hours=3)
    history = policy.PayHistory.from_attempts(
        [
            {"provider": "vtpass", "error_class": "configuration", "started_at": first},
            {"provider": "flutterwave", "error_class": "configuration", "started_at": second},
        ]
    )
    assert (history.configuration_failures, history.configuration_since) == (2, first)
    assert history.definitive == frozenset()


# --- what the provider says it charged -----------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "charged", "alerted", "above"),
    [
        (PaymentOutcome.SUCCESS, 310_000, True, True),  # the price rose at the provider
        (PaymentOutcome.SUCCESS, 290_000, True, False),
        (PaymentOutcome.PENDING, 310_000, True, True),
        (PaymentOutcome.SUCCESS, 300_000, False, False),  # what we collected
        (PaymentOutcome.SUCCESS, None, False, False),  # it does not say
        (PaymentOutcome.FAILED, 310_000, False, False),  # not charged at all
    ],
)
def test_a_charge_other_than_what_we_collected_alerts_operators(
    outcome, charged, alerted, above
) -> None:
    facts = bill(S.PROCESSING_BILL, provider="vtpass", attempt_reference="R1")
    answer = result(outcome, amount_kobo=charged)
    alert = policy.charged_amount_alert(facts, order(amount_kobo=300_000), answer)
    if not alerted:
        assert alert is None
        return
    assert alert.kind == "provider_charged_different_amount"
    assert alert.dedupe_key == f"charged-amount:{facts.id}"  # once per bill
    assert alert.payload["collected"] == "3000.00"
    assert alert.payload["charged"] == f"{charged / 100:.2f}"
    assert alert.payload["above_collected"] is above
    assert "1234" not in alert.text and "account" not in alert.payload  # masked: no account
    assert ("we lose the difference" in alert.text) is above
