"""The documented answers: every route's 2xx answer has a JSON schema naming its keys in the
served ``/openapi.json`` (what SDK generators and ``/docs`` read), and real answers, from a
pending order to a completed and a refunded one, conform to it (schemathesis' response schema
check: types, required and undocumented keys, money patterns, date-time formats).

The fuzz test (test_fuzz.py) checks the 2xx answers random requests get; the answers only a
real order reaches (its token, its refund) are checked here.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.responses import JSONResponse

from billpay.api import create_app
from tests.api.bodies import AIRTIME, ELECTRICITY, ELECTRICITY_ACCOUNT, post_order
from tests.api.conftest import ApiServer
from tests.e2e.conftest import prefect_harness, runtime  # noqa: F401 - the pipeline's fixtures
from tests.e2e.pipeline_helpers import ticks_until_settled

METHODS = ("get", "put", "post", "delete", "patch")
COMPONENTS = "#/components/schemas/"


def undocumented_answers(document: dict[str, Any]) -> list[str]:
    """The operations of an OpenAPI document with no 2xx answer, or with a 2xx answer whose
    ``application/json`` schema is not a named model with declared keys (FastAPI's schema of a
    ``dict[str, Any]`` or a bare ``JSONResponse`` says nothing a client can generate from)."""
    models = document.get("components", {}).get("schemas", {})
    found: list[str] = []
    for path, item in document.get("paths", {}).items():
        for method in (m for m in METHODS if m in item):
            where = f"{method.upper()} {path}"
            answers = {c: r for c, r in item[method].get("responses", {}).items() if c[0] == "2"}
            if not answers:
                found.append(f"{where}: no 2xx answer documented")
            for code, answer in answers.items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
                ref = schema.get("$ref", "")
                model = (
                    models.get(ref.removeprefix(COMPONENTS)) if ref.startswith(COMPONENTS) else None
                )
                if not model or not model.get("properties"):
                    found.append(f"{where}: {code} has no JSON schema naming its keys ({schema})")
    return found


def test_every_route_documents_a_json_schema_for_its_2xx_answers(api: ApiServer) -> None:
    document = httpx.get(f"{api.url}/openapi.json").json()
    assert "/api/bills/{reference}" in document["paths"]
    assert undocumented_answers(document) == []


def test_a_route_without_a_response_model_is_reported(api: ApiServer) -> None:
    app = create_app(api.runtime)

    @app.get("/api/bills/extra")
    def extra() -> dict[str, Any]:
        return {}

    @app.post("/webhooks/raw")
    def raw() -> JSONResponse:
        return JSONResponse({})

    found = undocumented_answers(app.openapi())
    assert [line.split(":")[0] for line in found] == ["GET /api/bills/extra", "POST /webhooks/raw"]


class Documented:
    """Checks real answers against the served schema as schemathesis' response schema
    conformance check does (``APIOperation.validate_response``)."""

    def __init__(self, api: ApiServer) -> None:
        self.schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
        self.checked: set[str] = set()

    def check(self, path: str, answer: httpx.Response) -> dict[str, Any]:
        assert 200 <= answer.status_code < 300, (answer.status_code, answer.text[:300])
        method = answer.request.method
        self.schema[path][method].validate_response(answer)  # raises with what does not match
        self.checked.add(f"{method} {path}")
        return answer.json()


@pytest.mark.e2e
def test_real_answers_conform_to_their_documented_schemas(
    api: ApiServer,
    runtime,  # noqa: F811 - the imported fixture
    sandbox,
) -> None:
    documented = Documented(api)
    ported = AIRTIME | {"account": "08021234567"}  # a warning in its 201
    with api.client(api.new_key("wallet")) as http:
        documented.check("/healthz", http.get("/healthz"))
        documented.check("/api/bills/types", http.get("/api/bills/types"))
        for bill_type in ("electricity", "airtime", "data", "cable_tv", "water"):
            answer = http.get(f"/api/bills/providers/{bill_type}")
            documented.check("/api/bills/providers/{bill_type}", answer)
        validate = http.post("/api/bills/validate", json=ELECTRICITY_ACCOUNT | {"amount": "5000"})
        assert documented.check("/api/bills/validate", validate)["valid"] is True
        orders = {}
        for name, body in (("electricity", ELECTRICITY), ("airtime", AIRTIME), ("ported", ported)):
            orders[name] = documented.check("/api/bills/pay", post_order(http, body, name))
            replay = post_order(http, body, name)
            assert replay.headers["idempotent-replayed"] == "true"
            assert documented.check("/api/bills/pay", replay) == orders[name]
        assert orders["ported"]["warnings"]
        pending = http.get(f"/api/bills/{orders['ported']['reference']}")
        assert documented.check("/api/bills/{reference}", pending)["payment"] is not None

        sandbox.pay(orders["electricity"]["memo"], orders["electricity"]["amount_cngn"])
        sandbox.pay(orders["airtime"]["memo"], "499.9900000")  # the wrong amount: refunded
        references = [orders[name]["reference"] for name in ("electricity", "airtime")]
        settled = ticks_until_settled(runtime, references)
        assert list(settled.values()) == ["completed", "refunded"]
        completed = http.get(f"/api/bills/{references[0]}")
        assert documented.check("/api/bills/{reference}", completed)["token"]
        refunded = documented.check(
            "/api/bills/{reference}", http.get(f"/api/bills/{references[1]}")
        )
        assert refunded["refund"]["tx_hash"]

        page = documented.check("/api/bills/history", http.get("/api/bills/history?limit=2"))
        assert len(page["items"]) == 2 and page["next_cursor"]
        last = http.get("/api/bills/history", params={"cursor": page["next_cursor"]})
        assert documented.check("/api/bills/history", last)["next_cursor"] is None
        stats = documented.check("/api/bills/stats", http.get("/api/bills/stats?window=1h"))
        assert any(row["paid"] for row in stats["success_rate"])
    vtpass = {"type": "transaction-update", "data": {"requestId": "2026120210307NOSUCHREFA1"}}
    secret = api.runtime.settings.flutterwave_webhook_hash.get_secret_value()
    flutterwave = {"event": "singlebillpayment.status", "data": {"customer_reference": "X1"}}
    with api.client() as http:
        documented.check("/webhooks/vtpass", http.post("/webhooks/vtpass", json=vtpass))
        answer = http.post(
            "/webhooks/flutterwave", json=flutterwave, headers={"verif-hash": secret}
        )
        documented.check("/webhooks/flutterwave", answer)
    operations = (result.ok() for result in documented.schema.get_all_operations())
    assert documented.checked == {f"{op.method.upper()} {op.path}" for op in operations}
