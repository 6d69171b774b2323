"""The one provider registry: adapter name -> adapter class, and the function that builds them.

The composition root calls ``build_providers`` once; nothing else names adapter classes.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from billpay.catalogue import CatalogueSource
from billpay.config import Settings
from billpay.providers.base import BillProvider
from billpay.providers.flutterwave import FlutterwaveProvider
from billpay.providers.paystack import PaystackProvider
from billpay.providers.vtpass import VTpassProvider

ClientFactory = Callable[[str], httpx.Client]
# (settings, client, *, catalogue=source)
AdapterClass = Callable[..., BillProvider]

# Paystack is registered so that configuration naming it fails loudly (see paystack.py).
ADAPTERS: dict[str, AdapterClass] = {
    "flutterwave": FlutterwaveProvider,
    "vtpass": VTpassProvider,
    "paystack": PaystackProvider,
}


def build_providers(
    settings: Settings,
    client_factory: ClientFactory | None = None,
    *,
    catalogue: CatalogueSource,
) -> dict[str, BillProvider]:
    """Every adapter, keyed by name, each reading who sells what from ``catalogue`` (the App's
    cache of the synced catalogue; ``Catalogue.builtin()`` where no database is needed).
    ``client_factory(provider_name)`` may supply the ``httpx.Client`` (tests, the sandbox); by
    default each adapter builds its own."""
    return {
        name: adapter(
            settings, client_factory(name) if client_factory else None, catalogue=catalogue
        )
        for name, adapter in ADAPTERS.items()
    }
