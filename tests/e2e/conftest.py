"""End-to-end fixtures: the sandbox (providers + Horizon) on loopback, a pipeline runtime on a
fresh database pointed at it, and Prefect's test harness once per session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from billpay.config import Settings
from billpay.sandbox.app import SandboxOptions, create_app, sandbox_env
from tests.servers import free_port, served


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@dataclass
class Sandbox:
    port: int
    options: SandboxOptions
    app: Any

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return sandbox_env(self.port)

    def calls(
        self, provider: str | None = None, operation: str | None = None
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"provider": provider, "operation": operation}.items() if v}
        return httpx.get(f"{self.url}/_sandbox/calls", params=params).json()

    def pay(self, memo: str | None, amount: str, **extra: Any) -> dict[str, Any]:
        body = {"amount": amount, **extra}
        if memo is not None:
            body["memo"] = memo
        response = httpx.post(f"{self.url}/horizon/_sandbox/payments", json=body)
        response.raise_for_status()
        return response.json()

    def horizon_transactions(self, account: str) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.url}/horizon/accounts/{account}/payments",
            params={"limit": 200, "order": "asc", "join": "transactions"},
        )
        return response.json()["_embedded"]["records"]


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    monkeypatch.setenv("BILLPAY_SANDBOX_TIMEOUT_SECONDS", "3")
    options = SandboxOptions()
    app = create_app(options)
    port = free_port()
    with served(app, port, what="sandbox"):
        yield Sandbox(port, options, app)


@pytest.fixture
def pipeline_settings(settings: Settings, sandbox: Sandbox) -> Settings:
    values = {key.removeprefix("BILLPAY_").lower(): value for key, value in sandbox.env().items()}
    return settings.model_copy(
        update={
            **Settings(**values).model_dump(include=set(values)),
            "provider_read_timeout_seconds": 1.5,
            "retry_backoff_seconds": [0, 0, 0],
            "requery_backoff_seconds": [0],
            "lease_seconds": 30,
        }
    )


@pytest.fixture
def runtime(pipeline_settings: Settings, prefect_harness: None) -> Iterator[Any]:
    from tests.e2e.pipeline_helpers import runtime_with

    with runtime_with(pipeline_settings) as rt:
        yield rt
