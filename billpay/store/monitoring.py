"""How the pipeline is doing, read from the outside (the demo, the benchmark, ``billpay work``),
and the fresh database they start from (the set-up statements are the engine's). Each function is one named query of
``sql/queries/monitoring.sql``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from billpay.store.engine import Database
from billpay.store.queries import query


def recreate_database(url: URL) -> None:
    """Drop ``url``'s database (disconnecting its sessions) and create it empty."""
    assert url.database, "a database name is required"
    admin = sa.create_engine(
        url.set(database="postgres"), isolation_level="AUTOCOMMIT", hide_parameters=True
    )
    try:
        with admin.connect() as conn:
            conn.execute(query("drop_database", database=url.database))
            conn.execute(query("create_database", database=url.database))
    finally:
        admin.dispose()


def work_left(db: Database) -> int:
    """Bills, refunds and notifications a worker could still move now."""
    with db.connect() as conn:
        return int(conn.execute(query("count_work_left")).scalar_one())


def expire_orders_now(db: Database, references: list[str]) -> None:
    with db.begin() as conn:
        conn.execute(query("expire_orders_now"), {"references": references})


def order_outcome(db: Database, reference: str, memo: str | None) -> dict[str, Any] | None:
    """State, token and refund of an order (the refund of the payment sent with ``memo``)."""
    with db.connect() as conn:
        row = conn.execute(query("order_outcome"), {"reference": reference, "memo": memo})
        return _first(row)


def payment_refund_outcome(db: Database, memo: str | None) -> dict[str, Any] | None:
    """The refund of a payment that matched no order."""
    with db.connect() as conn:
        return _first(conn.execute(query("payment_refund_outcome"), {"memo": memo}))


@dataclass(frozen=True)
class CompletionLatency:
    """Seconds from cNGN received to completed, over completed bills."""

    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None
    completed: int


@dataclass(frozen=True)
class PipelineCounts:
    states: dict[str, int]  # bills per status
    provider_calls: dict[str, int]  # provider_attempts per provider
    latency: CompletionLatency
    first_received: datetime | None
    last_settled: datetime | None


def pipeline_counts(db: Database) -> PipelineCounts:
    with db.connect() as conn:
        states = dict(conn.execute(query("count_bills_by_status")).all())
        calls = dict(conn.execute(query("count_provider_calls")).all())
        latency = conn.execute(query("completion_latency")).one()
        first, last = conn.execute(query("settlement_window")).one()
    return PipelineCounts(
        states=states,
        provider_calls=calls,
        latency=CompletionLatency(*(_float(v) for v in latency[:4]), completed=latency[4]),
        first_received=first,
        last_settled=last,
    )


def _first(result: Any) -> dict[str, Any] | None:
    row = result.mappings().first()
    return dict(row) if row is not None else None


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None
