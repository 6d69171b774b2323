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

import hashlib
import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from stellar_sdk import Keypair
from stellar_sdk import Network as StellarNetwork

# The sandbox's values (billpay sandbox on localhost:8765); the sandbox's identities, issuer
# included, come from `billpay sandbox --print-env` as they always did.
SANDBOX_PORT = 8765
SANDBOX_NETWORK_PASSPHRASE = "billpay sandbox network ; 2026"
SANDBOX_HORIZON_URL = f"http://127.0.0.1:{SANDBOX_PORT}/horizon"

SANDBOX_PROVIDER_URLS = (
    f"http://127.0.0.1:{SANDBOX_PORT}/flutterwave/v3",
    f"http://127.0.0.1:{SANDBOX_PORT}/vtpass/api",
)

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


# --- the sandbox's public identities --------------------------------------------------------
# Product code may not import billpay.sandbox (import-linter), yet the doctor must refuse the
# sandbox's identities and keys on a real network: their secrets are public by construction.
# So the same derivation is repeated here (billpay/sandbox/identities.py: keypair_for), and
# tests/unit/test_networks.py proves both give the same keys, so the two cannot drift.
SANDBOX_IDENTITY_SEEDS = {
    "system": "system",
    "issuer": "cngn-issuer",
    **{f"user{n}": f"user{n}" for n in range(1, 6)},
    "user_no_trustline": "user_no_trustline",
}


def _sandbox_public_key(seed_name: str) -> str:
    seed = hashlib.sha256(f"billpay-sandbox-{seed_name}".encode()).digest()
    return Keypair.from_raw_ed25519_seed(seed).public_key


# G-address -> the sandbox identity's name ("system", "issuer", "user1", ...).
SANDBOX_ACCOUNTS: dict[str, str] = {
    _sandbox_public_key(seed): name for name, seed in SANDBOX_IDENTITY_SEEDS.items()
}

# Setting -> the sandbox's value (billpay/sandbox/providers.py and webhooks.py; same test).
SANDBOX_PROVIDER_KEYS: dict[str, str] = {
    "flutterwave_secret_key": "FLWSECK_TEST-sandbox0000000000000000000000000000-X",
    "vtpass_api_key": "sandbox-vtpass-api-key-0000000000",
    "vtpass_public_key": "PK_sandbox_vtpass_public_0000000000",
    "vtpass_secret_key": "SK_sandbox_vtpass_secret_0000000000",
    "flutterwave_webhook_hash": "sandbox-flutterwave-webhook-hash-0000000000",
}

# VTpass's own test environment (real VTpass, play money): never on a real-money network.
VTPASS_SANDBOX_HOSTS = frozenset({"sandbox.vtpass.com"})


def is_loopback_url(url: str) -> bool:
    """The URL points at this machine (127.0.0.0/8, ::1, localhost): a sandbox or a tunnel,
    never a real provider or a real network's Horizon. Unreadable counts as loopback (refused)."""
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return True
    if host in ("", "localhost") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False
