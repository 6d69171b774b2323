"""Network profiles, explicit overrides, and what `billpay config show` prints (masked)."""

from __future__ import annotations

import json
import os

import pytest
from stellar_sdk import Network
from typer.testing import CliRunner

from billpay.cli import app
from billpay.config import Settings
from billpay.doctor_cli import mask_url
from billpay.networks import (
    BANTU_MAINNET_CNGN_ISSUER,
    BANTU_TESTNET_CNGN_ISSUER,
    SANDBOX_HORIZON_URL,
    SANDBOX_NETWORK_PASSPHRASE,
)

OTHER_ISSUER = "GAD4DFTTYUUFCLLDBSRWHYL37MKTCRVZAV6SOA7L65WZMKKDSSDJ664X"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("BILLPAY_"):
            monkeypatch.delenv(key)


def test_the_sandbox_profile_keeps_the_old_defaults() -> None:
    s = Settings()
    assert (s.network, s.horizon_url) == ("sandbox", SANDBOX_HORIZON_URL)
    assert s.network_passphrase == SANDBOX_NETWORK_PASSPHRASE
    assert s.cngn_issuer == ""  # the sandbox's identities come from `billpay sandbox --print-env`


def test_bantu_mainnet_sets_passphrase_horizon_and_the_published_issuer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BILLPAY_NETWORK", "bantu-mainnet")
    s = Settings()
    assert s.network_passphrase == "Public Bantu Network ; 10-10-2020"
    assert s.cngn_issuer == BANTU_MAINNET_CNGN_ISSUER
    assert s.horizon_url == "https://expansion.bantu.network"
    assert s.setting_source("cngn_issuer") == "profile"
    assert s.setting_source("network") == "env"


def test_bantu_testnet_has_its_own_issuer() -> None:
    s = Settings(network="bantu-testnet")
    assert s.cngn_issuer == BANTU_TESTNET_CNGN_ISSUER
    assert s.network_passphrase == "Bantu Testnet"


@pytest.mark.parametrize(
    ("network", "passphrase", "horizon"),
    [
        (
            "stellar-testnet",
            Network.TESTNET_NETWORK_PASSPHRASE,
            "https://horizon-testnet.stellar.org",
        ),
        ("stellar-pubnet", Network.PUBLIC_NETWORK_PASSPHRASE, "https://horizon.stellar.org"),
    ],
)
def test_stellar_profiles_publish_no_issuer(network: str, passphrase: str, horizon: str) -> None:
    s = Settings(network=network)
    assert (s.network_passphrase, s.horizon_url, s.cngn_issuer) == (passphrase, horizon, "")


def test_explicit_env_and_keywords_override_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLPAY_NETWORK", "bantu-mainnet")
    monkeypatch.setenv("BILLPAY_CNGN_ISSUER", OTHER_ISSUER)
    s = Settings(horizon_url="https://my-expansion.example")
    assert s.cngn_issuer == OTHER_ISSUER and s.setting_source("cngn_issuer") == "env"
    assert s.horizon_url == "https://my-expansion.example"
    assert s.setting_source("horizon_url") == "init"
    assert s.network_passphrase == "Public Bantu Network ; 10-10-2020"  # still the profile's


def test_an_explicit_empty_issuer_is_not_replaced_by_the_profile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BILLPAY_CNGN_ISSUER", "")
    assert Settings(network="bantu-mainnet").cngn_issuer == ""


def test_an_unknown_network_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLPAY_NETWORK", "bantu-main")
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 2
    assert "BILLPAY_NETWORK" in result.output and "bantu-mainnet" in result.output


def test_config_show_json_for_bantu_mainnet_masks_every_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secrets = {
        "BILLPAY_SYSTEM_SECRET": "SBSECRETSYSTEMVALUE",
        "BILLPAY_VTPASS_API_KEY": "vt-api-key-value",
        "BILLPAY_VTPASS_SECRET_KEY": "SK_vt_secret_value",
        "BILLPAY_FLUTTERWAVE_SECRET_KEY": "FLWSECK-live-value",
        "BILLPAY_WEBHOOK_SECRET": "whsec-value",
    }
    for key, value in secrets.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("BILLPAY_NETWORK", "bantu-mainnet")
    monkeypatch.setenv(
        "BILLPAY_DATABASE_URL", "postgresql://billpay:dbpassword@db.internal/billpay"
    )
    result = CliRunner().invoke(app, ["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows["cngn_issuer"] == {"value": BANTU_MAINNET_CNGN_ISSUER, "source": "profile"}
    assert rows["network_passphrase"]["value"] == "Public Bantu Network ; 10-10-2020"
    assert rows["network"] == {"value": "bantu-mainnet", "source": "env"}
    assert rows["database_url"]["value"] == "postgresql://billpay:********@db.internal/billpay"
    assert rows["system_secret"] == {"value": "********", "source": "env"}
    for value in [*secrets.values(), "dbpassword"]:
        assert value not in result.output
    assert rows["system_account"]["missing"] is True  # not set: nothing can be paid to it


def test_config_show_marks_the_issuer_missing_on_stellar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLPAY_NETWORK", "stellar-pubnet")
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0
    line = next(x for x in result.output.splitlines() if x.startswith("cngn_issuer"))
    assert "(missing)" in line


def test_mask_url_hides_only_the_password() -> None:
    assert mask_url("https://h.example/x") == "https://h.example/x"
    assert (
        mask_url("postgresql+psycopg://u:p@h:5433/d") == "postgresql+psycopg://u:********@h:5433/d"
    )
