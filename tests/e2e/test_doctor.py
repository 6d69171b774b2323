"""`billpay doctor` against the real sandbox on loopback, real PostgreSQL and a Prefect server
(the test harness) holding our deployments, as `billpay serve` creates them."""

from __future__ import annotations

import json
import os

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from billpay import doctor
from billpay.config import Settings
from deployments.cli import app
from deployments.registry import all_specs
from deployments.serving import build_deployment
from tests.e2e.conftest import Sandbox


@pytest.fixture
def doctor_env(
    sandbox: Sandbox, database_url: URL, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The shell an operator has after `eval $(billpay sandbox --print-env)`."""
    for key in list(os.environ):
        if key.upper().startswith("BILLPAY_") and key != "BILLPAY_SANDBOX_TIMEOUT_SECONDS":
            monkeypatch.delenv(key)
    env = {**sandbox.env(), "BILLPAY_DATABASE_URL": database_url.render_as_string(False)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture(scope="module")
def deployments_created(prefect_harness: None) -> None:
    for spec in all_specs():
        build_deployment(spec).apply()


def run_doctor() -> tuple[int, list[dict[str, object]]]:
    result = CliRunner().invoke(app, ["doctor", "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_doctor_is_green_on_the_sandbox_and_names_vtpass_when_its_key_is_wrong(
    doctor_env: dict[str, str], deployments_created: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, checks = run_doctor()
    assert [c for c in checks if not c["ok"]] == []
    assert code == 0
    names = [c["name"] for c in checks]
    assert len(checks) >= 5
    for expected in ("database", "horizon", "system account", "vtpass credentials", "prefect"):
        assert expected in names
    assert set(checks[0]) >= {"name", "ok", "detail", "fix"}

    monkeypatch.setenv("BILLPAY_VTPASS_API_KEY", "a-wrong-vtpass-key")
    code, checks = run_doctor()
    assert code == 1
    failed = [c for c in checks if not c["ok"]]
    assert [c["name"] for c in failed] == ["vtpass credentials"]
    assert "VTpass refused" in str(failed[0]["detail"])
    assert "a-wrong-vtpass-key" not in json.dumps(checks)


def test_bantu_mainnet_with_the_sandbox_s_settings_left_over_is_red(
    doctor_env: dict[str, str], deployments_created: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every sandbox service answers as it should; only BILLPAY_NETWORK changed.
    monkeypatch.setenv("BILLPAY_NETWORK", "bantu-mainnet")
    code, checks = run_doctor()
    assert code == 1
    failed = {str(c["name"]): str(c["detail"]) for c in checks if not c["ok"]}
    assert {"live settings", "network configuration", "system account", "system secret"} <= set(
        failed
    )
    assert "is the sandbox's system identity" in failed["live settings"]
    assert "test key" in failed["flutterwave credentials"]
    assert all("fund" not in str(c["fix"]) for c in checks)


def test_the_sandbox_issuer_flags_are_reported_as_warnings(
    doctor_env: dict[str, str], sandbox: Sandbox
) -> None:
    flags = {"auth_revocable": True, "auth_clawback_enabled": True}
    httpx.post(f"{sandbox.url}/horizon/_sandbox/flags", json=flags).raise_for_status()
    results = doctor.run_checks(Settings(), extra=[])
    issuer = next(c for c in results if c.name == "cNGN issuer")
    assert issuer.ok and issuer.warning and "take cNGN back" in issuer.detail
    assert all(c.ok for c in results)


def test_a_frozen_system_trustline_and_a_foreign_secret_fail(
    doctor_env: dict[str, str], sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"account": "system", "authorized": False}
    httpx.post(f"{sandbox.url}/horizon/_sandbox/trustlines", json=body).raise_for_status()
    from billpay.sandbox.identities import users

    monkeypatch.setenv("BILLPAY_SYSTEM_SECRET", users()[0].secret)
    failed = {c.name: c for c in doctor.run_checks(Settings(), extra=[]) if not c.ok}
    assert set(failed) == {"system account", "system secret"}
    assert "not authorised" in failed["system account"].detail


def test_an_unmigrated_database_fails_with_db_upgrade(
    doctor_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, database_url: URL
) -> None:
    missing = database_url.set(database="billpay_doctor_absent")
    monkeypatch.setenv("BILLPAY_DATABASE_URL", missing.render_as_string(False))
    check = doctor.check_database(Settings())
    assert not check.ok and "billpay db upgrade" in check.fix

    admin = sa.create_engine(
        database_url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    with admin.connect() as conn:
        conn.execute(sa.text('CREATE DATABASE "billpay_doctor_absent"'))
    try:
        check = doctor.check_database(Settings())
        assert not check.ok and "migration(s) not applied" in check.detail
        assert check.fix == "run `billpay db upgrade`"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text('DROP DATABASE "billpay_doctor_absent" WITH (FORCE)'))
        admin.dispose()
