"""Shared fixtures: real PostgreSQL for integration tests.

One template database is built from ``sql/`` per test session; each test gets a fresh database
created from it (``CREATE DATABASE ... TEMPLATE``: fast and isolated). The server is the
embedded one under ``.billpay/test-pgdata`` unless ``BILLPAY_TEST_DATABASE_URL`` names another.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from billpay.config import Settings
from billpay.store.engine import Database, embedded_url, normalise_url, start_embedded
from billpay.store.migrations import upgrade

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# One template per test session (several sessions may share the embedded server).
TEMPLATE = f"billpay_test_template_{os.getpid()}"


def _server_url() -> tuple[URL, object]:
    configured = os.environ.get("BILLPAY_TEST_DATABASE_URL")
    if configured:
        return normalise_url(configured), None
    server = start_embedded(ROOT / ".billpay" / "test-pgdata")
    return embedded_url(server, "postgres"), server


def _admin(url: URL) -> sa.Engine:
    return sa.create_engine(
        url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )


@pytest.fixture(scope="session")
def pg_server() -> Iterator[URL]:
    url, server = _server_url()
    admin = _admin(url)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{TEMPLATE}"'))
    upgrade(url.set(database=TEMPLATE))
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)'))
    admin.dispose()
    _ = server  # keep the embedded server handle alive for the whole session


@pytest.fixture
def database_url(pg_server: URL) -> Iterator[URL]:
    """A fresh, migrated database for one test."""
    name = f"billpay_test_{uuid.uuid4().hex[:12]}"
    admin = _admin(pg_server)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"'))
    yield pg_server.set(database=name)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def settings(database_url: URL, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url.render_as_string(hide_password=False),
        data_dir=tmp_path,
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    from billpay.store import connect

    database = connect(settings, create=False)
    yield database
    database.dispose()
