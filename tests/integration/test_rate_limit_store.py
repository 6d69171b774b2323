"""The rate limit's storage in PostgreSQL (sql/0021, billpay/store/rate_limits.py and
billpay/api/ratelimit.py): the window arithmetic at fixed times, the previous window's weight
and the Retry-After it gives, stale rows pruned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import limits
import pytest
import sqlalchemy as sa
from limits.strategies import SlidingWindowCounterRateLimiter

from billpay.api.ratelimit import PostgresStorage, RateLimit
from billpay.store import Database, rate_limits

START = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = 3600


@pytest.mark.parametrize(
    ("seconds_after", "expected"),
    [
        (10, (START, 5, 7, 50.0)),  # within the window: as stored
        (70, (START + timedelta(seconds=60), 7, 0, 50.0)),  # one window on: shifted
        (130, (START + timedelta(seconds=130), 0, 0, 60.0)),  # two on: afresh from now
        (-2, (START, 5, 7, 60.0)),  # a clock behind the row's: the window's start
    ],
)
def test_the_windows_of_a_key_at_a_given_time(db: Database, seconds_after: int, expected):
    with db.connect() as conn:
        row = conn.execute(
            sa.text("SELECT * FROM api_rate_limit_window(:start, 5, 7, 60, :at)"),
            {"start": START, "at": START + timedelta(seconds=seconds_after)},
        ).one()
    assert tuple(row) == expected


def _seed(db: Database, key: str, *, started_ago: int, previous: int, current: int) -> None:
    """A key's row as if its window had started ``started_ago`` seconds ago (an hour long)."""
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO api_rate_limit VALUES (:key, now() - make_interval(secs => :ago),"
                " :previous, :current, now() - make_interval(secs => :ago - 2 * :window))"
            ),
            {
                "key": key,
                "ago": started_ago,
                "previous": previous,
                "current": current,
                "window": HOUR,
            },
        )


def _rows(db: Database) -> set[str]:
    with db.connect() as conn:
        return set(conn.execute(sa.text("SELECT key FROM api_rate_limit")).scalars())


def test_the_previous_windows_hits_count_by_how_much_of_it_the_window_still_covers(db):
    item = limits.parse("8/hour")
    limit = RateLimit(item, SlidingWindowCounterRateLimiter(PostgresStorage(db)))
    # 10 hits in the window that ended 1,620 s ago: 1,980 s of the hour still cover it, so
    # they weigh 10 * 1980 / 3600 = 5.5, counted as 5: 3 more hits fit under 8.
    _seed(db, item.key_for("42"), started_ago=HOUR + 1620, previous=0, current=10)
    assert [limit.retry_after(42) for _ in range(3)] == [None, None, None]
    retry_after = limit.retry_after(42)
    # The 10 weigh 5 until 1,800 s are left (180 s on): then 4.99 + 3 lets one more in.
    assert retry_after is not None and 175 <= retry_after <= 181
    assert rate_limits.window(db, item.key_for("42"), window=HOUR)[0::2] == (10, 3)


def test_a_key_idle_for_two_windows_starts_afresh(db: Database):
    _seed(db, "idle", started_ago=3 * HOUR, previous=8, current=8)
    assert rate_limits.acquire(db, "idle", limit=8, window=HOUR)
    previous, previous_ttl, current, current_ttl = rate_limits.window(db, "idle", window=HOUR)
    assert (previous, current) == (0, 1)
    assert HOUR - 60 < previous_ttl <= HOUR  # the window started with this hit
    assert current_ttl == pytest.approx(previous_ttl + HOUR)


def test_rows_past_their_two_windows_are_pruned_and_live_ones_kept(db: Database):
    _seed(db, "gone", started_ago=2 * HOUR + 1, previous=0, current=3)
    _seed(db, "live", started_ago=2 * HOUR - 60, previous=0, current=3)
    assert rate_limits.prune(db) == 1
    assert _rows(db) == {"live"}
    assert rate_limits.prune(db) == 0


def test_the_storage_prunes_on_its_own(db: Database):
    _seed(db, "gone", started_ago=2 * HOUR + 1, previous=0, current=3)
    limiter = SlidingWindowCounterRateLimiter(PostgresStorage(db))
    assert limiter.hit(limits.parse("1/hour"), "7")
    assert _rows(db) == {limits.parse("1/hour").key_for("7")}
