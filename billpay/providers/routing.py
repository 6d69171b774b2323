"""Which provider pays which bill: provider order per bill type from settings, filtered by
what each adapter supports and by the catalogue in force (``billpay.catalogue``: who sells the
biller and the plan right now, and at what price)."""

from __future__ import annotations

from collections.abc import Mapping

from billpay.catalogue import CatalogueSource
from billpay.config import Settings
from billpay.orders import BillOrder
from billpay.providers.base import BillProvider


class ProviderRouter:
    """Provider order per bill type comes from settings (``route_electricity`` etc.); only
    providers that sell the biller and the order's plan right now are kept, and not one whose
    own price for the plan is higher than the order's amount. Who pays next along the route is
    a rule (``billpay.bills.policy.choose_provider``): fallback only after a definitive
    failure."""

    def __init__(
        self,
        providers: Mapping[str, BillProvider],
        settings: Settings,
        *,
        catalogue: CatalogueSource,
    ) -> None:
        self._providers = dict(providers)
        self._settings = settings
        self._catalogue = catalogue

    def get(self, name: str) -> BillProvider:
        return self._providers[name]

    def names(self) -> frozenset[str]:
        """Every configured provider, whether or not a route names it."""
        return frozenset(self._providers)

    def route(self, order: BillOrder) -> list[BillProvider]:
        names = self._settings.route_for(str(order.bill_type))
        catalogue = self._catalogue.current()
        chosen: list[BillProvider] = []
        for name in dict.fromkeys(names):
            provider = self._providers.get(name)
            if (
                provider is not None
                and provider.supports(order.bill_type, order.biller)
                and catalogue.sells(name, order.bill_type, order.biller, order)
            ):
                chosen.append(provider)
        return chosen
