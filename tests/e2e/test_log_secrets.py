"""Acceptance (issue 12): a pipeline tick whose completion write fails, with the token in the
failing statement's parameters and in the database's own error text, leaks no full token,
meter number or provider key into any log line (python logging at DEBUG for every logger,
Prefect's task and flow run logs on its API, stdout/stderr), exception text, task state
message or stored response; and the bill is requeried, never paid again."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import sqlalchemy as sa

from billpay.store import bills as bill_store
from tests.db_reads import all_rows
from tests.e2e.pipeline_helpers import bill_row, pay_calls, place_order

pytestmark = pytest.mark.e2e
METER = "1111111111111"


class Everything(logging.Handler):
    """Every record, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def all_logs():
    handler = Everything()
    loggers = [logging.getLogger()] + [
        logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
    ]
    saved = [(logger, logger.level) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger, level in saved:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _completion_write_fails(monkeypatch, seen: list[str]) -> None:
    """The completion write raises a real DataError from PostgreSQL whose message, detail and
    SQLAlchemy parameters all carry the token."""
    original = bill_store.apply

    def apply(conn, bill_id, decision, **kw: Any) -> bool:
        if decision.token:
            seen.append(decision.token)
            conn.execute(
                sa.text("SELECT CAST(:f_token AS jsonb)"), {"f_token": decision.token + "x"}
            )
        return original(conn, bill_id, decision, **kw)

    monkeypatch.setattr(bill_store, "apply", apply)


def _prefect_records(flow_run_id: Any) -> list[str]:
    """Everything Prefect's API holds for the run: its logs, every task run's state message."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
        flow_run = client.read_flow_run(flow_run_id)
    texts = [log.message for log in logs]
    texts += [f"{t.name} {t.state.message if t.state else ''}" for t in tasks]
    texts.append(json.dumps(flow_run.parameters, default=str))
    return texts


def test_a_failed_completion_write_leaks_no_token_meter_or_key(
    runtime, sandbox, monkeypatch, all_logs, capfd
):
    from prefect import tags

    from flows.pipeline import pipeline

    order = place_order(
        runtime, "electricity", "ikeja-electric", METER, "5000", account_type="prepaid"
    )
    sandbox.pay(order["memo"], order["amount_cngn"])
    tokens: list[str] = []
    _completion_write_fails(monkeypatch, tokens)
    with tags("billpay"):
        state = pipeline(return_state=True)
    assert tokens, "the pay step reached the completion write"
    row = bill_row(runtime, order["reference"])
    assert (row["status"], row["step_failures"]) == ("provider_processing", 1)

    secrets = [tokens[0], METER] + [
        value.get_secret_value()
        for value in (
            runtime.settings.vtpass_api_key,
            runtime.settings.vtpass_secret_key,
            runtime.settings.vtpass_public_key,
            runtime.settings.flutterwave_secret_key,
        )
        if value.get_secret_value()
    ]
    out, err = capfd.readouterr()
    stored = all_rows(
        runtime.db,
        "SELECT response_summary::text FROM provider_attempts"
        " UNION ALL SELECT detail FROM bill_payment_events"
        " UNION ALL SELECT concat_ws(' ', step_error, last_error) FROM bill_payments"
        " UNION ALL SELECT payload::text FROM notifications",
    )
    haystacks = {
        "python logging": "\n".join(all_logs.lines),
        "prefect api": "\n".join(_prefect_records(state.state_details.flow_run_id)),
        "stdout/stderr": out + err,
        "stored": json.dumps(stored, default=str),
        "flow result": json.dumps(state.result(raise_on_failure=False), default=str),
    }
    assert "step pay failed" in haystacks["stored"]  # the failure is there, masked
    assert any("bill-" in line for line in haystacks["prefect api"].splitlines())
    leaks = [
        (where, secret[-4:])
        for where, text in haystacks.items()
        for secret in secrets
        if secret in text
    ]
    assert leaks == []

    monkeypatch.undo()  # the write works again: the next tick requeries, never pays again
    with tags("billpay"):
        pipeline()
    assert bill_row(runtime, order["reference"])["status"] == "completed"
    assert sum(pay_calls(sandbox).values()) == 1
