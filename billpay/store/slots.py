"""A per-provider bound on concurrent calls that holds across threads, flow runs, processes and
machines: ``limit`` PostgreSQL advisory locks per provider, one held for each call in flight.

Prefect's global concurrency limits would do the same through the Prefect API; this keeps the
bound where the data is (no extra API round trips per call, and it works under `billpay tick`
without a Prefect server).
"""

from __future__ import annotations

import random
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from billpay.store.engine import Database

_NAMESPACE = 0x62700000  # "bp" in the high bits keeps our keys away from other users' locks


class ProviderSlots:
    def __init__(self, db: Database, limit: int, poll_seconds: float = 0.01) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.db = db
        self.limit = limit
        self.poll_seconds = poll_seconds

    @staticmethod
    def key(provider: str) -> int:
        return _NAMESPACE | (zlib.crc32(provider.encode()) & 0xFFFF)  # fits a positive int4

    @contextmanager
    def __call__(self, provider: str) -> Iterator[int]:
        key = self.key(provider)
        conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        slot = None
        try:
            slot = self._acquire(conn, key)
            yield slot
        finally:
            try:
                if slot is not None:
                    conn.execute(
                        sa.text("SELECT pg_advisory_unlock(:k, :s)"), {"k": key, "s": slot}
                    )
            finally:
                conn.close()

    def _acquire(self, conn: sa.Connection, key: int) -> int:
        start = random.randrange(self.limit)
        while True:
            for offset in range(self.limit):
                slot = (start + offset) % self.limit
                if conn.execute(
                    sa.text("SELECT pg_try_advisory_lock(:k, :s)"), {"k": key, "s": slot}
                ).scalar():
                    return slot
            time.sleep(self.poll_seconds)

    def in_use(self, provider: str) -> int:
        key = self.key(provider)
        with self.db.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND objsubid = 2 AND classid = CAST(:k AS bigint)::oid"
                ),
                {"k": key},
            ).scalar_one()
