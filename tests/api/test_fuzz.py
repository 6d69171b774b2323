"""Schema fuzzing (schemathesis) of every route in the served OpenAPI document, against the real
uvicorn server with a valid key: no answer is a 5xx, and every error is problem+json.

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

from billpay.api import create_app
from tests.api.conftest import ApiServer

EXAMPLES_PER_OPERATION = 30
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


def _failures(api: ApiServer, operation: Any, key: str) -> tuple[int, list[str]]:
    """Fuzz one operation with valid and invalid inputs: how many requests were sent, and the
    answers that break the rules."""
    found: list[str] = []
    sent = [0]
    headers = {"Authorization": f"Bearer {key}"}
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @FUZZ
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(base_url=api.url, headers=headers, timeout=15)
        sent[0] += 1
        kind = response.headers.get("content-type", [""])
        kind = kind[0] if isinstance(kind, list) else kind
        where = f"{case.method} {case.formatted_path}"
        if response.status_code >= 500:
            found.append(f"{where}: {response.status_code} {response.text[:200]}")
        elif response.status_code >= 400 and not kind.startswith("application/problem+json"):
            found.append(f"{where}: {response.status_code} answered {kind!r}")

    run()
    return sent[0], found


def test_fuzzed_requests_never_get_a_5xx_and_errors_are_problems(api: ApiServer) -> None:
    key = api.new_key("fuzzer")
    failures: list[str] = []
    for operation in _schema_operations(api):
        sent, found = _failures(api, operation, key)
        assert sent, f"{operation.method.upper()} {operation.path}: no request was generated"
        failures += found
    assert not failures, "\n".join(dict.fromkeys(failures))


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
