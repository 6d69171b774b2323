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
        "warnings",
    }
    assert out["warnings"] == []
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


AIRTIME = ["order", "create", "--bill-type", "airtime", "--amount", "500", "--phone",
           "08031234567"]  # fmt: skip


def _create(*args: str) -> dict:
    result = runner.invoke(app, [*AIRTIME, *args])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _network_of(url, reference: str) -> str:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        network = conn.execute(
            sa.text("SELECT network FROM bill_payments WHERE reference = :r"), {"r": reference}
        ).scalar_one()
    engine.dispose()
    return network


def test_the_issues_airtime_by_biller_command_succeeds(cli_env):
    """Issue 14: VTpass's sandbox number 0801 1111111 (a prefix of no network we sell) with
    biller mtn was refused with "cannot tell the network from the number; name it"."""
    out = _create("--biller", "mtn", "--account", "08011111111")
    assert out["reference"] and _network_of(cli_env, out["reference"]) == "mtn"
    assert len(out["warnings"]) == 1 and "0801" in out["warnings"][0]
    assert "MTN" in out["warnings"][0] and "08011111111" not in json.dumps(out)


def test_a_biller_names_the_network_and_a_ported_number_is_only_a_warning(cli_env):
    assert _create("--biller", "mtn", "--account", "0803 123 4567")["warnings"] == []
    ported = _create("--biller", "mtn", "--account", "08021234567")  # an Airtel prefix
    assert _network_of(cli_env, ported["reference"]) == "mtn"
    (warning,) = ported["warnings"]
    assert "0802" in warning and "Airtel" in warning and "MTN" in warning
    assert "1234567" not in warning  # the prefix only, never the number
    named = _create("--biller", "mtn", "--account", "08021234567", "--network", "mtn")
    assert named["warnings"] == []  # the user said so: nothing to warn about
    assert _create("--biller", "mtn", "--account", "09101234567")["warnings"] == []  # 0910: MTN


def test_a_network_that_contradicts_the_biller_is_refused_naming_the_field(cli_env):
    before = _count(cli_env)
    args = ["--biller", "mtn", "--account", "08021234567", "--network", "airtel"]
    wrong = runner.invoke(app, [*AIRTIME, *args])
    assert wrong.exit_code != 0 and wrong.stderr.startswith("error: network:"), wrong.stderr
    assert _count(cli_env) == before


def test_show_unknown_reference_fails_cleanly(cli_env):
    result = runner.invoke(app, ["order", "show", "NOSUCHREF0"])
    assert result.exit_code == 1
    assert "no order" in result.stderr


def test_db_upgrade_twice_is_a_no_op(cli_env):
    first = runner.invoke(app, ["db", "upgrade"])
    assert first.exit_code == 0 and "up to date" in first.stdout
