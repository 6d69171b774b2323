"""Processing decisions with scripted providers on real PostgreSQL: fallback, retry budgets,
configuration problems, operator requery and the order of slot and attempt."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from billpay.bills import stuck
from billpay.bills.context import StepContext
from billpay.bills.pay import pay_bill
from billpay.bills.requery import requery_bill
from billpay.bills.retry import retry_bill
from billpay.bills.verify import verify_account
from billpay.catalogue import Catalogue, seed_rows
from billpay.providers.base import (
    AccountCheck,
    ErrorClass,
    NotSupported,
    PaymentOutcome,
    PaymentResult,
)
from billpay.providers.routing import ProviderRouter
from billpay.store import bills as bill_store
from billpay.store import incoming as pay_store
from tests.db_reads import all_rows, scalar
from tests.factories import WATER, add_incoming_payment, new_order

BUILTIN = Catalogue.builtin()


@dataclass
class Scripted:
    """A provider whose answers the test writes in advance."""

    name: str
    checks: list[AccountCheck] = field(default_factory=list)
    pays: list[Any] = field(default_factory=list)
    requeries: list[Any] = field(default_factory=list)
    paid_references: list[str] = field(default_factory=list)

    def supports(self, bill_type: Any, biller: str) -> bool:
        return True

    def verify_account(self, order: Any) -> AccountCheck:
        return self.checks.pop(0)

    def pay(self, order: Any, reference: str) -> PaymentResult:
        self.paid_references.append(reference)
        answer = self.pays.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def requery(self, order: Any, reference: str) -> PaymentResult:
        answer = self.requeries.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def failed(error_class: ErrorClass, code: str = "x") -> PaymentResult:
    return PaymentResult(PaymentOutcome.FAILED, error_class, reason_code=code, message=code)


SUCCESS = PaymentResult(PaymentOutcome.SUCCESS, provider_reference="theirs-1")


def selling(names: list[str]) -> Catalogue:
    """The built-in catalogue, each scripted provider listing what Flutterwave lists."""
    seed = seed_rows()
    flutterwave = [r for r in seed.provider_billers if r["provider"] == "flutterwave"]
    items = [r for r in seed.provider_items if r["provider"] == "flutterwave"]
    return Catalogue.from_rows(
        seed.billers,
        seed.provider_billers + [r | {"provider": n} for n in names for r in flutterwave],
        seed.provider_items + [r | {"provider": n} for n in names for r in items],
    )


def _setup(settings, db, route: list[str], worker: str = "w1"):
    providers = {name: Scripted(name) for name in route}
    configured = settings.model_copy(update={"route_water": route, "max_retries": 3})
    router = ProviderRouter(providers, configured, catalogue=selling(route))
    processor = StepContext(db, configured, router, worker)
    row = new_order(db, ttl=timedelta(hours=1), **WATER)
    with db.begin() as conn:
        payment = add_incoming_payment(conn)
        pay_store.mark_order_paid(conn, row["id"], payment, datetime.now(UTC))
    return processor, providers, row["id"]


def _claim(db, bill_id: int, worker: str = "w1") -> None:
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE bill_payments SET claimed_by = :w, claimed_until = now() +"
                " interval '2 minutes', next_attempt_at = LEAST(next_attempt_at, now())"
                " WHERE id = :id"
            ),
            {"w": worker, "id": bill_id},
        )


def _pay(db, processor, bill_id: int) -> None:
    """Claim the bill as its worker, then run the pay step."""
    _claim(db, bill_id)
    pay_bill(processor, bill_id)


def _retry(db, processor, bill_id: int) -> None:
    _claim(db, bill_id)
    retry_bill(processor, bill_id)


def _verify(db, processor, bill_id: int) -> None:
    _claim(db, bill_id)
    verify_account(processor, bill_id)


def _row(db, bill_id: int) -> dict:
    with db.connect() as conn:
        return bill_store.get_by_id(conn, bill_id)


def _pay_attempts(db, bill_id: int) -> list[tuple]:
    return all_rows(
        db,
        "SELECT provider, outcome, is_fallback FROM provider_attempts"
        " WHERE bill_payment_id = :id AND operation = 'pay' ORDER BY id",
        id=bill_id,
    )


def _verified(db, processor, providers, bill_id, first: str) -> None:
    providers[first].checks.append(AccountCheck(valid=True, customer_name="ADA"))
    _verify(db, processor, bill_id)
    assert _row(db, bill_id)["status"] == "processing_bill"


def test_permanent_failure_on_the_first_provider_falls_back_at_once(settings, db):
    processor, providers, bill = _setup(settings, db, ["a", "b"])
    _verified(db, processor, providers, bill, "a")
    providers["a"].pays.append(failed(ErrorClass.PERMANENT, "016"))
    _pay(db, processor, bill)
    row = _row(db, bill)
    assert row["status"] == "retry_scheduled" and row["next_attempt_at"] <= datetime.now(UTC)
    providers["b"].pays.append(SUCCESS)
    _retry(db, processor, bill)
    assert _row(db, bill)["status"] == "completed"
    assert _pay_attempts(db, bill) == [("a", "failed", False), ("b", "success", True)]


def test_a_provider_that_failed_definitively_is_not_paid_again_in_the_fallback_chain(settings, db):
    processor, providers, bill = _setup(settings, db, ["a", "b"])
    _verified(db, processor, providers, bill, "a")
    providers["a"].pays.append(failed(ErrorClass.CONFIGURATION, "087"))
    _pay(db, processor, bill)
    providers["b"].pays.append(failed(ErrorClass.PERMANENT, "016"))
    _retry(db, processor, bill)
    assert _row(db, bill)["status"] == "refund_initiated"
    assert [p for p, *_ in _pay_attempts(db, bill)] == ["a", "b"]


def test_transient_failures_retry_then_try_the_next_provider_on_the_last_retry(settings, db):
    processor, providers, bill = _setup(settings, db, ["a", "b"])
    _verified(db, processor, providers, bill, "a")
    providers["a"].pays.extend([failed(ErrorClass.TRANSIENT)] * 3)
    providers["b"].pays.append(SUCCESS)
    _pay(db, processor, bill)
    for _ in range(3):
        _retry(db, processor, bill)
    assert _row(db, bill)["status"] == "completed"
    assert [p for p, *_ in _pay_attempts(db, bill)] == ["a", "a", "a", "b"]


def test_retries_are_used_up_then_the_bill_is_refunded(settings, db):
    processor, providers, bill = _setup(settings, db, ["a"])
    _verified(db, processor, providers, bill, "a")
    providers["a"].pays.extend([failed(ErrorClass.TRANSIENT)] * 4)
    _pay(db, processor, bill)
    for _ in range(3):
        _retry(db, processor, bill)
    row = _row(db, bill)
    assert row["status"] == "refund_initiated" and row["retry_count"] == 3
    assert len(_pay_attempts(db, bill)) == 4  # the first attempt and 3 retries


@pytest.mark.parametrize("pay_class", [ErrorClass.TRANSIENT, ErrorClass.INSUFFICIENT_FLOAT])
def test_configuration_errors_at_verification_do_not_use_up_retries(settings, db, pay_class):
    processor, providers, bill = _setup(settings, db, ["a"])
    for _ in range(4):
        providers["a"].checks.append(
            AccountCheck(valid=None, error_class=ErrorClass.CONFIGURATION, message="bad key")
        )
        _verify(db, processor, bill)
    row = _row(db, bill)
    assert row["status"] == "verifying_account" and row["retry_count"] == 0
    _verified(db, processor, providers, bill, "a")
    providers["a"].pays.append(failed(pay_class))
    _pay(db, processor, bill)
    assert _row(db, bill)["status"] == "retry_scheduled"  # never refunded on a first failure


def test_a_route_with_no_adapter_waits_and_alerts_instead_of_refunding(settings, db):
    processor, providers, bill = _setup(settings, db, ["a"])
    processor.router = ProviderRouter(
        {}, processor.settings, catalogue=BUILTIN
    )  # nobody serves the biller
    _verify(db, processor, bill)
    row = _row(db, bill)
    assert row["status"] == "verifying_account"
    assert row["last_error_class"] == "configuration"
    alerts = "SELECT count(*) FROM notifications WHERE audience = 'operator' AND kind = :kind"
    assert scalar(db, alerts, kind="provider_configuration") == 1


def test_a_biller_no_provider_on_the_route_sells_any_more_is_refunded_at_verification(settings, db):
    processor, providers, bill = _setup(settings, db, ["a"])
    # Provider "a" is configured, but the synced catalogue no longer lists the biller there.
    processor.router = ProviderRouter(providers, processor.settings, catalogue=selling([]))
    _verify(db, processor, bill)
    row = _row(db, bill)
    assert row["status"] == "refund_initiated"
    assert "no provider on the route sells" in row["refund_reason"]
    assert _pay_attempts(db, bill) == []  # nothing was ever sent


def test_the_attempt_is_recorded_only_once_the_provider_slot_is_held(settings, db):
    processor, providers, bill = _setup(settings, db, ["a"])
    _verified(db, processor, providers, bill, "a")
    seen: list[int] = []

    @contextmanager
    def guard(provider: str):
        seen.append(len(_pay_attempts(db, bill)))  # attempts committed when the slot is taken
        yield 0

    processor.guard = guard
    providers["a"].pays.append(SUCCESS)
    _pay(db, processor, bill)
    assert seen == [0]
    assert _row(db, bill)["status"] == "completed"


def test_a_worker_that_lost_its_lease_before_paying_sends_nothing(settings, db):
    processor, providers, bill = _setup(settings, db, ["a"])
    _verified(db, processor, providers, bill, "a")
    _claim(db, bill, worker="someone-else")  # our lease was taken over while we waited
    providers["a"].pays.append(SUCCESS)
    result = pay_bill(processor, bill)
    assert not result.advanced and providers["a"].paid_references == []


def test_an_operator_requery_that_fails_is_recorded_and_waits_its_backoff(settings, db):
    processor, providers, bill = _setup(settings, db, ["a"])
    _verified(db, processor, providers, bill, "a")
    _claim(db, bill, worker="w0")
    with db.begin() as conn:  # a worker died mid-call: the attempt is open in processing_bill
        bill_store.open_attempt(conn, bill, worker="w0", provider="a", reference="R1", lease=1)
    bill_store.release(db, [bill], worker="w0")
    row = _row(db, bill)
    assert row["status"] == "processing_bill" and row["attempt_reference"] == "R1"
    item = stuck.plan(row, stuck.Action.REQUERY, pay_attempts=1)
    providers["a"].requeries.append(RuntimeError("adapter blew up"))
    done = stuck.apply(processor, item, stuck.Action.REQUERY, actor="operator")
    assert "step failed: RuntimeError: adapter blew up" in done
    row = _row(db, bill)
    assert (row["status"], row["attempt_reference"], row["step_failures"]) == (
        "provider_processing",
        "R1",
        1,
    )
    assert row["claimed_by"] is None and row["next_attempt_at"] > datetime.now(UTC)
    assert providers["a"].paid_references == []  # requeried, never paid


ALERTS = "SELECT count(*) FROM notifications WHERE audience = 'operator' AND kind = :kind"


def test_configuration_refusals_back_off_then_refund_after_a_day(settings, db):
    """A VTpass-only route answering 085 on every pay: each wait is longer than the last, the
    user's retries are not spent, and a day after the first refusal the bill is refunded (with
    an operator alert) rather than paid every 10 s for ever."""
    processor, providers, bill = _setup(settings, db, ["a"])
    processor.settings = processor.settings.model_copy(
        update={"retry_backoff_seconds": [10, 60, 300]}
    )
    _verified(db, processor, providers, bill, "a")
    providers["a"].pays.extend([failed(ErrorClass.CONFIGURATION, "085")] * 7)
    _pay(db, processor, bill)
    waits = []
    for _ in range(5):
        row = _row(db, bill)
        assert row["status"] == "retry_scheduled" and row["retry_count"] == 0
        waits.append(round((row["next_attempt_at"] - row["updated_at"]).total_seconds()))
        _retry(db, processor, bill)
    assert waits == [10, 60, 300, 300, 600]
    assert scalar(db, ALERTS, kind="provider_configuration") >= 1
    # a day after the first refusal: the next refusal gives up through the refund path
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE provider_attempts SET started_at = started_at - interval '25 hours'"
                " WHERE bill_payment_id = :id"
            ),
            {"id": bill},
        )
    _retry(db, processor, bill)
    row = _row(db, bill)
    assert row["status"] == "refund_initiated" and row["attempt_reference"] is None
    assert scalar(db, ALERTS, kind="bill_refunded_configuration") == 1
    refunds = "SELECT count(*) FROM refunds WHERE bill_payment_id = :id"
    assert scalar(db, refunds, id=bill) == 1
    assert all(outcome == "failed" for _, outcome, _ in _pay_attempts(db, bill))


def test_a_bill_whose_provider_left_the_route_is_paid_by_the_route_not_sent_back(settings, db):
    processor, providers, bill = _setup(settings, db, ["a", "b"])
    _verified(db, processor, providers, bill, "a")
    providers["a"].pays.append(failed(ErrorClass.TRANSIENT, "091"))
    _pay(db, processor, bill)
    # a's listing vanished: the catalogue in force sells the biller at b only
    processor.router = ProviderRouter(providers, processor.settings, catalogue=selling(["b"]))
    providers["b"].pays.append(SUCCESS)
    _retry(db, processor, bill)
    assert _row(db, bill)["status"] == "completed"
    assert [p for p, *_ in _pay_attempts(db, bill)] == ["a", "b"]
    assert providers["a"].paid_references[1:] == []


def test_a_provider_refusing_the_bill_after_the_attempt_was_committed_closes_it(settings, db):
    """The adapter raises NotSupported (the listing vanished between routing and the call)
    after the attempt was committed: the attempt is closed as not sent and the bill falls back,
    instead of an attempt left open for ever."""
    processor, providers, bill = _setup(settings, db, ["a", "b"])
    _verified(db, processor, providers, bill, "a")
    providers["a"].pays.append(NotSupported("a does not sell water lagos-water"))
    _pay(db, processor, bill)
    row = _row(db, bill)
    assert row["status"] == "retry_scheduled" and row["attempt_reference"] is None
    assert _pay_attempts(db, bill) == [("a", "failed", False)]
    providers["b"].pays.append(SUCCESS)
    _retry(db, processor, bill)
    assert _row(db, bill)["status"] == "completed"


def test_a_charge_above_what_we_collected_alerts_once_and_the_bill_completes(settings, db):
    processor, providers, bill = _setup(settings, db, ["a"])
    _verified(db, processor, providers, bill, "a")
    collected = _row(db, bill)["amount_kobo"]
    providers["a"].pays.append(
        PaymentResult(PaymentOutcome.PENDING, amount_kobo=collected + 15_000)
    )
    _pay(db, processor, bill)
    providers["a"].requeries.append(
        PaymentResult(PaymentOutcome.SUCCESS, amount_kobo=collected + 15_000)
    )
    _claim(db, bill)
    requery_bill(processor, bill)
    assert _row(db, bill)["status"] == "completed"
    assert scalar(db, ALERTS, kind="provider_charged_different_amount") == 1
    (payload,) = all_rows(
        db,
        "SELECT payload FROM notifications WHERE kind = 'provider_charged_different_amount'",
    )
    assert payload[0]["above_collected"] is True
    assert payload[0]["difference"] == "150.00"
    events = bill_store.events_for(db, bill)
    assert any("charged" in (e["detail"] or "") for e in events)
