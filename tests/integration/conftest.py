"""The sandbox Horizon for integration tests: a ledger served in-process, the client to it, and
settings that point billpay at it (a module adds its own ``stellar_settings`` fixture, usually
via :func:`sandbox_stellar_settings`)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from billpay.config import Settings
from billpay.sandbox.horizon import SandboxLedger, horizon_env, mount_horizon
from billpay.sandbox.options import SandboxOptions
from billpay.stellar import HorizonClient

SANDBOX_BASE = "http://testserver"


def sandbox_stellar_settings(settings: Settings, **update: Any) -> Settings:
    """``settings`` pointed at the sandbox Horizon, its system account and cNGN issuer."""
    env = horizon_env(SANDBOX_BASE)
    return settings.model_copy(
        update={
            "horizon_url": env["BILLPAY_HORIZON_URL"],
            "network_passphrase": env["BILLPAY_NETWORK_PASSPHRASE"],
            "system_account": env["BILLPAY_SYSTEM_ACCOUNT"],
            "system_secret": SecretStr(env["BILLPAY_SYSTEM_SECRET"]),
            "cngn_issuer": env["BILLPAY_CNGN_ISSUER"],
            "ingest_start_cursor": env["BILLPAY_INGEST_START_CURSOR"],
            **update,
        }
    )


@pytest.fixture
def sandbox() -> FastAPI:
    app = FastAPI()
    app.state.options = SandboxOptions()
    mount_horizon(app, app.state.options)
    return app


@pytest.fixture
def ledger(sandbox: FastAPI) -> SandboxLedger:
    return sandbox.state.horizon_ledger


@pytest.fixture
def web(sandbox: FastAPI) -> TestClient:
    return TestClient(sandbox)


@pytest.fixture
def horizon(stellar_settings: Settings, web: TestClient) -> HorizonClient:
    return HorizonClient.from_settings(stellar_settings, web)
