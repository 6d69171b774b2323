"""What the same-reference resend relies on in the adapters: which providers are covered, and
the two facts they report (a requery's "not found", a pay refused as a reused reference)."""

from __future__ import annotations

import httpx
import respx

from billpay.catalogue import Catalogue
from billpay.orders import BillType
from billpay.providers import build_providers
from billpay.providers.base import PaymentOutcome, rejects_duplicate_references
from billpay.providers.flutterwave import FlutterwaveProvider
from billpay.providers.vtpass import VTpassProvider
from tests.unit.provider_cases import FLW_URL, OLD_REFERENCE, REFERENCE, SETTINGS, VTPASS_URL
from tests.unit.test_vtpass import order  # the same prepaid electricity order

BUILTIN = Catalogue.builtin()


def test_only_vtpass_is_covered_by_the_resend() -> None:
    """VTpass documents 014 for a reused request_id; Flutterwave documents nothing for bills."""
    covered = {
        name for name, provider in build_providers(SETTINGS, catalogue=BUILTIN).items()
        if rejects_duplicate_references(provider)
    }  # fmt: skip
    assert covered == {"vtpass"}
    assert rejects_duplicate_references(object()) is False  # a provider that says nothing


def test_vtpass_reports_a_reused_request_id_as_a_duplicate_never_a_failure(
    mock: respx.MockRouter, vtpass: VTpassProvider
) -> None:
    refused = {"code": "014", "response_description": "REQUEST ID ALREADY EXIST"}
    mock.post(f"{VTPASS_URL}/pay").mock(return_value=httpx.Response(200, json=refused))
    result = vtpass.pay(order(), REFERENCE)
    assert result.outcome is PaymentOutcome.UNKNOWN and result.duplicate_reference
    likely = {"code": "019", "response_description": "LIKELY DUPLICATE TRANSACTION"}
    mock.post(f"{VTPASS_URL}/pay").mock(return_value=httpx.Response(200, json=likely))
    assert not vtpass.pay(order(), REFERENCE).duplicate_reference  # 019 is about the account


def test_vtpass_unknown_request_id_is_reported_as_not_found_young_or_old(
    mock: respx.MockRouter, vtpass: VTpassProvider
) -> None:
    answer = {"code": "015", "response_description": "INVALID REQUEST ID"}
    mock.post(f"{VTPASS_URL}/requery").mock(return_value=httpx.Response(200, json=answer))
    young, old = vtpass.requery(order(), REFERENCE), vtpass.requery(order(), OLD_REFERENCE)
    assert (young.outcome, young.not_found) == (PaymentOutcome.PENDING, True)
    assert (old.outcome, old.not_found) == (PaymentOutcome.FAILED, True)
    mock.post(f"{VTPASS_URL}/requery").mock(return_value=httpx.Response(200, json={"code": "099"}))
    assert not vtpass.requery(order(), REFERENCE).not_found


def test_flutterwave_not_found_is_reported_young_or_old(
    mock: respx.MockRouter, flw: FlutterwaveProvider
) -> None:
    body = {"status": "error", "message": "No transaction found", "data": None}
    for reference in (REFERENCE, OLD_REFERENCE):
        mock.get(f"{FLW_URL}/bills/{reference}").mock(return_value=httpx.Response(404, json=body))
    dstv = order(bill_type=BillType.CABLE_TV, biller="dstv", account_number="1212121212",
                 product_code="dstv-padi", account_type=None)  # fmt: skip
    young, old = flw.requery(dstv, REFERENCE), flw.requery(dstv, OLD_REFERENCE)
    assert (young.outcome, young.not_found) == (PaymentOutcome.PENDING, True)
    assert (old.outcome, old.not_found) == (PaymentOutcome.FAILED, True)
