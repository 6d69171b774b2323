"""The per-bill task of the pipeline: one task run per claimed bill per tick, named after the
bill reference so an operator finds a bill's runs in the UI (``bill-<reference>``)."""

from __future__ import annotations

from typing import Any

from prefect import task

from billpay.bills import advance
from billpay.bills.context import NeedsAttention, StepContext
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


STAGES = {stage.name: stage for stage in advance.STAGES}


@task(name="advance-bill", task_run_name="bill-{reference}", **TASK_DEFAULTS)
def advance_bill(bill_id: int, reference: str, stage: str, worker: str) -> dict[str, Any]:
    """The step the bill was claimed for, then each next step it is due for now."""
    results = advance.advance_bill(step_context(worker), bill_id, STAGES[stage])
    problems = [result.alert or result.error for result in results]
    if any(problems):
        # The bill is saved in a correct, resumable state (a step that raised is recorded and
        # waits its backoff); fail the task so the UI shows it, with masked text only.
        raise NeedsAttention("; ".join(problem for problem in problems if problem))
    return {
        "reference": reference,
        "advanced": any(result.advanced for result in results),
        "steps": [result.stage for result in results],
        "after": results[-1].after,
        "detail": results[-1].detail,
    }
