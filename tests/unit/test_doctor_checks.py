"""Each doctor check, passing and failing, against recorded answers (httpx.MockTransport)."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from stellar_sdk import Keypair

from billpay import doctor
from billpay.config import Settings
from billpay.networks import (
    BANTU_MAINNET_CNGN_ISSUER,
    SANDBOX_NETWORK_PASSPHRASE,
    SANDBOX_PROVIDER_KEYS,
)
from billpay.sandbox import identities
from billpay.sandbox.app import sandbox_env
from deployments.doctor import check_prefect
from deployments.registry import all_specs
from tests.conftest import FIXTURES

SYSTEM = Keypair.random()
ISSUER = BANTU_MAINNET_CNGN_ISSUER
HORIZON = "https://expansion.bantu.network"
VT = "https://vtpass.test/api"
FLW = "https://flw.test/v3"
KEYS = {"api": "vt-api", "public": "PK_vt", "secret": "SK_vt", "flw": "FLWSECK-abc-X"}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith("BILLPAY_"):
            monkeypatch.delenv(key)


def settings(**update: Any) -> Settings:
    values: dict[str, Any] = {
        "network": "bantu-mainnet",
        "system_account": SYSTEM.public_key,
        "system_secret": SYSTEM.secret,
        "vtpass_base_url": VT,
        "vtpass_api_key": KEYS["api"],
        "vtpass_public_key": KEYS["public"],
        "vtpass_secret_key": KEYS["secret"],
        "flutterwave_base_url": FLW,
        "flutterwave_secret_key": KEYS["flw"],
    }
    return Settings(**{**values, **update})


def client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def account_body(account: str, *, issuer: str = ISSUER, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(fixture("horizon_account.json"))
    body["id"] = body["account_id"] = account
    body["balances"][0]["asset_issuer"] = issuer
    body["balances"][0].update(changes.pop("line", {}))
    body["flags"].update(changes.pop("flags", {}))
    return body


def horizon(accounts: dict[str, dict[str, Any]], root: dict[str, Any] | None = None) -> Any:
    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/":
            return httpx.Response(200, json=root or fixture("horizon_root.json"))
        account = path.removeprefix("/accounts/")
        if account in accounts:
            return httpx.Response(200, json=accounts[account])
        return httpx.Response(404, json=fixture("horizon_not_found.json"))

    return client(handle)


# --- configuration -------------------------------------------------------------------------


def test_stellar_without_an_issuer_is_a_configuration_error() -> None:
    check = doctor.check_network_config(settings(network="stellar-pubnet"))
    assert not check.ok and "BILLPAY_CNGN_ISSUER" in check.detail
    assert "other parties" in check.detail


def test_the_published_bantu_issuer_passes_and_another_one_warns() -> None:
    assert doctor.check_network_config(settings()).ok
    other = doctor.check_network_config(settings(cngn_issuer=Keypair.random().public_key))
    assert other.ok and other.warning and ISSUER in other.detail


def test_a_malformed_system_account_fails() -> None:
    check = doctor.check_network_config(settings(system_account="GNOTANACCOUNT"))
    assert not check.ok and "BILLPAY_SYSTEM_ACCOUNT" in check.detail


# --- Horizon -------------------------------------------------------------------------------


def test_horizon_on_our_network_passes() -> None:
    check = doctor.check_horizon(settings(), horizon({}))
    assert check.ok and "2.27.0-bantu" in check.detail


def test_horizon_of_another_network_fails_naming_both_passphrases() -> None:
    root = {**fixture("horizon_root.json"), "network_passphrase": "Bantu Testnet"}
    check = doctor.check_horizon(settings(), horizon({}, root))
    assert not check.ok
    assert "Bantu Testnet" in check.detail and "Public Bantu Network" in check.detail


def test_an_unreachable_horizon_fails_saying_so() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    check = doctor.check_horizon(settings(), client(refuse))
    assert not check.ok and "did not answer (ConnectError)" in check.detail
    assert "BILLPAY_HORIZON_URL" in check.fix


def test_the_system_account_with_an_authorised_trustline_passes() -> None:
    web = horizon({SYSTEM.public_key: account_body(SYSTEM.public_key)})
    check = doctor.check_system_account(settings(), web)
    assert check.ok and "authorised, balance 1000" in check.detail


def test_a_missing_system_account_fails() -> None:
    check = doctor.check_system_account(settings(), horizon({}))
    assert not check.ok and "does not exist" in check.detail


def test_a_trustline_to_the_same_code_from_another_issuer_does_not_count() -> None:
    body = account_body(SYSTEM.public_key, issuer=Keypair.random().public_key)
    check = doctor.check_system_account(settings(), horizon({SYSTEM.public_key: body}))
    assert not check.ok and "no trustline to cNGN issued by" in check.detail


def test_an_unauthorised_trustline_fails() -> None:
    body = account_body(SYSTEM.public_key, line={"is_authorized": False})
    check = doctor.check_system_account(settings(), horizon({SYSTEM.public_key: body}))
    assert not check.ok and "not authorised" in check.detail


def test_an_issuer_without_flags_passes_without_warning() -> None:
    check = doctor.check_issuer_flags(settings(), horizon({ISSUER: account_body(ISSUER)}))
    assert check.ok and not check.warning


def test_clawback_and_revocable_issuers_warn_what_they_mean_for_refunds() -> None:
    flags = {"auth_clawback_enabled": True, "auth_revocable": True, "auth_required": True}
    web = horizon({ISSUER: account_body(ISSUER, flags=flags)})
    check = doctor.check_issuer_flags(settings(), web)
    assert check.ok and check.warning
    assert "take cNGN back" in check.detail and "refund fails" in check.detail
    assert check.line().startswith("warn")


def test_an_issuer_absent_from_the_network_fails() -> None:
    check = doctor.check_issuer_flags(settings(), horizon({}))
    assert not check.ok and "does not exist on this network" in check.detail


# --- the system secret ---------------------------------------------------------------------


def test_the_system_secret_must_sign_for_the_system_account() -> None:
    assert doctor.check_system_secret(settings()).ok
    other = doctor.check_system_secret(settings(system_secret=Keypair.random().secret))
    assert not other.ok and "not the system account" in other.detail
    assert not doctor.check_system_secret(settings(system_secret="")).ok
    bad = doctor.check_system_secret(settings(system_secret=SecretStr("SNOTASECRET")))
    assert not bad.ok and "not a valid" in bad.detail
    assert SYSTEM.secret not in doctor.check_system_secret(settings()).line()


# --- providers -----------------------------------------------------------------------------


def vtpass(api: str = KEYS["api"], public: str = KEYS["public"], secret: str = KEYS["secret"]):
    """A VTpass that checks headers like the real one: GETs public-key, POSTs secret-key."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        second = ("public-key", public) if request.method == "GET" else ("secret-key", secret)
        if request.headers.get("api-key") != api or request.headers.get(second[0]) != second[1]:
            return httpx.Response(401, json=fixture("vtpass_invalid_credentials.json"))
        if request.url.path == "/api/balance":
            return httpx.Response(200, json=fixture("vtpass_balance_success.json"))
        if request.url.path == "/api/requery":
            return httpx.Response(200, json={"code": "015", "response_description": "INVALID"})
        return httpx.Response(404)

    return client(handle), seen


def test_vtpass_keys_accepted_by_balance_and_requery() -> None:
    web, seen = vtpass()
    now = datetime(2026, 11, 20, 9, 5, tzinfo=UTC)
    check = doctor.check_vtpass(settings(), web, now=now)
    assert check.ok and "wallet balance NGN 1081.82" in check.detail
    assert [(r.method, r.url.path) for r in seen] == [
        ("GET", "/api/balance"),
        ("POST", "/api/requery"),
    ]
    probe = json.loads(seen[1].content)["request_id"]
    assert probe.startswith("202611201005")  # the Lagos stamp VTpass demands (UTC+1)


def test_a_wrong_vtpass_api_key_fails_naming_vtpass() -> None:
    web, _ = vtpass(api="the-real-key")
    check = doctor.check_vtpass(settings(), web)
    assert not check.ok and "VTpass refused the api-key/public-key" in check.detail


def vtpass_probe_answers(response: httpx.Response | Exception) -> httpx.Client:
    """A VTpass whose /balance accepts the keys and whose /requery answers ``response``."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/balance":
            return httpx.Response(200, json=fixture("vtpass_balance_success.json"))
        if isinstance(response, Exception):
            raise response
        return response

    return client(handle)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (httpx.Response(502, text="<html>Bad Gateway</html>"), "answered 502, not JSON"),
        (httpx.Response(200, text="<html>maintenance</html>"), "answered 200, not JSON"),
        (httpx.Response(200, json={"response_description": "?"}), "JSON without a code"),
        (httpx.ReadTimeout("slow"), "did not answer (ReadTimeout)"),
        (httpx.Response(200, json={"code": "000", "content": {}}), "code 000 (expected 015"),
    ],
)
def test_a_vtpass_requery_that_proves_nothing_fails(
    answer: httpx.Response | Exception, reason: str
) -> None:
    check = doctor.check_vtpass(settings(), vtpass_probe_answers(answer))
    assert not check.ok
    assert "could not confirm the VTpass secret key" in check.detail and reason in check.detail


def test_a_vtpass_sandbox_host_on_a_real_money_network_fails() -> None:
    web, _ = vtpass()
    check = doctor.check_vtpass(settings(vtpass_base_url="https://sandbox.vtpass.com/api"), web)
    assert not check.ok and "VTpass's sandbox" in check.detail
    assert "https://vtpass.com/api" in check.fix


def test_a_wrong_vtpass_secret_key_fails_on_the_requery() -> None:
    web, _ = vtpass(secret="SK_other")
    check = doctor.check_vtpass(settings(), web)
    assert not check.ok and "secret-key" in check.detail


def test_unset_vtpass_keys_fail_without_calling() -> None:
    web, seen = vtpass()
    assert not doctor.check_vtpass(settings(vtpass_secret_key=""), web).ok
    assert seen == []


def flutterwave(secret: str = KEYS["flw"]) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {secret}":
            return httpx.Response(401, json=fixture("flutterwave_unauthorized.json"))
        return httpx.Response(200, json=fixture("flutterwave_balances_success.json"))

    return client(handle)


def test_flutterwave_key_accepted_by_balances() -> None:
    check = doctor.check_flutterwave(settings(), flutterwave())
    assert check.ok and "live key accepted, NGN available 2367840" in check.detail
    test_key = "FLWSECK_TEST-abc-X"
    on_testnet = settings(network="bantu-testnet", flutterwave_secret_key=test_key)
    check = doctor.check_flutterwave(on_testnet, flutterwave(secret=test_key))
    assert check.ok and "test key accepted" in check.detail


def test_a_flutterwave_test_key_on_a_real_money_network_fails() -> None:
    test_key = "FLWSECK_TEST-abc-X"
    check = doctor.check_flutterwave(
        settings(flutterwave_secret_key=test_key), flutterwave(secret=test_key)
    )
    assert not check.ok and "test key" in check.detail and "FLWSECK-" in check.fix


def test_a_wrong_flutterwave_key_fails() -> None:
    check = doctor.check_flutterwave(settings(), flutterwave(secret="FLWSECK-live"))
    assert not check.ok and "Flutterwave refused the secret key" in check.detail


def test_only_routed_providers_are_checked() -> None:
    s = settings(
        route_electricity="vtpass",
        route_airtime="vtpass",
        route_data="vtpass",
        route_cable_tv="vtpass",
        route_water="vtpass",
    )
    assert doctor.check_flutterwave not in doctor.domain_checks(s)


def test_a_crashing_check_is_reported_failed_and_the_rest_still_run() -> None:
    def broken(settings: Settings, client: httpx.Client) -> doctor.Check:
        raise RuntimeError("boom")

    results = doctor.run_checks(settings(), client(lambda r: httpx.Response(503)), extra=[broken])
    assert results[-1].name == "broken" and not results[-1].ok
    assert len(results) == len(doctor.domain_checks(settings())) + 1


# --- Prefect -------------------------------------------------------------------------------


FLOW_NAMES = {spec.name: spec.load_flow().name for spec in all_specs()}


def prefect(names: list[str], flows: dict[str, str] | None = None) -> httpx.Client:
    """A Prefect API holding deployments ``names``, each running the flow ``flows`` names (ours
    by default)."""
    flow_of = {**FLOW_NAMES, **(flows or {})}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/health":
            return httpx.Response(200, json=True)
        if request.url.path == "/api/flows/filter":
            wanted = json.loads(request.content)["flows"]["id"]["any_"]
            return httpx.Response(
                200,
                json=[
                    {"id": f"f-{n}", "name": flow_of.get(n, n)} for n in names if f"f-{n}" in wanted
                ],
            )
        return httpx.Response(
            200, json=[{"name": n, "id": str(i), "flow_id": f"f-{n}"} for i, n in enumerate(names)]
        )

    return client(handle)


API = ("http://prefect.test/api", {})


def test_prefect_with_every_deployment_passes() -> None:
    check = check_prefect(settings(), prefect([s.name for s in all_specs()]), api=API)
    assert check.ok and f"{len(all_specs())} deployments present" in check.detail


def test_prefect_missing_a_deployment_says_start_serve() -> None:
    check = check_prefect(settings(), prefect(["pipeline"]), api=API)
    assert not check.ok and "daily-report" in check.detail and "billpay serve" in check.fix


def test_a_deployment_of_ours_running_another_flow_fails() -> None:
    web = prefect([s.name for s in all_specs()], flows={"daily-report": "someone-elses-flow"})
    check = check_prefect(settings(), web, api=API)
    assert not check.ok
    assert "daily-report runs flow 'someone-elses-flow', not 'daily-report'" in check.detail


def test_the_prefect_url_is_shown_masked() -> None:
    api = ("https://u:prefectpw@prefect.test/api", {})
    check = check_prefect(settings(), prefect([s.name for s in all_specs()]), api=api)
    assert check.ok and "prefectpw" not in check.detail and "prefect.test/api" in check.detail


def test_no_prefect_api_configured_fails_with_how_to_start_one() -> None:
    check = check_prefect(settings(), prefect([]), api=(None, {}))
    assert not check.ok and "PREFECT_API_URL" in check.fix and "billpay serve" in check.fix


# --- sandbox leftovers and test endpoints on a live profile ----------------------------------


def leftover_settings(monkeypatch: pytest.MonkeyPatch, network: str = "bantu-mainnet") -> Settings:
    """The shell of an operator who ran `eval $(billpay sandbox --print-env)` and then only
    exported BILLPAY_NETWORK."""
    for key, value in sandbox_env(8765).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("BILLPAY_NETWORK", network)
    monkeypatch.setenv("BILLPAY_TREASURY_ACCOUNTS", identities.users()[0].account_id)
    return Settings()


def test_sandbox_leftovers_on_bantu_mainnet_fail_naming_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check = doctor.check_live_settings(leftover_settings(monkeypatch))
    assert not check.ok
    for expected in (
        "BILLPAY_NETWORK_PASSPHRASE",
        "BILLPAY_SYSTEM_ACCOUNT is the sandbox's system identity",
        "BILLPAY_SYSTEM_SECRET is the sandbox's system identity",
        "BILLPAY_CNGN_ISSUER is the sandbox's issuer identity",
        "BILLPAY_TREASURY_ACCOUNTS[0] is the sandbox's user1 identity",
        "BILLPAY_VTPASS_API_KEY is the sandbox's key",
        "BILLPAY_VTPASS_PUBLIC_KEY is the sandbox's key",
        "BILLPAY_VTPASS_SECRET_KEY is the sandbox's key",
        "BILLPAY_FLUTTERWAVE_SECRET_KEY is the sandbox's key",
        "BILLPAY_FLUTTERWAVE_WEBHOOK_HASH is the sandbox's key",
        "BILLPAY_HORIZON_URL http://127.0.0.1:8765/horizon is on loopback",
        "BILLPAY_VTPASS_BASE_URL http://127.0.0.1:8765/vtpass/api is the sandbox's",
        "BILLPAY_FLUTTERWAVE_SECRET_KEY is a test key",
    ):
        assert expected in check.detail, expected
    assert "billpay sandbox --print-env" in check.fix
    for secret in SANDBOX_PROVIDER_KEYS.values():
        assert secret not in check.line()


def test_sandbox_identities_fail_their_own_checks_off_the_sandbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = leftover_settings(monkeypatch)
    config = doctor.check_network_config(s)
    assert not config.ok and "sandbox's issuer" in config.detail
    assert BANTU_MAINNET_CNGN_ISSUER in config.fix
    # The profile's Horizon does not know the sandbox account: never "fund the account".
    account = doctor.check_system_account(s, horizon({}))
    assert not account.ok and "secret is public" in account.detail
    assert "fund" not in account.fix and "of your own" in account.fix
    secret = doctor.check_system_secret(s)
    assert not secret.ok and "sandbox's system secret" in secret.detail


def test_a_sandbox_passphrase_alone_fails_even_with_real_identities() -> None:
    check = doctor.check_live_settings(settings(network_passphrase=SANDBOX_NETWORK_PASSPHRASE))
    assert not check.ok and "refunds would be signed for another network" in check.detail
    assert doctor.check_live_settings(settings()).ok


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"flutterwave_base_url": "http://127.0.0.1:8765/flutterwave/v3"}, "FLUTTERWAVE_BASE_URL"),
        ({"vtpass_base_url": "http://localhost:9000/api"}, "VTPASS_BASE_URL"),
        ({"vtpass_base_url": "https://sandbox.vtpass.com/api"}, "VTpass's sandbox"),
        ({"horizon_url": "http://[::1]:8000"}, "BILLPAY_HORIZON_URL"),
        ({"flutterwave_secret_key": "FLWSECK_TEST-abc-X"}, "a test key"),
    ],
)
def test_test_endpoints_and_keys_fail_on_a_real_money_network(
    change: dict[str, str], expected: str
) -> None:
    check = doctor.check_live_settings(settings(**change))
    assert not check.ok and expected in check.detail
    # A testnet is play money: the same values pass there.
    assert doctor.check_live_settings(settings(network="bantu-testnet", **change)).ok


def test_an_unrouted_provider_left_at_its_sandbox_url_does_not_fail() -> None:
    loopback = {"flutterwave_base_url": "http://127.0.0.1:8765/flutterwave/v3"}
    assert not doctor.check_live_settings(settings(**loopback)).ok  # routed by default
    types = ("electricity", "airtime", "data", "cable_tv", "water")
    vtpass_only = {f"route_{bill_type}": "vtpass" for bill_type in types}
    assert doctor.check_live_settings(settings(**loopback, **vtpass_only)).ok


def test_the_sandbox_profile_expects_the_sandbox_values(monkeypatch: pytest.MonkeyPatch) -> None:
    check = doctor.check_live_settings(leftover_settings(monkeypatch, network="sandbox"))
    assert check.ok


def test_no_printed_url_keeps_a_secret() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    s = settings(
        horizon_url="https://u:hpw@horizon.example/key/Zk3f9QpLm2Xr7Tn4Wb8Y",
        vtpass_base_url="https://u:vpw@vtpass.example/api",
        flutterwave_base_url="https://flw.example/v3?apikey=fkey",
    )
    results = doctor.run_checks(s, client(refuse), extra=[])
    text = json.dumps([c.to_json() for c in results])
    for secret in ("hpw", "Zk3f9QpLm2Xr7Tn4Wb8Y", "vpw", "fkey"):
        assert secret not in text
    assert "horizon.example" in text
