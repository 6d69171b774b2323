"""A provider that cannot answer a verification is a 503 problem, never ``valid: false``."""

from __future__ import annotations

import pytest

from billpay.config import Settings
from billpay.providers import ProviderRouter
from tests.api.bodies import ELECTRICITY_ACCOUNT, problem_body
from tests.api.conftest import ApiServer
from tests.servers import free_port


@pytest.fixture
def api_settings(api_settings: Settings) -> Settings:
    down = f"http://127.0.0.1:{free_port()}"  # nobody listens there: connections are refused
    return api_settings.model_copy(
        update={
            "vtpass_base_url": f"{down}/vtpass/api",
            "flutterwave_base_url": f"{down}/flutterwave/v3",
        }
    )


def test_a_provider_that_cannot_answer_is_503_with_retry_after(api: ApiServer) -> None:
    with api.client(api.new_key("wallet")) as http:
        answer = http.post(
            "/api/bills/validate",
            json=ELECTRICITY_ACCOUNT,
        )
    body = problem_body(answer, 503)
    assert int(answer.headers["retry-after"]) > 0
    assert body["code"] == "provider_unavailable"
    assert "valid" not in body
    assert "1111111111111" not in answer.text


def test_no_provider_on_the_route_is_503_not_invalid(api: ApiServer) -> None:
    # Water is sold by Flutterwave only: routed to VTpass alone, nobody can verify it.
    router = api.runtime.router
    settings = api.runtime.settings.model_copy(update={"route_water": ["vtpass"]})
    api.runtime.router = ProviderRouter(
        api.runtime.providers, settings, catalogue=api.runtime.catalogue
    )
    try:
        with api.client(api.new_key("wallet")) as http:
            answer = http.post(
                "/api/bills/validate",
                json={"bill_type": "water", "biller": "lagos-water", "account": "123456"},
            )
    finally:
        api.runtime.router = router
    assert answer.status_code == 503
    assert answer.json()["code"] == "provider_unavailable"
