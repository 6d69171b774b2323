"""``reprocess-stuck`` end to end (the operator's runbook): a dry run changes nothing and says
what it would do; refund is refused where money may have moved and applied where it cannot have;
requery asks the provider now; requeue gives back a lease and makes the bill due now."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from deployments.cli import run_tick
from tests.e2e.pipeline_helpers import bill_row, pay_calls, place_order, refund_payments

pytestmark = pytest.mark.e2e


def _reprocess(**params: Any) -> tuple[dict[str, Any], str]:
    """Run the flow as an operator would; returns its result and its markdown artifact."""
    from flows.reprocess_stuck import reprocess_stuck

    state = reprocess_stuck(**params, return_state=True)
    assert state.is_completed(), state
    return state.result(), _artifact(state.state_details.flow_run_id)


def _artifact(flow_run_id: UUID) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                key=ArtifactFilterKey(any_=["reprocess-stuck"]),
            )
        )
    assert len(found) == 1, found
    assert found[0].type == "markdown"
    return found[0].data


def _paid_order(rt: Any, sandbox: Any, account: str, **kw: Any) -> dict[str, Any]:
    order = place_order(rt, "electricity", "ikeja-electric", account, "2000", **kw)
    sandbox.pay(order["memo"], order["amount_cngn"])
    return order


def _received(rt: Any, sandbox: Any) -> dict[str, Any]:
    """A paid order ingested and matched (cngn_received), not yet processed."""
    from tasks.stages import ingest_payments

    order = _paid_order(rt, sandbox, "1111111111111", account_type="prepaid")
    ingest_payments(rt.worker_id())
    assert bill_row(rt, order["reference"])["status"] == "cngn_received"
    return order


def _force(rt: Any, reference: str, status: str, **fields: Any) -> None:
    """Put a bill in a state the pipeline would reach by a longer road (guard trigger off)."""
    sets = ", ".join(["status = :status", *(f"{k} = :{k}" for k in fields)])
    with rt.db.begin() as conn:
        conn.execute(sa.text("ALTER TABLE bill_payments DISABLE TRIGGER bill_payments_guard"))
        conn.execute(
            sa.text(f"UPDATE bill_payments SET {sets} WHERE reference = :reference"),
            {"status": status, "reference": reference, **fields},
        )
        conn.execute(sa.text("ALTER TABLE bill_payments ENABLE TRIGGER bill_payments_guard"))


def _pending_at_provider(rt: Any, sandbox: Any) -> dict[str, Any]:
    order = _paid_order(rt, sandbox, "201000000000", account_type="postpaid")
    run_tick()
    row = bill_row(rt, order["reference"])
    assert row["status"] == "provider_processing" and row["attempt_reference"]
    return order


def _snapshot(rt: Any) -> tuple[list[tuple], list[tuple], list[tuple]]:
    with rt.db.connect() as conn:
        bills = conn.execute(sa.text("SELECT * FROM bill_payments ORDER BY id")).all()
        events = conn.execute(sa.text("SELECT * FROM bill_payment_events ORDER BY id")).all()
        refunds = conn.execute(sa.text("SELECT * FROM refunds ORDER BY id")).all()
    return [tuple(r) for r in bills], [tuple(r) for r in events], [tuple(r) for r in refunds]


def _line(markdown: str, reference: str) -> str:
    (line,) = [ln for ln in markdown.splitlines() if ln.startswith(f"| {reference} |")]
    return line


def test_dry_run_changes_nothing_and_lists_each_bill(runtime, sandbox):
    pending = _pending_at_provider(runtime, sandbox)
    failed = _received(runtime, sandbox)
    _force(runtime, failed["reference"], "provider_failed")
    before = _snapshot(runtime)
    calls_before = len(sandbox.calls())

    result, markdown = _reprocess(
        references=[pending["reference"], failed["reference"].lower()],  # case does not matter
        action="refund",
        dry_run=True,
    )

    assert _snapshot(runtime) == before
    assert len(sandbox.calls()) == calls_before
    assert result["dry_run"] is True
    assert {b["reference"]: b["allowed"] for b in result["bills"]} == {
        pending["reference"]: False,
        failed["reference"]: True,
    }
    assert "dry run: nothing changed" in markdown
    refused = _line(markdown, pending["reference"])
    assert "provider_processing" in refused and "| no |" in refused
    assert "requery it instead" in refused
    allowed = _line(markdown, failed["reference"])
    assert "provider_failed" in allowed and "| yes |" in allowed and "would refund" in allowed


def test_refund_is_refused_while_money_may_be_at_the_provider(runtime, sandbox):
    pending = _pending_at_provider(runtime, sandbox)
    before = bill_row(runtime, pending["reference"])

    result, markdown = _reprocess(references=[pending["reference"]], action="refund", dry_run=False)

    after = bill_row(runtime, pending["reference"])
    assert after["status"] == "provider_processing"
    assert after["attempt_reference"] == before["attempt_reference"]
    assert after["updated_at"] == before["updated_at"]
    assert result["bills"][0]["allowed"] is False and result["bills"][0]["done"] == ""
    line = _line(markdown, pending["reference"])
    assert "money may have moved to a provider in provider_processing" in line
    assert line.endswith("| - |")
    with runtime.db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM refunds")).scalar_one() == 0


def test_refund_of_definitively_failed_bills_returns_the_cngn(runtime, sandbox):
    failed = _received(runtime, sandbox)
    _force(runtime, failed["reference"], "provider_failed")
    retrying = _received(runtime, sandbox)
    _force(
        runtime,
        retrying["reference"],
        "retry_scheduled",
        attempt_reference=None,
        next_attempt_at="2099-01-01T00:00:00Z",
    )
    references = [failed["reference"], retrying["reference"]]

    result, markdown = _reprocess(references=references, action="refund", dry_run=False)

    assert [b["done"] for b in result["bills"]] == ["sent to refund", "sent to refund"]
    assert "applied" in markdown
    for reference in references:
        assert "sent to refund" in _line(markdown, reference)
        assert bill_row(runtime, reference)["status"] == "refund_initiated"
    for _ in range(4):
        run_tick()
        if {bill_row(runtime, r)["status"] for r in references} == {"refunded"}:
            break
    assert {bill_row(runtime, r)["status"] for r in references} == {"refunded"}
    refunds = refund_payments(sandbox, runtime)
    assert sorted(r["transaction"]["memo"] for r in refunds) == sorted(
        f"REFUND-{r}" for r in references
    )
    assert {r["amount"] for r in refunds} == {"2000.0000000"}
    assert sum(pay_calls(sandbox).values()) == 0
    events = [e["detail"] for e in _events(runtime, retrying["reference"])]
    assert "operator refund" in events


def test_requery_asks_the_provider_now(runtime, sandbox):
    pending = _pending_at_provider(runtime, sandbox)
    row = bill_row(runtime, pending["reference"])
    _force(  # not due for an hour: only the operator's requery asks now
        runtime,
        pending["reference"],
        "provider_processing",
        next_attempt_at="2099-01-01T00:00:00Z",
    )
    sandbox.app.state.provider_sandbox.config.pending_requeries = 0  # the provider has delivered
    asked_before = _requeries(sandbox)

    result, markdown = _reprocess(
        references=[pending["reference"]], action="requery", dry_run=False
    )

    assert _requeries(sandbox) == asked_before + 1
    after = bill_row(runtime, pending["reference"])
    assert after["status"] == "completed"
    assert after["claimed_by"] is None
    assert result["bills"][0]["done"].startswith("requeried: ")
    line = _line(markdown, pending["reference"])
    assert f"open attempt {row['attempt_reference']}" in line and "requeried" in line
    assert pay_calls(sandbox)[row["attempt_reference"]] == 1  # asked, never paid again


@pytest.mark.parametrize("next_attempt_at", ["2099-01-01T00:00:00Z", None])
def test_requeue_releases_a_live_lease_and_makes_the_bill_due_now(
    runtime, sandbox, next_attempt_at
):
    pending = _pending_at_provider(runtime, sandbox)
    sandbox.app.state.provider_sandbox.config.pending_requeries = 0
    with runtime.db.begin() as conn:  # a worker that went away holds a 10-minute lease
        conn.execute(
            sa.text(
                "UPDATE bill_payments SET claimed_by = 'gone-host:4242:deadbeef',"
                " claimed_until = now() + interval '10 minutes', next_attempt_at = :next"
                " WHERE reference = :r"
            ),
            {"r": pending["reference"], "next": next_attempt_at},
        )
    run_tick()
    assert bill_row(runtime, pending["reference"])["status"] == "provider_processing"  # not due

    result, markdown = _reprocess(
        references=[pending["reference"]], action="requeue", dry_run=False
    )

    row = bill_row(runtime, pending["reference"])
    assert row["claimed_by"] is None and row["claimed_until"] is None
    with runtime.db.connect() as conn:
        due = conn.execute(
            sa.text("SELECT count(*) FROM queue_requery_bills WHERE reference = :r"),
            {"r": pending["reference"]},
        ).scalar_one()
    assert due == 1
    assert result["bills"][0]["done"] == "requeued: due now"
    assert "requeued: due now" in _line(markdown, pending["reference"])
    assert [e["detail"] for e in _events(runtime, pending["reference"])][-1] == (
        "requeued by operator"
    )
    run_tick()
    assert bill_row(runtime, pending["reference"])["status"] == "completed"


def _requeries(sandbox: Any) -> int:
    return len(sandbox.calls(operation="requery")) + len(sandbox.calls(operation="status"))


def _events(rt: Any, reference: str) -> list[dict[str, Any]]:
    from billpay.store import bills as bill_store

    return bill_store.events_for(rt.db, bill_row(rt, reference)["id"])
