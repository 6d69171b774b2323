"""Bill processing steps, one claimed bill at a time: verify, pay, requery, retry.

Pure domain + store calls; no Prefect. ``tasks/`` wraps each step with retries, names and
concurrency. Every step is safe to run again after a crash at any line:

- a pay attempt row (with its fixed reference) is committed before the HTTP call, and the bill
  remembers it in ``attempt_reference`` until the attempt is definitively failed; a bill that
  has an open attempt is requeried, never paid again;
- every write is a compare-and-set guarded by the expected state and by this worker's lease, so
  a worker whose lease was taken over writes nothing.

Business outcomes (invalid account, declined, refund) are returned as ``StepResult``; the only
exceptions are for things an operator must see (``NeedsAttention``) and infrastructure errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from billpay.config import Settings
from billpay.money import format_naira
from billpay.orders import BillOrder, BillType
from billpay.providers.base import (
    AccountCheck,
    ErrorClass,
    PaymentOutcome,
    PaymentResult,
    make_attempt_reference,
)
from billpay.providers.routing import ProviderRouter
from billpay.states import BillState
from billpay.store import Database
from billpay.store import attempts as attempt_store
from billpay.store import bills as bill_store
from billpay.store import notifications as outbox
from billpay.tokens import mask_account, mask_token

log = logging.getLogger(__name__)
S = BillState

# Bill types checked by format and network only: the providers have nothing to verify.
NO_PROVIDER_VERIFY = frozenset({BillType.AIRTIME, BillType.DATA})


class NeedsAttention(Exception):
    """Raised after the bill was left in a correct, resumable state, so the task shows as failed
    in the UI: credentials refused, our provider float is low, a bill pending for too long."""


@dataclass
class StepResult:
    reference: str
    stage: str
    before: str
    after: str
    detail: str = ""
    advanced: bool = True
    alert: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "stage": self.stage,
            "before": self.before,
            "after": self.after,
            "advanced": self.advanced,
            "detail": self.detail,
            "alert": self.alert,
        }


# A call guard bounds concurrent calls per provider (see billpay.store.slots); identity by default.
CallGuard = Callable[[str], Any]


@dataclass
class Processor:
    db: Database
    settings: Settings
    router: ProviderRouter
    worker: str
    guard: CallGuard = lambda _provider: nullcontext()
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    # --- verify ---------------------------------------------------------------------------

    def verify(self, bill_id: int) -> StepResult:
        row = self._load(bill_id)
        before = row["status"]
        if before not in (S.CNGN_RECEIVED, S.VERIFYING_ACCOUNT):
            return self._skipped(row, "verify")
        with self.db.begin() as conn:
            if before == S.CNGN_RECEIVED and not bill_store.transition(
                conn,
                bill_id,
                S.CNGN_RECEIVED,
                S.VERIFYING_ACCOUNT,
                actor=self.worker,
                worker=self.worker,
                keep_claim=True,
                detail="re-verifying the account",
            ):
                return self._skipped(row, "verify")
        order = bill_store.to_order(row)
        if order.bill_type in NO_PROVIDER_VERIFY:
            return self._verified(
                row, AccountCheck(valid=True, message="format and network checked")
            )
        providers = self.router.route(order)
        if not providers:
            # Our routing cannot serve this biller: wait and alert, never refund on our mistake.
            return self._verify_later(
                row,
                AccountCheck(
                    valid=None,
                    error_class=ErrorClass.CONFIGURATION,
                    message=f"no configured provider serves {order.bill_type} {order.biller}",
                ),
            )
        check = AccountCheck(valid=None)
        for provider in providers:
            # The first definitive answer wins; a provider that cannot answer (down, our
            # credentials, not its product) hands over to the next one in the route.
            with self.guard(provider.name):
                check = provider.verify_account(order)
            if check.call is not None:
                with self.db.begin() as conn:
                    attempt_store.record_call(conn, bill_id, check.call)
            if check.valid is not None:
                break
        if check.valid is True:
            amount_problem = _amount_outside(order, check)
            if amount_problem:
                return self._account_invalid(row, amount_problem)
            return self._verified(row, check)
        if check.valid is False:
            return self._account_invalid(
                row, check.message or check.reason_code or "account invalid"
            )
        return self._verify_later(row, check)

    def _verified(self, row: Mapping[str, Any], check: AccountCheck) -> StepResult:
        verification = {
            "customer_name": check.customer_name,
            "address": check.address,
            "arrears_kobo": check.arrears_kobo,
            "provider": check.call.provider if check.call else None,
            "message": check.message,
        }
        with self.db.begin() as conn:
            ok = bill_store.transition(
                conn,
                row["id"],
                S.VERIFYING_ACCOUNT,
                S.PROCESSING_BILL,
                actor=self.worker,
                worker=self.worker,
                detail=f"account ok: {check.customer_name or check.message or ''}".strip(),
                verification={k: v for k, v in verification.items() if v is not None},
                retry_count=0,  # verification retries are spent; paying gets its own budget
                last_error=None,
                last_error_class=None,
            )
        return self._result(
            row, "verify", S.PROCESSING_BILL if ok else row["status"], ok, "account verified"
        )

    def _account_invalid(self, row: Mapping[str, Any], reason: str) -> StepResult:
        with self.db.begin() as conn:
            ok = bill_store.transition(
                conn,
                row["id"],
                S.VERIFYING_ACCOUNT,
                S.ACCOUNT_INVALID,
                actor=self.worker,
                worker=self.worker,
                detail=reason,
                last_error=reason,
                last_error_class=str(ErrorClass.ACCOUNT_INVALID),
            )
            if ok:
                bill_store.transition_to_refund(
                    conn, row["id"], "account_invalid", actor=self.worker
                )
        after = S.REFUND_INITIATED if ok else row["status"]
        return self._result(row, "verify", after, ok, f"account invalid: {reason}")

    def _verify_later(self, row: Mapping[str, Any], check: AccountCheck) -> StepResult:
        """The provider could not say (down, credentials, float): try again, never refund on it
        unless retries are used up for a transient reason."""
        error_class = check.error_class or ErrorClass.TRANSIENT
        message = check.message or str(error_class)
        retries = int(row["retry_count"])
        if retries >= self.settings.max_retries and error_class is not ErrorClass.CONFIGURATION:
            return self._to_refund_via_failure(
                row,
                f"verification failed {retries + 1} times: {message}",
                S.VERIFYING_ACCOUNT,
                error_class=error_class,
            )
        backoff = self.settings.backoff_for_retry(retries + 1)
        with self.db.begin() as conn:
            bill_store.update_fields(
                conn,
                row["id"],
                S.VERIFYING_ACCOUNT,
                worker=self.worker,
                # Our configuration problems do not use up the user's retries.
                retry_count=retries if error_class is ErrorClass.CONFIGURATION else retries + 1,
                next_attempt_at=_after(self.now(), backoff),
                last_error=message,
                last_error_class=str(error_class),
                claimed_by=None,
                claimed_until=None,
            )
            alert = self._alert_for(conn, row, error_class, message)
        return self._result(
            row, "verify", row["status"], False, f"verify retry in {backoff}s: {message}", alert
        )

    # --- pay ------------------------------------------------------------------------------

    def pay(self, bill_id: int) -> StepResult:
        row = self._load(bill_id)
        if row["status"] != S.PROCESSING_BILL:
            return self._skipped(row, "pay")
        order = bill_store.to_order(row)
        if row["attempt_reference"]:
            # An attempt is open (a crash after it was recorded, or it never got an answer):
            # it may have been charged. Ask the provider; never pay under a new reference.
            with self.db.begin() as conn:
                ok = bill_store.transition(
                    conn,
                    bill_id,
                    S.PROCESSING_BILL,
                    S.PROVIDER_PROCESSING,
                    actor=self.worker,
                    worker=self.worker,
                    detail=f"open attempt {row['attempt_reference']}: requery",
                    next_attempt_at=self.now(),
                )
            return self._result(
                row,
                "pay",
                S.PROVIDER_PROCESSING if ok else row["status"],
                ok,
                "open attempt found: requery instead of paying again",
            )
        with self.db.begin() as conn:
            previous = attempt_store.pay_attempts(conn, bill_id)
        provider = self._choose_provider(
            order, previous, row.get("last_error_class"), int(row["retry_count"])
        )
        if provider is None:
            # Our routing cannot serve this biller: a configuration problem, not the user's.
            # The bill waits (without using its retries) and operators are alerted.
            return self._apply_payment(
                row,
                S.PROCESSING_BILL,
                PaymentResult(
                    outcome=PaymentOutcome.FAILED,
                    error_class=ErrorClass.CONFIGURATION,
                    reason_code="no_route",
                    message=f"no configured provider serves {order.bill_type} {order.biller}",
                ),
                attempt_id=None,
                stage="pay",
            )
        attempt_no = len(previous) + 1
        is_fallback = bool(previous) and previous[-1]["provider"] != provider.name
        # Take the provider slot first: the attempt is committed only once the call can go out
        # at once, so a worker never sits on a committed attempt while its lease runs out.
        with self.guard(provider.name):
            reference = make_attempt_reference(order.reference, attempt_no, self.now())
            with self.db.begin() as conn:
                # Still ours (lease not taken over), still without an open attempt: record the
                # attempt and renew the lease for the call.
                if not bill_store.update_fields(
                    conn,
                    bill_id,
                    S.PROCESSING_BILL,
                    worker=self.worker,
                    provider=provider.name,
                    attempt_reference=reference,
                    claimed_until=_after(self.now(), self.settings.lease_seconds),
                    require_no_open_attempt=True,
                ):
                    return self._skipped(row, "pay")
                attempt_id = attempt_store.start_pay_attempt(
                    conn,
                    bill_id=bill_id,
                    provider=provider.name,
                    reference=reference,
                    attempt_no=attempt_no,
                    is_fallback=is_fallback,
                )
            # committed: from here on a crash leaves an open attempt that will be requeried
            log.info(
                "paying %s via %s ref=%s account=%s",
                order.reference,
                provider.name,
                reference,
                mask_account(order.account_number),
            )
            result = provider.pay(order, reference)
        row = {**row, "provider": provider.name, "attempt_reference": reference}
        return self._apply_payment(
            row, S.PROCESSING_BILL, result, attempt_id=attempt_id, stage="pay"
        )

    def _choose_provider(
        self,
        order: BillOrder,
        previous: list[dict[str, Any]],
        last_error_class: str | None,
        retries: int,
    ):  # noqa: ANN202
        """The first provider of the route; after a definitive (non-transient) failure, the
        next one; a transient failure retries the same provider, except that the last retry
        goes to the next provider when there is one. Only reached with no open attempt, i.e.
        the previous attempt is closed as failed."""
        if not previous:
            return self.router.first_provider(order)
        last = previous[-1]
        fallback = self.router.next_provider(order, last["provider"])
        last_chance = retries >= self.settings.max_retries
        if fallback is not None and (last_error_class != str(ErrorClass.TRANSIENT) or last_chance):
            return fallback
        try:
            return self.router.get(last["provider"])
        except KeyError:
            return self.router.first_provider(order)

    # --- requery --------------------------------------------------------------------------

    def requery(self, bill_id: int) -> StepResult:
        row = self._load(bill_id)
        if row["status"] != S.PROVIDER_PROCESSING:
            return self._skipped(row, "requery")
        order = bill_store.to_order(row)
        reference = row["attempt_reference"]
        if not reference or not row["provider"]:
            raise NeedsAttention(f"{row['reference']}: provider_processing without an open attempt")
        provider = self.router.get(row["provider"])
        with self.guard(provider.name):
            result = provider.requery(order, reference)
        return self._apply_payment(
            row, S.PROVIDER_PROCESSING, result, attempt_id=None, stage="requery"
        )

    # --- retry ----------------------------------------------------------------------------

    def retry(self, bill_id: int) -> StepResult:
        row = self._load(bill_id)
        if row["status"] != S.RETRY_SCHEDULED:
            return self._skipped(row, "retry")
        with self.db.begin() as conn:
            ok = bill_store.transition(
                conn,
                bill_id,
                S.RETRY_SCHEDULED,
                S.PROCESSING_BILL,
                actor=self.worker,
                worker=self.worker,
                keep_claim=True,
                detail=f"retry {row['retry_count']}",
            )
        if not ok:
            return self._skipped(row, "retry")
        result = self.pay(bill_id)
        result.stage = "retry"
        result.before = str(S.RETRY_SCHEDULED)
        return result

    # --- outcomes -------------------------------------------------------------------------

    def _apply_payment(
        self,
        row: Mapping[str, Any],
        state: BillState,
        result: PaymentResult,
        *,
        attempt_id: int | None,
        stage: str,
    ) -> StepResult:
        bill_id = row["id"]
        detail = f"{result.outcome}: {result.message or result.reason_code or ''}".strip()
        with self.db.begin() as conn:
            if attempt_id is not None and result.call is not None:
                attempt_store.finish_attempt(conn, attempt_id, result.call)
            elif attempt_id is not None:  # an adapter that reported no call record
                attempt_store.close_attempt(
                    conn,
                    attempt_id,
                    str(result.outcome),
                    str(result.error_class) if result.error_class else None,
                )
            elif result.call is not None:
                attempt_store.record_call(conn, bill_id, result.call)
            if result.outcome is PaymentOutcome.SUCCESS:
                ok = bill_store.transition(
                    conn,
                    bill_id,
                    state,
                    S.COMPLETED,
                    actor=self.worker,
                    worker=self.worker,
                    detail=f"delivered {mask_token(result.token) or ''}".strip(),
                    token=result.token,
                    units=result.units,
                    provider_reference=result.provider_reference,
                    completed_at=self.now(),
                    last_error=None,
                    last_error_class=None,
                )
                return self._result(
                    row, stage, S.COMPLETED if ok else row["status"], ok, "delivered"
                )
            if result.outcome in (PaymentOutcome.PENDING, PaymentOutcome.UNKNOWN):
                return self._still_open(conn, row, state, result, stage, detail)
            return self._failed(conn, row, state, result, stage, detail)

    def _still_open(
        self,
        conn: Any,
        row: Mapping[str, Any],
        state: BillState,
        result: PaymentResult,
        stage: str,
        detail: str,
    ) -> StepResult:
        requeries = int(row["requery_count"]) + 1 if state == S.PROVIDER_PROCESSING else 0
        backoff = self.settings.backoff_for_requery(requeries + 1)
        fields = dict(
            requery_count=requeries,
            next_attempt_at=_after(self.now(), backoff),
            last_error=(result.message or result.reason_code or str(result.outcome))[:500],
            last_error_class=str(result.error_class) if result.error_class else None,
        )
        if result.provider_reference:
            fields["provider_reference"] = result.provider_reference
        if state == S.PROCESSING_BILL:
            ok = bill_store.transition(
                conn,
                row["id"],
                state,
                S.PROVIDER_PROCESSING,
                actor=self.worker,
                worker=self.worker,
                detail=detail,
                **fields,
            )
        else:
            ok = bill_store.update_fields(
                conn,
                row["id"],
                state,
                worker=self.worker,
                claimed_by=None,
                claimed_until=None,
                **fields,
            )
        alert = None
        pending_since = row["updated_at"] if state == S.PROVIDER_PROCESSING else self.now()
        if (self.now() - pending_since).total_seconds() > self.settings.pending_alert_seconds:
            alert = f"{row['reference']} pending at {row['provider']} since {pending_since:%Y-%m-%d %H:%M}Z"
            outbox.enqueue(
                conn,
                kind="bill_pending_too_long",
                bill_id=row["id"],
                payload={
                    "reference": row["reference"],
                    "provider": row["provider"],
                    "attempt_reference": row["attempt_reference"],
                    "since": pending_since,
                },
                dedupe_key=f"pending-alert:{row['id']}:{row['attempt_reference']}",
            )
        after = S.PROVIDER_PROCESSING if ok else row["status"]
        return self._result(
            row,
            stage,
            after,
            ok and state == S.PROCESSING_BILL,
            f"{result.outcome}, requery in {backoff}s",
            alert,
        )

    def _failed(
        self,
        conn: Any,
        row: Mapping[str, Any],
        state: BillState,
        result: PaymentResult,
        stage: str,
        detail: str,
    ) -> StepResult:
        """A definitive failure closes the attempt (attempt_reference cleared): what next depends
        on the error class and on how many retries are left."""
        error_class = result.error_class or ErrorClass.PERMANENT
        order = bill_store.to_order(row)
        retries = int(row["retry_count"])
        fallback = self.router.next_provider(order, row["provider"]) if row["provider"] else None
        message = (result.message or result.reason_code or "failed")[:500]
        common = dict(last_error=message, last_error_class=str(error_class), attempt_reference=None)
        give_up = (
            error_class is ErrorClass.ACCOUNT_INVALID
            or (error_class is ErrorClass.PERMANENT and fallback is None)
            or (
                retries >= self.settings.max_retries and error_class is not ErrorClass.CONFIGURATION
            )
        )
        if give_up:
            ok = bill_store.transition(
                conn,
                row["id"],
                state,
                S.PROVIDER_FAILED,
                actor=self.worker,
                worker=self.worker,
                detail=detail,
                **common,
            )
            if ok:
                bill_store.transition_to_refund(
                    conn, row["id"], f"provider_failed: {message}"[:200], actor=self.worker
                )
            return self._result(
                row,
                stage,
                S.REFUND_INITIATED if ok else row["status"],
                ok,
                f"failed, refunding: {message}",
            )
        # Fall back at once (due now) after a definitive failure; otherwise wait the backoff.
        immediate = fallback is not None and error_class is not ErrorClass.TRANSIENT
        backoff = 0 if immediate else self.settings.backoff_for_retry(retries + 1)
        # Our own configuration problems do not use up the user's retries: they wait for an operator.
        new_retries = retries if error_class is ErrorClass.CONFIGURATION else retries + 1
        ok = bill_store.transition(
            conn,
            row["id"],
            state,
            S.RETRY_SCHEDULED,
            actor=self.worker,
            worker=self.worker,
            detail=detail,
            retry_count=new_retries,
            next_attempt_at=_after(self.now(), backoff),
            **common,
        )
        alert = self._alert_for(conn, row, error_class, message)
        nxt = f"fallback to {fallback.name}" if immediate and fallback else f"retry in {backoff}s"
        return self._result(
            row,
            stage,
            S.RETRY_SCHEDULED if ok else row["status"],
            ok,
            f"failed ({error_class}): {message}; {nxt}",
            alert,
        )

    def _to_refund_via_failure(
        self,
        row: Mapping[str, Any],
        reason: str,
        state: BillState,
        error_class: ErrorClass = ErrorClass.PERMANENT,
    ) -> StepResult:
        """No money moved to a provider: verifying_account/processing_bill -> provider_failed
        (through retry_scheduled where the table requires) -> refund."""
        with self.db.begin() as conn:
            ok = True
            if state == S.VERIFYING_ACCOUNT:
                ok = bill_store.transition(
                    conn,
                    row["id"],
                    state,
                    S.RETRY_SCHEDULED,
                    actor=self.worker,
                    worker=self.worker,
                    keep_claim=True,
                    detail=reason,
                )
                state = S.RETRY_SCHEDULED
            ok = ok and bill_store.transition(
                conn,
                row["id"],
                state,
                S.PROVIDER_FAILED,
                actor=self.worker,
                worker=self.worker,
                detail=reason,
                last_error=reason[:500],
                last_error_class=str(error_class),
                attempt_reference=None,
            )
            if ok:
                bill_store.transition_to_refund(
                    conn, row["id"], f"provider_failed: {reason}"[:200], actor=self.worker
                )
        return self._result(
            row,
            "verify" if row["status"] != S.PROCESSING_BILL else "pay",
            S.REFUND_INITIATED if ok else row["status"],
            ok,
            f"refunding: {reason}",
        )

    def _alert_for(
        self, conn: Any, row: Mapping[str, Any], error_class: ErrorClass, message: str
    ) -> str | None:
        if error_class not in (ErrorClass.CONFIGURATION, ErrorClass.INSUFFICIENT_FLOAT):
            return None
        alert = f"{error_class} at {row['provider'] or 'provider'}: {message}"
        hour = self.now().strftime("%Y%m%d%H")
        outbox.enqueue(
            conn,
            kind=f"provider_{error_class}",
            bill_id=row["id"],
            payload={
                "reference": row["reference"],
                "provider": row["provider"],
                "message": message,
            },
            dedupe_key=f"{error_class}:{row['provider']}:{hour}",
        )
        return alert

    # --- helpers --------------------------------------------------------------------------

    def _load(self, bill_id: int) -> dict[str, Any]:
        with self.db.connect() as conn:
            row = bill_store.get_by_id(conn, bill_id)
        if row is None:
            raise LookupError(f"bill {bill_id} does not exist")
        return row

    def _skipped(self, row: Mapping[str, Any], stage: str) -> StepResult:
        return StepResult(
            row["reference"],
            stage,
            row["status"],
            row["status"],
            "not in this stage's state or claimed elsewhere",
            advanced=False,
        )

    @staticmethod
    def _result(
        row: Mapping[str, Any],
        stage: str,
        after: str,
        advanced: bool,
        detail: str,
        alert: str | None = None,
    ) -> StepResult:
        return StepResult(
            row["reference"], stage, str(row["status"]), str(after), detail, advanced, alert
        )


def _after(now: datetime, seconds: int) -> datetime:
    return now + timedelta(seconds=seconds)


def _amount_outside(order: BillOrder, check: AccountCheck) -> str | None:
    if check.min_amount_kobo and order.amount_kobo < check.min_amount_kobo:
        return f"amount below the biller's minimum of {format_naira(check.min_amount_kobo)}"
    if check.max_amount_kobo and order.amount_kobo > check.max_amount_kobo:
        return f"amount above the biller's maximum of {format_naira(check.max_amount_kobo)}"
    return None
