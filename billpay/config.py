"""Settings: one pydantic-settings class, prefix ``BILLPAY_``, built once and passed down.

Nothing here builds an engine or a client; ``Settings()`` only reads the environment.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from stellar_sdk import StrKey

# The deterministic sandbox identities live in billpay.sandbox.identities; the defaults below
# point at a sandbox on localhost:8765 so that `make demo` works with no configuration.
from billpay.networks import PROFILE_FIELDS, SANDBOX_NETWORK_PASSPHRASE, SANDBOX_PORT, NetworkName
from billpay.networks import profile_for as _profile_for

BILL_PROVIDERS = frozenset({"flutterwave", "vtpass"})


class UnknownReferencePolicy(StrEnum):
    REFUND = "refund"
    HOLD = "hold"


class WrongAssetPolicy(StrEnum):
    REFUND = "refund"  # send it back in the asset received
    HOLD = "hold"  # a held refund row for an operator to release


class RateLimitStorage(StrEnum):
    POSTGRES = "postgres"  # shared by every API process on the database
    MEMORY = "memory"  # this process only


def _csv_list(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BILLPAY_", extra="ignore")

    # --- database -------------------------------------------------------------------------
    database_url: str | None = Field(
        default=None,
        description="postgresql:// or postgresql+psycopg:// URL; unset = embedded PostgreSQL",
    )
    data_dir: Path = Field(default=Path(".billpay"), description="local state folder")
    pgdata: Path | None = Field(
        default=None, description="embedded PostgreSQL data folder (default <data_dir>/pgdata)"
    )
    db_pool_size: int = 5

    # --- orders ---------------------------------------------------------------------------
    order_ttl_seconds: int = 600
    service_fee_naira: Decimal = Decimal("0")
    min_amount_naira: Decimal = Decimal("50")
    max_amount_naira: Decimal = Decimal("500000")

    # --- Stellar / cNGN -------------------------------------------------------------------
    horizon_url: str = f"http://127.0.0.1:{SANDBOX_PORT}/horizon"
    network_passphrase: str = SANDBOX_NETWORK_PASSPHRASE
    system_account: str = ""
    system_secret: SecretStr = SecretStr("")
    cngn_asset_code: str = "cNGN"
    cngn_issuer: str = ""
    ingest_start_cursor: str | None = Field(
        default=None, description="Horizon paging token to start from when no cursor is stored"
    )
    ingest_page_budget: int = 10
    unknown_reference_policy: UnknownReferencePolicy = UnknownReferencePolicy.REFUND
    wrong_asset_policy: WrongAssetPolicy = WrongAssetPolicy.REFUND
    treasury_accounts: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="comma-separated G-addresses whose payments fund the system account: "
        "recorded as treasury, never refunded (the cNGN issuer always counts as one)",
    )
    refund_timeout_seconds: int = 120
    stellar_base_fee: int = 100
    horizon_timeout_seconds: float = 10.0

    # --- providers ------------------------------------------------------------------------
    flutterwave_base_url: str = f"http://127.0.0.1:{SANDBOX_PORT}/flutterwave/v3"
    flutterwave_secret_key: SecretStr = SecretStr("")
    vtpass_base_url: str = f"http://127.0.0.1:{SANDBOX_PORT}/vtpass/api"
    vtpass_api_key: SecretStr = SecretStr("")
    vtpass_public_key: SecretStr = SecretStr("")
    vtpass_secret_key: SecretStr = SecretStr("")
    provider_connect_timeout_seconds: float = 5.0
    provider_read_timeout_seconds: float = 30.0
    provider_concurrency: int = Field(
        default=16, description="max concurrent calls per provider, across flow runs"
    )
    callback_url: str | None = None
    route_electricity: Annotated[list[str], NoDecode] = ["flutterwave", "vtpass"]
    route_airtime: Annotated[list[str], NoDecode] = ["vtpass", "flutterwave"]
    route_data: Annotated[list[str], NoDecode] = ["vtpass", "flutterwave"]
    route_cable_tv: Annotated[list[str], NoDecode] = ["vtpass", "flutterwave"]
    route_water: Annotated[list[str], NoDecode] = ["flutterwave"]

    # --- pipeline -------------------------------------------------------------------------
    batch_size: int = 50
    lease_seconds: int = 120
    retry_backoff_seconds: Annotated[list[int], NoDecode] = [10, 60, 300]
    max_retries: int = 3
    requery_backoff_seconds: Annotated[list[int], NoDecode] = [5, 15, 30, 60, 120, 300]
    pending_alert_seconds: int = Field(
        default=3600, description="a provider_processing bill older than this is surfaced"
    )

    # --- notifications --------------------------------------------------------------------
    webhook_url: str | None = None
    webhook_secret: SecretStr = SecretStr("")
    notify_max_attempts: int = 5
    notify_backoff_seconds: Annotated[list[int], NoDecode] = [5, 30, 120, 600]

    # --- orchestration alarms (Prefect automations, created by `billpay serve`) ------------
    operator_webhook_url: str | None = Field(
        default=None,
        description="the Prefect server POSTs stall and crash alarms here (it must not depend "
        "on the pipeline it reports on); none: the alarms show in the Prefect UI only",
    )
    heal_after_seconds: int = Field(
        default=60,
        ge=45,
        description="a run of ours Pending, or Running with no heartbeat, this long is Crashed "
        "(at least 1.5 heartbeats: Prefect's are 30 s apart at the most often)",
    )

    # --- HTTP API: per-key rate limit (billpay/api/deps.py) -------------------------------
    api_rate_limit: str = Field(
        default="600/minute",
        pattern=r"^\s*[0-9]+\s*(/|per)\s*([0-9]+\s*)?(second|minute|hour|day)s?\s*$",
        description="requests one API key may make per window, e.g. 600/minute or 20 per "
        "second; more answer 429 with Retry-After (where it counts: api_rate_limit_storage)",
    )

    # --- HTTP API: account checks (POST /api/bills/validate) ------------------------------
    api_validate_share: int = Field(
        default=4,
        ge=1,
        description="at most this many of a provider's BILLPAY_PROVIDER_CONCURRENCY slots (and "
        "never all of them) may serve /api/bills/validate at once (all API processes together), "
        "so clients checking accounts never crowd out the pipeline's payments",
    )
    api_validate_wait_seconds: float = Field(
        default=2.0,
        gt=0,
        le=30,
        description="how long /api/bills/validate waits for a free provider slot before "
        "answering 503 provider_unavailable with Retry-After",
    )

    # --- provider webhooks in, VTpass reversals (billpay/api/webhooks.py) -----------------
    flutterwave_webhook_hash: SecretStr = Field(
        default=SecretStr(""),
        description="the secret hash set on the Flutterwave dashboard, sent back in the "
        "verif-hash header of its webhooks; unset = every Flutterwave webhook is refused (401)",
    )
    reversal_recheck_seconds: int = Field(
        default=3600,
        ge=0,
        description="a delivered VTpass bill is requeried once more this long after delivery, "
        "to catch a reversal (code 040); 0 = no scheduled re-check (a reversal webhook still "
        "makes one due)",
    )

    # --- HTTP API: where the per-key rate limit counts (billpay/api/ratelimit.py) ----------
    api_rate_limit_storage: RateLimitStorage = Field(
        default=RateLimitStorage.POSTGRES,
        description="postgres: every `billpay api` process on the database shares each key's "
        "limit (sliding window counter, one statement per request); memory: each process "
        "counts alone (moving window), so N processes allow N times the limit",
    )

    # --- network profile (billpay/networks.py; issue 14) ----------------------------------
    # Last on purpose: the validator below fills the settings the profile supplies (passphrase,
    # Horizon URL, cNGN issuer) unless they were set explicitly (env or keyword).
    network: NetworkName = Field(
        default=NetworkName.SANDBOX,
        description="sandbox | stellar-testnet | stellar-pubnet | bantu-testnet | bantu-mainnet: "
        "sets the passphrase, the published Horizon URL and (Bantu) the published cNGN issuer; "
        "BILLPAY_HORIZON_URL, BILLPAY_NETWORK_PASSPHRASE, BILLPAY_CNGN_ISSUER override it",
    )

    # The keywords given to Settings(...) (pydantic merges them with the environment, init
    # first): what tells `init` from `env` in setting_source.
    _init_fields: frozenset[str] = PrivateAttr(default=frozenset())

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self._init_fields = frozenset(values)

    @model_validator(mode="after")
    def _apply_network_profile(self) -> Settings:
        for name, value in _profile_for(self.network).defaults().items():
            # An explicit empty value (compose's `${VAR:-}`) means unset: the profile's applies.
            given = name in self.model_fields_set and str(getattr(self, name)).strip() != ""
            if not given:
                # Not through setattr: that would mark the field as explicitly set.
                self.__dict__[name] = value
                self.model_fields_set.discard(name)
        return self

    def setting_source(self, name: str) -> str:
        """Where a setting's value came from: ``init`` (a keyword to Settings; it wins over the
        environment, as in pydantic), ``env`` (BILLPAY_<NAME>, any case), ``profile``
        (BILLPAY_NETWORK's) or ``default``."""
        if name in self.model_fields_set:
            return "init" if name in self._init_fields else "env"
        if name in PROFILE_FIELDS and name in _profile_for(self.network).defaults():
            return "profile"
        return "default"

    @field_validator(
        "route_electricity",
        "route_airtime",
        "route_data",
        "route_cable_tv",
        "route_water",
        "retry_backoff_seconds",
        "requery_backoff_seconds",
        "notify_backoff_seconds",
        "treasury_accounts",
        mode="before",
    )
    @classmethod
    def _split_csv(cls, value: object) -> object:
        return _csv_list(value)

    @field_validator(
        "route_electricity", "route_airtime", "route_data", "route_cable_tv", "route_water"
    )
    @classmethod
    def _known_providers(cls, value: list[str]) -> list[str]:
        names = [name.strip().lower() for name in value]
        if "paystack" in names:
            raise ValueError("Paystack has no bill-payment API and cannot be routed to")
        unknown = sorted(set(names) - BILL_PROVIDERS)
        if unknown:
            raise ValueError(f"unknown provider(s) {unknown}; choose from {sorted(BILL_PROVIDERS)}")
        if not names:
            raise ValueError("a route needs at least one provider")
        return names

    @field_validator("treasury_accounts")
    @classmethod
    def _treasury_addresses(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if not StrKey.is_valid_ed25519_public_key(a)]
        if bad:
            raise ValueError(f"not G-addresses: {bad}")
        return value

    @property
    def pgdata_dir(self) -> Path:
        return (self.pgdata or self.data_dir / "pgdata").resolve()

    def route_for(self, bill_type: str) -> list[str]:
        return list(getattr(self, f"route_{bill_type}"))

    def backoff_for_retry(self, retry_number: int) -> int:
        """Seconds to wait before retry ``retry_number`` (1-based); the last step repeats."""
        steps = self.retry_backoff_seconds or [10]
        return steps[min(max(retry_number, 1), len(steps)) - 1]

    def backoff_for_requery(self, requery_number: int) -> int:
        steps = self.requery_backoff_seconds or [5]
        return steps[min(max(requery_number, 1), len(steps)) - 1]
