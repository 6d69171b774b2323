"""Schema migrations: the numbered ``sql/*.sql`` files, applied in order by yoyo-migrations.

yoyo records applied files in ``_yoyo_migration`` and serialises concurrent runs with its lock
table; we additionally hold a PostgreSQL advisory lock so two processes starting at once queue
instead of racing on the lock table's creation.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL
from yoyo import get_backend, read_migrations

from billpay.store.queries import query

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
_ADVISORY_KEY = 0x62696C6C  # "bill"


def _yoyo_uri(url: URL) -> str:
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def pending_migrations(url: URL, sql_dir: Path = SQL_DIR) -> list[str]:
    backend = get_backend(_yoyo_uri(url))
    try:
        return [m.id for m in backend.to_apply(read_migrations(str(sql_dir)))]
    finally:
        backend.connection.close()


def upgrade(url: URL, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply every migration not yet applied; returns the ids applied (empty when up to date)."""
    guard = sa.create_engine(
        url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool, hide_parameters=True
    )
    try:
        with guard.connect() as conn:
            conn.execute(query("lock_migrations"), {"k": _ADVISORY_KEY})
            try:
                backend = get_backend(_yoyo_uri(url))
                try:
                    migrations = read_migrations(str(sql_dir))
                    with backend.lock():
                        todo = backend.to_apply(migrations)
                        backend.apply_migrations(todo)
                    return [m.id for m in todo]
                finally:
                    backend.connection.close()
            finally:
                conn.execute(query("unlock_migrations"), {"k": _ADVISORY_KEY})
    finally:
        guard.dispose()
