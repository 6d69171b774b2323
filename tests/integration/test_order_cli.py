"""`billpay order create|show` and `billpay db upgrade` as a user runs them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from stellar_sdk import MuxedAccount
from typer.testing import CliRunner

from billpay.sandbox.identities import issuer as cngn_issuer
from billpay.sandbox.identities import system
from deployments.cli import app

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch, database_url):
    monkeypatch.setenv("BILLPAY_DATABASE_URL", database_url.render_as_string(hide_password=False))
    monkeypatch.setenv("BILLPAY_SYSTEM_ACCOUNT", system().account_id)
    monkeypatch.setenv("BILLPAY_CNGN_ISSUER", cngn_issuer().account_id)
    monkeypatch.setenv("BILLPAY_SERVICE_FEE_NAIRA", "100")
    return database_url


def _count(url) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM bill_payments")).scalar_one()
    engine.dispose()
    return count


ELECTRICITY = [
    "order",
    "create",
    "--bill-type",
    "electricity",
    "--biller",
    "ikeja-electric",
    "--account",
    "1111111111111",
    "--account-type",
    "prepaid",
    "--amount",
    "5000",
    "--phone",
    "08011111111",
]


def test_order_create_prints_payment_instructions(cli_env):
    result = runner.invoke(app, ELECTRICITY + ["--email", "ada@example.com"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {
        "reference",
        "memo",
        "amount_cngn",
        "destination",
        "muxed_destination",
        "asset_code",
        "asset_issuer",
        "expires_at",
    }
    assert out["memo"] == f"BILL-{out['reference']}" and len(out["memo"].encode()) <= 28
    assert out["amount_cngn"] == "5100.0000000"  # 5000 naira + the 100 naira service fee
    assert out["destination"] == system().account_id
    muxed = MuxedAccount.from_account(out["muxed_destination"])
    assert muxed.account_id == system().account_id and muxed.account_muxed_id is not None
    assert out["asset_code"] == "cNGN" and out["asset_issuer"] == cngn_issuer().account_id
    expires = datetime.fromisoformat(out["expires_at"])
    assert timedelta(minutes=9) < expires - datetime.now(UTC) <= timedelta(minutes=10)
    shown = runner.invoke(app, ["order", "show", out["reference"]])
    assert shown.exit_code == 0, shown.output
    order = json.loads(shown.stdout)
    assert order["status"] == "pending_payment"
    assert order["amount_kobo"] == 500_000 and order["fee_kobo"] == 10_000
    assert Decimal(order["amount_cngn"]) == Decimal("5100")
    assert [e["to"] for e in order["events"]] == ["pending_payment"]


def test_references_are_unique_and_unguessable(cli_env):
    refs = {json.loads(runner.invoke(app, ELECTRICITY).stdout)["reference"] for _ in range(20)}
    assert len(refs) == 20
    assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{10}", r) for r in refs)  # Crockford base32


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"--amount": "abc"}, "amount"),
        ({"--amount": "10.001"}, "amount"),
        ({"--amount": "0"}, "amount"),
        ({"--account": "12345"}, "account_number"),
        ({"--account-type": "weekly"}, "account_type"),
        ({"--phone": "0803"}, "phone"),
        ({"--bill-type": "gas"}, "bill_type"),
        ({"--biller": "nowhere-electric"}, "biller"),
    ],
)
def test_bad_input_exits_non_zero_names_the_field_and_stores_nothing(cli_env, change, field):
    args = list(ELECTRICITY)
    for flag, value in change.items():
        args[args.index(flag) + 1] = value
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:"), result.stderr
    assert _count(cli_env) == 0


def test_airtime_needs_a_known_network_unless_named(cli_env):
    base = [
        "order",
        "create",
        "--bill-type",
        "airtime",
        "--biller",
        "mtn",
        "--amount",
        "500",
        "--phone",
        "08031234567",
    ]
    assert runner.invoke(app, base + ["--account", "0803 123 4567"]).exit_code == 0
    wrong = runner.invoke(app, base + ["--account", "08021234567"])  # an Airtel number
    assert wrong.exit_code != 0 and "biller" in wrong.stderr
    ported = runner.invoke(app, base + ["--account", "08021234567", "--network", "mtn"])
    assert ported.exit_code == 0, ported.stderr


def test_show_unknown_reference_fails_cleanly(cli_env):
    result = runner.invoke(app, ["order", "show", "NOSUCHREF0"])
    assert result.exit_code == 1
    assert "no order" in result.stderr


def test_db_upgrade_twice_is_a_no_op(cli_env):
    first = runner.invoke(app, ["db", "upgrade"])
    assert first.exit_code == 0 and "up to date" in first.stdout
