"""Deterministic sandbox identities: the same keypairs on every machine and every run.

Each keypair comes from a fixed seed, ``sha256(b"billpay-sandbox-<name>")``, so the demo, the tests
and a developer's shell all agree on the system account, the cNGN issuer and the paying users
without any configuration. These secrets are public by construction: never use them on a real
network.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal

from stellar_sdk import Keypair

CNGN_CODE = "cNGN"
USER_NAMES = ("user1", "user2", "user3", "user4", "user5")
NO_TRUSTLINE_USER = "user_no_trustline"

# Opening balances of the sandbox ledger.
SYSTEM_CNGN = Decimal("10000000")
USER_CNGN = Decimal("1000000")
XLM_BALANCE = Decimal("10000")
DEFAULT_LIMIT = Decimal("922337203685.4775807")  # Stellar's maximum trustline limit


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    keypair: Keypair
    cngn: Decimal | None  # opening cNGN balance; None = no cNGN trustline

    @property
    def account_id(self) -> str:
        return self.keypair.public_key

    @property
    def secret(self) -> str:
        return self.keypair.secret


def keypair_for(name: str) -> Keypair:
    return Keypair.from_raw_ed25519_seed(
        hashlib.sha256(f"billpay-sandbox-{name}".encode()).digest()
    )


def system() -> Identity:
    return Identity("system", keypair_for("system"), SYSTEM_CNGN)


def issuer() -> Identity:
    # The issuer holds no trustline to its own asset: it mints by paying.
    return Identity("issuer", keypair_for("cngn-issuer"), None)


def users() -> list[Identity]:
    return [Identity(name, keypair_for(name), USER_CNGN) for name in USER_NAMES]


def user_without_trustline() -> Identity:
    return Identity(NO_TRUSTLINE_USER, keypair_for(NO_TRUSTLINE_USER), None)


def all_identities() -> list[Identity]:
    return [system(), issuer(), *users(), user_without_trustline()]


def by_name_or_account(key: str) -> Identity | None:
    for identity in all_identities():
        if key in (identity.name, identity.account_id):
            return identity
    return None
