"""What every request must get right before a route reads it, and the contract's small print:
401 before the body is looked at, 413/415 for bodies that are not a small JSON document, 405 for
the wrong method, errors naming the field (``body`` for a body that is not JSON), amounts in
plain digits everywhere, UTC times whatever the database's time zone, and an OpenAPI document
that describes the problem answers as they are."""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa

from tests.api.bodies import AIRTIME, ELECTRICITY, ELECTRICITY_ACCOUNT, problem_body, stored_orders
from tests.api.conftest import ApiServer


def test_no_key_is_401_even_when_the_body_is_not_json(api: ApiServer) -> None:
    headers = {"Content-Type": "application/json", "Idempotency-Key": "k"}
    with api.client() as anon:
        answer = anon.post("/api/bills/pay", content=b"{", headers=headers)
    assert problem_body(answer, 401)["code"] == "unauthorized"
    assert answer.headers["www-authenticate"] == "Bearer"


def test_a_body_that_is_not_json_names_the_body(api: ApiServer) -> None:
    headers = {"Content-Type": "application/json", "Idempotency-Key": "k"}
    with api.client(api.new_key("a")) as http:
        answer = http.post("/api/bills/pay", content=b"{", headers=headers)
    assert [e["field"] for e in problem_body(answer, 422)["errors"]] == ["body"]
    assert stored_orders(api) == 0


def test_a_large_body_is_413_and_never_parsed(api: ApiServer) -> None:
    with api.client(api.new_key("a")) as http:
        declared = http.post(
            "/api/bills/pay",
            json=AIRTIME | {"x": "y" * 5_000_000},
            headers={"Idempotency-Key": "k"},
        )

        def chunks():  # no Content-Length: counted as it streams
            yield json.dumps(AIRTIME).encode()[:-1]
            for _ in range(40):
                yield b', "x": "' + b"y" * 1000 + b'"'
            yield b"}"

        streamed = http.post(
            "/api/bills/pay",
            content=chunks(),
            headers={"Idempotency-Key": "k2", "Content-Type": "application/json"},
        )
    assert problem_body(declared, 413)["code"] == "body_too_large"
    assert problem_body(streamed, 413)["code"] == "body_too_large"
    assert problem_body(streamed, 413)["title"] == "Content too large"
    assert stored_orders(api) == 0


def test_a_body_that_is_not_declared_json_is_415(api: ApiServer) -> None:
    with api.client(api.new_key("a")) as http:
        answer = http.post(
            "/api/bills/pay",
            content=json.dumps(AIRTIME).encode(),
            headers={"Idempotency-Key": "k", "Content-Type": "text/plain"},
        )
        charset = http.post(
            "/api/bills/pay",
            content=json.dumps(AIRTIME).encode(),
            headers={"Idempotency-Key": "k", "Content-Type": "application/json; charset=utf-8"},
        )
    assert problem_body(answer, 415)["code"] == "unsupported_media_type"
    assert charset.status_code == 201


def test_the_wrong_method_on_a_route_is_405(api: ApiServer) -> None:
    with api.client(api.new_key("a")) as http:
        pay = http.get("/api/bills/pay")
        validate = http.get("/api/bills/validate")
    assert problem_body(pay, 405)["code"] == "method_not_allowed"
    assert problem_body(validate, 405)["code"] == "method_not_allowed"


def test_a_trailing_slash_is_a_404_problem_not_a_redirect(api: ApiServer) -> None:
    headers = {"Host": "evil.example", "Idempotency-Key": "k"}
    with api.client(api.new_key("a")) as http:
        types = http.get("/api/bills/types/", headers=headers)
        history = http.get("/api/bills/history/", headers=headers)
        pay = http.post("/api/bills/pay/", json=AIRTIME, headers=headers)
    for answer in (types, history, pay):
        assert problem_body(answer, 404)["code"] == "not_found"
        assert "location" not in answer.headers
    assert stored_orders(api) == 0


def test_account_type_is_only_for_electricity(api: ApiServer) -> None:
    with api.client(api.new_key("a")) as http:
        answer = http.post(
            "/api/bills/pay",
            json=AIRTIME | {"account_type": "\u202eanything at all"},
            headers={"Idempotency-Key": "k"},
        )
    assert [e["field"] for e in problem_body(answer, 422)["errors"]] == ["account_type"]
    assert stored_orders(api) == 0


def test_validate_and_pay_refuse_the_same_amounts(api: ApiServer) -> None:
    check = ELECTRICITY_ACCOUNT
    with api.client(api.new_key("a")) as http:
        for n, amount in enumerate(("\u0665\u0660\u0660\u0660", "5e3", "5,000", "-5000")):
            pay = http.post(
                "/api/bills/pay",
                json=ELECTRICITY | {"amount": amount},
                headers={"Idempotency-Key": f"k{n}"},
            )
            validate = http.post("/api/bills/validate", json=check | {"amount": amount})
            assert [e["field"] for e in problem_body(pay, 422)["errors"]] == ["amount"], amount
            assert [e["field"] for e in problem_body(validate, 422)["errors"]] == ["amount"], amount
    assert stored_orders(api) == 0


def test_times_are_utc_whatever_the_database_time_zone(api: ApiServer) -> None:
    db = api.runtime.db
    with db.engine.begin() as conn:
        name = conn.execute(sa.text("SELECT current_database()")).scalar_one()
        conn.execute(sa.text(f"ALTER DATABASE \"{name}\" SET TimeZone = 'Africa/Lagos'"))
    db.engine.dispose()  # new connections take the database's default
    with api.client(api.new_key("a")) as http:
        out = http.post("/api/bills/pay", json=ELECTRICITY, headers={"Idempotency-Key": "k"})
        one = http.get(f"/api/bills/{out.json()['reference']}").json()
    assert datetime.fromisoformat(out.json()["expires_at"]).utcoffset().total_seconds() == 0
    assert one["payment"]["expires_at"] == one["expires_at"]
    assert all(e["at"].endswith("+00:00") for e in one["events"])


def test_the_openapi_document_describes_the_problem_answers(api: ApiServer) -> None:
    with api.client() as anon:
        spec = anon.get("/openapi.json").json()
    pay = spec["paths"]["/api/bills/pay"]["post"]["responses"]
    for code in ("401", "413", "415", "422", "429"):
        assert list(pay[code]["content"]) == ["application/problem+json"], code
    assert "404" in spec["paths"]["/api/bills/{reference}"]["get"]["responses"]
    assert "503" in spec["paths"]["/api/bills/validate"]["post"]["responses"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    headers = spec["paths"]["/webhooks/flutterwave"]["post"]["parameters"]
    assert [p["name"] for p in headers] == ["verif-hash"]
