"""Provider calls as rows of ``provider_attempts``. A pay attempt is written and committed
before its HTTP call, so a crash at any later line leaves a reference to requery.
Queries: ``sql/queries/attempts.sql``."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.engine import Connection

from billpay.store.queries import query


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
        query("start_pay_attempt"),
        {
            "bill": bill_id,
            "provider": provider,
            "ref": reference,
            "no": attempt_no,
            "fallback": is_fallback,
        },
    ).scalar_one()


def _call_result(call: Any, outcome: str | None) -> dict[str, Any]:
    """What a ``CallRecord`` says once the call returned (the columns finish and record share)."""
    return {
        "finished": call.finished_at,
        "latency": call.latency_ms,
        "outcome": outcome,
        "error_class": call.error_class,
        "http_status": call.http_status,
        "summary": json.dumps(call.response_summary or {}, default=str),
    }


def finish_attempt(conn: Connection, attempt_id: int, call: Any) -> None:
    """Fill in a started attempt from a ``CallRecord`` (latency, outcome, status, summary)."""
    conn.execute(
        query("finish_attempt"),
        {"id": attempt_id, **_call_result(call, call.outcome)},
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
        query("record_call"),
        {
            "bill": bill_id,
            "provider": call.provider,
            "operation": call.operation,
            "ref": call.reference,
            "no": attempt_no,
            "started": call.started_at,
            **_call_result(call, outcome),
        },
    ).scalar_one()


def pay_attempts(conn: Connection, bill_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        query("pay_attempts"),
        {"bill": bill_id},
    ).mappings()
    return [dict(row) for row in rows]


def close_attempt(conn: Connection, attempt_id: int, outcome: str, error_class: str | None) -> None:
    """Finish a started attempt from its outcome alone (no HTTP details to record)."""
    conn.execute(
        query("close_attempt"),
        {"id": attempt_id, "outcome": outcome, "error_class": error_class},
    )


def start_resend_attempt(
    conn: Connection,
    *,
    bill_id: int,
    provider: str,
    reference: str,
    attempt_no: int | None,
    worker: str,
    lease_seconds: int,
) -> int | None:
    """The resend of an open pay attempt, committed before its HTTP call, with the bill's lease
    renewed for it; None when this reference was already resent (one resend per reference, a
    unique index in sql/0011) or ``worker`` no longer holds the bill with this open attempt."""
    params = {"bill": bill_id, "provider": provider, "ref": reference, "no": attempt_no}
    params |= {"worker": worker, "lease": lease_seconds}
    return conn.execute(query("start_resend_attempt"), params).scalar_one_or_none()


def resend_of(conn: Connection, provider: str, reference: str) -> dict[str, Any] | None:
    """The resend made for ``reference`` at ``provider``, if any (its ``outcome`` is
    ``duplicate`` when the provider refused it as a reused reference)."""
    row = conn.execute(query("resend_of"), {"provider": provider, "ref": reference}).mappings()
    found = row.first()
    return dict(found) if found else None
