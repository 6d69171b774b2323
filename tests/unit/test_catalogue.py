"""The biller catalogue: our codes, each provider's codes for them, and how orders map."""

from __future__ import annotations

from billpay.catalogue import BILLERS, find_biller, provider_product
from billpay.orders import BillType
from tests.unit.provider_cases import order_maker

order = order_maker(account_number="1111111111111", amount_kobo=100_000)


def test_vtpass_service_ids_for_phone_bills() -> None:
    expected = {"mtn": "mtn", "airtel": "airtel", "glo": "glo", "9mobile": "etisalat",
                "mtn-data": "mtn-data", "airtel-data": "airtel-data", "glo-data": "glo-data",
                "etisalat-data": "etisalat-data", "dstv": "dstv", "gotv": "gotv",
                "startimes": "startimes"}  # fmt: skip
    assert {code: BILLERS[code].vtpass_service_id for code in expected} == expected
    assert find_biller("9mobile-data") is BILLERS["etisalat-data"]
    assert find_biller("etisalat") is BILLERS["9mobile"]


def test_flutterwave_codes_are_unique_per_product() -> None:
    items = [p.flutterwave for b in BILLERS.values() for p in b.plans if p.flutterwave]
    assert len(items) == len(set(items))
    billers = [b.flutterwave_biller_code for b in BILLERS.values() if b.flutterwave_biller_code]
    assert len(billers) == len(set(billers))


def test_products_map_per_provider_and_unknown_codes_pass_through() -> None:
    padi = order(bill_type=BillType.CABLE_TV, biller="dstv", product_code="dstv-padi")
    assert provider_product(padi, "vtpass") == "dstv-padi"
    assert provider_product(padi, "flutterwave") == "CB141"
    airtime = order(bill_type=BillType.AIRTIME, biller="mtn")
    native = order(bill_type=BillType.DATA, biller="mtn-data", product_code="mtn-40gb-10000")
    assert provider_product(native, "vtpass") == "mtn-40gb-10000"
    assert provider_product(airtime, "flutterwave") == "AT099"
    assert provider_product(airtime, "vtpass") is None
