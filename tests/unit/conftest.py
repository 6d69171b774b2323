"""Fixtures the adapter tests share: a respx router and both adapters built from
provider_cases.SETTINGS on its fixed clock. A module that needs other settings (a base URL for
the router, other keys) defines a fixture of the same name, which pytest uses instead."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
import respx

from billpay.catalogue import Catalogue
from billpay.providers.flutterwave import FlutterwaveProvider
from billpay.providers.vtpass import VTpassProvider
from tests.unit.provider_cases import NOW, SETTINGS


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
def vtpass() -> Iterator[VTpassProvider]:
    # A minute after NOW: the attempt references made at NOW are then a minute old.
    provider = VTpassProvider(
        SETTINGS,
        httpx.Client(),
        clock=lambda: NOW + timedelta(minutes=1),
        catalogue=Catalogue.builtin(),
    )
    yield provider
    provider.close()


@pytest.fixture
def flw() -> Iterator[FlutterwaveProvider]:
    provider = FlutterwaveProvider(
        SETTINGS, httpx.Client(), clock=lambda: NOW, catalogue=Catalogue.builtin()
    )
    yield provider
    provider.close()
