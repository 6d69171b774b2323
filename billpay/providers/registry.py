"""The one provider registry: adapter name -> adapter class, and the function that builds them.

The composition root calls ``build_providers`` once; nothing else names adapter classes.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from billpay.config import Settings
from billpay.providers.base import BillProvider
from billpay.providers.flutterwave import FlutterwaveProvider
from billpay.providers.paystack import PaystackProvider
from billpay.providers.vtpass import VTpassProvider

ClientFactory = Callable[[str], httpx.Client]
AdapterClass = Callable[[Settings, httpx.Client | None], BillProvider]

# Paystack is registered so that configuration naming it fails loudly (see paystack.py).
ADAPTERS: dict[str, AdapterClass] = {
    "flutterwave": FlutterwaveProvider,
    "vtpass": VTpassProvider,
    "paystack": PaystackProvider,
}


def build_providers(
    settings: Settings, client_factory: ClientFactory | None = None
) -> dict[str, BillProvider]:
    """Every adapter, keyed by name. ``client_factory(provider_name)`` may supply the
    ``httpx.Client`` (tests, the sandbox); by default each adapter builds its own."""
    return {
        name: adapter(settings, client_factory(name) if client_factory else None)
        for name, adapter in ADAPTERS.items()
    }
