from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from billpay.bills.policy import next_in_route
from billpay.catalogue import BILLERS, Catalogue
from billpay.config import Settings
from billpay.orders import BillOrder, BillType
from billpay.providers import BillProvider, ProviderRouter, build_providers
from billpay.providers.base import make_attempt_reference, reference_created_at

BUILTIN = Catalogue.builtin()

DISCOS = [
    "ikeja-electric", "eko-electric", "kano-electric", "portharcourt-electric", "jos-electric",
    "ibadan-electric", "kaduna-electric", "abuja-electric", "enugu-electric", "benin-electric",
    "aba-electric", "yola-electric",
]  # fmt: skip


def order(bill_type: BillType, biller: str, **changes: Any) -> BillOrder:
    fields: dict[str, Any] = {
        "reference": "7K3M9QZ2XA",
        "bill_type": bill_type,
        "biller": biller,
        "account_number": "1111111111111",
        "amount_kobo": 100_000,
        "phone": "08031234567",
    }
    fields.update(changes)
    return BillOrder(**fields)


@pytest.fixture
def providers() -> dict[str, BillProvider]:
    return build_providers(
        Settings(), client_factory=lambda name: httpx.Client(), catalogue=BUILTIN
    )


def names(found: list[BillProvider]) -> list[str]:
    return [p.name for p in found]


def test_build_providers_gives_every_adapter(providers: dict[str, BillProvider]) -> None:
    assert set(providers) == {"flutterwave", "vtpass", "paystack"}
    for name, provider in providers.items():
        assert provider.name == name
        assert isinstance(provider, BillProvider)


def test_route_follows_settings_order(providers: dict[str, BillProvider]) -> None:
    router = ProviderRouter(providers, Settings(), catalogue=BUILTIN)
    assert names(router.route(order(BillType.ELECTRICITY, "ikeja-electric"))) == [
        "flutterwave",
        "vtpass",
    ]
    assert names(router.route(order(BillType.AIRTIME, "mtn"))) == ["vtpass", "flutterwave"]
    swapped = ProviderRouter(
        providers, Settings(route_airtime="flutterwave,vtpass"), catalogue=BUILTIN
    )
    assert names(swapped.route(order(BillType.AIRTIME, "mtn"))) == ["flutterwave", "vtpass"]


def test_route_keeps_only_providers_that_sell_the_bill(
    providers: dict[str, BillProvider],
) -> None:
    # Settings refuse such a route (below); the router is still defensive about it.
    settings = Settings().model_copy(
        update={"route_water": ["paystack", "vtpass", "flutterwave", "nobody"]}
    )
    router = ProviderRouter(providers, settings, catalogue=BUILTIN)
    assert names(router.route(order(BillType.WATER, "lagos-water"))) == ["flutterwave"]
    assert router.route(order(BillType.WATER, "atlantis-water")) == []
    assert router.route(order(BillType.CABLE_TV, "mtn")) == []  # wrong type for that biller


def test_paystack_is_never_routed(providers: dict[str, BillProvider]) -> None:
    settings = Settings().model_copy(update={"route_airtime": ["paystack", "vtpass"]})
    router = ProviderRouter(providers, settings, catalogue=BUILTIN)
    assert names(router.route(order(BillType.AIRTIME, "mtn"))) == ["vtpass"]


def test_settings_refuse_routes_to_paystack_or_unknown_providers() -> None:
    with pytest.raises(ValueError, match="Paystack has no bill-payment API"):
        Settings(route_airtime="paystack,vtpass")
    with pytest.raises(ValueError, match="unknown provider"):
        Settings(route_water="flutterwave,nobody")
    assert Settings(route_water="VTpass, flutterwave").route_water == ["vtpass", "flutterwave"]


def test_the_route_gives_the_fallback_order(providers: dict[str, BillProvider]) -> None:
    router = ProviderRouter(providers, Settings(), catalogue=BUILTIN)
    bill = order(BillType.ELECTRICITY, "eko-electric", account_type="prepaid")
    names = [provider.name for provider in router.route(bill)]
    first = next_in_route(names, None)
    assert first is not None and first == "flutterwave"
    second = next_in_route(names, "flutterwave")
    assert second is not None and second == "vtpass"
    assert next_in_route(names, "vtpass") is None
    # paystack is not on the route: the route's first provider it has not tried
    assert next_in_route(names, "paystack") == "flutterwave"
    assert next_in_route(names, "paystack", tried=("flutterwave",)) == "vtpass"
    assert router.route(order(BillType.WATER, "nowhere")) == []


@pytest.mark.parametrize("disco", DISCOS)
def test_every_disco_is_sold_by_both_providers(
    providers: dict[str, BillProvider], disco: str
) -> None:
    assert providers["vtpass"].supports(BillType.ELECTRICITY, disco)
    assert providers["flutterwave"].supports(BillType.ELECTRICITY, disco)
    assert BILLERS[disco].vtpass_service_id == disco
    for account_type in ("prepaid", "postpaid"):
        bill = order(BillType.ELECTRICITY, disco, account_type=account_type)
        assert BUILTIN.provider_product(bill, "vtpass") == account_type
        assert BUILTIN.provider_product(bill, "flutterwave")


def test_attempt_reference_is_lagos_stamped_and_reversible() -> None:
    now = datetime(2026, 11, 26, 23, 59, 30, tzinfo=UTC)  # 00:59 on the 27th in Lagos
    reference = make_attempt_reference("7K3M9QZ2XA", 2, now)
    assert reference == "2026112700597K3M9QZ2XAA2"
    assert reference.isalnum()
    assert reference_created_at(reference) == datetime(2026, 11, 26, 23, 59, tzinfo=UTC)
    assert reference_created_at("not-a-reference") is None
    with pytest.raises(ValueError):
        make_attempt_reference("X", 1, datetime(2026, 1, 1))  # naive
