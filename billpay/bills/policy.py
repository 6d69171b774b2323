"""What happens to a bill next: pure decisions, no I/O.

Each function takes the bill as it was loaded (:class:`BillFacts`), what a provider answered and
the settings, and returns a :class:`Decision`: the next state, the fields to set, the refund
reason, an operator alert and when to try again. The steps in ``billpay.bills`` persist a
decision with exactly one store call (``billpay.store.bills.apply``), so every rule here is
tested without a database (``tests/unit/test_policy.py``).

The rules, in one place:
- a provider that cannot answer a verification (down, our credentials, our float) is asked
  again after a backoff; a user's retries are spent only on transient reasons, never on our
  configuration; once spent, the bill is refunded;
- a pay answer that is PENDING or UNKNOWN is never a failure: the attempt stays open and is
  requeried, so a bill that may have been charged is never paid again under a new reference;
- a definitive failure closes the attempt; the next provider of the route is tried at once
  after a non-transient failure, and on the last transient retry; with no provider left, or an
  invalid account, or the retries spent, the bill goes to refund;
- our own configuration problems (credentials, VTpass 085) wait and alert without spending the
  user's retries; each wait is longer than the last (``configuration_backoff``), and once
  ``CONFIGURATION_GIVE_UP`` has passed since the bill's first such failure the bill is refunded
  like any definitively failed bill, with an operator alert. Meanwhile the user's cNGN stays
  held by us (the bill waits in ``retry_scheduled``): nothing is refunded or paid twice, since a
  refusal for our configuration closed the attempt unpaid;
- a bill is only ever paid by a provider on its current route (the catalogue in force): one
  whose provider left the route falls back to the route's first provider not yet tried, and a
  bill with an empty route at pay time is refunded;
- what a provider says it charged is compared with what we collected
  (``charged_amount_alert``): a difference is noted on the bill and told to operators, never
  changing the bill's outcome;
- "not found" at a provider is believed only after ``NOT_FOUND_GRACE``; before that, a provider
  that refuses reused references is sent the open attempt's pay request once more under the
  same reference (``resend_after_requery``), and only good news from that resend is believed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from billpay.bills.decision import CLEAR_ERROR, Alert, Decision, ErrorNote
from billpay.money import format_naira, naira_text
from billpay.orders import BillOrder, BillType
from billpay.providers.base import (
    NOT_FOUND_GRACE,
    AccountCheck,
    ErrorClass,
    PaymentOutcome,
    PaymentResult,
)
from billpay.states import BillState
from billpay.tokens import mask_token

S = BillState

# Bill types checked by format and network only: the providers have nothing to verify.
NO_PROVIDER_VERIFY = frozenset({BillType.AIRTIME, BillType.DATA})
# Stored error texts are capped; refund reasons are shorter still (they are shown to users).
ERROR_TEXT_LIMIT = 500
REFUND_REASON_LIMIT = 200
# Error classes that are ours to fix: an operator is alerted (once an hour per provider).
ALERTING_CLASSES = frozenset({ErrorClass.CONFIGURATION, ErrorClass.INSUFFICIENT_FLOAT})
# A bill whose pay keeps being refused for our configuration (credentials, VTpass 085) is
# refunded this long after the first refusal: the user's cNGN is held until then.
CONFIGURATION_GIVE_UP = timedelta(hours=24)
# The longest wait between two pays refused for our configuration (the retry steps, then
# doubling the longest step up to this).
CONFIGURATION_MAX_WAIT_SECONDS = 3600
# Attempt error classes after which a provider counts as tried definitively for the bill. A
# configuration refusal is ours to fix, so that provider stays worth trying again.
_DEFINITIVE_CLASSES = frozenset(
    str(c) for c in ErrorClass if c not in (ErrorClass.TRANSIENT, ErrorClass.CONFIGURATION)
)


class RetrySettings(Protocol):
    """The part of ``billpay.config.Settings`` the rules read."""

    max_retries: int
    pending_alert_seconds: int

    def backoff_for_retry(self, attempt: int) -> int: ...

    def backoff_for_requery(self, attempt: int) -> int: ...


@dataclass(frozen=True, slots=True)
class PayHistory:
    """What the bill's earlier pay attempts say (``provider_attempts``, oldest first): who paid
    it, who failed it definitively, and how often and since when our configuration was refused."""

    providers: tuple[str, ...] = ()
    definitive: frozenset[str] = frozenset()
    configuration_failures: int = 0
    configuration_since: datetime | None = None

    @classmethod
    def from_attempts(cls, attempts: Sequence[Mapping[str, Any]]) -> PayHistory:
        # The refusals that count are the current run of them: the latest attempts, back to the
        # last one that was not refused for our configuration (a fix in between starts over).
        refused: list[Mapping[str, Any]] = []
        for attempt in reversed(attempts):
            if attempt.get("error_class") != str(ErrorClass.CONFIGURATION):
                break
            refused.append(attempt)
        return cls(
            providers=tuple(a["provider"] for a in attempts),
            definitive=frozenset(
                a["provider"] for a in attempts if a.get("error_class") in _DEFINITIVE_CLASSES
            ),
            configuration_failures=len(refused),
            configuration_since=min((a["started_at"] for a in refused), default=None),
        )


@dataclass(frozen=True, slots=True)
class Conditions:
    """What a rule decides under, besides the bill and the answer: the retry settings, the
    time of the decision, the providers that may pay the bill, in order, and the bill's pay
    history (empty where the step did not load it)."""

    settings: RetrySettings
    now: datetime
    route: Sequence[str] = ()
    history: PayHistory = PayHistory()


@dataclass(frozen=True, slots=True)
class BillFacts:
    """What the rules need of a ``bill_payments`` row, as it was when the step loaded it."""

    id: int
    reference: str
    status: BillState
    provider: str | None  # the provider of the latest pay attempt
    attempt_reference: str | None  # the open pay attempt, if any
    retry_count: int
    requery_count: int
    last_error_class: str | None
    updated_at: datetime | None  # the last state change

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> BillFacts:
        return cls(
            id=int(row["id"]),
            reference=row["reference"],
            status=S(row["status"]),
            provider=row.get("provider"),
            attempt_reference=row.get("attempt_reference"),
            retry_count=int(row.get("retry_count") or 0),
            requery_count=int(row.get("requery_count") or 0),
            last_error_class=row.get("last_error_class"),
            updated_at=row.get("updated_at"),
        )


# --- refund reasons: the one place their text is written -----------------------------------


def refund_reason_account_invalid() -> str:
    return "account_invalid"


def refund_reason_provider_failed(message: str | None) -> str:
    return f"provider_failed: {message or ''}"[:REFUND_REASON_LIMIT]


def refund_reason_operator() -> str:
    return "operator_refund"


def refund_reason_for(status: BillState | str, last_error: str | None) -> str:
    """The reason for a bill found waiting in ``account_invalid`` / ``provider_failed`` (a crash
    between deciding the failure and creating the refund)."""
    if S(status) is S.ACCOUNT_INVALID:
        return refund_reason_account_invalid()
    return refund_reason_provider_failed(last_error)


# --- verify --------------------------------------------------------------------------------


def needs_provider_verify(order: BillOrder) -> bool:
    return order.bill_type not in NO_PROVIDER_VERIFY


def after_verify(
    bill: BillFacts, order: BillOrder, check: AccountCheck, when: Conditions
) -> Decision:
    """The verification's answer (``valid`` True/False, or None when nobody could say)."""
    if check.valid is True:
        problem = amount_outside(order, check)
        if problem:
            return account_invalid(bill, problem)
        return verified(bill, check)
    if check.valid is False:
        return account_invalid(bill, check.message or check.reason_code or "account invalid")
    return verify_later(bill, check, when)


def verify_without_route(
    bill: BillFacts, order: BillOrder, when: Conditions, *, configured: bool = True
) -> Decision:
    """Nobody on the route can serve this biller or plan.

    ``configured``: every provider the route names has an adapter, so it is the catalogue that
    says no (the biller or plan vanished from every provider on the route, or each lists it
    above what the bill collected). Nothing was sent, so the bill is refunded, as the pay stage
    does (``no_route_result``), never held forever. Otherwise a provider of the route is not
    configured at all, our mistake: wait and alert, never refund on it."""
    if not configured:
        check = AccountCheck(
            valid=None,
            error_class=ErrorClass.CONFIGURATION,
            message=f"no configured provider serves {order.bill_type} {order.biller}",
        )
        return verify_later(bill, check, when)
    reason = f"no provider on the route sells {order.bill_type} {order.biller} now"
    return refund_at_verification(reason, ErrorClass.PERMANENT)


def refund_at_verification(reason: str, error_class: ErrorClass) -> Decision:
    """Verification gave up before any pay was sent: refund the bill, saying why."""
    return Decision(
        source=S.VERIFYING_ACCOUNT,
        target=S.PROVIDER_FAILED,
        summary=f"refunding: {reason}",
        detail=reason,
        error=ErrorNote(reason[:ERROR_TEXT_LIMIT], str(error_class)),
        refund_reason=refund_reason_provider_failed(reason),
    )


def verified(bill: BillFacts, check: AccountCheck) -> Decision:
    verification = {
        "customer_name": check.customer_name,
        "address": check.address,
        "arrears_kobo": check.arrears_kobo,
        "provider": check.call.provider if check.call else None,
        "message": check.message,
    }
    return Decision(
        source=S.VERIFYING_ACCOUNT,
        target=S.PROCESSING_BILL,
        summary="account verified",
        detail=f"account ok: {check.customer_name or check.message or ''}".strip(),
        verification={k: v for k, v in verification.items() if v is not None},
        retry_count=0,  # verification retries are spent; paying gets its own budget
        error=CLEAR_ERROR,
    )


def account_invalid(bill: BillFacts, reason: str) -> Decision:
    return Decision(
        source=S.VERIFYING_ACCOUNT,
        target=S.ACCOUNT_INVALID,
        summary=f"account invalid: {reason}",
        detail=reason,
        error=ErrorNote(reason, str(ErrorClass.ACCOUNT_INVALID)),
        refund_reason=refund_reason_account_invalid(),
    )


def verify_later(bill: BillFacts, check: AccountCheck, when: Conditions) -> Decision:
    """The provider could not say (down, credentials, float): ask again after a backoff; refund
    only once the retries are spent, and never for our own configuration problem."""
    error_class = check.error_class or ErrorClass.TRANSIENT
    message = check.message or str(error_class)
    retries, settings, now = bill.retry_count, when.settings, when.now
    if retries >= settings.max_retries and error_class is not ErrorClass.CONFIGURATION:
        reason = f"verification failed {retries + 1} times: {message}"
        return refund_at_verification(reason, error_class)
    backoff = settings.backoff_for_retry(retries + 1)
    return Decision(
        source=S.VERIFYING_ACCOUNT,
        target=S.VERIFYING_ACCOUNT,
        summary=f"verify retry in {backoff}s: {message}",
        advances=False,
        retry_count=spend_retry(retries, error_class),
        next_attempt_at=now + timedelta(seconds=backoff),
        error=ErrorNote(message, str(error_class)),
        alert=provider_alert(bill, error_class, message, now),
    )


def amount_outside(order: BillOrder, check: AccountCheck) -> str | None:
    if check.min_amount_kobo and order.amount_kobo < check.min_amount_kobo:
        return f"amount below the biller's minimum of {format_naira(check.min_amount_kobo)}"
    if check.max_amount_kobo and order.amount_kobo > check.max_amount_kobo:
        return f"amount above the biller's maximum of {format_naira(check.max_amount_kobo)}"
    return None


# --- pay -----------------------------------------------------------------------------------


def choose_provider(
    route: Sequence[str],
    previous: Sequence[str],
    last_error_class: str | None,
    retries: int,
    settings: RetrySettings,
    tried: Collection[str] = (),
) -> str | None:
    """Who pays next, by name, always a provider of the route (None: nobody can): the first
    provider of the route; after a definitive (non-transient) failure, the next one; a
    transient failure retries the same provider, except that the last retry goes to the next
    provider when there is one. A last provider no longer on the route (its listing vanished)
    is never asked again: the route's first provider not yet tried definitively pays.

    ``previous`` are the providers of the earlier pay attempts (all closed as failed: this is
    only asked with no open attempt); ``tried`` those whose attempts failed definitively."""
    if not route:
        return None
    if not previous:
        return route[0]
    last = previous[-1]
    fallback = next_in_route(route, last, tried)
    if last not in route:
        return fallback
    last_chance = retries >= settings.max_retries
    if fallback is not None and (last_error_class != str(ErrorClass.TRANSIENT) or last_chance):
        return fallback
    return last


def next_in_route(
    route: Sequence[str], after: str | None, tried: Collection[str] = ()
) -> str | None:
    """The provider after ``after`` in the route (None: the first); None when exhausted. When
    ``after`` is not on the route (it left it), the route's first provider not in ``tried``
    (those that failed the bill definitively)."""
    if after is None:
        return route[0] if route else None
    if after not in route:
        return next((name for name in route if name not in tried and name != after), None)
    position = list(route).index(after) + 1
    return route[position] if position < len(route) else None


def no_route_result(order: BillOrder) -> PaymentResult:
    """Nobody on the route can pay this verified bill any more (the catalogue no longer lists
    the biller or plan at a provider not yet tried): no provider left, so the bill is refunded.
    Nothing was sent, so nothing can have been charged."""
    return PaymentResult(
        outcome=PaymentOutcome.FAILED,
        error_class=ErrorClass.PERMANENT,
        reason_code="no_route",
        message=f"no provider left for {order.bill_type} {order.biller}",
    )


def open_attempt_found(bill: BillFacts, now: datetime) -> Decision:
    """An attempt is open (a crash after it was recorded, or it never got an answer): it may
    have been charged. Ask the provider; never pay under a new reference."""
    return Decision(
        source=S.PROCESSING_BILL,
        target=S.PROVIDER_PROCESSING,
        summary="open attempt found: requery instead of paying again",
        detail=f"open attempt {bill.attempt_reference}: requery",
        next_attempt_at=now,
    )


def operator_requery(bill: BillFacts, now: datetime) -> Decision:
    """An operator asks about an open attempt of a bill still in ``processing_bill``: due now,
    even if the requery that follows fails."""
    return Decision(
        source=S.PROCESSING_BILL,
        target=S.PROVIDER_PROCESSING,
        summary="operator requery",
        detail="operator requery",
        next_attempt_at=now,
    )


# --- not found early: the same-reference resend ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Resend:
    """Send the open attempt's pay request again, under the same reference (never a new one)."""

    reference: str
    reason: str


def resend_after_requery(
    bill: BillFacts, result: PaymentResult, *, covered: bool, resent: bool, unanswered: bool
) -> Resend | None:
    """A requery said "not found" inside the grace, and the pay attempt has no recorded answer
    (``unanswered``): the request may never have left us (killed between commit and send). For
    a provider that refuses reused references (``covered``) sending it again under the same
    reference is safe: if the first request did arrive the provider refuses this one, otherwise
    this is the first and only pay. At most once per attempt (``resent``). An attempt whose
    answer was recorded (a timeout, a 5xx) provably left us, so it waits for the grace as
    before: a resend would add nothing but a second request in flight."""
    early = result.not_found and result.outcome is PaymentOutcome.PENDING
    if not early or not covered or resent or not unanswered or not bill.attempt_reference:
        return None
    return Resend(bill.attempt_reference, f"{bill.provider} has no record of it yet: resend")


def after_resend(bill: BillFacts, result: PaymentResult, when: Conditions) -> Decision:
    """The resend's answer, for a bill in ``provider_processing``. Only news about this
    reference is believed: SUCCESS completes, PENDING stays open. A refusal (the reference was
    used before: the first request arrived), a failure or no answer says nothing certain about
    the first request, so the attempt stays open as UNKNOWN and requery decides; never FAILED."""
    if result.outcome in (PaymentOutcome.SUCCESS, PaymentOutcome.PENDING):
        return after_requery(bill, result, when)
    why = f"resend answered {result.outcome}: {result.message or result.reason_code or ''}"
    error_class = result.error_class
    if result.duplicate_reference:
        why = "resend refused as a duplicate reference: the first request arrived"
    if result.reference_refused:
        # The reference is too old for the provider now (VTpass 085): the resend was refused
        # unrecorded, which says nothing about the first request. Not our clock: the attempt
        # is simply older than the provider accepts, so no configuration error.
        why = "resend refused: the reference is too old for the provider now; the grace decides"
        error_class = None
    doubt = PaymentResult(
        PaymentOutcome.UNKNOWN,
        error_class,
        reason_code=result.reason_code,
        message=why.strip(),
        provider_reference=result.provider_reference,
    )
    return still_open(bill, S.PROVIDER_PROCESSING, doubt, when)


# The stored outcome of a resend the provider refused as a reused reference.
RESEND_DUPLICATE = "duplicate"
# The stored outcome of a resend the provider refused for its reference (too old: VTpass 085):
# never recorded, so neither proof of the first request nor a request in flight.
RESEND_REFUSED = "refused"
# Resend answers that prove the provider knows the reference.
_RESEND_ACKNOWLEDGED = frozenset({RESEND_DUPLICATE, "pending", "success"})


def distrust_not_found(
    result: PaymentResult,
    *,
    resend_outcome: str | None,
    resend_started_at: datetime | None,
    now: datetime,
) -> PaymentResult:
    """ "Not found" after a resend, judged against the resend, not the first request.

    A resend the provider refused as a duplicate, or took (pending, success), proves it knows the
    reference: a later "not found", even past the grace, is a lagging lookup, never proof that
    nothing was charged. Any other resend (no answer yet, a timeout, a failure) is itself a
    request that may be in flight, so its "not found" is believed only ``NOT_FOUND_GRACE`` after
    the resend started (the reference's own stamp is older and would give it less). Otherwise
    the attempt stays open (UNKNOWN) instead of failing. A resend refused for its reference
    (``RESEND_REFUSED``: too old, VTpass 085) was recorded nowhere: the reference's own grace
    decides, as if there had been no resend."""
    if (
        resend_outcome == RESEND_REFUSED
        or resend_started_at is None
        or not (result.not_found and result.outcome is PaymentOutcome.FAILED)
    ):
        return result
    acknowledged = resend_outcome in _RESEND_ACKNOWLEDGED
    if not acknowledged and now - resend_started_at >= NOT_FOUND_GRACE + timedelta(minutes=1):
        return result
    why = (
        f"not found, but a resend was answered {resend_outcome}: still requerying"
        if acknowledged
        else "not found, but the resend is younger than the grace: still requerying"
    )
    return replace(
        result,
        outcome=PaymentOutcome.UNKNOWN,
        error_class=None,
        reason_code=f"{result.reason_code or 'not_found'}:after_resend",
        message=why,
    )


def after_pay(bill: BillFacts, result: PaymentResult, when: Conditions) -> Decision:
    """A pay call's answer, for a bill in ``processing_bill``."""
    return _after_outcome(bill, S.PROCESSING_BILL, result, when)


def after_requery(bill: BillFacts, result: PaymentResult, when: Conditions) -> Decision:
    """A requery's answer, for a bill in ``provider_processing``."""
    return _after_outcome(bill, S.PROVIDER_PROCESSING, result, when)


def _after_outcome(
    bill: BillFacts, state: BillState, result: PaymentResult, when: Conditions
) -> Decision:
    if result.outcome is PaymentOutcome.SUCCESS:
        return Decision(
            source=state,
            target=S.COMPLETED,
            summary="delivered",
            detail=f"delivered {mask_token(result.token) or ''}".strip(),
            token=result.token,
            units=result.units,
            provider_reference=result.provider_reference,
            error=CLEAR_ERROR,
        )
    if result.outcome in (PaymentOutcome.PENDING, PaymentOutcome.UNKNOWN):
        return still_open(bill, state, result, when)
    return failed(bill, state, result, when)


# Answers that say the provider took the transaction: what it reports charging is compared.
_CHARGING_OUTCOMES = frozenset({PaymentOutcome.SUCCESS, PaymentOutcome.PENDING})


def charged_amount_alert(bill: BillFacts, order: BillOrder, result: PaymentResult) -> Alert | None:
    """A provider that took the transaction and says it charged another amount than the bill's
    (what we collected): a plan whose price changed at the provider since our last sync, or a
    customer-set amount it rounded. Told to operators once per bill; a charge above what we
    collected is money we lose. The bill's outcome is not changed: the user got the product."""
    charged = result.amount_kobo
    if result.outcome not in _CHARGING_OUTCOMES or charged is None:
        return None
    if charged == order.amount_kobo:
        return None
    above = charged > order.amount_kobo
    text = (
        f"{bill.reference}: {bill.provider or 'provider'} charged {format_naira(charged)}, "
        f"we collected {format_naira(order.amount_kobo)}"
        f"{' (we lose the difference)' if above else ''}"
    )
    return Alert(
        kind="provider_charged_different_amount",
        text=text,
        dedupe_key=f"charged-amount:{bill.id}",
        payload={
            "reference": bill.reference,
            "provider": bill.provider,
            "attempt_reference": bill.attempt_reference,
            "bill_type": str(order.bill_type),
            "biller": order.biller,
            "product_code": order.product_code,
            "collected": naira_text(order.amount_kobo),
            "charged": naira_text(charged),
            "difference": naira_text(charged - order.amount_kobo),
            "above_collected": above,
        },
    )


def outcome_detail(result: PaymentResult) -> str:
    return f"{result.outcome}: {result.message or result.reason_code or ''}".strip()


def still_open(
    bill: BillFacts, state: BillState, result: PaymentResult, when: Conditions
) -> Decision:
    """PENDING or UNKNOWN: the attempt stays open and is requeried after a backoff."""
    requeries = bill.requery_count + 1 if state is S.PROVIDER_PROCESSING else 0
    backoff = when.settings.backoff_for_requery(requeries + 1)
    return Decision(
        source=state,
        target=S.PROVIDER_PROCESSING,
        summary=f"{result.outcome}, requery in {backoff}s",
        detail=outcome_detail(result),
        advances=state is S.PROCESSING_BILL,
        requery_count=requeries,
        next_attempt_at=when.now + timedelta(seconds=backoff),
        error=ErrorNote(
            (result.message or result.reason_code or str(result.outcome))[:ERROR_TEXT_LIMIT],
            str(result.error_class) if result.error_class else None,
        ),
        provider_reference=result.provider_reference or None,  # an empty one keeps ours
        alert=pending_alert(bill, state, when),
    )


def pending_alert(bill: BillFacts, state: BillState, when: Conditions) -> Alert | None:
    """A bill pending at its provider for longer than ``pending_alert_seconds``."""
    since = bill.updated_at if state is S.PROVIDER_PROCESSING and bill.updated_at else when.now
    if (when.now - since).total_seconds() <= when.settings.pending_alert_seconds:
        return None
    return Alert(
        kind="bill_pending_too_long",
        text=f"{bill.reference} pending at {bill.provider} since {since:%Y-%m-%d %H:%M}Z",
        dedupe_key=f"pending-alert:{bill.id}:{bill.attempt_reference}",
        payload={
            "reference": bill.reference,
            "provider": bill.provider,
            "attempt_reference": bill.attempt_reference,
            "since": since,
        },
    )


def failed(bill: BillFacts, state: BillState, result: PaymentResult, when: Conditions) -> Decision:
    """A definitive failure closes the attempt: what next depends on the error class and on
    how many retries are left."""
    error_class = result.error_class or ErrorClass.PERMANENT
    retries, settings, now = bill.retry_count, when.settings, when.now
    fallback = None
    if bill.provider:
        fallback = next_in_route(when.route, bill.provider, when.history.definitive)
    message = (result.message or result.reason_code or "failed")[:ERROR_TEXT_LIMIT]
    error = ErrorNote(message, str(error_class))
    if error_class is ErrorClass.CONFIGURATION and fallback is None:
        return configuration_wait(bill, state, result, when)
    give_up = (
        error_class is ErrorClass.ACCOUNT_INVALID
        or (error_class is ErrorClass.PERMANENT and fallback is None)
        or (retries >= settings.max_retries and error_class is not ErrorClass.CONFIGURATION)
    )
    if give_up:
        return Decision(
            source=state,
            target=S.PROVIDER_FAILED,
            summary=f"failed, refunding: {message}",
            detail=outcome_detail(result),
            error=error,
            refund_reason=refund_reason_provider_failed(message),
        )
    # Fall back at once (due now) after a definitive failure; otherwise wait the backoff.
    immediate = fallback is not None and error_class is not ErrorClass.TRANSIENT
    backoff = 0 if immediate else settings.backoff_for_retry(retries + 1)
    then = f"fallback to {fallback}" if immediate else f"retry in {backoff}s"
    return Decision(
        source=state,
        target=S.RETRY_SCHEDULED,
        summary=f"failed ({error_class}): {message}; {then}",
        detail=outcome_detail(result),
        retry_count=spend_retry(retries, error_class),
        next_attempt_at=now + timedelta(seconds=backoff),
        error=error,
        alert=provider_alert(bill, error_class, message, now),
    )


def configuration_backoff(failures: int, settings: RetrySettings) -> int:
    """Seconds before the next pay after ``failures`` pays refused for our configuration: the
    retry steps, then the longest step doubled each time up to CONFIGURATION_MAX_WAIT_SECONDS,
    so a refusal nobody fixes costs a few calls an hour, not one every ten seconds."""
    failures = max(failures, 1)
    if failures <= settings.max_retries + 1:
        return settings.backoff_for_retry(failures)
    longest = settings.backoff_for_retry(settings.max_retries + 1)
    doubled = longest * 2 ** min(failures - settings.max_retries - 1, 16)
    return max(longest, min(doubled, CONFIGURATION_MAX_WAIT_SECONDS))


def configuration_wait(
    bill: BillFacts, state: BillState, result: PaymentResult, when: Conditions
) -> Decision:
    """A pay refused for our configuration with nobody else to try: wait (the user's retries are
    not spent, the cNGN stays held) for ever longer, and alert; once CONFIGURATION_GIVE_UP has
    passed since the first such refusal of this bill, refund it and tell an operator. The
    refused attempt is closed unpaid, so the refund cannot meet a payment."""
    history, now = when.history, when.now
    failures = history.configuration_failures + 1  # this answer included
    since = history.configuration_since or now
    message = (result.message or result.reason_code or "failed")[:ERROR_TEXT_LIMIT]
    error = ErrorNote(message, str(ErrorClass.CONFIGURATION))
    if now - since >= CONFIGURATION_GIVE_UP:
        why = f"refused for our configuration {failures} times since {since:%Y-%m-%d %H:%M}Z"
        return Decision(
            source=state,
            target=S.PROVIDER_FAILED,
            summary=f"failed, refunding: {why}: {message}",
            detail=f"{outcome_detail(result)}; {why}",
            error=error,
            refund_reason=refund_reason_provider_failed(message),
            alert=Alert(
                kind="bill_refunded_configuration",
                text=f"{bill.reference} refunded: {bill.provider or 'provider'} {why}: {message}",
                dedupe_key=f"refunded-configuration:{bill.id}",
                payload={
                    "reference": bill.reference,
                    "provider": bill.provider,
                    "message": message,
                    "failures": failures,
                    "since": since,
                },
            ),
        )
    backoff = configuration_backoff(failures, when.settings)
    return Decision(
        source=state,
        target=S.RETRY_SCHEDULED,
        summary=f"failed (configuration): {message}; retry in {backoff}s",
        detail=outcome_detail(result),
        retry_count=bill.retry_count,  # ours to fix: the user's retries are not spent
        next_attempt_at=now + timedelta(seconds=backoff),
        error=error,
        alert=provider_alert(bill, ErrorClass.CONFIGURATION, message, now),
    )


def spend_retry(retries: int, error_class: ErrorClass) -> int:
    """Our own configuration problems do not use up the user's retries: they wait for us."""
    return retries if error_class is ErrorClass.CONFIGURATION else retries + 1


def provider_alert(
    bill: BillFacts, error_class: ErrorClass, message: str, now: datetime
) -> Alert | None:
    """Credentials refused or our float is low: tell an operator, once an hour per provider."""
    if error_class not in ALERTING_CLASSES:
        return None
    return Alert(
        kind=f"provider_{error_class}",
        text=f"{error_class} at {bill.provider or 'provider'}: {message}",
        dedupe_key=f"{error_class}:{bill.provider}:{now:%Y%m%d%H}",
        payload={"reference": bill.reference, "provider": bill.provider, "message": message},
    )


def operator_refund(status: BillState) -> Decision:
    """An operator sends a bill to refund (only where ``billpay.bills.stuck.plan`` allows it: no
    money can have reached a provider). The stored error note is kept."""
    return Decision(
        source=status,
        target=S.PROVIDER_FAILED,
        summary="sent to refund",
        detail="operator refund",
        refund_reason=refund_reason_operator(),
    )


# --- a step that raised (an exception, not a provider's answer; issue 12) ------------------

# Consecutive failed steps after which an operator is alerted (once an hour per bill).
STEP_FAILURE_ALERT_AFTER = 3
STEP_ERROR_LIMIT = 300


def step_retry_at(failures: int, when: Conditions) -> datetime:
    """When a bill whose step raised ``failures`` times in a row is due again: the retry
    backoff, so a step that keeps raising costs one try per backoff, never one per tick."""
    return when.now + timedelta(seconds=when.settings.backoff_for_retry(failures))


def step_failure_alert(
    bill: BillFacts, stage: str, failures: int, error: str, now: datetime
) -> Alert | None:
    """Tell an operator once a bill's steps have raised ``STEP_FAILURE_ALERT_AFTER`` times in a
    row (the pipeline cannot fix it alone); once an hour per bill."""
    if failures < STEP_FAILURE_ALERT_AFTER:
        return None
    return Alert(
        kind="bill_step_failing",
        text=f"{bill.reference}: step {stage} failed {failures} times in a row: {error}",
        dedupe_key=f"step-failing:{bill.id}:{now:%Y%m%d%H}",
        payload={
            "reference": bill.reference,
            "status": str(bill.status),
            "stage": stage,
            "failures": failures,
            "error": error,
            "attempt_reference": bill.attempt_reference,
        },
    )
