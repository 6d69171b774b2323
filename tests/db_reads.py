"""Reading rows back in the database tests: one row as a dict, one value, all rows."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from billpay.store.engine import Database


def one_row(db: Database, sql: str, **params: Any) -> dict[str, Any]:
    """The first row ``sql`` returns, as a dict; {} when there is none."""
    with db.connect() as conn:
        row = conn.execute(sa.text(sql), params).mappings().first()
    return dict(row) if row is not None else {}


def scalar(db: Database, sql: str, **params: Any) -> Any:
    """The single value ``sql`` returns (exactly one row)."""
    with db.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def all_rows(db: Database, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Every row ``sql`` returns, as tuples."""
    with db.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(sql), params)]
