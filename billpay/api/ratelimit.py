"""The per-key request rate limit of the API (``BILLPAY_API_RATE_LIMIT``), counted where
``BILLPAY_API_RATE_LIMIT_STORAGE`` says:

- ``postgres`` (default): in our database, so every ``billpay api`` process on it shares each
  key's limit. The ``limits`` package's sliding window counter runs the algorithm on
  :class:`PostgresStorage`, whose one atomic statement per request checks and counts a hit.
  A window starts at a key's first hit; the previous window's hits count for the part of it the
  sliding window still covers (the approximation limits and Cloudflare use: exact for evenly
  spread hits).
- ``memory``: this process only (limits' moving window in memory, exact): N API processes allow
  N times the limit.

When the database fails while counting, the request is counted in this process's memory
instead (a warning is logged when that starts and when the database counts again): the key is
held to the limit per process, as with ``memory``, rather than every request failing because
the limiter could not count.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field

import limits
import sqlalchemy as sa
from limits.errors import StorageError
from limits.storage import MemoryStorage, SlidingWindowCounterSupport, Storage
from limits.strategies import (
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from billpay.config import RateLimitStorage, Settings
from billpay.store import Database, rate_limits
from billpay.store.engine import fail_fast
from billpay.tokens import mask_text

log = logging.getLogger(__name__)

PRUNE_EVERY_SECONDS = 60.0
WARN_EVERY_SECONDS = 60.0


class PostgresStorage(Storage, SlidingWindowCounterSupport):
    """limits storage for the sliding window counter, in the ``api_rate_limit`` table (UNLOGGED;
    sql/0021). It takes the app's :class:`Database` (its pool), not a URI, so it registers no
    ``STORAGE_SCHEME`` for ``storage_from_string``.

    Rows of keys no longer used are deleted at most once a minute per process (one DELETE on a
    table of one row per key); a key in use keeps its one row, rewritten in place."""

    def __init__(self, db: Database, *, wrap_exceptions: bool = True) -> None:
        super().__init__(None, wrap_exceptions=wrap_exceptions)
        self.db = db
        self._next_prune = 0.0
        self._prune_lock = threading.Lock()

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return sa.exc.SQLAlchemyError

    def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        if amount > limit:
            return False
        self._prune_when_due()
        return rate_limits.acquire(self.db, key, limit=limit, window=expiry, amount=amount)

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        return rate_limits.window(self.db, key, window=expiry)

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        rate_limits.clear(self.db, key)

    def clear(self, key: str) -> None:
        rate_limits.clear(self.db, key)

    def reset(self) -> int | None:
        return rate_limits.clear_all(self.db)

    def check(self) -> bool:
        try:
            self.db.ping()
        except sa.exc.SQLAlchemyError:
            return False
        return True

    # The fixed window's counter operations: not this storage's strategy.
    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        raise NotImplementedError("PostgresStorage serves limits' sliding window counter only")

    def get(self, key: str) -> int:
        raise NotImplementedError("PostgresStorage serves limits' sliding window counter only")

    def get_expiry(self, key: str) -> float:
        raise NotImplementedError("PostgresStorage serves limits' sliding window counter only")

    def _prune_when_due(self) -> None:
        now = time.monotonic()
        if now < self._next_prune or not self._prune_lock.acquire(blocking=False):
            return
        try:
            self._next_prune = now + PRUNE_EVERY_SECONDS
            rate_limits.prune(self.db)
        finally:
            self._prune_lock.release()


@dataclass
class RateLimit:
    """One key's limit: ``retry_after(client_id)`` counts a request and says whether (and how
    long) it must wait. ``fallback`` (with a shared storage) counts in memory while the shared
    storage fails."""

    item: limits.RateLimitItem
    limiter: RateLimiter
    fallback: RateLimiter | None = None
    _failing: bool = field(default=False, repr=False)
    _quiet_until: float = field(default=0.0, repr=False)
    _told: bool = field(default=False, repr=False)

    @classmethod
    def for_settings(cls, settings: Settings, db: Database) -> RateLimit:
        item = limits.parse(settings.api_rate_limit)
        memory = MovingWindowRateLimiter(MemoryStorage())
        if settings.api_rate_limit_storage is RateLimitStorage.MEMORY:
            return cls(item, memory)
        # Its own small pool with short timeouts: a locked table or a busy pool makes a request
        # fall back to memory within a second instead of hanging it (and every thread with it).
        counters = fail_fast(db, name="billpay-ratelimit")
        return cls(
            item, SlidingWindowCounterRateLimiter(PostgresStorage(counters)), fallback=memory
        )

    def close(self) -> None:
        """Give back the counters' own connections (the app's shutdown)."""
        storage = getattr(self.limiter, "storage", None)
        if isinstance(storage, PostgresStorage):
            storage.db.dispose()

    def retry_after(self, client_id: int) -> int | None:
        """Count one request of the client; None when allowed, else whole seconds until the
        window lets the key in again (at least 1)."""
        key = str(client_id)
        limiter = self.limiter
        try:
            allowed = limiter.hit(self.item, key)
        except StorageError as exc:
            if self.fallback is None:
                raise
            self._shared_failed(exc)
            limiter = self.fallback
            allowed = limiter.hit(self.item, key)
        else:
            self._shared_counts()
        if allowed:
            return None
        try:
            reset = limiter.get_window_stats(self.item, key).reset_time
        except StorageError as exc:
            self._shared_failed(exc)
            return self.item.get_expiry()  # no key waits longer than one window
        return max(1, math.ceil(reset - time.time()))

    def _shared_failed(self, exc: StorageError) -> None:
        if not self._failing:
            self._failing = True
            now = time.monotonic()
            if now < self._quiet_until:  # flapping: one warning a minute is enough
                return
            self._quiet_until = now + WARN_EVERY_SECONDS
            self._told = True
            cause = exc.storage_error
            log.warning(
                "API rate limit: the database could not count (%s); counting in this "
                "process's memory until it can",
                mask_text(f"{type(cause).__name__}: {(str(cause).splitlines() or [''])[0]}"),
            )

    def _shared_counts(self) -> None:
        if self._failing:
            self._failing = False
            if self._told:  # each warning logged gets its "again" line
                self._told = False
                log.warning("API rate limit: the database counts again")
