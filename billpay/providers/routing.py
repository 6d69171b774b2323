"""Which provider pays which bill: provider order per bill type from settings, filtered by
what each adapter supports (the biller catalogue, ``billpay.catalogue``, says who sells what)."""

from __future__ import annotations

from collections.abc import Mapping

from billpay.config import Settings
from billpay.orders import BillOrder
from billpay.providers.base import BillProvider


class ProviderRouter:
    """Provider order per bill type comes from settings (``route_electricity`` etc.); only
    providers that support the biller are kept. Who pays next along the route is a rule
    (``billpay.bills.policy.choose_provider``): fallback only after a definitive failure."""

    def __init__(self, providers: Mapping[str, BillProvider], settings: Settings) -> None:
        self._providers = dict(providers)
        self._settings = settings

    def get(self, name: str) -> BillProvider:
        return self._providers[name]

    def names(self) -> frozenset[str]:
        """Every configured provider, whether or not a route names it."""
        return frozenset(self._providers)

    def route(self, order: BillOrder) -> list[BillProvider]:
        names = self._settings.route_for(str(order.bill_type))
        chosen: list[BillProvider] = []
        for name in dict.fromkeys(names):
            provider = self._providers.get(name)
            if provider is not None and provider.supports(order.bill_type, order.biller):
                chosen.append(provider)
        return chosen
