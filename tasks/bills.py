"""Per-bill tasks of ``process-bills``: verify, pay, requery, retry. Names carry the bill
reference so an operator can find a bill's runs in the UI."""

from __future__ import annotations

from typing import Any

from prefect import task

from billpay.bills.context import NeedsAttention, StepContext, StepResult
from billpay.bills.pay import pay_bill as pay
from billpay.bills.requery import requery_bill as requery
from billpay.bills.retry import retry_bill as retry
from billpay.bills.verify import verify_account as verify
from tasks.policy import TASK_DEFAULTS
from tasks.runtime import get_runtime


def step_context(worker: str) -> StepContext:
    runtime = get_runtime()
    return StepContext(
        db=runtime.db,
        settings=runtime.settings,
        router=runtime.router,
        worker=worker,
        guard=runtime.slots,
    )


def _finish(result: StepResult) -> dict[str, Any]:
    if result.alert:
        # The bill is saved in a correct, resumable state; fail the task so the UI shows it.
        raise NeedsAttention(result.alert)
    return result.as_dict()


@task(name="verify-account", task_run_name="verify-{reference}", **TASK_DEFAULTS)
def verify_account(bill_id: int, reference: str, worker: str) -> dict[str, Any]:
    return _finish(verify(step_context(worker), bill_id))


@task(name="pay-bill", task_run_name="pay-{reference}", **TASK_DEFAULTS)
def pay_bill(bill_id: int, reference: str, worker: str) -> dict[str, Any]:
    return _finish(pay(step_context(worker), bill_id))


@task(name="requery-bill", task_run_name="requery-{reference}", **TASK_DEFAULTS)
def requery_bill(bill_id: int, reference: str, worker: str) -> dict[str, Any]:
    return _finish(requery(step_context(worker), bill_id))


@task(name="retry-bill", task_run_name="retry-{reference}", **TASK_DEFAULTS)
def retry_bill(bill_id: int, reference: str, worker: str) -> dict[str, Any]:
    return _finish(retry(step_context(worker), bill_id))
