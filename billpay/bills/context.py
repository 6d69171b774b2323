"""What every bill step shares: its dependencies, its result, and the one way it saves a
decision (the status writer, the provider call record and any operator alert, in one
transaction)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from billpay.bills.decision import Alert, Decision
from billpay.bills.policy import Conditions
from billpay.config import Settings
from billpay.orders import BillOrder
from billpay.providers.routing import ProviderRouter
from billpay.states import BillState
from billpay.store import Database
from billpay.store import bills as bill_store
from billpay.store import notifications as outbox

# A call guard bounds concurrent calls per provider (see billpay.store.slots); none by default.
CallGuard = Callable[[str], AbstractContextManager[Any]]


class NeedsAttention(Exception):
    """Raised after the bill was left in a correct, resumable state, so the task shows as failed
    in the UI: credentials refused, our provider float is low, a bill pending for too long."""


@dataclass
class StepResult:
    reference: str
    stage: str
    before: str
    after: str
    detail: str = ""
    advanced: bool = True
    alert: str | None = None
    error: str | None = None  # the step raised: its masked text (the failure is recorded)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StepContext:
    """One worker's view of the pipeline: the database, the settings, the router, the lease
    owner id, the provider call guard and the clock."""

    db: Database
    settings: Settings
    router: ProviderRouter
    worker: str
    guard: CallGuard = lambda _provider: nullcontext()
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def load(self, bill_id: int) -> dict[str, Any]:
        with self.db.connect() as conn:
            row = bill_store.get_by_id(conn, bill_id)
        if row is None:
            raise LookupError(f"bill {bill_id} does not exist")
        return row

    def begin(self, bill_id: int, source: BillState, target: BillState, detail: str) -> bool:
        """Start a step on a claimed bill (the lease is kept for the rest of the step)."""
        with self.db.begin() as conn:
            return bill_store.begin_step(
                conn, bill_id, source, target, worker=self.worker, detail=detail
            )

    def conditions(self, order: BillOrder | None = None) -> Conditions:
        """What the rules decide under now: the settings, the clock, the order's route."""
        route = self.route(order) if order is not None else []
        return Conditions(self.settings, self.now(), route)

    def route(self, order: BillOrder) -> list[str]:
        """The providers that may pay this order, in the configured order."""
        return [provider.name for provider in self.router.route(order)]


Record = Callable[[Connection], Any]


def persist(
    ctx: StepContext,
    row: Mapping[str, Any],
    decision: Decision,
    stage: str,
    *,
    record: Record | None = None,
    actor: str | None = None,
) -> StepResult:
    """Save a decision: ``record`` (the provider call), the status writer, the alert; then say
    what happened. The bill is ctx.worker's (its lease); ``actor`` names who acted in the audit
    trail (an operator's run), by default the worker. A saved step ends a streak of failures."""
    with ctx.db.begin() as conn:
        if record is not None:
            record(conn)
        ok = bill_store.apply(
            conn, row["id"], decision, worker=ctx.worker, actor=actor or ctx.worker
        )
        if ok and row.get("step_failures"):
            bill_store.clear_step_failures(conn, row["id"])
        alert = decision.alert
        if alert is not None:
            enqueue_alert(conn, row["id"], alert)
    return StepResult(
        row["reference"],
        stage,
        str(row["status"]),
        str(decision.after if ok else row["status"]),
        decision.summary,
        ok and decision.advances,
        alert.text if alert else None,
    )


def enqueue_alert(conn: Connection, bill_id: int, alert: Alert) -> None:
    """An operator alert about one bill into the outbox, in the caller's transaction (once per
    ``dedupe_key``)."""
    outbox.enqueue(
        conn,
        kind=alert.kind,
        bill_id=bill_id,
        payload=dict(alert.payload),
        dedupe_key=alert.dedupe_key,
    )


def skipped(row: Mapping[str, Any], stage: str) -> StepResult:
    return StepResult(
        row["reference"],
        stage,
        str(row["status"]),
        str(row["status"]),
        "not in this stage's state or claimed elsewhere",
        advanced=False,
    )
