"""The same-reference resend on real PostgreSQL against the provider sandbox: a bill whose pay
was committed but never sent completes at once (paid once); one whose pay did arrive is never
paid twice (the resend is refused); an uncovered provider still waits the "not found" grace."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from billpay.bills.context import StepContext
from billpay.bills.pay import pay_bill
from billpay.bills.requery import requery_bill
from billpay.bills.retry import retry_bill
from billpay.catalogue import Catalogue
from billpay.config import Settings
from billpay.providers import build_providers
from billpay.providers.base import NOT_FOUND_GRACE, make_attempt_reference
from billpay.providers.flutterwave import FlutterwaveProvider
from billpay.providers.routing import ProviderRouter
from billpay.sandbox.options import SandboxOptions
from billpay.sandbox.providers import (
    REQUEST_ID_TOLERANCE,
    ProviderSandboxConfig,
    mount_providers,
    provider_env,
    sandbox_token,
)
from billpay.states import BillState
from billpay.store import attempts as attempt_store
from billpay.store import bills as bill_store
from tests.db_reads import all_rows
from tests.factories import PREPAID_ELECTRICITY, WATER, bill_in_state

BUILTIN = Catalogue.builtin()

BASE = "http://sandbox.test"
S = BillState


def _sandbox(options: SandboxOptions, **config: Any) -> FastAPI:
    app = FastAPI()
    knobs = {"timeout_sleep_seconds": 0.0, "pending_requeries": 0, "pending_seconds": 0.0}
    mount_providers(app, options, ProviderSandboxConfig(**(knobs | config)))
    return app


def _settings(settings: Settings, route: str, provider: str) -> Settings:
    fields = {k.removeprefix("BILLPAY_").lower(): v for k, v in provider_env(BASE).items()}
    return Settings(**(settings.model_dump() | fields | {route: [provider]}))


@pytest.fixture
def options() -> SandboxOptions:
    return SandboxOptions()


def _context(db, settings: Settings, client: TestClient, **adapters: Any) -> StepContext:
    providers = (
        build_providers(settings, client_factory=lambda name: client, catalogue=BUILTIN) | adapters
    )
    return StepContext(db, settings, ProviderRouter(providers, settings, catalogue=BUILTIN), "w1")


def _claim(db, bill_id: int) -> None:
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE bill_payments SET claimed_by = 'w1', claimed_until = now() +"
                " interval '2 minutes', next_attempt_at = LEAST(next_attempt_at, now())"
                " WHERE id = :id"
            ),
            {"id": bill_id},
        )


def _commit_attempt(
    db, ctx: StepContext, bill_id: int, provider: str, stamped: datetime | None = None
) -> str:
    """What pay_bill does before its HTTP call: the attempt committed with its reference,
    stamped ``stamped`` (now unless given: an older stamp is an attempt committed back then)."""
    _claim(db, bill_id)
    row = ctx.load(bill_id)
    reference = make_attempt_reference(row["reference"], 1, stamped or datetime.now(UTC))
    with db.begin() as conn:
        assert bill_store.open_attempt(
            conn, bill_id, worker="w1", provider=provider, reference=reference, lease=120
        )
        attempt_store.start_pay_attempt(
            conn, bill_id=bill_id, provider=provider, reference=reference, attempt_no=1,
            is_fallback=False,
        )  # fmt: skip
    return reference


def _step(db, step, ctx: StepContext, bill_id: int) -> dict[str, Any]:
    _claim(db, bill_id)
    step(ctx, bill_id)
    return ctx.load(bill_id)


def _sandbox_pays(options: SandboxOptions, reference: str) -> list[str]:
    """The outcome of every pay request the sandbox received for ``reference``."""
    return [c["outcome"] for c in options.calls if c["operation"] == "pay" and
            c.get("reference") == reference]  # fmt: skip


def _operations(db, bill_id: int) -> list[tuple[str, str | None]]:
    return all_rows(
        db,
        "SELECT operation, outcome FROM provider_attempts WHERE bill_payment_id = :id"
        " AND operation IN ('pay', 'resend') ORDER BY id",
        id=bill_id,
    )


@pytest.fixture
def vtpass_bill(settings: Settings, db, options: SandboxOptions) -> Iterator[tuple]:
    def make(**config: Any) -> tuple[StepContext, int]:
        configured = _settings(settings, "route_electricity", "vtpass")
        client = TestClient(_sandbox(options, **config), base_url=BASE)
        clients.append(client)
        row = bill_in_state(db, S.PROCESSING_BILL, **PREPAID_ELECTRICITY)
        return _context(db, configured, client), row["id"]

    clients: list[TestClient] = []
    yield make
    for client in clients:
        client.close()


def test_a_pay_committed_but_never_sent_completes_at_once_paid_exactly_once(
    db, options: SandboxOptions, vtpass_bill
) -> None:
    started = time.monotonic()
    ctx, bill_id = vtpass_bill()
    reference = _commit_attempt(db, ctx, bill_id, "vtpass")  # ... then killed: nothing sent
    assert _step(db, pay_bill, ctx, bill_id)["status"] == S.PROVIDER_PROCESSING  # open attempt
    row = _step(db, requery_bill, ctx, bill_id)  # VTpass: 015 -> the same request_id again
    assert row["status"] == S.COMPLETED and row["token"] == sandbox_token(reference)
    assert time.monotonic() - started < 60 < NOT_FOUND_GRACE.total_seconds()
    assert _sandbox_pays(options, reference) == ["delivered:success"]  # paid exactly once
    assert _operations(db, bill_id) == [("pay", None), ("resend", "success")]


def test_a_pay_that_did_arrive_is_not_paid_twice_when_the_requery_lags(
    db, options: SandboxOptions, vtpass_bill
) -> None:
    ctx, bill_id = vtpass_bill(requery_not_found=1)  # the first lookup misses the payment
    reference = _commit_attempt(db, ctx, bill_id, "vtpass")
    ctx.router.get("vtpass").pay(bill_store.to_order(ctx.load(bill_id)), reference)  # answer lost
    _step(db, pay_bill, ctx, bill_id)
    row = _step(db, requery_bill, ctx, bill_id)  # 015 -> resend -> 014: the first had arrived
    assert row["status"] == S.PROVIDER_PROCESSING
    assert _operations(db, bill_id) == [("pay", None), ("resend", "duplicate")]
    row = _step(db, requery_bill, ctx, bill_id)  # the lookup catches up: delivered
    assert row["status"] == S.COMPLETED and row["token"] == sandbox_token(reference)
    assert _sandbox_pays(options, reference) == ["delivered:success", "014"]
    assert _operations(db, bill_id) == [("pay", None), ("resend", "duplicate")]  # resent once


def test_after_a_refused_resend_not_found_is_never_believed_even_past_the_grace(
    db, options: SandboxOptions, vtpass_bill, settings: Settings
) -> None:
    ctx, bill_id = vtpass_bill(requery_not_found=10)
    reference = _commit_attempt(db, ctx, bill_id, "vtpass")
    ctx.router.get("vtpass").pay(bill_store.to_order(ctx.load(bill_id)), reference)
    _step(db, pay_bill, ctx, bill_id)
    _step(db, requery_bill, ctx, bill_id)  # resend refused: 014
    later = datetime.now(UTC) + NOT_FOUND_GRACE + timedelta(minutes=5)
    late = _late_context(db, ctx, options, later, "vtpass")
    row = _step(db, requery_bill, late, bill_id)  # 015 past the grace, but 014 proved it arrived
    assert row["status"] == S.PROVIDER_PROCESSING and row["retry_count"] == 0
    assert _sandbox_pays(options, reference) == ["delivered:success", "014"]


def _late_context(db, ctx: StepContext, options, later: datetime, name: str) -> StepContext:
    """The same sandbox and adapters, with the adapter's and the step's clock at ``later``."""
    client = ctx.router.get(name)._client  # the sandbox client the adapter already uses
    adapter = type(ctx.router.get(name))(
        ctx.settings, client, clock=lambda: later, catalogue=BUILTIN
    )
    late = _context(db, ctx.settings, client, **{name: adapter})
    late.now = lambda: later
    return late


def test_an_uncovered_provider_still_waits_the_grace(
    settings: Settings, db, options: SandboxOptions
) -> None:
    configured = _settings(settings, "route_water", "flutterwave")
    with TestClient(_sandbox(options), base_url=BASE) as client:
        ctx = _context(db, configured, client)
        bill_id = bill_in_state(db, S.PROCESSING_BILL, **WATER)["id"]
        reference = _commit_attempt(db, ctx, bill_id, "flutterwave")  # never sent
        _step(db, pay_bill, ctx, bill_id)
        row = _step(db, requery_bill, ctx, bill_id)  # 404 inside the grace: wait, no resend
        assert row["status"] == S.PROVIDER_PROCESSING
        assert _sandbox_pays(options, reference) == []
        assert _operations(db, bill_id) == [("pay", None)]
        later = datetime.now(UTC) + NOT_FOUND_GRACE + timedelta(minutes=2)
        adapter = FlutterwaveProvider(configured, client, clock=lambda: later, catalogue=BUILTIN)
        late = _context(db, configured, client, flutterwave=adapter)
        late.now = lambda: later
        row = _step(db, requery_bill, late, bill_id)  # past the grace: believed, a new attempt
        assert row["status"] == S.RETRY_SCHEDULED
        assert _sandbox_pays(options, reference) == []


def test_a_resend_late_in_the_grace_gets_its_own_grace_before_a_new_attempt(
    settings: Settings, db, options: SandboxOptions
) -> None:
    """Found by review: the resend went out late in the reference's grace and VTpass took it
    (pending); a lookup that still lags past the reference's grace must not be believed, or the
    bill is paid again under a new reference while the resend may be charged. (VTpass takes a
    request_id only while its stamp is about the current minute: 4 minutes old is the latest a
    resend is taken in the sandbox, REQUEST_ID_TOLERANCE.)"""
    configured = _settings(settings, "route_electricity", "vtpass")
    sandbox = _sandbox(options, requery_not_found=3, pending_requeries=50, pending_seconds=10_000)
    with TestClient(sandbox, base_url=BASE) as client:
        ctx = _context(db, configured, client)
        pending_account = PREPAID_ELECTRICITY | {"account_number": "2010000000000"}
        bill_id = bill_in_state(db, S.PROCESSING_BILL, **pending_account)["id"]
        four_ago = datetime.now(UTC) - timedelta(minutes=4)
        reference = _commit_attempt(db, ctx, bill_id, "vtpass", four_ago)  # never sent
        _step(db, pay_bill, ctx, bill_id)
        _step(db, requery_bill, ctx, bill_id)  # 015 early -> resend -> taken, pending
        assert _operations(db, bill_id) == [("pay", None), ("resend", "pending")]
        later = datetime.now(UTC) + timedelta(minutes=8)  # the reference is 12 minutes old
        row = _step(db, requery_bill, _late_context(db, ctx, options, later, "vtpass"), bill_id)
        assert row["status"] == S.PROVIDER_PROCESSING and row["attempt_reference"] == reference
        assert row["retry_count"] == 0
        charged = {c.get("reference") for c in options.calls if c["operation"] == "pay"}
        assert charged == {reference}


class _Clock:
    """One time for VTpass (the sandbox), our adapter and the pipeline step, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def test_an_attempt_too_old_to_resend_completes_through_a_fresh_attempt_paid_once(
    db, options: SandboxOptions, vtpass_bill
) -> None:
    """Committed 7 minutes before the worker that finds it (a crash, then the lease ran out),
    never sent: the resend's request_id is too old for VTpass (085, recorded nowhere), so the
    attempt waits for its own grace; then "not found" is believed and a new attempt, stamped as
    it is sent, pays. VTpass is paid exactly once, under the fresh request_id."""
    clock = _Clock()
    ctx, bill_id = vtpass_bill(clock=clock)
    ctx = _clocked_context(db, ctx, clock, "vtpass")
    seven_ago = clock() - timedelta(minutes=7)
    assert timedelta(minutes=7) > REQUEST_ID_TOLERANCE + timedelta(minutes=1)
    stale = _commit_attempt(db, ctx, bill_id, "vtpass", seven_ago)  # never sent
    _step(db, pay_bill, ctx, bill_id)  # the open attempt is found: requery, never pay anew
    row = _step(db, requery_bill, ctx, bill_id)  # 015 early -> resend -> 085
    assert row["status"] == S.PROVIDER_PROCESSING and row["attempt_reference"] == stale
    assert row["retry_count"] == 0 and row["last_error_class"] is None
    assert _operations(db, bill_id) == [("pay", None), ("resend", "refused")]
    clock.now += NOT_FOUND_GRACE - timedelta(minutes=3)  # the stale reference: 14 minutes old
    row = _step(db, requery_bill, ctx, bill_id)  # 015 past its grace: believed
    assert row["status"] == S.RETRY_SCHEDULED and row["attempt_reference"] is None
    row = _step(db, retry_bill, ctx, bill_id)
    fresh = row["attempt_reference"]
    assert row["status"] == S.COMPLETED and fresh != stale and fresh.endswith("A2")
    assert fresh[:12] == make_attempt_reference("X", 1, clock())[:12]  # stamped as it was sent
    assert row["token"] == sandbox_token(fresh)
    pays = [(c["reference"], c["outcome"]) for c in options.calls if c["operation"] == "pay"]
    assert pays == [(stale, "085"), (fresh, "delivered:success")]  # paid exactly once


def _clocked_context(db, ctx: StepContext, clock: _Clock, name: str) -> StepContext:
    """The same sandbox, with the adapter's and the step's clock reading ``clock``."""
    client = ctx.router.get(name)._client
    adapter = type(ctx.router.get(name))(ctx.settings, client, clock=clock, catalogue=BUILTIN)
    clocked = _context(db, ctx.settings, client, **{name: adapter})
    clocked.now = clock
    return clocked


def test_a_worker_that_lost_the_lease_does_not_resend(
    db, options: SandboxOptions, vtpass_bill
) -> None:
    ctx, bill_id = vtpass_bill()
    reference = _commit_attempt(db, ctx, bill_id, "vtpass")  # never sent
    _step(db, pay_bill, ctx, bill_id)
    with db.begin() as conn:  # another worker holds the bill now
        conn.execute(
            sa.text("UPDATE bill_payments SET claimed_by = 'w2' WHERE id = :id"), {"id": bill_id}
        )
    requery_bill(ctx, bill_id)
    assert _sandbox_pays(options, reference) == []
    assert _operations(db, bill_id) == [("pay", None)]
    assert ctx.load(bill_id)["claimed_by"] == "w2"
