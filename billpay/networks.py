"""Network profiles: what ``BILLPAY_NETWORK`` sets when nothing more specific is configured.

A profile gives the network passphrase, the Horizon URL where one is published and, where the
cNGN issuer publishes one, the cNGN issuer. Explicit settings (``BILLPAY_HORIZON_URL``,
``BILLPAY_NETWORK_PASSPHRASE``, ``BILLPAY_CNGN_ISSUER`` or the same keyword to ``Settings``)
always win; ``billpay config show`` says which one each value came from.

Sources, as published (checked against the live server by ``billpay doctor``'s Horizon check,
which compares the root document's ``network_passphrase`` with ours):

- Stellar: ``stellar_sdk.Network`` passphrases; SDF's public Horizon servers.
- Bantu (a Stellar fork whose Horizon is called Expansion): passphrases from the Bantu developer
  docs' glossary ("Network Passphrase": pubnet ``Public Bantu Network ; 10-10-2020``, testnet
  ``Bantu Testnet``); the Bantu foundation's public Expansion servers
  ``https://expansion.bantu.network`` and ``https://expansion-testnet.bantu.network``.
- cNGN: WrappedCBDC publishes its issuers on Bantu only. Assets coded ``CNGN`` on Stellar come
  from other issuers, so the Stellar profiles carry no issuer: it must be set explicitly there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from stellar_sdk import Network as StellarNetwork

# The sandbox's values (billpay sandbox on localhost:8765); the sandbox's identities, issuer
# included, come from `billpay sandbox --print-env` as they always did.
SANDBOX_PORT = 8765
SANDBOX_NETWORK_PASSPHRASE = "billpay sandbox network ; 2026"
SANDBOX_HORIZON_URL = f"http://127.0.0.1:{SANDBOX_PORT}/horizon"

BANTU_MAINNET_CNGN_ISSUER = "GD6G2NT7CQHPIYHA52KZHWB6ONNWTSGZOOLTRLRASENM2VWSF6CHYFRX"
BANTU_TESTNET_CNGN_ISSUER = "GAE7E56N3XIC6JGJI54SD3VN4EDY3OZVFA7CLHXAMMTHLU4LIFYJMFSI"


class NetworkName(StrEnum):
    SANDBOX = "sandbox"
    STELLAR_TESTNET = "stellar-testnet"
    STELLAR_PUBNET = "stellar-pubnet"
    BANTU_TESTNET = "bantu-testnet"
    BANTU_MAINNET = "bantu-mainnet"


@dataclass(frozen=True, slots=True)
class NetworkProfile:
    name: NetworkName
    passphrase: str
    horizon_url: str | None  # None: none is published, it must be set
    cngn_issuer: str | None  # None: no published cNGN issuer on this network, it must be set
    real_money: bool  # a mainnet: the doctor is stricter about what it warns of

    def defaults(self) -> dict[str, str]:
        """The settings this profile supplies (only those it has a value for)."""
        values = {
            "network_passphrase": self.passphrase,
            "horizon_url": self.horizon_url,
            "cngn_issuer": self.cngn_issuer,
        }
        return {key: value for key, value in values.items() if value is not None}


PROFILES: dict[NetworkName, NetworkProfile] = {
    profile.name: profile
    for profile in (
        NetworkProfile(
            NetworkName.SANDBOX, SANDBOX_NETWORK_PASSPHRASE, SANDBOX_HORIZON_URL, None, False
        ),
        NetworkProfile(
            NetworkName.STELLAR_TESTNET,
            StellarNetwork.TESTNET_NETWORK_PASSPHRASE,
            "https://horizon-testnet.stellar.org",
            None,
            False,
        ),
        NetworkProfile(
            NetworkName.STELLAR_PUBNET,
            StellarNetwork.PUBLIC_NETWORK_PASSPHRASE,
            "https://horizon.stellar.org",
            None,
            True,
        ),
        NetworkProfile(
            NetworkName.BANTU_TESTNET,
            "Bantu Testnet",
            "https://expansion-testnet.bantu.network",
            BANTU_TESTNET_CNGN_ISSUER,
            False,
        ),
        NetworkProfile(
            NetworkName.BANTU_MAINNET,
            "Public Bantu Network ; 10-10-2020",
            "https://expansion.bantu.network",
            BANTU_MAINNET_CNGN_ISSUER,
            True,
        ),
    )
}

# The settings a profile may supply; anything else is a plain default.
PROFILE_FIELDS = ("network_passphrase", "horizon_url", "cngn_issuer")


def profile_for(name: NetworkName | str) -> NetworkProfile:
    return PROFILES[NetworkName(name)]
