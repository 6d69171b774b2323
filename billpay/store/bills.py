"""Bill orders: intake, reads, claims from queue views, compare-and-set transitions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from billpay.orders import BillOrder, BillType, new_reference
from billpay.states import BillState
from billpay.store.engine import Database
from billpay.store.queries import query

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

# Columns a transition may set besides status (a whitelist for the same reason).
TRANSITION_COLUMNS = frozenset(
    {
        "provider",
        "provider_reference",
        "attempt_reference",
        "token",
        "units",
        "retry_count",
        "requery_count",
        "next_attempt_at",
        "last_error",
        "last_error_class",
        "refund_reason",
        "verification",
        "incoming_payment_id",
        "paid_at",
        "completed_at",
        "refunded_at",
    }
)

_MAX_REFERENCE_TRIES = 5


def set_actor(conn: Connection, actor: str | None, detail: str | None = None) -> None:
    """Attribute the events the trigger writes in this transaction."""
    conn.execute(
        sa.text(
            "SELECT set_config('billpay.actor', :actor, true), set_config('billpay.detail', :detail, true)"
        ),
        {"actor": actor or "", "detail": detail or ""},
    )


def create_order(
    db: Database,
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
    actor: str = "order-intake",
) -> dict[str, Any]:
    """Insert a ``pending_payment`` order with a fresh unique reference; returns the row."""
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
    }
    for _ in range(_MAX_REFERENCE_TRIES):
        params["reference"] = new_reference()
        with db.begin() as conn:
            set_actor(conn, actor)
            row = (
                conn.execute(
                    sa.text(
                        """
                    INSERT INTO bill_payments (reference, bill_type, biller, product_code,
                        account_number, account_type, network, customer_phone, customer_email,
                        amount_kobo, fee_kobo, amount_cngn, expires_at)
                    VALUES (:reference, :bill_type, :biller, :product_code, :account_number,
                        :account_type, :network, :phone, :email, :amount_kobo, :fee_kobo,
                        :amount_cngn, now() + make_interval(secs => :ttl))
                    ON CONFLICT ON CONSTRAINT bill_payments_reference_key DO NOTHING
                    RETURNING *
                    """
                    ),
                    params,
                )
                .mappings()
                .first()
            )
        if row is not None:
            return dict(row)
    raise RuntimeError("could not allocate a unique order reference")


def get_by_reference(db: Database, reference: str) -> dict[str, Any] | None:
    with db.connect() as conn:
        row = (
            conn.execute(
                sa.text("SELECT * FROM bill_payments WHERE reference = :ref"), {"ref": reference}
            )
            .mappings()
            .first()
        )
        return dict(row) if row else None


def get_by_id(conn: Connection, bill_id: int, *, for_update: bool = False) -> dict[str, Any] | None:
    lock = " FOR UPDATE" if for_update else ""
    row = (
        conn.execute(sa.text(f"SELECT * FROM bill_payments WHERE id = :id{lock}"), {"id": bill_id})
        .mappings()
        .first()
    )
    return dict(row) if row else None


def events_for(db: Database, bill_id: int) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT from_state, to_state, at, actor, detail FROM bill_payment_events"
                " WHERE bill_payment_id = :id ORDER BY id"
            ),
            {"id": bill_id},
        ).mappings()
        return [dict(row) for row in rows]


def append_event(
    conn: Connection, bill_id: int, state: BillState | str, actor: str, detail: str
) -> None:
    """An audit note that is not a transition (e.g. a requery that found the bill still pending)."""
    conn.execute(
        sa.text(
            "INSERT INTO bill_payment_events (bill_payment_id, from_state, to_state, actor, detail)"
            " VALUES (:id, :state, :state, :actor, :detail)"
        ),
        {"id": bill_id, "state": str(state), "actor": actor, "detail": detail},
    )


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


def release(db: Database, bill_ids: Iterable[int], *, worker: str) -> int:
    """Give back leases this worker holds (graceful shutdown, end of a stage)."""
    ids = list(bill_ids)
    if not ids:
        return 0
    with db.begin() as conn:
        result = conn.execute(
            sa.text(
                "UPDATE bill_payments SET claimed_by = NULL, claimed_until = NULL"
                " WHERE id = ANY(:ids) AND claimed_by = :worker"
            ),
            {"ids": ids, "worker": worker},
        )
        return result.rowcount


def release_all(db: Database, *, worker_prefix: str) -> int:
    """Give back every lease held by workers whose id starts with ``worker_prefix`` (this
    process on SIGTERM): the rows are claimable again at once instead of after the lease."""
    pattern = worker_prefix.replace("%", r"\%").replace("_", r"\_") + "%"
    released = 0
    with db.begin() as conn:
        for table in ("bill_payments", "refunds", "notifications"):
            released += conn.execute(
                sa.text(
                    f"UPDATE {table} SET claimed_by = NULL, claimed_until = NULL"
                    " WHERE claimed_by LIKE :pattern"
                ),
                {"pattern": pattern},
            ).rowcount
    return released


def transition(
    conn: Connection,
    bill_id: int,
    source: BillState | Sequence[BillState],
    target: BillState,
    *,
    actor: str,
    detail: str | None = None,
    worker: str | None = None,
    keep_claim: bool = False,
    **fields: Any,
) -> bool:
    """Compare-and-set: move ``bill_id`` from one of ``source`` to ``target``.

    Returns whether it applied. When ``worker`` is given the row must still be claimed by it
    (a worker whose lease was taken over does not write). The lease is released unless
    ``keep_claim``. The trigger rejects transitions the state machine forbids.
    """
    sources = [str(source)] if isinstance(source, BillState) else [str(s) for s in source]
    unknown = set(fields) - TRANSITION_COLUMNS
    if unknown:
        raise ValueError(f"cannot set {sorted(unknown)} in a transition")
    assignments = ["status = :target", "updated_at = now()"]
    assignments += [_assign(name, value) for name, value in fields.items()]
    if not keep_claim:
        assignments += ["claimed_by = NULL", "claimed_until = NULL"]
    guard = " AND claimed_by = :worker" if worker else ""
    params: dict[str, Any] = {"id": bill_id, "sources": sources, "target": str(target)}
    params.update({f"f_{name}": _sql_value(value) for name, value in fields.items()})
    if worker:
        params["worker"] = worker
    set_actor(conn, actor, detail)
    row = conn.execute(
        sa.text(
            f"UPDATE bill_payments SET {', '.join(assignments)}"
            f" WHERE id = :id AND status = ANY(:sources){guard} RETURNING id"
        ),
        params,
    ).first()
    return row is not None


def update_fields(
    conn: Connection,
    bill_id: int,
    state: BillState,
    *,
    worker: str | None = None,
    require_no_open_attempt: bool = False,
    **fields: Any,
) -> bool:
    """Set processing fields without a state change, guarded by the expected state (and by the
    lease holder, and by "no open pay attempt", when asked).

    ``updated_at`` is left alone on purpose: it means "last state change", which is what the
    stuck view measures.
    """
    unknown = set(fields) - TRANSITION_COLUMNS - {"claimed_until", "claimed_by"}
    if unknown:
        raise ValueError(f"cannot set {sorted(unknown)}")
    assignments = [_assign(name, value) for name, value in fields.items()]
    guard = " AND claimed_by = :worker" if worker else ""
    if require_no_open_attempt:
        guard += " AND attempt_reference IS NULL"
    params: dict[str, Any] = {"id": bill_id, "state": str(state), "worker": worker}
    params.update({f"f_{name}": _sql_value(value) for name, value in fields.items()})
    row = conn.execute(
        sa.text(
            f"UPDATE bill_payments SET {', '.join(assignments)}"
            f" WHERE id = :id AND status = :state{guard} RETURNING id"
        ),
        params,
    ).first()
    return row is not None


def transition_to_refund(conn: Connection, bill_id: int, reason: str, *, actor: str) -> bool:
    """``transition_bill_to_refund``: only from states where no money reached a provider."""
    set_actor(conn, actor, reason)
    return bool(
        conn.execute(
            sa.text("SELECT transition_bill_to_refund(:id, :reason)"),
            {"id": bill_id, "reason": reason},
        ).scalar()
    )


def mark_ready_for_retry(
    conn: Connection, bill_id: int, backoff_seconds: int, *, actor: str, detail: str
) -> bool:
    set_actor(conn, actor, detail)
    return bool(
        conn.execute(
            sa.text("SELECT mark_bill_payment_ready_for_retry(:id, :backoff)"),
            {"id": bill_id, "backoff": backoff_seconds},
        ).scalar()
    )


def expire_due_orders(db: Database, *, actor: str, limit: int = 500) -> list[str]:
    """``pending_payment`` past ``expires_at`` -> ``expired``; returns the references."""
    with db.begin() as conn:
        set_actor(conn, actor, "no payment before expiry")
        rows = (
            conn.execute(
                sa.text(
                    """
                WITH due AS (
                    SELECT id FROM queue_expire_orders ORDER BY expires_at LIMIT :limit
                    FOR UPDATE SKIP LOCKED
                )
                UPDATE bill_payments b SET status = 'expired', updated_at = now()
                  FROM due WHERE b.id = due.id AND b.status = 'pending_payment'
                RETURNING b.reference
                """
                ),
                {"limit": limit},
            )
            .scalars()
            .all()
        )
    return list(rows)


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


def _assign(name: str, value: Any) -> str:
    if isinstance(value, dict):
        return f"{name} = CAST(:f_{name} AS jsonb)"
    return f"{name} = :f_{name}"


def _sql_value(value: Any) -> Any:
    if isinstance(value, BillState):
        return str(value)
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return value
