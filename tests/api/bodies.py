"""Request bodies and small answer checks the API tests share: the orders a client app sends
and the problem+json every error must be."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.conftest import ApiServer
from tests.db_reads import scalar

PROBLEM = "application/problem+json"

# A prepaid Ikeja meter the sandbox knows: what POST /api/bills/validate checks.
ELECTRICITY_ACCOUNT = {
    "bill_type": "electricity",
    "biller": "ikeja-electric",
    "account": "1111111111111",
    "account_type": "prepaid",
}
ELECTRICITY = {**ELECTRICITY_ACCOUNT, "amount": "5000", "phone": "08011111111"}
AIRTIME = {
    "bill_type": "airtime",
    "biller": "mtn",
    "account": "08031234567",
    "amount": "500",
    "phone": "08031234567",
}


def post_order(
    http: httpx.Client, body: dict[str, Any], key: str | bytes = "order-1"
) -> httpx.Response:
    return http.post("/api/bills/pay", json=body, headers={"Idempotency-Key": key})


def problem_body(answer: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """The problem+json body of ``answer``, which must have ``status`` (and name ``field``)."""
    assert answer.status_code == status, (answer.status_code, answer.text[:300])
    assert answer.headers["content-type"].startswith(PROBLEM)
    body = answer.json()
    if field is not None:
        assert field in {e["field"] for e in body["errors"]}, body
    return body


def stored_orders(api: ApiServer) -> int:
    return scalar(api.runtime.db, "SELECT count(*) FROM bill_payments")
