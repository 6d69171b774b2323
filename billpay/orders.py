"""The bill order as the domain sees it (a row of ``bill_payments`` without processing state)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from stellar_sdk import MuxedAccount


class BillType(StrEnum):
    ELECTRICITY = "electricity"
    AIRTIME = "airtime"
    DATA = "data"
    CABLE_TV = "cable_tv"
    WATER = "water"


# Crockford base32 without I, L, O, U: unambiguous when read aloud or typed from a receipt.
_REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
REFERENCE_LENGTH = 10  # 50 bits of randomness; "BILL-" + 10 = 15 bytes, within Stellar's 28
MEMO_PREFIX = "BILL-"
REFUND_MEMO_PREFIX = "REFUND-"


def new_reference() -> str:
    return "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


def memo_for(reference: str) -> str:
    return f"{MEMO_PREFIX}{reference}"


def muxed_address_for(system_account: str, muxed_id: int) -> str:
    """The order's own M-address: the system account with the order's random muxed id
    (``bill_payments.muxed_id``), for wallets (and contracts) that cannot set a text memo.
    Matching reads the id back."""
    return MuxedAccount(system_account, muxed_id).account_muxed


def reference_from_memo(memo: str | None) -> str | None:
    """``"BILL-ABC"`` -> ``"ABC"``; exact prefix, nothing else is a bill memo."""
    if not memo or not memo.startswith(MEMO_PREFIX):
        return None
    reference = memo[len(MEMO_PREFIX) :]
    if len(reference) != REFERENCE_LENGTH or any(c not in _REFERENCE_ALPHABET for c in reference):
        return None
    return reference


@dataclass(frozen=True, slots=True)
class BillOrder:
    """What a provider adapter needs to verify or pay a bill."""

    reference: str
    bill_type: BillType
    biller: str  # our biller code: ikeja-electric, mtn, dstv, ...
    account_number: str  # meter, phone, smart card or water account
    amount_kobo: int
    phone: str  # customer phone, local form 0XXXXXXXXXX
    account_type: str | None = None  # prepaid | postpaid for electricity
    product_code: str | None = None  # data plan / bouquet variation code
    network: str | None = None  # mtn | airtel | glo | 9mobile (airtime, data)
    email: str | None = None
    id: int | None = None
    fee_kobo: int = 0
    amount_cngn: Decimal | None = None
    expires_at: datetime | None = None

    @property
    def amount_naira(self) -> Decimal:
        return (Decimal(self.amount_kobo) / 100).quantize(Decimal("0.01"))
