"""Schema fuzzing (schemathesis) of every route in the served OpenAPI document, against the real
uvicorn server with a valid key: no answer is a 5xx, every error is problem+json, and every 2xx
answer conforms to the response schema the route documents (schemathesis'
``response_schema_conformance``: types, required keys, no undocumented key, money patterns,
date-time formats).

The operations come from the schema at run time, so routes added later are fuzzed without
editing this file; a route left out of the schema fails the coverage check instead. Examples
are derandomized and capped so the run is repeatable in CI and stays well under a minute.
"""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import response_schema_conformance
from schemathesis.errors import FailureGroup

from billpay.api import create_app
from tests.api.bodies import AIRTIME, ELECTRICITY, post_order
from tests.api.conftest import ApiServer

EXAMPLES_PER_OPERATION = 30
NEEDS_REAL_INPUT = {
    "POST /api/bills/validate",
    "POST /api/bills/pay",
    "GET /api/bills/{reference}",
}
FUZZ = hypothesis.settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)


def _schema_operations(api: ApiServer) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the schema lists no operation"
    return operations


def _conformance(case: Any, response: Any) -> str | None:
    """Why a 2xx answer does not match the schema its operation documents, or None."""
    try:
        case.validate_response(response, checks=[response_schema_conformance])
    except FailureGroup as failed:
        return "; ".join(dict.fromkeys(f.title + ": " + f.message[:300] for f in failed.exceptions))
    return None


def _failures(
    api: ApiServer, operation: Any, headers: dict[str, str]
) -> tuple[int, int, list[str]]:
    """Fuzz one operation with valid and invalid inputs: how many requests were sent, how many
    2xx answers were checked against the schema, and the answers that break the rules."""
    found: list[str] = []
    counts = {"sent": 0, "checked": 0}
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @FUZZ
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(base_url=api.url, headers=headers, timeout=15)
        counts["sent"] += 1
        kind = response.headers.get("content-type", [""])
        kind = kind[0] if isinstance(kind, list) else kind
        where = f"{case.method} {case.formatted_path}"
        if response.status_code >= 500:
            found.append(f"{where}: {response.status_code} {response.text[:200]}")
        elif response.status_code >= 400 and not kind.startswith("application/problem+json"):
            found.append(f"{where}: {response.status_code} answered {kind!r}")
        elif 200 <= response.status_code < 300:
            counts["checked"] += 1
            why = _conformance(case, response)
            if why is not None:
                found.append(f"{where}: {response.status_code} not as documented: {why}")

    run()
    return counts["sent"], counts["checked"], found


def test_fuzzed_requests_never_get_a_5xx_errors_are_problems_and_2xx_as_documented(
    api: ApiServer,
) -> None:
    key = api.new_key("fuzzer")
    with api.client(key) as http:  # history then answers orders, not only empty pages
        for n, body in enumerate((ELECTRICITY, AIRTIME)):
            assert post_order(http, body, f"seed-{n}").status_code == 201
    # The Flutterwave hash too, so its webhook's body is fuzzed rather than only refused.
    secret = api.runtime.settings.flutterwave_webhook_hash.get_secret_value()
    headers = {"Authorization": f"Bearer {key}", "verif-hash": secret}
    failures: list[str] = []
    checked: dict[str, int] = {}
    for operation in _schema_operations(api):
        sent, ok, found = _failures(api, operation, headers)
        assert sent, f"{operation.method.upper()} {operation.path}: no request was generated"
        checked[f"{operation.method.upper()} {operation.path}"] = ok
        failures += found
    assert not failures, "\n".join(dict.fromkeys(failures))
    # The schema check is not vacuous: every route that random input can get a 2xx from did.
    # (validate and pay need a valid account or order, and /{reference} an existing order:
    # test_response_schemas.py checks their real answers.)
    unchecked = [op for op, count in checked.items() if not count and op not in NEEDS_REAL_INPUT]
    assert not unchecked, f"no 2xx answer was checked against its schema: {unchecked}"


def test_every_registered_route_is_in_the_fuzzed_schema(api: ApiServer) -> None:
    routes = {
        (method, route.path)
        for route in create_app(api.runtime).routes
        if isinstance(route, APIRoute)
        for method in route.methods
        if method != "HEAD"
    }
    fuzzed = {(op.method.upper(), op.path) for op in _schema_operations(api)}
    missing = routes - fuzzed
    if missing:
        pytest.fail(f"routes not in the OpenAPI schema, so never fuzzed: {sorted(missing)}")
    assert ("GET", "/api/bills/stats") in fuzzed and ("POST", "/api/bills/validate") in fuzzed
