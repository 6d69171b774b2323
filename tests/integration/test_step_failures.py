"""A bill step that raises never loops the bill (issue 12, defect 1): an adapter that raises or
a provider answer the database refuses to store is recorded on the bill (failure count, masked
error, backoff, lease given back), alerts after a few in a row, and a pay that raised after its
attempt was committed is requeried, never paid again. Real PostgreSQL, scripted providers,
claims through the queue views as a tick does."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from billpay.bills import advance
from billpay.bills.policy import STEP_FAILURE_ALERT_AFTER
from billpay.providers.base import AccountCheck, CallRecord, PaymentOutcome, PaymentResult
from billpay.store import attempts as attempt_store
from billpay.store import bills as bill_store
from tests.db_reads import all_rows, scalar
from tests.integration.test_processing import _row, _setup

TOKEN = "12345678901234567890"


def _call(operation: str) -> CallRecord:
    """A call record, so the step stores the provider's answer (where the database may refuse)."""
    now = datetime.now(UTC)
    return CallRecord("a", operation, "R", now, now, 5, "success", None, 200, {"name": "ADA"})


VALID = AccountCheck(valid=True, customer_name="ADA", call=_call("verify"))
SUCCESS = PaymentResult(PaymentOutcome.SUCCESS, provider_reference="theirs-1", call=_call("pay"))


def _tick(db, ctx) -> list[str]:
    """What one pipeline tick does to bills: claim each queue, advance each claimed bill;
    returns the stages that ran."""
    ran: list[str] = []
    for stage in advance.STAGES:
        rows = bill_store.claim(db, stage.queue, worker=ctx.worker, lease_seconds=60, limit=10)
        for row in rows:
            ran.extend(result.stage for result in advance.advance_bill(ctx, row["id"], stage))
        bill_store.release(db, [row["id"] for row in rows], worker=ctx.worker)
    return ran


def _backoff_passes(db, bill_id: int) -> None:
    with db.begin() as conn:
        conn.execute(
            sa.text("UPDATE bill_payments SET next_attempt_at = now() WHERE id = :id"),
            {"id": bill_id},
        )


def _store_refuses(*_args: Any, **_kwargs: Any) -> None:
    """What the database says to an answer it cannot store (a NUL in jsonb), with the value
    in the statement's parameters as SQLAlchemy reports it."""
    raise sa.exc.DataError(
        "INSERT INTO provider_attempts (response_summary) VALUES (%(summary)s)",
        {"summary": json.dumps({"token": TOKEN, "name": "ADA\x00"})},
        psycopg.errors.UntranslatableCharacter("unsupported Unicode escape sequence"),
    )


def _raise(message: str):
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(message)

    return fail


def _alerts(db, bill_id: int) -> int:
    return scalar(
        db,
        "SELECT count(*) FROM notifications WHERE audience = 'operator'"
        " AND kind = 'bill_step_failing' AND bill_payment_id = :id",
        id=bill_id,
    )


def _assert_waits(db, ctx, bill_id: int, status: str, failures: int) -> dict:
    row = _row(db, bill_id)
    assert (row["status"], row["step_failures"]) == (status, failures)
    assert row["claimed_by"] is None and row["next_attempt_at"] > datetime.now(UTC)
    assert _tick(db, ctx) == []  # the next tick leaves it alone until its backoff
    return row


def test_a_step_that_raises_before_verify_starts_waits_its_backoff_in_cngn_received(
    settings, db, monkeypatch
):
    """Found by review: the cngn_received branch of queue_verify_accounts did not read
    next_attempt_at, so a bill whose first step raised there was verified again every tick."""
    ctx, _providers, bill = _setup(settings, db, ["a"])
    monkeypatch.setattr(bill_store, "begin_step", _raise("begin failed"))
    assert _tick(db, ctx) == ["verify"]
    _assert_waits(db, ctx, bill, "cngn_received", 1)
    assert _tick(db, ctx) == []


@pytest.mark.parametrize("fault", ["adapter", "store"])
def test_a_verify_step_that_raises_waits_its_backoff_and_alerts_after_n(
    settings, db, monkeypatch, fault
):
    ctx, providers, bill = _setup(settings, db, ["a"])
    if fault == "adapter":
        monkeypatch.setattr(providers["a"], "verify_account", _raise("adapter bug"))
    else:
        providers["a"].checks.extend([VALID] * STEP_FAILURE_ALERT_AFTER)
        monkeypatch.setattr(attempt_store, "record_call", _store_refuses)
    for failures in range(1, STEP_FAILURE_ALERT_AFTER + 1):
        assert _tick(db, ctx) == ["verify"]
        row = _assert_waits(db, ctx, bill, "verifying_account", failures)
        assert _alerts(db, bill) == (1 if failures == STEP_FAILURE_ALERT_AFTER else 0)
        _backoff_passes(db, bill)
    assert row["retry_count"] == 0  # a bug of ours spends none of the user's retries
    monkeypatch.undo()
    providers["a"].checks[:] = [VALID]
    providers["a"].pays.append(SUCCESS)
    assert _tick(db, ctx) == ["verify", "pay"]
    row = _row(db, bill)
    assert (row["status"], row["step_failures"], row["step_error"]) == ("completed", 0, None)


@pytest.mark.parametrize("fault", ["adapter", "store"])
def test_a_pay_that_raised_after_its_attempt_is_requeried_never_paid_again(
    settings, db, monkeypatch, fault
):
    ctx, providers, bill = _setup(settings, db, ["a"])
    providers["a"].checks.append(VALID)
    if fault == "adapter":
        providers["a"].pays.append(RuntimeError("adapter bug after the request went out"))
    else:
        providers["a"].pays.append(SUCCESS)
        monkeypatch.setattr(attempt_store, "finish_attempt", _store_refuses)
    assert _tick(db, ctx) == ["verify", "pay"]
    row = _assert_waits(db, ctx, bill, "provider_processing", 1)
    assert row["attempt_reference"] == providers["a"].paid_references[0]
    monkeypatch.undo()
    _backoff_passes(db, bill)
    providers["a"].requeries.append(SUCCESS)
    assert _tick(db, ctx) == ["requery"]
    assert _row(db, bill)["status"] == "completed"
    assert len(providers["a"].paid_references) == 1  # one pay; the rest was a requery


def test_a_pay_step_that_raised_before_its_attempt_waits_in_processing_bill(
    settings, db, monkeypatch
):
    ctx, providers, bill = _setup(settings, db, ["a"])
    providers["a"].checks.append(VALID)
    monkeypatch.setattr(attempt_store, "pay_attempts", _raise("read failed"))
    assert _tick(db, ctx) == ["verify", "pay"]
    row = _assert_waits(db, ctx, bill, "processing_bill", 1)
    assert row["attempt_reference"] is None and providers["a"].paid_references == []


@pytest.mark.parametrize("fault", ["adapter", "store"])
def test_a_requery_that_raises_waits_its_backoff_and_alerts_after_n(
    settings, db, monkeypatch, fault
):
    ctx, providers, bill = _setup(settings, db, ["a"])
    providers["a"].checks.append(VALID)
    providers["a"].pays.append(RuntimeError("timed out, maybe charged"))
    _tick(db, ctx)
    _backoff_passes(db, bill)
    requeries_before = _row(db, bill)["requery_count"]
    if fault == "adapter":
        monkeypatch.setattr(providers["a"], "requery", _raise("adapter bug"))
    else:
        providers["a"].requeries.extend([SUCCESS] * STEP_FAILURE_ALERT_AFTER)
        monkeypatch.setattr(attempt_store, "record_call", _store_refuses)
    for failures in range(2, STEP_FAILURE_ALERT_AFTER + 2):  # the pay was failure 1
        assert _tick(db, ctx) == ["requery"]
        row = _assert_waits(db, ctx, bill, "provider_processing", failures)
        _backoff_passes(db, bill)
    assert _alerts(db, bill) == 1  # deduplicated: one an hour per bill
    assert row["requery_count"] == requeries_before
    assert len(providers["a"].paid_references) == 1


def test_what_a_failed_step_stores_is_masked_and_storable(settings, db, monkeypatch):
    ctx, providers, bill = _setup(settings, db, ["a"])
    monkeypatch.setattr(
        providers["a"],
        "verify_account",
        _raise(f"meter 45067198236 token {TOKEN} name ADA\x00\ud800"),
    )
    results = advance.advance_bill(ctx, bill, advance.VERIFY) if _claim(db, ctx, bill) else []
    assert results and results[0].error
    events = " ".join(str(e) for e in all_rows(db, "SELECT detail FROM bill_payment_events"))
    stored = " ".join([_row(db, bill)["step_error"], events, results[0].error])
    assert "step verify failed (1 in a row): RuntimeError: meter *******8236" in stored
    assert TOKEN not in stored and "45067198236" not in stored and "\x00" not in stored


def _claim(db, ctx, bill_id: int) -> bool:
    return bill_store.claim_one(
        db, bill_id, "queue_verify_accounts", worker=ctx.worker, lease_seconds=60
    )
