"""Is the pipeline moving? What ``billpay status`` reports, from the database alone (no Prefect):
each stage's last success (``pipeline_stages``), the Horizon cursor, queue depths and the oldest
bill still in flight. Building and formatting are pure; :func:`pipeline_status` reads once."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from billpay.store.engine import Database
from billpay.store.stages import PIPELINE_STAGES
from billpay.store.status import StatusRows, read_status

DEFAULT_STALE_AFTER = 60  # seconds: six 10-second ticks without a success


@dataclass(frozen=True)
class StageStatus:
    stage: str
    runs: int
    failures: int
    last_run_at: datetime | None  # None: never ran
    last_success_at: datetime | None
    last_success_age_seconds: int | None  # None: never succeeded
    last_error: str | None  # the last run's error (masked) when that run failed, else None
    stale: bool  # no success within stale_after seconds (or never)
    summary: dict[str, Any] | None


@dataclass(frozen=True)
class CursorStatus:
    account: str
    cursor: str
    updated_at: datetime
    age_seconds: int  # since the cursor last moved


@dataclass(frozen=True)
class NewestPayment:
    received_at: datetime
    received_age_seconds: int  # since we stored it
    ledger_time: datetime
    ledger_age_seconds: int  # since its ledger closed on the network


@dataclass(frozen=True)
class OldestBill:
    reference: str
    status: str
    created_at: datetime
    updated_at: datetime
    age_seconds: int  # since its last change


@dataclass(frozen=True)
class QuarantineStatus:
    """Horizon records ingestion set aside unread (billpay.stellar.ingest)."""

    open: int  # not yet resolved by an operator
    oldest_at: datetime | None
    oldest_age_seconds: int | None


@dataclass(frozen=True)
class PipelineStatus:
    checked_at: datetime  # the database clock
    stale_after_seconds: int
    stages: list[StageStatus]
    cursors: list[CursorStatus]
    newest_payment: NewestPayment | None
    open_bills: dict[str, int]  # bills per non-terminal status
    queues: dict[str, int]  # rows each queue view holds now
    refunds: dict[str, int]  # refunds per status (confirmed left out)
    notifications: dict[str, int]  # undelivered notifications per status
    oldest_bill: OldestBill | None
    quarantine: QuarantineStatus = QuarantineStatus(0, None, None)

    @property
    def stale(self) -> list[StageStatus]:
        return [s for s in self.stages if s.stale]

    @property
    def ok(self) -> bool:
        return not self.stale

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types: ints for counts and ages, ISO 8601 times with their offset."""
        return {
            **_jsonable(asdict(self)),
            "ok": self.ok,
            "stale_stages": [s.stage for s in self.stale],
        }


def pipeline_status(
    db: Database, now: datetime | None = None, *, stale_after: int = DEFAULT_STALE_AFTER
) -> PipelineStatus:
    """The pipeline as the database sees it; ages are measured to ``now`` (default: the
    database clock, the one every stored time was written with)."""
    return build_status(read_status(db), now, stale_after)


def build_status(rows: StatusRows, now: datetime | None, stale_after: int) -> PipelineStatus:
    now = now or rows.now
    recorded = {row["stage"]: row for row in rows.stages}
    # Every expected stage, then any other stage that recorded runs (shown, never "stale").
    names = [*PIPELINE_STAGES, *(s for s in recorded if s not in PIPELINE_STAGES)]
    stages = [
        _stage(name, recorded.get(name), now, stale_after if name in PIPELINE_STAGES else None)
        for name in names
    ]
    payment = rows.newest_payment
    bill = rows.oldest_bill
    return PipelineStatus(
        checked_at=now,
        stale_after_seconds=stale_after,
        stages=stages,
        cursors=[
            CursorStatus(c["account"], c["cursor"], c["updated_at"], _age(now, c["updated_at"]))
            for c in rows.cursors
        ],
        newest_payment=NewestPayment(
            payment["received_at"],
            _age(now, payment["received_at"]),
            payment["ledger_time"],
            _age(now, payment["ledger_time"]),
        )
        if payment
        else None,
        open_bills=dict(sorted(rows.open_bills.items())),
        queues=rows.queues,
        refunds=dict(sorted(rows.refunds.items())),
        notifications=dict(sorted(rows.notifications.items())),
        oldest_bill=OldestBill(
            bill["reference"],
            bill["status"],
            bill["created_at"],
            bill["updated_at"],
            _age(now, bill["updated_at"]),
        )
        if bill
        else None,
        quarantine=_quarantine(rows.quarantine, now),
    )


def _quarantine(row: dict[str, Any] | None, now: datetime) -> QuarantineStatus:
    oldest = row["oldest_at"] if row else None
    return QuarantineStatus(
        int(row["open"]) if row else 0, oldest, _age(now, oldest) if oldest else None
    )


def _stage(
    name: str, row: dict[str, Any] | None, now: datetime, stale_after: int | None
) -> StageStatus:
    success = row["last_success_at"] if row else None
    age = _age(now, success) if success else None
    return StageStatus(
        stage=name,
        runs=int(row["runs"]) if row else 0,
        failures=int(row["failures"]) if row else 0,
        last_run_at=row["last_run_at"] if row else None,
        last_success_at=success,
        last_success_age_seconds=age,
        last_error=row["last_error"] if row and not row["last_ok"] else None,
        stale=stale_after is not None and (age is None or age > stale_after),
        summary=row["last_summary"] if row else None,
    )


def _age(now: datetime, then: datetime) -> int:
    return int((now - then).total_seconds())


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


# --- the human report ------------------------------------------------------------------------


def format_status(status: PipelineStatus) -> str:
    """The report ``billpay status`` prints: one line per stage, then the pipeline's backlog."""
    busy = {name.removeprefix("queue_"): n for name, n in status.queues.items() if n}
    lines = [_stage_line(s) for s in status.stages]
    lines += [
        _line("horizon", _ingest_text(status)),
        _line("in flight", _counts(status.open_bills, "no bills")),
        _line("queues", _counts(busy, "all empty")),
        _line("open refunds", _counts(status.refunds, "none")),
        _line("unsent", _counts(status.notifications, "none")),
        _line("oldest", _oldest_text(status.oldest_bill)),
        _line("quarantined", _quarantine_text(status.quarantine)),
    ]
    if status.stale:
        lines += ["", stale_hint(status)]
    return "\n".join(lines)


def _quarantine_text(quarantine: QuarantineStatus) -> str:
    if not quarantine.open or quarantine.oldest_age_seconds is None:
        return "none"
    return (
        f"{quarantine.open} Horizon record(s) unread, oldest {_ago(quarantine.oldest_age_seconds)}"
        " (table ingest_quarantine)"
    )


def stale_hint(status: PipelineStatus) -> str:
    """Which stages are stale and what to check first."""
    which = ", ".join(f"{s.stage} ({_last_ok(s)})" for s in status.stale)
    return (
        f"STALE (no success within {status.stale_after_seconds}s): {which}. "
        "Is `billpay serve` running? Then check the stage's error above and the Prefect UI."
    )


_LABEL_WIDTH = 14


def _line(label: str, text: str) -> str:
    return f"{label:<{_LABEL_WIDTH}}{text}"


def _stage_line(stage: StageStatus) -> str:
    text = _last_ok(stage)
    if stage.last_error is not None:
        text += f"; last run failed: {stage.last_error}"
    if stage.stale:
        text += "  STALE"
    return _line(stage.stage, text)


def _last_ok(stage: StageStatus) -> str:
    if stage.runs == 0:
        return "never ran"
    if stage.last_success_age_seconds is None:
        return f"never succeeded ({stage.failures} failed runs)"
    return f"last ok {_ago(stage.last_success_age_seconds)}"


def _ingest_text(status: PipelineStatus) -> str:
    parts = [
        f"cursor {c.account[:4]}…{c.account[-4:]} moved {_ago(c.age_seconds)}"
        for c in status.cursors
    ]
    if not parts:
        parts = ["no cursor yet"]
    payment = status.newest_payment
    if payment:
        parts.append(
            f"newest payment stored {_ago(payment.received_age_seconds)} "
            f"(ledger {_ago(payment.ledger_age_seconds)})"
        )
    return "; ".join(parts)


def _oldest_text(bill: OldestBill | None) -> str:
    if bill is None:
        return "no bill waiting on the pipeline"
    return f"{bill.reference} {bill.status}, unchanged for {bill.age_seconds}s"


def _counts(counts: dict[str, int], empty: str) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items()) if counts else empty


def _ago(seconds: int) -> str:
    return f"{seconds}s ago"
