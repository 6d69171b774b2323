"""One bill, as far as it can go now: the step its state asks for, then the next one while the
bill is due for it (verify -> pay, retry -> pay, a requery already due). The pipeline runs this
once per claimed bill per tick, so the happy path costs one task run, not one per step."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from billpay.bills import policy
from billpay.bills.context import StepContext, StepResult, enqueue_alert
from billpay.bills.pay import pay_bill
from billpay.bills.requery import requery_bill
from billpay.bills.retry import retry_bill
from billpay.bills.verify import verify_account
from billpay.states import BillState
from billpay.store import bills as bill_store
from billpay.tokens import mask_text

log = logging.getLogger(__name__)
S = BillState
Step = Callable[[StepContext, int], StepResult]


@dataclass(frozen=True)
class Stage:
    name: str
    queue: str  # the view that says the bill is due for this step
    run: Step


VERIFY = Stage("verify", "queue_verify_accounts", verify_account)
PAY = Stage("pay", "queue_pay_bills", pay_bill)
REQUERY = Stage("requery", "queue_requery_bills", requery_bill)
RETRY = Stage("retry", "queue_retry_bills", retry_bill)

# The per-state queues a tick claims, in pipeline order.
STAGES: tuple[Stage, ...] = (VERIFY, PAY, REQUERY, RETRY)

# What a bill needs next, by the state a step left it in.
NEXT: dict[BillState, Stage] = {
    S.VERIFYING_ACCOUNT: VERIFY,
    S.PROCESSING_BILL: PAY,
    S.PROVIDER_PROCESSING: REQUERY,
    S.RETRY_SCHEDULED: RETRY,
}

MAX_STEPS = 4  # verify, pay, a due requery, a due retry: never a loop within one tick


def advance_bill(ctx: StepContext, bill_id: int, first: Stage) -> list[StepResult]:
    """Run ``first`` on a bill this worker claimed, then each next step it is due for.

    Between steps the bill is claimed again through its queue view, so a step that is not due
    (a requery waiting for its backoff) or a bill leased elsewhere ends the chain; the next
    tick picks it up. An alert does not end the chain (our credentials refused at one provider
    hand the bill to the next at once); the caller reports the alerts when the chain ends.
    """
    results = [run_step(ctx, first, bill_id)]
    while len(results) < MAX_STEPS:
        last = results[-1]
        following = NEXT.get(S(last.after)) if last.advanced else None
        if following is None or not bill_store.claim_one(
            ctx.db,
            bill_id,
            following.queue,
            worker=ctx.worker,
            lease_seconds=ctx.settings.lease_seconds,
        ):
            break
        results.append(run_step(ctx, following, bill_id))
        if results[-1].error:
            break
    return results


class StepFailed(Exception):
    """A step raised and its failure could not be recorded either (the database is away): the
    lease runs out and the bill comes back; the text is masked."""


def run_step(ctx: StepContext, stage: Stage, bill_id: int) -> StepResult:
    """Run one step; any exception is recorded on the bill (its own transaction) instead of
    escaping, so a step that keeps raising (a body the database refuses, an adapter bug) waits
    its backoff and alerts, rather than being run again every tick."""
    try:
        return stage.run(ctx, bill_id)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, none loops the bill
        error = describe_error(exc, ctx)
        # The frames only (file, line, code): never the message, which may carry a value.
        frames = "".join(traceback.format_tb(exc.__traceback__))
        log.warning("bill %s: step %s raised %s\n%s", bill_id, stage.name, error, frames)
        try:
            return record_failure(ctx, bill_id, stage.name, error)
        except Exception as record_error:  # noqa: BLE001
            raise StepFailed(
                f"bill {bill_id}: step {stage.name} raised {error}; not recorded: "
                f"{describe_error(record_error, ctx)}"
            ) from None


def record_failure(ctx: StepContext, bill_id: int, stage: str, error: str) -> StepResult:
    """Count the failure, wait the backoff, give the lease back, alert after a few in a row."""
    with ctx.db.begin() as conn:
        row = bill_store.get_by_id(conn, bill_id)
        if row is None:
            raise LookupError(f"bill {bill_id} does not exist")
        when = ctx.conditions()
        failures_before = int(row.get("step_failures") or 0)
        failures = bill_store.record_step_failure(
            conn,
            bill_id,
            worker=ctx.worker,
            stage=stage,
            error=error,
            next_attempt_at=policy.step_retry_at(failures_before + 1, when),
        )
        bill = policy.BillFacts.from_row(row)
        alert = None
        if failures is not None:
            alert = policy.step_failure_alert(bill, stage, failures, error, when.now)
        if alert is not None:
            enqueue_alert(conn, bill_id, alert)
        after = bill_store.get_by_id(conn, bill_id) or row
    recorded = "" if failures is not None else " (not recorded: the bill is no longer ours)"
    return StepResult(
        row["reference"],
        stage,
        str(row["status"]),
        str(after["status"]),
        f"step failed{recorded}: {error}",
        advanced=False,
        alert=alert.text if alert else None,
        error=error,
    )


def describe_error(exc: BaseException, ctx: StepContext | None = None) -> str:
    """What may be stored and logged of an exception: its type and first line (for a database
    error the driver's message, never SQLAlchemy's statement and parameters), tokens and long
    numbers masked, configured secrets removed, characters PostgreSQL refuses dropped."""
    original: Any = getattr(exc, "orig", None)  # a DBAPI error wrapped by SQLAlchemy
    message = str(original if original is not None else exc)
    text = f"{type(exc).__name__}: {(message.splitlines() or [''])[0]}"
    if ctx is not None:
        for secret in secret_values(ctx):
            text = text.replace(secret, "****")
    text = text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return mask_text(text)[: policy.STEP_ERROR_LIMIT]


def secret_values(ctx: StepContext) -> list[str]:
    """The configured secrets (provider keys, signing seed, webhook secret), longest first."""
    values = []
    for name in type(ctx.settings).model_fields:
        value = getattr(ctx.settings, name)
        if hasattr(value, "get_secret_value") and value.get_secret_value():
            values.append(value.get_secret_value())
    return sorted(values, key=len, reverse=True)
