"""Bearer keys on every /api route: 401 without a live key, and a per-key rate limit."""

from __future__ import annotations

import time

import pytest

from billpay.api import clients
from billpay.config import Settings
from tests.api.conftest import ApiServer

ROUTES = [
    ("GET", "/api/bills/history"),
    ("GET", "/api/bills/ABCDEF1234"),
    ("POST", "/api/bills/pay"),
]


@pytest.fixture
def api_settings(api_settings: Settings) -> Settings:
    return api_settings.model_copy(update={"api_rate_limit": "3/minute"})


def _unauthorized(answer) -> dict:
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.headers["www-authenticate"] == "Bearer"
    return answer.json()


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_key_a_wrong_key_and_a_revoked_key_are_401(api: ApiServer, method: str, path: str):
    key = api.new_key("wallet")
    clients.revoke(api.runtime.db, "wallet")
    for http in (api.client(), api.client("bp_not-a-key"), api.client(key)):
        with http:
            problem = _unauthorized(http.request(method, path, json={}))
        assert problem["code"] == "unauthorized"
        assert key not in str(problem)


def test_a_basic_scheme_is_not_a_key(api: ApiServer) -> None:
    key = api.new_key("wallet")
    with api.client() as http:
        _unauthorized(http.get("/api/bills/history", headers={"Authorization": f"Basic {key}"}))


def test_the_key_past_its_limit_gets_429_with_retry_after_and_others_do_not(api: ApiServer):
    busy, calm = api.new_key("busy"), api.new_key("calm")
    with api.client(busy) as http:
        allowed = [http.get("/api/bills/history").status_code for _ in range(3)]
        started = time.time()
        limited = http.get("/api/bills/history")
        also_limited = http.post("/api/bills/pay", json={}, headers={"Idempotency-Key": "k"})
    assert allowed == [200, 200, 200]
    assert limited.status_code == 429
    assert limited.headers["content-type"].startswith("application/problem+json")
    assert limited.json()["code"] == "rate_limited"
    retry_after = int(limited.headers["retry-after"])
    assert 55 <= retry_after <= 60 + (time.time() - started)
    assert also_limited.status_code == 429
    with api.client(calm) as http:
        assert http.get("/api/bills/history").status_code == 200
