"""The app answers health, and problem+json for no key and unknown routes."""

from __future__ import annotations

from tests.api.conftest import ApiServer


def test_healthz_reads_the_database(api: ApiServer) -> None:
    with api.client() as http:
        answer = http.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "database": "ok"}


def test_unknown_route_and_method_are_problems(api: ApiServer) -> None:
    with api.client() as http:
        missing = http.get("/no/such/route")
        wrong = http.delete("/healthz")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["status"] == 404
    assert wrong.status_code == 405
    assert wrong.headers["content-type"].startswith("application/problem+json")


def test_a_created_key_is_live_until_revoked(api: ApiServer) -> None:
    from billpay.api import clients, keys
    from billpay.store import api_clients

    key = api.new_key("wallet-one")
    assert key.startswith("bp_")
    assert api_clients.by_key_hash(api.runtime.db, keys.key_hash(key))["name"] == "wallet-one"
    clients.revoke(api.runtime.db, "wallet-one")
    assert api_clients.by_key_hash(api.runtime.db, keys.key_hash(key)) is None
