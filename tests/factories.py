"""Set-up rows for the database tests: orders, incoming payments, and bills put in a state.

One place for these so every test builds the same realistic rows, and so the one shortcut the
code itself never takes (writing a status past the guard trigger) is written once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from billpay.orders import BillType
from billpay.providers.base import make_attempt_reference
from billpay.states import BillState
from billpay.store import attempts, bills
from billpay.store.engine import Database
from billpay.store.queries import query

# The order the tests use unless they say otherwise: airtime for an MTN number.
AIRTIME = {
    "bill_type": BillType.AIRTIME,
    "biller": "mtn",
    "account_number": "08031234567",
    "phone": "08031234567",
}
WATER = {
    "bill_type": BillType.WATER,
    "biller": "lagos-water",
    "account_number": "123456",
    "phone": "08011111111",
}
PREPAID_ELECTRICITY = {
    "bill_type": BillType.ELECTRICITY,
    "biller": "ikeja-electric",
    "account_number": "1111111111111",
    "account_type": "prepaid",
    "phone": "08011111111",
}
_operations = count(1)


def new_order(
    db: Database,
    amount: str | Decimal = "1000",
    *,
    ttl: timedelta = timedelta(minutes=10),
    **details: Any,
) -> dict[str, Any]:
    """An order awaiting payment of ``amount`` cNGN (no fee); ``details`` override AIRTIME."""
    cngn = Decimal(amount)
    return bills.create_order(
        db,
        **{**AIRTIME, **details},
        amount_kobo=int(cngn * 100),
        fee_kobo=0,
        amount_cngn=cngn,
        ttl=ttl,
    )


@contextmanager
def guard_off(conn: Connection) -> Iterator[Connection]:
    """The state-machine guard trigger off: test set-up only, never what the code does."""
    conn.execute(sa.text("ALTER TABLE bill_payments DISABLE TRIGGER bill_payments_guard"))
    yield conn
    conn.execute(sa.text("ALTER TABLE bill_payments ENABLE TRIGGER bill_payments_guard"))


def force_state(conn: Connection, bill_id: int, state: BillState | str, **columns: Any) -> None:
    """Put a bill in ``state`` (and set ``columns``) past the guard, as a longer road would."""
    sets = ", ".join(["status = :status", *(f"{name} = :{name}" for name in columns)])
    with guard_off(conn):
        conn.execute(
            sa.text(f"UPDATE bill_payments SET {sets} WHERE id = :id"),
            {**columns, "status": str(state), "id": bill_id},
        )


def bill_in_state(db: Database, state: BillState, **order: Any) -> dict[str, Any]:
    """A new order already in ``state`` (the row as created, before the forced status)."""
    row = new_order(db, **order)
    if state is not BillState.PENDING_PAYMENT:
        with db.begin() as conn:
            force_state(conn, row["id"], state)
    return row


def add_incoming_payment(
    conn: Connection,
    amount: str | Decimal = "1000",
    *,
    memo: str | None = None,
    operation_id: str | None = None,
    **fields: Any,
) -> int:
    """An incoming cNGN payment from a user to the system account; returns its id."""
    operation = operation_id or f"op-{next(_operations)}"
    row = {
        "operation_id": operation,
        "paging_token": operation,
        "transaction_hash": "h",
        "operation_type": "payment",
        "from_account": "GUSER",
        "from_muxed": None,
        "to_account": "GSYS",
        "to_muxed_id": None,
        "asset_type": "credit_alphanum4",
        "asset_code": "cNGN",
        "asset_issuer": "GISS",
        "amount": Decimal(amount),
        "memo_type": "none" if memo is None else "text",
        "memo": memo,
        "ledger": None,
        "ledger_time": datetime.now(UTC),
        **fields,
    }
    return conn.execute(query("insert_incoming_payment"), row).scalar_one()


def attach_payment(db: Database, bill: dict[str, Any], amount: str | Decimal = "1000") -> int:
    """Record a payment carrying the bill's memo and link it to the bill; returns its id."""
    with db.begin() as conn:
        payment_id = add_incoming_payment(conn, amount, memo=f"BILL-{bill['reference']}")
        conn.execute(
            sa.text("UPDATE bill_payments SET incoming_payment_id = :p WHERE id = :id"),
            {"p": payment_id, "id": bill["id"]},
        )
    return payment_id


def bill_at_provider(
    db: Database,
    state: BillState,
    provider: str = "vtpass",
    *,
    attempt: bool = True,
    **columns: Any,
) -> tuple[int, str]:
    """A paid airtime bill in ``state`` whose pay attempt at ``provider`` is recorded and open
    (the bill names it, unless not ``attempt``): its id and the attempt's reference."""
    row = new_order(db, ttl=timedelta(hours=1), **AIRTIME)
    reference = make_attempt_reference(row["reference"], 1, datetime.now(UTC))
    with db.begin() as conn:
        payment = add_incoming_payment(conn, memo=f"BILL-{row['reference']}")
        attempts.start_pay_attempt(
            conn, bill_id=row["id"], provider=provider, reference=reference, attempt_no=1,
            is_fallback=False,
        )  # fmt: skip
        force_state(
            conn,
            row["id"],
            state,
            incoming_payment_id=payment,
            provider=provider,
            attempt_reference=reference if attempt else None,
            **columns,
        )
    return row["id"], reference
