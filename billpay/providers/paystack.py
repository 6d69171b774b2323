"""Paystack: no bill payments.

Paystack publishes no bill-payment, airtime or electricity API (its API covers transactions,
charges, transfers, refunds...; ``/transaction/initialize`` starts a card checkout, which is not
a bill payment). This adapter exists so configuration naming "paystack" fails loudly and
honestly: it supports nothing, routing never picks it, and every operation raises NotSupported.
"""

from __future__ import annotations

from typing import Any, NoReturn

from billpay.orders import BillOrder, BillType
from billpay.providers.base import AccountCheck, Catalogue, NotSupported, PaymentResult

REASON = "Paystack has no bill-payment API; route bills to flutterwave or vtpass"


class PaystackProvider:
    name = "paystack"

    def __init__(self, settings: Any = None, client: Any = None, *, catalogue: Any = None) -> None:
        self._settings = settings

    def close(self) -> None:
        return None

    def supports(self, bill_type: BillType | str, biller: str) -> bool:
        return False

    def _refuse(self) -> NoReturn:
        raise NotSupported(REASON)

    def verify_account(self, order: BillOrder) -> AccountCheck:
        self._refuse()

    def pay(self, order: BillOrder, reference: str) -> PaymentResult:
        self._refuse()

    def requery(self, order: BillOrder, reference: str) -> PaymentResult:
        self._refuse()

    def catalogue(self, biller: str) -> Catalogue:
        self._refuse()
