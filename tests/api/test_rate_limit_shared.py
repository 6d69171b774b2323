"""The per-key rate limit across API processes: two apps on one database (each its own
runtime, pool and uvicorn server, as two `billpay api` processes) share each key's limit with
the default postgres storage; memory storage counts per process; a database that cannot count
turns no request into a 500."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from billpay.api import create_app
from billpay.app import App
from billpay.config import RateLimitStorage, Settings
from tests.api.conftest import ApiServer
from tests.servers import served

HISTORY = "/api/bills/history"


@dataclass
class TwoApis:
    first: ApiServer
    second: ApiServer

    def alternate(self, key: str, count: int) -> list[int]:
        """``count`` requests of ``key``, first, second, first, ...: their status codes."""
        codes = []
        for i in range(count):
            with (self.first if i % 2 == 0 else self.second).client(key) as http:
                codes.append(http.get(HISTORY).status_code)
        return codes


@pytest.fixture
def limit() -> str:
    return "3/minute"


@pytest.fixture
def storage() -> RateLimitStorage:
    return RateLimitStorage.POSTGRES


@pytest.fixture
def apis(api_settings: Settings, limit: str, storage: RateLimitStorage) -> Iterator[TwoApis]:
    settings = api_settings.model_copy(
        update={"api_rate_limit": limit, "api_rate_limit_storage": storage}
    )
    with ExitStack() as stack:
        servers = []
        for what in ("first API", "second API"):
            runtime = App.open(settings)
            stack.callback(runtime.close)
            url = stack.enter_context(served(create_app(runtime), what=what))
            servers.append(ApiServer(url, runtime))
        yield TwoApis(*servers)


def _limited(answer) -> int:
    """The answer is the rate limit's 429 problem: its Retry-After."""
    assert answer.status_code == 429, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == "rate_limited"
    return int(answer.headers["retry-after"])


def test_two_api_processes_share_a_keys_limit_and_other_keys_are_unaffected(apis: TwoApis):
    busy, calm = apis.first.new_key("busy"), apis.first.new_key("calm")
    started = time.time()
    assert apis.alternate(busy, 3) == [200, 200, 200]  # first, second, first
    with apis.second.client(busy) as http:
        retry_after = _limited(http.get(HISTORY))  # the 4th across both
    # The window started at the key's first request: it lets the key in a minute after it.
    assert 55 <= retry_after <= 60 + (time.time() - started)
    with apis.first.client(busy) as http:
        assert 0 < _limited(http.get(HISTORY)) <= retry_after
    assert apis.alternate(calm, 3) == [200, 200, 200]


def test_concurrent_requests_through_both_apis_get_exactly_the_limit(apis: TwoApis, limit: str):
    key = apis.first.new_key("burst")

    def one(i: int) -> int:
        with (apis.first if i % 2 else apis.second).client(key) as http:
            return http.get(HISTORY).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(one, range(24)))
    assert sorted(codes) == [200] * 3 + [429] * 21


@pytest.mark.parametrize("limit", ["2/second"])
def test_the_window_lets_the_key_in_after_retry_after(apis: TwoApis):
    key = apis.first.new_key("patient")
    assert apis.alternate(key, 2) == [200, 200]
    with apis.first.client(key) as http:
        retry_after = _limited(http.get(HISTORY))
    assert retry_after == 1
    time.sleep(retry_after)
    assert apis.alternate(key, 1) == [200]


@pytest.mark.parametrize("storage", [RateLimitStorage.MEMORY])
def test_memory_storage_limits_each_process_on_its_own(apis: TwoApis):
    key = apis.first.new_key("local")
    started = time.time()
    with apis.first.client(key) as http:
        assert [http.get(HISTORY).status_code for _ in range(3)] == [200, 200, 200]
        retry_after = _limited(http.get(HISTORY))
    assert 55 <= retry_after <= 60 + (time.time() - started)
    with apis.second.client(key) as http:  # its own count: N processes, N times the limit
        assert [http.get(HISTORY).status_code for _ in range(3)] == [200, 200, 200]
        _limited(http.get(HISTORY))


def _rename_counters(api: ApiServer, old: str, new: str) -> None:
    with api.runtime.db.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {old} RENAME TO {new}"))


def test_a_database_that_cannot_count_limits_each_process_and_logs_it(
    apis: TwoApis, caplog: pytest.LogCaptureFixture
):
    key = apis.first.new_key("steady")
    _rename_counters(apis.first, "api_rate_limit", "api_rate_limit_gone")  # counting fails
    with caplog.at_level(logging.WARNING, logger="billpay.api.ratelimit"):
        with apis.first.client(key) as http:
            codes = [http.get(HISTORY).status_code for _ in range(3)]
            retry_after = _limited(http.get(HISTORY))  # counted in the process's memory
        _rename_counters(apis.first, "api_rate_limit_gone", "api_rate_limit")
        with apis.first.client(key) as http:
            back = http.get(HISTORY).status_code  # the database counts again: its first hit
    assert codes == [200, 200, 200]
    assert 55 <= retry_after <= 60
    assert back == 200
    logged = [r.getMessage() for r in caplog.records if r.name == "billpay.api.ratelimit"]
    assert len(logged) == 2, logged
    assert "could not count" in logged[0] and "UndefinedTable" in logged[0]
    assert "counts again" in logged[1]


def test_a_locked_counter_table_falls_back_in_a_second_and_never_hangs_the_api(apis: TwoApis):
    # An operator's TRUNCATE in an open psql session, a migration altering the table: the
    # counters' own pool gives up on the lock quickly, the request is counted in memory.
    key = apis.first.new_key("locked")
    with apis.first.runtime.db.engine.connect() as holder:
        holder.execute(sa.text("BEGIN"))
        holder.execute(sa.text("LOCK TABLE api_rate_limit IN ACCESS EXCLUSIVE MODE"))
        started = time.monotonic()
        with apis.first.client(key) as http, ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: http.get(HISTORY).status_code, range(8)))
            health = http.get("/healthz").status_code
        took = time.monotonic() - started
        holder.execute(sa.text("ROLLBACK"))
    assert sorted(codes) == [200] * 3 + [429] * 5  # the limit (3/minute), counted in memory
    assert health == 200
    assert took < 10, f"requests waited {took:.1f} s on a locked table"


def test_an_unknown_storage_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BILLPAY_API_RATE_LIMIT_STORAGE", "redis")
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "api_rate_limit_storage" in str(refused.value)
    assert "'postgres' or 'memory'" in str(refused.value)
    monkeypatch.setenv("BILLPAY_API_RATE_LIMIT_STORAGE", "memory")
    assert Settings().api_rate_limit_storage is RateLimitStorage.MEMORY
