"""The API under a real uvicorn server on loopback, on a fresh database, pointed at the sandbox
(providers and Horizon, also on loopback): ``api.client(key)`` is an httpx client for it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from billpay.api import clients, create_app
from billpay.app import App
from billpay.config import Settings
from tests.e2e.conftest import Sandbox, pipeline_settings, sandbox  # noqa: F401 - fixtures
from tests.servers import served

WEBHOOK_SECRET = "test-webhook-master-secret"


@dataclass
class ApiServer:
    url: str
    runtime: App

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, **kwargs)

    def new_key(self, name: str, webhook_url: str | None = None) -> str:
        return clients.create(
            self.runtime.db, name, webhook_url=webhook_url, master_secret=WEBHOOK_SECRET
        )["key"]


@pytest.fixture
def api_settings(pipeline_settings: Settings) -> Settings:  # noqa: F811 - the imported fixture
    from pydantic import SecretStr

    return pipeline_settings.model_copy(update={"webhook_secret": SecretStr(WEBHOOK_SECRET)})


@pytest.fixture
def api(api_settings: Settings) -> Iterator[ApiServer]:
    runtime = App.open(api_settings)
    try:
        with served(create_app(runtime), what="API server") as url:
            yield ApiServer(url, runtime)
    finally:
        runtime.close()
