"""Bill orders: intake, reads, claims from the queue views, and the status writers.

Every change of ``bill_payments.status`` goes through one of the plpgsql functions of
``sql/0006_bill_status_writers.sql`` (one per transition family; each checks the expected
state and the lease holder, sets the audit actor and says whether it applied). The queries are
named entries of ``sql/queries/bills.sql``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from billpay.bills.decision import Decision
from billpay.orders import BillOrder, BillType, new_reference
from billpay.states import BillState
from billpay.store.engine import Database
from billpay.store.queries import query

S = BillState

# Queue views a stage may claim from (a whitelist: names are spliced into SQL).
BILL_QUEUES = frozenset(
    {
        "queue_verify_accounts",
        "queue_pay_bills",
        "queue_requery_bills",
        "queue_retry_bills",
        "queue_bills_to_refund",
    }
)
LEASED_TABLES = ("bill_payments", "refunds", "notifications")

_MAX_REFERENCE_TRIES = 5


def create_order(db: Database, **fields: Any) -> dict[str, Any]:
    """Insert a ``pending_payment`` order in a transaction of its own (the CLI's path); the
    fields are :func:`insert_order`'s."""
    with db.begin() as conn:
        return insert_order(conn, **fields)


def insert_order(
    conn: Connection,
    *,
    bill_type: BillType,
    biller: str,
    account_number: str,
    amount_kobo: int,
    fee_kobo: int,
    amount_cngn: Decimal,
    phone: str,
    ttl: timedelta,
    account_type: str | None = None,
    product_code: str | None = None,
    network: str | None = None,
    email: str | None = None,
    api_client_id: int | None = None,
    actor: str = "order-intake",
) -> dict[str, Any]:
    """Insert a ``pending_payment`` order with a fresh unique reference in the caller's
    transaction (the API records its idempotency key in the same one); returns the row."""
    params = {
        "bill_type": str(bill_type),
        "biller": biller,
        "product_code": product_code,
        "account_number": account_number,
        "account_type": account_type,
        "network": network,
        "phone": phone,
        "email": email,
        "amount_kobo": amount_kobo,
        "fee_kobo": fee_kobo,
        "amount_cngn": amount_cngn,
        "ttl": ttl.total_seconds(),
        "api_client_id": api_client_id,
    }
    conn.execute(query("set_actor"), {"actor": actor, "detail": ""})
    # A taken reference inserts nothing (ON CONFLICT DO NOTHING, no error), so drawing another
    # stays inside the one transaction.
    for _ in range(_MAX_REFERENCE_TRIES):
        params["reference"] = new_reference()
        row = conn.execute(query("insert_order"), params).mappings().first()
        if row is not None:
            return dict(row)
    raise RuntimeError("could not allocate a unique order reference")


# --- reads ---------------------------------------------------------------------------------


def get_by_reference(db: Database, reference: str) -> dict[str, Any] | None:
    with db.connect() as conn:
        row = conn.execute(query("bill_by_reference"), {"reference": reference}).mappings().first()
        return dict(row) if row else None


def get_by_id(conn: Connection, bill_id: int) -> dict[str, Any] | None:
    row = conn.execute(query("bill_by_id"), {"id": bill_id}).mappings().first()
    return dict(row) if row else None


def by_references(db: Database, references: list[str], limit: int) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(
            query("bills_by_references"), {"references": references, "limit": limit}
        ).mappings()
        return [dict(row) for row in rows]


def waiting_in_state(
    db: Database, state: BillState, *, minutes: int, limit: int
) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(
            query("bills_waiting_in_state"),
            {"state": str(state), "minutes": minutes, "limit": limit},
        ).mappings()
        return [dict(row) for row in rows]


def events_for(db: Database, bill_id: int) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(query("bill_events"), {"id": bill_id}).mappings()
        return [dict(row) for row in rows]


def to_order(row: Mapping[str, Any]) -> BillOrder:
    """The domain view of a ``bill_payments`` row, for provider adapters."""
    return BillOrder(
        id=row["id"],
        reference=row["reference"],
        bill_type=BillType(row["bill_type"]),
        biller=row["biller"],
        account_number=row["account_number"],
        account_type=row.get("account_type"),
        product_code=row.get("product_code"),
        network=row.get("network"),
        amount_kobo=int(row["amount_kobo"]),
        fee_kobo=int(row.get("fee_kobo") or 0),
        amount_cngn=row.get("amount_cngn"),
        phone=row["customer_phone"],
        email=row.get("customer_email"),
        expires_at=row.get("expires_at"),
    )


# --- claims and leases ---------------------------------------------------------------------


def claim(
    db: Database, queue: str, *, worker: str, lease_seconds: int, limit: int
) -> list[dict[str, Any]]:
    """Claim up to ``limit`` rows of a queue view: SKIP LOCKED, then a lease on each row.

    Rows whose lease expired (a dead worker's) are in the views again; rows with a live lease
    are not, so two workers always get disjoint batches.
    """
    if queue not in BILL_QUEUES:
        raise ValueError(f"unknown queue {queue!r}")
    with db.begin() as conn:
        rows = (
            conn.execute(
                query("claim_bills", queue=queue),
                {"limit": limit, "worker": worker, "lease": lease_seconds},
            )
            .mappings()
            .all()
        )
    return sorted((dict(row) for row in rows), key=lambda row: row["id"])


def claim_one(db: Database, bill_id: int, queue: str, *, worker: str, lease_seconds: int) -> bool:
    """Claim bill ``bill_id`` when it is in ``queue`` now (due and not leased elsewhere)."""
    if queue not in BILL_QUEUES:
        raise ValueError(f"unknown queue {queue!r}")
    with db.begin() as conn:
        claimed = conn.execute(
            query("claim_bill", queue=queue),
            {"id": bill_id, "worker": worker, "lease": lease_seconds},
        ).first()
    return claimed is not None


def release(db: Database, bill_ids: Iterable[int], *, worker: str) -> int:
    """Give back leases this worker holds (graceful shutdown, end of a stage)."""
    ids = list(bill_ids)
    if not ids:
        return 0
    with db.begin() as conn:
        return conn.execute(query("release_bills"), {"ids": ids, "worker": worker}).rowcount


def release_all(db: Database, *, worker_prefix: str) -> int:
    """Give back every lease held by workers whose id starts with ``worker_prefix`` (this
    process on SIGTERM): the rows are claimable again at once instead of after the lease."""
    pattern = worker_prefix.replace("%", r"\%").replace("_", r"\_") + "%"
    with db.begin() as conn:
        return sum(
            conn.execute(query("release_leases_like", table=table), {"pattern": pattern}).rowcount
            for table in LEASED_TABLES
        )


def lease(conn: Connection, bill_id: int, *, worker: str, seconds: int) -> None:
    conn.execute(query("lease_bill"), {"id": bill_id, "worker": worker, "lease": seconds})


# --- status writers ------------------------------------------------------------------------


def _call(conn: Connection, name: str, params: Mapping[str, Any]) -> bool:
    return bool(conn.execute(query(name), dict(params)).scalar())


def begin_step(
    conn: Connection,
    bill_id: int,
    source: BillState,
    target: BillState,
    *,
    worker: str,
    detail: str,
) -> bool:
    """A claimed bill starts its step (cngn_received -> verifying_account, retry_scheduled ->
    processing_bill); the lease is kept."""
    params = {"id": bill_id, "source": str(source), "target": str(target), "detail": detail}
    return _call(conn, "bill_begin_step", params | {"worker": worker, "actor": worker})


def open_attempt(
    conn: Connection, bill_id: int, *, worker: str, provider: str, reference: str, lease: int
) -> bool:
    """Remember the pay attempt's reference (and renew the lease for the call) while the bill is
    still ours and has no open attempt."""
    params = {"id": bill_id, "worker": worker, "provider": provider, "lease": lease}
    return _call(conn, "bill_open_attempt", params | {"attempt_reference": reference})


def apply(
    conn: Connection, bill_id: int, decision: Decision, *, worker: str | None, actor: str
) -> bool:
    """Persist a :class:`~billpay.bills.decision.Decision` with its family's status writer.
    ``worker`` None: an operator acting without a lease (refund, requery). Each writer's
    catalogue entry takes the parameters it needs from the one set below."""
    error = decision.error
    params = {
        "id": bill_id,
        "worker": worker,
        "actor": actor,
        "detail": decision.detail,
        "source": str(decision.source),
        "set_error": error is not None,
        "last_error": error.message if error else None,
        "last_error_class": error.error_class if error else None,
        "retry_count": decision.retry_count,
        "requery_count": decision.requery_count,
        "next_attempt_at": decision.next_attempt_at,
        "provider_reference": decision.provider_reference,
        "token": decision.token,
        "units": decision.units,
        "verification": json.dumps(dict(decision.verification or {}), default=str),
        "account_invalid": decision.target is S.ACCOUNT_INVALID,
        "refund_reason": decision.refund_reason,
    }
    return _call(conn, _writer_for(decision), params)


def _writer_for(decision: Decision) -> str:
    """The status writer (transition family) that applies ``decision``."""
    source, target = decision.source, decision.target
    if decision.refund_reason is not None:
        return "bill_give_up"
    if target is S.COMPLETED:
        return "bill_complete"
    if target is S.RETRY_SCHEDULED:
        return "bill_schedule_retry"
    if source is S.VERIFYING_ACCOUNT and target is S.PROCESSING_BILL:
        return "bill_verified"
    if target is source or (source is S.PROCESSING_BILL and target is S.PROVIDER_PROCESSING):
        return "bill_wait"
    raise ValueError(f"no status writer moves a bill {source} -> {target}")


def send_to_refund(conn: Connection, bill_id: int, reason: str, *, actor: str) -> bool:
    """Refund a bill waiting in account_invalid / provider_failed, or a pending order whose
    payment cannot be matched (``transition_bill_to_refund`` under the audit actor)."""
    return _call(conn, "bill_send_to_refund", {"id": bill_id, "actor": actor, "reason": reason})


def requeue(conn: Connection, bill_id: int, *, actor: str, detail: str) -> bool:
    """Give back the lease and make a waiting bill due now (an operator's requeue)."""
    return _call(conn, "bill_requeue", {"id": bill_id, "actor": actor, "detail": detail})


def expire_due_orders(db: Database, *, actor: str, limit: int = 500) -> list[str]:
    """``pending_payment`` past ``expires_at`` -> ``expired``; returns the references."""
    with db.begin() as conn:
        return list(
            conn.execute(query("bill_expire_due"), {"limit": limit, "actor": actor}).scalars()
        )


# --- step failures, operator claims and resolve (sql/0010) --------------------------------


def record_step_failure(
    conn: Connection,
    bill_id: int,
    *,
    worker: str,
    stage: str,
    error: str,
    next_attempt_at: datetime,
) -> int | None:
    """A step on a bill this worker holds raised: count it, keep ``error`` (already masked),
    wait until ``next_attempt_at`` and give the lease back; a committed pay attempt moves the
    bill to provider_processing (requeried, never paid again). Returns the failures in a row,
    or None when the bill is no longer this worker's."""
    params = {
        "id": bill_id,
        "worker": worker,
        "stage": stage,
        "error": error,
        "next_attempt_at": next_attempt_at,
    }
    value = conn.execute(query("bill_step_failed"), params).scalar()
    return None if value is None else int(value)


def clear_step_failures(conn: Connection, bill_id: int) -> bool:
    """A step succeeded: the bill's streak of failed steps is over."""
    return _call(conn, "bill_step_succeeded", {"id": bill_id})


def claim_as_planned(
    conn: Connection,
    bill_id: int,
    *,
    worker: str,
    lease_seconds: int,
    status: BillState,
    attempt_reference: str | None,
    take_over: bool = False,
) -> dict[str, Any] | None:
    """Lease one bill for an operator's action, only while no one else holds a live lease
    (``take_over``: even then, for a requeue) and the bill is still in ``status`` with
    ``attempt_reference`` open; returns the fresh row."""
    params = {
        "take_over": take_over,
        "id": bill_id,
        "worker": worker,
        "lease": lease_seconds,
        "status": str(status),
        "attempt_reference": attempt_reference,
    }
    row = conn.execute(query("bill_claim_as_planned"), params).mappings().first()
    return dict(row) if row else None


def resolve(
    conn: Connection,
    bill_id: int,
    *,
    choice: str,
    actor: str,
    detail: str,
    min_pending_seconds: int,
    token: str | None,
    units: str | None,
    refund_reason: str | None,
) -> str | None:
    """An operator resolves a bill stuck in provider_processing (``delivered`` or ``failed``);
    returns None when applied, else the database's reason for refusing."""
    params = {
        "id": bill_id,
        "choice": choice,
        "actor": actor,
        "detail": detail,
        "min_pending_seconds": min_pending_seconds,
        "token": token,
        "units": units,
        "refund_reason": refund_reason,
    }
    return conn.execute(query("bill_resolve"), params).scalar()
