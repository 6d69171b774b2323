"""The real adapters against the provider sandbox (the same code paths the demo uses)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import count
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from billpay.catalogue import Catalogue
from billpay.config import Settings
from billpay.orders import BillOrder, BillType
from billpay.providers import BillProvider, ErrorClass, PaymentOutcome, build_providers
from billpay.providers.base import make_attempt_reference
from billpay.sandbox.options import SandboxOptions
from billpay.sandbox.providers import (
    SANDBOX_FLUTTERWAVE_SECRET_KEY,
    SANDBOX_VTPASS_API_KEY,
    SANDBOX_VTPASS_SECRET_KEY,
    ProviderSandboxConfig,
    Scenario,
    mount_providers,
    provider_env,
    sandbox_token,
    scenario_for,
)
from tests.servers import served

BUILTIN = Catalogue.builtin()

BASE = "http://sandbox.test"
PROVIDERS = ["vtpass", "flutterwave"]
_serial = count(1)
S, P = PaymentOutcome.SUCCESS, PaymentOutcome.PENDING
F, U = PaymentOutcome.FAILED, PaymentOutcome.UNKNOWN


def settings_for(base: str, **overrides: Any) -> Settings:
    env = provider_env(base)
    fields = {key.removeprefix("BILLPAY_").lower(): value for key, value in env.items()}
    fields.update(overrides)
    return Settings(**fields)


def sandbox_app(options: SandboxOptions, **config: Any) -> FastAPI:
    app = FastAPI()
    settings = {"timeout_sleep_seconds": 0.0, "pending_requeries": 2, "pending_seconds": 60.0}
    settings.update(config)
    mount_providers(app, options, ProviderSandboxConfig(**settings))
    return app


@pytest.fixture
def options() -> SandboxOptions:
    return SandboxOptions()


@pytest.fixture
def providers(options: SandboxOptions) -> Iterator[dict[str, BillProvider]]:
    client = TestClient(sandbox_app(options), base_url=BASE)
    yield build_providers(settings_for(BASE), client_factory=lambda name: client, catalogue=BUILTIN)
    client.close()


def bill(kind: str = "prepaid", account: str = "1111111111111", **changes: Any) -> BillOrder:
    presets: dict[str, dict[str, Any]] = {
        "prepaid": {"bill_type": BillType.ELECTRICITY, "biller": "ikeja-electric",
                    "account_type": "prepaid"},
        "postpaid": {"bill_type": BillType.ELECTRICITY, "biller": "eko-electric",
                     "account_type": "postpaid"},
        "airtime": {"bill_type": BillType.AIRTIME, "biller": "mtn"},
        "data": {"bill_type": BillType.DATA, "biller": "airtel-data",
                 "product_code": "airtel-1gb-1000"},
        "dstv": {"bill_type": BillType.CABLE_TV, "biller": "dstv", "product_code": "dstv-padi"},
        "water": {"bill_type": BillType.WATER, "biller": "lagos-water"},
    }  # fmt: skip
    fields: dict[str, Any] = {
        "reference": f"SBX{next(_serial):07d}",
        "account_number": account,
        "amount_kobo": 250_000,
        "phone": "08031234567",
        **presets[kind],
    }
    fields.update(changes)
    return BillOrder(**fields)


def attempt(order: BillOrder) -> str:
    return make_attempt_reference(order.reference, 1, datetime.now(UTC))


def test_provider_env_is_deterministic() -> None:
    env = provider_env("http://127.0.0.1:8765/")
    assert env["BILLPAY_FLUTTERWAVE_BASE_URL"] == "http://127.0.0.1:8765/flutterwave/v3"
    assert env["BILLPAY_VTPASS_BASE_URL"] == "http://127.0.0.1:8765/vtpass/api"
    assert env["BILLPAY_FLUTTERWAVE_SECRET_KEY"].startswith("FLWSECK_TEST-sandbox")
    for suffix in ("API_KEY", "PUBLIC_KEY", "SECRET_KEY"):
        assert env[f"BILLPAY_VTPASS_{suffix}"]
    assert env == provider_env("http://127.0.0.1:8765")


@pytest.mark.parametrize(
    ("bill_type", "account", "scenario"),
    [
        (BillType.ELECTRICITY, "201000000000", Scenario.PENDING),
        (BillType.ELECTRICITY, "2010000000000", Scenario.PENDING),
        (BillType.CABLE_TV, "5000000000", Scenario.UNEXPECTED),
        (BillType.AIRTIME, "04000000000", Scenario.NO_RESPONSE),
        (BillType.AIRTIME, "+2343000000000", Scenario.TIMEOUT),
        (BillType.ELECTRICITY, "1111111111111", Scenario.SUCCESS),
        (BillType.ELECTRICITY, "1010101010101", Scenario.SUCCESS),
        (BillType.CABLE_TV, "1212121212", Scenario.SUCCESS),
        (BillType.ELECTRICITY, "1234567890123", Scenario.FAIL),
        (BillType.CABLE_TV, "1234567890", Scenario.FAIL),
        (BillType.AIRTIME, "08011111111", Scenario.SUCCESS),
        (BillType.AIRTIME, "08031234567", Scenario.SUCCESS),
        (BillType.WATER, "123456", Scenario.SUCCESS),
        (BillType.ELECTRICITY, "2010000000001", Scenario.FAIL),
    ],
)
def test_magic_numbers(bill_type: BillType, account: str, scenario: Scenario) -> None:
    assert scenario_for(bill_type, account) == scenario


def test_sandbox_tokens_are_deterministic_twenty_digits() -> None:
    assert sandbox_token("A") == sandbox_token("A") != sandbox_token("B")
    assert len(sandbox_token("A")) == 20 and sandbox_token("A").isdigit()


@pytest.mark.parametrize("name", PROVIDERS)
def test_prepaid_success_delivers_a_deterministic_token(
    providers: dict[str, BillProvider], options: SandboxOptions, name: str
) -> None:
    provider, order = providers[name], bill()
    check = provider.verify_account(order)
    assert check.valid is True and check.customer_name == "SANDBOX CUSTOMER"
    reference = attempt(order)
    paid = provider.pay(order, reference)
    assert paid.outcome == S and paid.token == sandbox_token(reference)
    again = provider.requery(order, reference)
    assert again.outcome == S and again.token == paid.token and again.units
    pays = [c for c in options.calls if c["operation"] == "pay"]
    assert pays == [
        {**pays[0], "provider": name, "reference": reference, "account": "1111111111111",
         "amount": "2500", "outcome": "delivered:success"}
    ]  # fmt: skip


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize(
    ("kind", "account"),
    [("airtime", "08031234567"), ("airtime", "08011111111"), ("data", "07011234567"),
     ("dstv", "1212121212"), ("postpaid", "1010101010101")],
)  # fmt: skip
def test_other_bills_succeed(
    providers: dict[str, BillProvider], name: str, kind: str, account: str
) -> None:
    provider, order = providers[name], bill(kind, account)
    assert provider.verify_account(order).valid is True
    paid = provider.pay(order, attempt(order))
    assert paid.outcome == S and paid.token is None


def test_water_is_flutterwave_only(providers: dict[str, BillProvider]) -> None:
    order = bill("water", "123456")
    assert not providers["vtpass"].supports(order.bill_type, order.biller)
    assert providers["flutterwave"].pay(order, attempt(order)).outcome == S


@pytest.mark.parametrize("name", PROVIDERS)
def test_pending_number_settles_after_requeries(
    providers: dict[str, BillProvider], name: str
) -> None:
    provider, order = providers[name], bill(account="2010000000000")
    reference = attempt(order)
    assert provider.pay(order, reference).outcome == P
    assert provider.requery(order, reference).outcome == P
    assert provider.requery(order, reference).outcome == P
    final = provider.requery(order, reference)
    assert final.outcome == S and final.token == sandbox_token(reference)


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("account", ["500000000000", "400000000000"])
def test_unexpected_or_missing_answer_is_unknown_and_requery_finds_the_payment(
    providers: dict[str, BillProvider], name: str, account: str
) -> None:
    provider, order = providers[name], bill("postpaid", account)
    reference = attempt(order)
    paid = provider.pay(order, reference)
    assert paid.outcome == U
    assert provider.requery(order, reference).outcome == S


@pytest.mark.parametrize(
    ("name", "error_class"),
    [("vtpass", ErrorClass.PERMANENT), ("flutterwave", ErrorClass.ACCOUNT_INVALID)],
)
def test_other_meters_are_invalid_and_fail(
    providers: dict[str, BillProvider], name: str, error_class: ErrorClass
) -> None:
    provider, order = providers[name], bill(account="1234567890123")
    check = provider.verify_account(order)
    assert check.valid is False and check.error_class == ErrorClass.ACCOUNT_INVALID
    paid = provider.pay(order, attempt(order))
    assert (paid.outcome, paid.error_class) == (F, error_class)


def test_repeated_pay_with_one_reference(providers: dict[str, BillProvider]) -> None:
    order = bill()
    reference = attempt(order)
    first = providers["flutterwave"].pay(order, reference)
    second = providers["flutterwave"].pay(order, reference)
    assert first.outcome == second.outcome == S and first.token == second.token
    assert providers["vtpass"].pay(order, reference).outcome == S
    duplicate = providers["vtpass"].pay(order, reference)
    assert (duplicate.outcome, duplicate.reason_code) == (U, "014")


@pytest.mark.parametrize("name", PROVIDERS)
def test_unknown_reference_on_requery_is_pending_while_young(
    providers: dict[str, BillProvider], name: str
) -> None:
    order = bill()
    assert providers[name].requery(order, attempt(order)).outcome == P


@pytest.mark.parametrize("name", PROVIDERS)
def test_wrong_keys_are_configuration_errors(options: SandboxOptions, name: str) -> None:
    client = TestClient(sandbox_app(options), base_url=BASE)
    wrong = settings_for(
        BASE, flutterwave_secret_key="FLWSECK_TEST-wrong", vtpass_secret_key="SK_wrong",
        vtpass_public_key="PK_wrong",
    )  # fmt: skip
    provider = build_providers(wrong, client_factory=lambda _: client, catalogue=BUILTIN)[name]
    order = bill()
    check = provider.verify_account(order)
    assert (check.valid, check.error_class) == (None, ErrorClass.CONFIGURATION)
    paid = provider.pay(order, attempt(order))
    assert (paid.outcome, paid.error_class) == (F, ErrorClass.CONFIGURATION)
    assert SANDBOX_VTPASS_API_KEY not in str(paid.call)


@pytest.mark.parametrize("name", PROVIDERS)
def test_failure_rate_gives_definitive_failures(name: str) -> None:
    options = SandboxOptions(failure_rate=1.0)
    client = TestClient(sandbox_app(options), base_url=BASE)
    provider = build_providers(
        settings_for(BASE), client_factory=lambda _: client, catalogue=BUILTIN
    )[name]
    order = bill("airtime", "08031234567")
    paid = provider.pay(order, attempt(order))
    assert (paid.outcome, paid.error_class) == (F, ErrorClass.PERMANENT)


@pytest.mark.parametrize(
    ("name", "biller", "code"),
    [("vtpass", "mtn-data", "mtn-1gb-1000"), ("flutterwave", "dstv", "CB141")],
)
def test_catalogue_through_the_sandbox(
    providers: dict[str, BillProvider], name: str, biller: str, code: str
) -> None:
    catalogue = providers[name].catalogue(biller)
    assert catalogue.error_class is None
    assert code in [p.code for p in catalogue.products]


def test_flutterwave_categories_and_billers(providers: dict[str, BillProvider]) -> None:
    flw: Any = providers["flutterwave"]
    assert "UTILITYBILLS" in [c["code"] for c in flw.categories()]
    assert "BIL112" in [b["biller_code"] for b in flw.billers(BillType.ELECTRICITY)]


def test_latency_does_not_block_concurrent_calls() -> None:
    options = SandboxOptions(latency_ms=200)
    app = sandbox_app(options)
    headers = {"Authorization": "Bearer " + provider_env(BASE)["BILLPAY_FLUTTERWAVE_SECRET_KEY"]}

    async def burst() -> float:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            started = time.monotonic()
            path = "/flutterwave/v3/bills/UNKNOWN"
            calls = [client.get(path, headers=headers) for _ in range(30)]
            answers = await asyncio.gather(*calls)
            assert {a.status_code for a in answers} == {404}
            return time.monotonic() - started

    assert asyncio.run(burst()) < 3.0  # 30 x 200 ms one after another would take 6 s


# --- a real server, for the timeout number --------------------------------------------------


@pytest.fixture
def served_sandbox() -> Iterator[tuple[str, SandboxOptions]]:
    options = SandboxOptions()
    app = sandbox_app(options, timeout_sleep_seconds=1.5)
    with served(app, log_level="error", what="sandbox") as url:
        yield url, options


@pytest.mark.parametrize("name", PROVIDERS)
def test_timeout_number_is_unknown_then_requery_finds_it(
    served_sandbox: tuple[str, SandboxOptions], name: str
) -> None:
    base, options = served_sandbox
    settings = settings_for(base, provider_read_timeout_seconds=0.3)
    provider = build_providers(settings, catalogue=BUILTIN)[name]
    order = bill(account="3000000000000")
    reference = attempt(order)
    paid = provider.pay(order, reference)
    assert (paid.outcome, paid.reason_code) == (U, "read_timeout")
    assert len([c for c in options.calls if c["operation"] == "pay"]) == 1
    found = provider.requery(order, reference)
    assert found.outcome == S and found.token == sandbox_token(reference)
    provider.close()  # type: ignore[attr-defined]


# --- pay / verify read the sandbox's own (mutable) catalogue -------------------------------

VT_HEADERS = {"api-key": SANDBOX_VTPASS_API_KEY, "secret-key": SANDBOX_VTPASS_SECRET_KEY}
FLW_HEADERS = {"Authorization": f"Bearer {SANDBOX_FLUTTERWAVE_SECRET_KEY}"}


@pytest.fixture
def wired(options: SandboxOptions) -> Iterator[tuple[TestClient, dict[str, BillProvider]]]:
    """The sandbox's HTTP client (for its control routes) and the adapters talking to it."""
    client = TestClient(sandbox_app(options), base_url=BASE)
    providers = build_providers(
        settings_for(BASE), client_factory=lambda name: client, catalogue=BUILTIN
    )
    yield client, providers
    client.close()


def control(client: TestClient, path: str, body: dict[str, Any] | None = None) -> None:
    client.post(path, json=body or {}).raise_for_status()


def vtpass_pay(client: TestClient, service_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "request_id": make_attempt_reference(f"SBX{next(_serial):07d}", 1, datetime.now(UTC)),
        "serviceID": service_id,
        "phone": "08031234567",
        "billersCode": "1111111111",
        **fields,
    }
    return client.post("/vtpass/api/pay", json=body, headers=VT_HEADERS).json()


@pytest.mark.parametrize(("name", "path"), [
    ("vtpass", "/vtpass/api/_sandbox/catalogue/dstv/price"),
    ("flutterwave", "/flutterwave/v3/_sandbox/catalogue/BIL119/price"),
])  # fmt: skip
def test_a_fixed_price_changed_at_the_sandbox_is_charged_and_reported(
    wired: tuple[TestClient, dict[str, BillProvider]], name: str, path: str
) -> None:
    """Our catalogue still says 2,950 (no sync): the provider charges its new price and says
    so in its answer, which the adapter reads as the charged amount."""
    client, providers = wired
    item = "dstv-padi" if name == "vtpass" else "CB141"
    control(client, path, {"item": item, "amount": "3100.00"})
    order = bill("dstv", account="1212121212", amount_kobo=295_000)
    answer = providers[name].pay(order, attempt(order))
    assert answer.outcome is S
    assert answer.amount_kobo == 310_000


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_fixed_price_is_charged_whatever_amount_is_sent(
    wired: tuple[TestClient, dict[str, BillProvider]], name: str
) -> None:
    order = bill("dstv", account="1212121212", amount_kobo=100_000)
    answer = wired[1][name].pay(order, attempt(order))
    assert answer.outcome is S and answer.amount_kobo == 295_000


def test_a_biller_removed_at_vtpass_cannot_be_verified_or_paid(
    wired: tuple[TestClient, dict[str, BillProvider]],
) -> None:
    client, providers = wired
    control(client, "/vtpass/api/_sandbox/catalogue/dstv/remove")
    verify = client.post(
        "/vtpass/api/merchant-verify",
        json={"serviceID": "dstv", "billersCode": "1212121212"},
        headers=VT_HEADERS,
    ).json()
    assert (verify["code"], verify["response_description"]) == ("012", "PRODUCT DOES NOT EXIST")
    order = bill("dstv", account="1212121212", amount_kobo=295_000)
    answer = providers["vtpass"].pay(order, attempt(order))
    assert (answer.outcome, answer.reason_code) == (F, "012")
    control(client, "/vtpass/api/_sandbox/catalogue/dstv/restore")
    assert providers["vtpass"].pay(order, attempt(order)).outcome is S


def test_a_biller_removed_at_flutterwave_cannot_be_validated_or_paid(
    wired: tuple[TestClient, dict[str, BillProvider]],
) -> None:
    client, providers = wired
    control(client, "/flutterwave/v3/_sandbox/catalogue/BIL119/remove")
    validate = client.get(
        "/flutterwave/v3/bill-items/CB141/validate",
        params={"code": "BIL119", "customer": "1212121212"},
        headers=FLW_HEADERS,
    )
    assert validate.status_code == 400
    order = bill("dstv", account="1212121212", amount_kobo=295_000)
    answer = providers["flutterwave"].pay(order, attempt(order))
    assert answer.outcome is F
    paid = client.post(
        "/flutterwave/v3/billers/BIL119/items/CB141/payment",
        json={"country": "NG", "customer_id": "1212121212", "amount": 2950, "reference": "R1"},
        headers=FLW_HEADERS,
    )
    assert paid.status_code == 400 and "biller" in paid.json()["message"].lower()


def test_a_biller_added_at_the_sandbox_can_be_verified_and_paid(
    wired: tuple[TestClient, dict[str, BillProvider]],
) -> None:
    client = wired[0]
    control(client, "/vtpass/api/_sandbox/catalogue", {
        "code": "showmax", "name": "Showmax", "category": "tv-subscription",
        "bill_type": "cable_tv",
        "items": [{"code": "showmax-mobile", "name": "Mobile", "amount_kobo": 120_000}],
    })  # fmt: skip
    verify = client.post(
        "/vtpass/api/merchant-verify",
        json={"serviceID": "showmax", "billersCode": "1212121212"},
        headers=VT_HEADERS,
    ).json()
    assert verify["code"] == "000" and verify["content"]["WrongBillersCode"] is False
    paid = vtpass_pay(
        client, "showmax", variation_code="showmax-mobile", amount=1, billersCode="1212121212"
    )
    assert paid["code"] == "000" and paid["content"]["transactions"]["status"] == "delivered"
    assert paid["amount"] == 1200  # the listed variation_amount, not the amount sent

    control(client, "/flutterwave/v3/_sandbox/catalogue", {
        "code": "BIL999", "name": "SHOWMAX", "category": "CABLEBILLS", "bill_type": "cable_tv",
        "items": [{"code": "SM1", "name": "Showmax Mobile", "amount_kobo": 120_000}],
    })  # fmt: skip
    validate = client.get(
        "/flutterwave/v3/bill-items/SM1/validate",
        params={"code": "BIL999", "customer": "1212121212"},
        headers=FLW_HEADERS,
    )
    assert validate.status_code == 200
    paid = client.post(
        "/flutterwave/v3/billers/BIL999/items/SM1/payment",
        json={"country": "NG", "customer_id": "1212121212", "amount": 1, "reference": "R9"},
        headers=FLW_HEADERS,
    ).json()
    assert paid["status"] == "success" and paid["data"]["amount"] == 1200
