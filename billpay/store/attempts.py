"""Provider calls as rows of ``provider_attempts``. A pay attempt is written and committed
before its HTTP call, so a crash at any later line leaves a reference to requery."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def start_pay_attempt(
    conn: Connection,
    *,
    bill_id: int,
    provider: str,
    reference: str,
    attempt_no: int,
    is_fallback: bool,
) -> int:
    return conn.execute(
        sa.text(
            "INSERT INTO provider_attempts (bill_payment_id, provider, operation, reference,"
            " attempt_no, is_fallback, started_at) VALUES (:bill, :provider, 'pay', :ref, :no,"
            " :fallback, clock_timestamp()) RETURNING id"
        ),
        {
            "bill": bill_id,
            "provider": provider,
            "ref": reference,
            "no": attempt_no,
            "fallback": is_fallback,
        },
    ).scalar_one()


def finish_attempt(conn: Connection, attempt_id: int, call: Any) -> None:
    """Fill in a started attempt from a ``CallRecord`` (latency, outcome, status, summary)."""
    conn.execute(
        sa.text(
            "UPDATE provider_attempts SET finished_at = :finished, latency_ms = :latency,"
            " outcome = :outcome, error_class = :error_class, http_status = :http_status,"
            " response_summary = CAST(:summary AS jsonb) WHERE id = :id"
        ),
        {
            "id": attempt_id,
            "finished": call.finished_at,
            "latency": call.latency_ms,
            "outcome": call.outcome,
            "error_class": call.error_class,
            "http_status": call.http_status,
            "summary": json.dumps(call.response_summary or {}, default=str),
        },
    )


# Verify calls answer valid/invalid/unknown; stored in the vocabulary every operation shares, so
# provider performance reads one set of outcomes (an invalid account is a definitive "failed"
# answer whose error class says account_invalid).
_VERIFY_OUTCOMES = {"valid": "success", "invalid": "failed", "unknown": "unknown"}


def record_call(
    conn: Connection, bill_id: int | None, call: Any, *, attempt_no: int | None = None
) -> int:
    """A verify or requery call, written after it returned."""
    outcome = call.outcome
    if call.operation == "verify":
        outcome = _VERIFY_OUTCOMES.get(outcome, outcome)
    return conn.execute(
        sa.text(
            "INSERT INTO provider_attempts (bill_payment_id, provider, operation, reference,"
            " attempt_no, started_at, finished_at, latency_ms, outcome, error_class, http_status,"
            " response_summary) VALUES (:bill, :provider, :operation, :ref, :no, :started,"
            " :finished, :latency, :outcome, :error_class, :http_status, CAST(:summary AS jsonb))"
            " RETURNING id"
        ),
        {
            "bill": bill_id,
            "provider": call.provider,
            "operation": call.operation,
            "ref": call.reference,
            "no": attempt_no,
            "started": call.started_at,
            "finished": call.finished_at,
            "latency": call.latency_ms,
            "outcome": outcome,
            "error_class": call.error_class,
            "http_status": call.http_status,
            "summary": json.dumps(call.response_summary or {}, default=str),
        },
    ).scalar_one()


def pay_attempts(conn: Connection, bill_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.text(
            "SELECT id, provider, reference, attempt_no, outcome, error_class, started_at,"
            " finished_at, is_fallback FROM provider_attempts"
            " WHERE bill_payment_id = :bill AND operation = 'pay' ORDER BY id"
        ),
        {"bill": bill_id},
    ).mappings()
    return [dict(row) for row in rows]


def close_attempt(conn: Connection, attempt_id: int, outcome: str, error_class: str | None) -> None:
    """Finish a started attempt from its outcome alone (no HTTP details to record)."""
    conn.execute(
        sa.text(
            "UPDATE provider_attempts SET finished_at = clock_timestamp(), outcome = :outcome,"
            " error_class = :error_class,"
            " latency_ms = (extract(epoch FROM clock_timestamp() - started_at) * 1000)::int"
            " WHERE id = :id AND finished_at IS NULL"
        ),
        {"id": attempt_id, "outcome": outcome, "error_class": error_class},
    )
