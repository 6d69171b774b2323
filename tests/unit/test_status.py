"""`billpay status` without a database: masking of stored errors, staleness, the report."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from billpay.states import ALLOWED_TRANSITIONS, BillState
from billpay.status import build_status, format_status
from billpay.store import queries
from billpay.store.stages import MAX_ERROR_CHARS, PIPELINE_STAGES, error_note
from billpay.store.status import StatusRows
from billpay.tokens import mask_text

NOW = datetime(2026, 1, 2, 10, 0, 0, tzinfo=UTC)


def _rows(stages: list[dict], **overrides) -> StatusRows:
    fields = {
        "now": NOW,
        "stages": stages,
        "cursors": [],
        "newest_payment": None,
        "open_bills": {},
        "oldest_bill": None,
        "queues": {},
        "refunds": {},
        "notifications": {},
    }
    return StatusRows(**{**fields, **overrides})


def _stage(name: str, ok_ago: int | None, *, failed_error: str | None = None) -> dict:
    success = NOW - timedelta(seconds=ok_ago) if ok_ago is not None else None
    return {
        "stage": name,
        "last_run_at": NOW,
        "last_ok": failed_error is None,
        "last_success_at": success,
        "last_failure_at": NOW if failed_error else None,
        "last_error": failed_error,
        "runs": 3,
        "failures": 1 if failed_error else 0,
        "last_summary": {"claimed": 2},
    }


def test_mask_text_hides_tokens_meters_and_phones_but_keeps_short_numbers() -> None:
    text = "HTTP 502 for meter 1111111111111 phone 08031234567 token 2636 2054 4059 8275 7802"
    masked = mask_text(text)
    assert masked == (
        "HTTP 502 for meter *********1111 phone *******4567 token ****-****-****-****-7802"
    )


def test_a_stored_error_is_masked_then_cut_to_the_column_limit() -> None:
    note = error_note("x" * 600 + " 08031234567")
    assert note is not None and len(note) == MAX_ERROR_CHARS and "0803" not in note
    assert error_note("timeout after 30s") == "timeout after 30s"
    assert error_note(None) is None


def test_a_stage_is_stale_past_stale_after_and_when_it_never_succeeded() -> None:
    rows = _rows(
        [_stage("ingest", 60), _stage("bills", 61), _stage("match", None, failed_error="boom")]
    )
    status = build_status(rows, None, 60)
    by_name = {s.stage: s for s in status.stages}
    assert [s.stage for s in status.stages] == list(PIPELINE_STAGES)
    assert not by_name["ingest"].stale and by_name["ingest"].last_success_age_seconds == 60
    assert by_name["bills"].stale and by_name["match"].stale
    assert by_name["expire"].stale and by_name["expire"].runs == 0  # never ran
    assert by_name["match"].last_error == "boom"
    assert {s.stage for s in status.stale} == {
        "bills",
        "match",
        "expire",
        "refunds",
        "notify",
        "recheck",
    }
    assert not status.ok


def test_an_error_is_shown_only_while_the_last_run_failed() -> None:
    recovered = _stage("bills", 1) | {"last_error": "old failure"}  # last_ok: the error is history
    status = build_status(_rows([recovered]), None, 60)
    bills = next(s for s in status.stages if s.stage == "bills")
    assert bills.last_error is None and not bills.stale


def test_an_extra_stage_is_shown_but_never_makes_the_pipeline_stale() -> None:
    stages = [_stage(name, 1) for name in PIPELINE_STAGES] + [_stage("reports", 5000)]
    status = build_status(_rows(stages), None, 60)
    assert status.ok and status.stages[-1].stage == "reports"


def test_the_report_has_a_line_per_stage_and_says_what_to_do_when_stale() -> None:
    stages = [_stage(name, 4) for name in PIPELINE_STAGES if name != "notify"]
    oldest = {
        "reference": "7K3M9QZ2XA",
        "status": "provider_processing",
        "created_at": NOW - timedelta(seconds=1000),
        "updated_at": NOW - timedelta(seconds=912),
    }
    rows = _rows(
        stages,
        open_bills={"provider_processing": 1},
        queues={"queue_pay_bills": 0, "queue_requery_bills": 1},
        oldest_bill=oldest,
    )
    text = format_status(build_status(rows, None, 60))
    lines = text.splitlines()
    assert lines[0] == "expire        last ok 4s ago"
    assert lines[5] == "notify        never ran  STALE"
    assert "queues        requery_bills 1" in lines
    assert "in flight     provider_processing 1" in lines
    assert "oldest        7K3M9QZ2XA provider_processing, unchanged for 912s" in lines
    assert lines[-1].startswith("STALE (no success within 60s): notify (never ran).")
    assert "is `billpay serve` running?" in lines[-1].lower()


def test_status_queries_treat_exactly_the_state_machines_dead_ends_as_terminal() -> None:
    terminal = {state.value for state, nexts in ALLOWED_TRANSITIONS.items() if not nexts}
    # completed is left only if the provider reverses the delivery later (sql/0018): settled,
    # not work in flight.
    assert ALLOWED_TRANSITIONS[BillState.COMPLETED] == {BillState.REVERSED}
    terminal.add(BillState.COMPLETED.value)
    for name in ("status_open_bills_by_status", "status_oldest_open_bill"):
        listed = re.search(r"status NOT IN \(([^)]*)\)", queries.catalogue()[name])
        assert listed is not None, name
        assert {s.strip().strip("'") for s in listed.group(1).split(",")} == terminal
