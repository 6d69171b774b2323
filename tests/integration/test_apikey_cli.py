"""`billpay apikey create|revoke` as an operator runs them."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from billpay.api import keys
from deployments.cli import app

runner = CliRunner()
MASTER = "cli-test-master-secret"


@pytest.fixture
def cli_env(monkeypatch, database_url):
    monkeypatch.setenv("BILLPAY_DATABASE_URL", database_url.render_as_string(hide_password=False))
    monkeypatch.setenv("BILLPAY_WEBHOOK_SECRET", MASTER)
    return database_url


def _clients(url) -> list[dict]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM api_clients ORDER BY id")).mappings().all()
    engine.dispose()
    return [dict(row) for row in rows]


def test_create_prints_the_key_once_and_stores_only_its_hash(cli_env):
    result = runner.invoke(app, ["apikey", "create", "wallet-one"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["name"] == "wallet-one" and out["key"].startswith("bp_")
    assert out["key_prefix"] == out["key"][:10] and out["webhook_url"] is None
    assert "webhook_signing_secret" not in out
    [row] = _clients(cli_env)
    assert row["key_hash"] == keys.key_hash(out["key"])
    assert out["key"] not in json.dumps(row, default=str)


def test_a_webhook_url_comes_with_its_signing_secret(cli_env):
    result = runner.invoke(
        app, ["apikey", "create", "shop", "--webhook-url", "https://shop.example/hooks"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    [row] = _clients(cli_env)
    assert out["webhook_url"] == row["webhook_url"] == "https://shop.example/hooks"
    assert out["webhook_signing_secret"] == keys.webhook_secret(MASTER, row["webhook_salt"])


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["apikey", "create", "Bad Name!"], "name"),
        (["apikey", "create", "shop", "--webhook-url", "ftp://shop"], "webhook_url"),
        (["apikey", "revoke", "nobody"], "name"),
    ],
)
def test_bad_input_names_the_field_and_exits_2(cli_env, args, field):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {field}: ")
    assert _clients(cli_env) == []


def test_a_taken_name_is_refused_until_revoked(cli_env):
    assert runner.invoke(app, ["apikey", "create", "shop"]).exit_code == 0
    taken = runner.invoke(app, ["apikey", "create", "shop"])
    assert taken.exit_code == 2 and "error: name: " in taken.stderr
    revoked = runner.invoke(app, ["apikey", "revoke", "shop"])
    assert revoked.exit_code == 0, revoked.output
    out = json.loads(revoked.stdout)
    assert out["name"] == "shop" and out["revoked_at"]
    assert runner.invoke(app, ["apikey", "revoke", "shop"]).exit_code == 2
    assert runner.invoke(app, ["apikey", "create", "shop"]).exit_code == 0
    assert [row["revoked_at"] is None for row in _clients(cli_env)] == [False, True]


def test_a_webhook_url_needs_the_master_secret(cli_env, monkeypatch):
    monkeypatch.delenv("BILLPAY_WEBHOOK_SECRET")
    result = runner.invoke(app, ["apikey", "create", "shop", "--webhook-url", "https://s.example"])
    assert result.exit_code == 2
    assert "BILLPAY_WEBHOOK_SECRET" in result.stderr and result.stderr.startswith(
        "error: webhook_url"
    )
