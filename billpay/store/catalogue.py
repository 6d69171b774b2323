"""The provider catalogue as the runtime reads it: the snapshot (``load``), its version, the
seed of a fresh database from the built-in table, and the per-process cache.

Queries: ``sql/queries/catalogue.sql``. Seeding runs lazily, on a process's first read of an
empty catalogue (``CatalogueCache.current``), and after ``billpay db upgrade``; it is one
transaction under an advisory lock, so processes starting at once seed once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from billpay.catalogue import Catalogue, seed_rows
from billpay.store.engine import Database
from billpay.store.queries import query

log = logging.getLogger(__name__)

# How often a running process asks whether a sync changed the catalogue: a sync in another
# process reaches a running pipeline or API within this many seconds.
CHECK_EVERY_SECONDS = 5.0


def version(db: Database) -> int:
    """The id of the newest seed, sync or mapping that changed something (0: none yet)."""
    with db.connect() as conn:
        return int(conn.execute(query("catalogue_version")).scalar_one())


def load(db: Database) -> Catalogue:
    """The catalogue as the 0019 tables hold it now, stamped with its version."""
    # One REPEATABLE READ, read-only transaction: all four reads see one snapshot, so the
    # version matches the rows even while a sync commits (READ COMMITTED would not).
    with db.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            return _load(conn)


def _load(conn: Connection) -> Catalogue:
    at = int(conn.execute(query("catalogue_version")).scalar_one())
    billers = conn.execute(query("catalogue_load_billers")).mappings().all()
    listed = conn.execute(query("catalogue_load_provider_billers")).mappings().all()
    items = conn.execute(query("catalogue_load_provider_items")).mappings().all()
    return Catalogue.from_rows(billers, listed, items, version=at)


def seed(db: Database) -> bool:
    """Fill an EMPTY catalogue from the built-in table and record a 'seeded' sync; False (and
    nothing written) when it holds anything already."""
    rows = seed_rows()
    with db.begin() as conn:
        conn.execute(query("catalogue_lock_seed"))
        if not conn.execute(query("catalogue_is_empty")).scalar_one():
            return False
        conn.execute(query("catalogue_seed_biller"), rows.billers)
        conn.execute(query("catalogue_seed_provider_biller"), rows.provider_billers)
        conn.execute(query("catalogue_seed_provider_item"), rows.provider_items)
        conn.execute(
            query("catalogue_record_seed"),
            {
                "billers": len(rows.provider_billers),
                "items": len(rows.provider_items),
                "added": len(rows.billers) + len(rows.provider_billers) + len(rows.provider_items),
            },
        )
    return True


# The snapshots held by ``one_snapshot`` blocks, per thread: cache -> the snapshot it serves.
_held = threading.local()


@contextmanager
def one_snapshot() -> Iterator[None]:
    """Within this block, every ``CatalogueCache.current()`` in this thread returns the snapshot
    it returned first: one step (route, price, the codes an adapter sends) reads one version of
    the catalogue even if a sync lands meanwhile. Nested blocks share the outer one."""
    if getattr(_held, "snapshots", None) is not None:
        yield
        return
    _held.snapshots = {}
    try:
        yield
    finally:
        _held.snapshots = None


class CatalogueCache:
    """The catalogue in force for one process: ``current()`` returns the cached snapshot and
    reloads it when the version moved, asking at most every ``check_every`` seconds. The first
    call seeds an empty catalogue. Thread-safe (the pipeline's task threads share one). A
    database that cannot answer the version check leaves the cached snapshot in force (asked
    again next interval); only a process that never loaded one fails."""

    def __init__(
        self,
        db: Database,
        *,
        check_every: float = CHECK_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._check_every = check_every
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: Catalogue | None = None
        self._checked_at = 0.0

    def current(self) -> Catalogue:
        held: dict[int, Catalogue] | None = getattr(_held, "snapshots", None)
        if held is None:
            return self._current()
        if id(self) not in held:
            held[id(self)] = self._current()
        return held[id(self)]

    def _current(self) -> Catalogue:
        with self._lock:
            now = self._clock()
            if self._snapshot is None:
                if version(self._db) == 0:
                    seed(self._db)
                self._snapshot, self._checked_at = load(self._db), now
            elif now - self._checked_at >= self._check_every:
                self._checked_at = now
                self._reload_if_moved()
            return self._snapshot

    def _reload_if_moved(self) -> None:
        assert self._snapshot is not None
        try:
            if version(self._db) != self._snapshot.version:
                self._snapshot = load(self._db)
        except SQLAlchemyError as exc:
            log.warning(
                "catalogue version check failed (%s); serving version %s until the next check",
                type(exc).__name__,
                self._snapshot.version,
            )

    def refresh(self) -> Catalogue:
        """Reload now, whatever the version (after a sync in this very process)."""
        with self._lock:
            self._snapshot, self._checked_at = load(self._db), self._clock()
            return self._snapshot
