"""A per-provider bound on concurrent calls that holds across threads, flow runs, processes and
machines: ``limit`` PostgreSQL advisory locks per provider, one held for each call in flight.

Prefect's global concurrency limits would do the same through the Prefect API; this keeps the
bound where the data is (no extra API round trips per call, and it works under `billpay tick`
without a Prefect server). Queries: ``sql/queries/slots.sql``.
"""

from __future__ import annotations

import random
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from billpay.store.engine import Database
from billpay.store.queries import query

_NAMESPACE = 0x62700000  # "bp" in the high bits keeps our keys away from other users' locks


class SlotsBusy(Exception):
    """No slot came free before the caller's deadline (nothing was sent)."""


class ProviderSlots:
    """``with slots("vtpass"): ...`` holds one of ``limit`` slots for the duration of a call.

    In a process, a semaphore queues threads first, so only threads that can plausibly get a
    slot touch the database; each then takes a free slot with one statement. Across processes
    the advisory locks are the bound. A slot is a session lock on a dedicated pooled
    connection, released on exit (and by PostgreSQL if the process dies).
    """

    def __init__(self, db: Database, limit: int, poll_seconds: float = 0.005) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.db = db
        self.limit = limit
        self.poll_seconds = poll_seconds
        self._local: dict[str, threading.BoundedSemaphore] = {}
        self._guard = threading.Lock()

    @staticmethod
    def key(provider: str) -> int:
        return _NAMESPACE | (zlib.crc32(provider.encode()) & 0xFFFF)  # fits a positive int4

    def _semaphore(self, provider: str) -> threading.BoundedSemaphore:
        with self._guard:
            if provider not in self._local:
                self._local[provider] = threading.BoundedSemaphore(self.limit)
            return self._local[provider]

    @contextmanager
    def __call__(self, provider: str, deadline: float | None = None) -> Iterator[int]:
        """Hold a slot; with ``deadline`` (a ``time.monotonic()`` instant) give up then with
        ``SlotsBusy`` instead of waiting for as long as the other calls take."""
        key = self.key(provider)
        semaphore = self._semaphore(provider)
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not semaphore.acquire(timeout=wait):
            raise SlotsBusy(f"every {provider} slot of this process is busy")
        try:
            conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            slot = None
            try:
                slot = self._acquire(conn, key, provider, deadline)
                yield slot
            finally:
                try:
                    if slot is not None:
                        conn.execute(query("release_provider_slot"), {"k": key, "s": slot})
                finally:
                    conn.close()
        finally:
            semaphore.release()

    def _acquire(self, conn: sa.Connection, key: int, provider: str, deadline: float | None) -> int:
        pause = self.poll_seconds
        while True:
            slot = conn.execute(
                query("take_provider_slot"),
                {"k": key, "n": self.limit, "offset": random.randrange(self.limit)},
            ).scalar()
            if slot is not None:
                return int(slot)
            if deadline is not None and time.monotonic() + pause > deadline:
                raise SlotsBusy(f"every {provider} slot is busy")
            time.sleep(pause)  # every slot is busy in other processes
            pause = min(pause * 2, 0.1)

    def in_use(self, provider: str) -> int:
        key = self.key(provider)
        with self.db.connect() as conn:
            return conn.execute(
                query("provider_slots_in_use"),
                {"k": key},
            ).scalar_one()


class ShareOfSlots:
    """A guard for callers that must not crowd out the pipeline (the API's account checks):
    at most ``share`` of a provider's slots, across every process of theirs, and no wait past
    ``wait_seconds`` (``SlotsBusy``: answer "busy, try again" rather than hang). The call still
    holds one of the provider's own slots, so the provider's bound counts it."""

    def __init__(self, slots: ProviderSlots, share: int, wait_seconds: float) -> None:
        self.slots = slots
        # Never every slot: the pipeline keeps at least one (unless there is only one).
        self.gate = ProviderSlots(slots.db, max(1, min(share, slots.limit - 1)))
        self.wait_seconds = wait_seconds

    @contextmanager
    def __call__(self, provider: str) -> Iterator[int]:
        deadline = time.monotonic() + self.wait_seconds
        with self.gate(f"share:{provider}", deadline), self.slots(provider, deadline) as slot:
            yield slot
