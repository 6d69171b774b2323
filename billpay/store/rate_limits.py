"""The API's per-key rate limit counters, shared by every API process on the database: the two
windows of limits' sliding window counter per key (billpay/api/ratelimit.py is the storage).

Queries: ``sql/queries/rate_limit.sql``; the table and its window arithmetic: sql/0021.
"""

from __future__ import annotations

from typing import Any

from billpay.store.engine import Database
from billpay.store.queries import query


def _single_statement(db: Database) -> Any:
    """A pooled connection in autocommit: each query here is one statement, so BEGIN and COMMIT
    would only add two round trips to every API request."""
    return db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def acquire(db: Database, key: str, *, limit: int, window: int, amount: int = 1) -> bool:
    """Count ``amount`` hits on ``key`` if its weighted count stays within ``limit``; whether
    they were counted. One statement: concurrent callers cannot both take the last hit."""
    with _single_statement(db) as conn:
        row = conn.execute(
            query("acquire_rate_limit_entry"),
            {"key": key, "limit": limit, "window": window, "amount": amount},
        ).first()
    return row is not None


def window(db: Database, key: str, *, window: int) -> tuple[int, float, int, float]:
    """(previous window's hits, seconds they still count, current window's hits, seconds they
    still count), as limits' ``SlidingWindowCounterSupport.get_sliding_window`` answers."""
    with _single_statement(db) as conn:
        row = conn.execute(query("rate_limit_window"), {"key": key, "window": window}).first()
    if row is None:
        return 0, 0.0, 0, 0.0
    return (
        int(row.previous_hits),
        float(row.previous_ttl),
        int(row.current_hits),
        float(row.current_ttl),
    )


def clear(db: Database, key: str) -> None:
    with _single_statement(db) as conn:
        conn.execute(query("clear_rate_limit"), {"key": key})


def clear_all(db: Database) -> int:
    """Forget every key's hits; how many keys had some."""
    with _single_statement(db) as conn:
        return int(conn.execute(query("clear_all_rate_limits")).rowcount)


def prune(db: Database) -> int:
    """Delete the rows past their two windows; how many."""
    with _single_statement(db) as conn:
        return int(conn.execute(query("prune_rate_limits")).rowcount)
