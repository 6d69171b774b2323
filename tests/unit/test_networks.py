"""Network profiles, explicit overrides, and what `billpay config show` prints (masked)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import pytest
from stellar_sdk import Network
from typer.testing import CliRunner, Result

from billpay.cli import app
from billpay.config import Settings
from billpay.doctor_cli import mask_url
from billpay.networks import (
    BANTU_MAINNET_CNGN_ISSUER,
    BANTU_TESTNET_CNGN_ISSUER,
    SANDBOX_ACCOUNTS,
    SANDBOX_HORIZON_URL,
    SANDBOX_NETWORK_PASSPHRASE,
    SANDBOX_PROVIDER_KEYS,
    SANDBOX_PROVIDER_URLS,
)
from billpay.sandbox import identities
from billpay.sandbox.app import sandbox_env

OTHER_ISSUER = "GAD4DFTTYUUFCLLDBSRWHYL37MKTCRVZAV6SOA7L65WZMKKDSSDJ664X"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith("BILLPAY_"):
            monkeypatch.delenv(key)


def show_config(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str], *flags: str) -> Result:
    """`billpay config show` (with ``flags``) under ``env`` added to the environment: it
    must succeed."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["config", "show", *flags])
    assert result.exit_code == 0, result.output
    return result


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


@pytest.mark.parametrize("variable", ["BILLPAY_CNGN_ISSUER", "BILLPAY_HORIZON_URL"])
def test_an_explicit_empty_value_means_unset_and_the_profile_applies(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    # compose's `${BILLPAY_CNGN_ISSUER:-}` exports an empty value: it must not cancel the profile.
    monkeypatch.setenv(variable, "")
    s = Settings(network="bantu-mainnet")
    assert s.cngn_issuer == BANTU_MAINNET_CNGN_ISSUER
    assert s.horizon_url == "https://expansion.bantu.network"
    field = variable.removeprefix("BILLPAY_").lower()
    assert s.setting_source(field) == "profile"
    assert Settings(network="bantu-mainnet", cngn_issuer=" ").cngn_issuer == (
        BANTU_MAINNET_CNGN_ISSUER
    )


def test_a_keyword_wins_over_the_same_env_variable_and_is_labelled_init(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BILLPAY_CNGN_ISSUER", BANTU_TESTNET_CNGN_ISSUER)
    s = Settings(network="bantu-mainnet", cngn_issuer=OTHER_ISSUER)
    assert s.cngn_issuer == OTHER_ISSUER  # pydantic's priority: init > env
    assert s.setting_source("cngn_issuer") == "init"


def test_a_lower_case_env_name_is_labelled_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("billpay_cngn_issuer", OTHER_ISSUER)
    s = Settings(network="bantu-mainnet")
    assert s.cngn_issuer == OTHER_ISSUER and s.setting_source("cngn_issuer") == "env"


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
    database_url = "postgresql://billpay:dbpassword@db.internal/billpay"
    env = {**secrets, "BILLPAY_NETWORK": "bantu-mainnet", "BILLPAY_DATABASE_URL": database_url}
    result = show_config(monkeypatch, env, "--json")
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


def test_mask_url_hides_the_password_and_keeps_the_rest() -> None:
    assert mask_url("https://h.example/x") == "https://h.example/x"
    assert (
        mask_url("postgresql+psycopg://u:p@h:5433/d") == "postgresql+psycopg://u:********@h:5433/d"
    )
    assert mask_url("postgresql://u:p@[2001:db8::1]:5432/d") == (
        "postgresql://u:********@[2001:db8::1]:5432/d"
    )
    assert mask_url("http://127.0.0.1:8765/flutterwave/v3") == (
        "http://127.0.0.1:8765/flutterwave/v3"
    )


@pytest.mark.parametrize(
    ("url", "secret", "kept"),
    [
        (
            "postgresql://u@db.internal/billpay?password=qpw1&sslpassword=qpw2&sslmode=require",
            ["qpw1", "qpw2"],
            "sslmode=require",
        ),
        ("https://h.example/hook?token=tok123&x=1", ["tok123"], "x=1"),
        (
            "https://h.example/h?sig=s1&signature=s2&apikey=s3&hash=s4&auth=s5",
            ["s1", "s2", "s3"],
            "",
        ),
        ("https://horizon.example/v1/Zk3f9QpLm2Xr7Tn4Wb8Y/", ["Zk3f9QpLm2Xr7Tn4Wb8Y"], "/v1/"),
        ("https://horizon.example/#access_token=frag", ["frag"], "horizon.example"),
        ("postgresql://u:s3cret@host:abc/db", ["s3cret", "host"], ""),
        ("host=db password=dsnpw", ["dsnpw", "db"], ""),
    ],
)
def test_mask_url_hides_every_secret_looking_part(url: str, secret: list[str], kept: str) -> None:
    shown = mask_url(url)
    for value in secret:
        assert value not in shown
    assert kept in shown


def test_webhook_urls_show_scheme_and_host_only() -> None:
    slack = "https://hooks.slack.com/services/T00/B00/SECRETPART"
    assert mask_url(slack, host_only=True) == "https://hooks.slack.com/..."


def test_config_show_masks_query_path_and_webhook_secrets_and_never_crashes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {
        "BILLPAY_DATABASE_URL": "postgresql://u:s3cret@host:abc/db?sslpassword=sslpw",
        "BILLPAY_WEBHOOK_URL": "https://wallet.example/notify?token=whtoken",
        "BILLPAY_OPERATOR_WEBHOOK_URL": "https://hooks.slack.com/services/T00/B00/SLACKSECRET",
        "BILLPAY_HORIZON_URL": "https://horizon.example/api/Zk3f9QpLm2Xr7Tn4Wb8Y",
        "BILLPAY_CALLBACK_URL": "https://[2001:db8::1]:8443/cb/Zk3f9QpLm2Xr7Tn4Wb8Y",
    }
    result = show_config(monkeypatch, env, "--json")
    for secret in ("s3cret", "sslpw", "whtoken", "SLACKSECRET", "Zk3f9QpLm2Xr7Tn4Wb8Y"):
        assert secret not in result.output
    rows = json.loads(result.output)
    assert rows["database_url"]["value"] == "********"  # unreadable: masked whole
    assert rows["operator_webhook_url"]["value"] == "https://hooks.slack.com/..."
    assert rows["callback_url"]["value"] == "https://[2001:db8::1]:8443/..."
    monkeypatch.setenv("BILLPAY_DATABASE_URL", "host=db user=billpay password=dsnsecret")
    text = CliRunner().invoke(app, ["config", "show"])
    assert text.exit_code == 0 and "dsnsecret" not in text.output


def test_config_show_marks_sandbox_values_left_on_a_live_profile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {**sandbox_env(8765), "BILLPAY_NETWORK": "bantu-mainnet"}
    rows = json.loads(show_config(monkeypatch, env, "--json").output)
    for name in (
        "network_passphrase",
        "system_account",
        "cngn_issuer",
        "vtpass_api_key",
        "flutterwave_secret_key",
        "flutterwave_base_url",
        "horizon_url",
    ):
        assert "problem" in rows[name], name
    assert "problem" not in rows["network"]
    text = CliRunner().invoke(app, ["config", "show"]).output
    line = next(x for x in text.splitlines() if x.startswith("system_account"))
    assert "SANDBOX" in line
    # The sandbox itself: its values are expected there.
    monkeypatch.setenv("BILLPAY_NETWORK", "sandbox")
    rows = json.loads(CliRunner().invoke(app, ["config", "show", "--json"]).output)
    assert not [name for name, row in rows.items() if "problem" in row]


def test_the_sandbox_identities_known_to_product_code_are_the_sandbox_s() -> None:
    # billpay/networks.py repeats the derivation (product code may not import the sandbox).
    assert set(SANDBOX_ACCOUNTS) == {i.account_id for i in identities.all_identities()}
    assert SANDBOX_ACCOUNTS[identities.system().account_id] == "system"
    assert SANDBOX_ACCOUNTS[identities.issuer().account_id] == "issuer"
    env = sandbox_env(8765)
    for field, value in SANDBOX_PROVIDER_KEYS.items():
        assert env[f"BILLPAY_{field.upper()}"] == value
    assert SANDBOX_NETWORK_PASSPHRASE == env["BILLPAY_NETWORK_PASSPHRASE"]
    assert {env["BILLPAY_FLUTTERWAVE_BASE_URL"], env["BILLPAY_VTPASS_BASE_URL"]} == set(
        SANDBOX_PROVIDER_URLS
    )
