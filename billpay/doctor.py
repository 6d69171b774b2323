"""``billpay doctor``: is this configuration ready for real money? One small function per check.

Each check takes the settings (and, where it talks HTTP, an injected ``httpx.Client``) and
returns a :class:`Check`: ok or not, what it saw, and what to do about it. None raises: a check
that cannot run says why, as a failure. Nothing is written anywhere: every HTTP call is a read
(VTpass's secret key is proved by requerying a request id that cannot exist).

Warnings versus failures. A failure is something that stops money moving or sends it wrong
(unreachable service, wrong passphrase, refused key, missing trustline, secret of another
account, missing issuer). A *warning* is an ``ok`` check whose detail says what a setting of
someone else's means for us: the cNGN issuer's flags. A regulated issuer sets them on purpose and
we cannot change them, so they never fail the doctor; they say what they mean for refunds.

The domain package holds no Prefect code: the Prefect check lives in ``deployments/doctor.py``
and is added to :data:`EXTRA_CHECKS` by the ``billpay`` console script (deployments/cli.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import httpx
from stellar_sdk import Keypair, StrKey

from billpay.config import Settings
from billpay.networks import NetworkName, profile_for

TIMEOUT = httpx.Timeout(5.0, connect=3.0)  # a doctor answers in seconds, not in minutes


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False  # ok, but read the detail (the issuer's flags)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        mark = "ok  " if self.ok and not self.warning else ("warn" if self.ok else "FAIL")
        text = f"{mark}  {self.name}: {self.detail}"
        return f"{text}\n      fix: {self.fix}" if self.fix else text


CheckFn = Callable[[Settings, httpx.Client], Check]
# Checks added by outer layers (the Prefect check, from deployments/cli.py).
EXTRA_CHECKS: list[CheckFn] = []


def register(check: CheckFn) -> None:
    if check not in EXTRA_CHECKS:
        EXTRA_CHECKS.append(check)


def _fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, False, detail, fix)


def _get_json(client: httpx.Client, url: str, **kwargs: Any) -> tuple[int, Any]:
    """(status, JSON body or None); transport errors propagate as httpx.HTTPError."""
    response = client.get(url, **kwargs)
    return response.status_code, _json_or_none(response)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _unreachable(name: str, what: str, url: str, exc: Exception, fix: str) -> Check:
    return _fail(name, f"{what} at {url} did not answer ({type(exc).__name__})", fix)


# --- configuration -------------------------------------------------------------------------


def check_network_config(settings: Settings, client: httpx.Client | None = None) -> Check:
    """The identities are set and well formed; off the sandbox the issuer is always explicit."""
    name = "network configuration"
    profile = profile_for(settings.network)
    issuer = settings.cngn_issuer
    if not issuer:
        where = (
            "`billpay sandbox --print-env` sets the sandbox's"
            if settings.network is NetworkName.SANDBOX
            else f"{settings.network} has no published cNGN issuer: assets coded "
            f"{settings.cngn_asset_code} there come from other parties"
        )
        return _fail(
            name,
            f"BILLPAY_CNGN_ISSUER is not set ({where})",
            "set BILLPAY_CNGN_ISSUER to the G-address of the cNGN issuer you accept",
        )
    if not StrKey.is_valid_ed25519_public_key(issuer):
        return _fail(name, "BILLPAY_CNGN_ISSUER is not a G-address", "copy the issuer's G-address")
    account = settings.system_account
    if not StrKey.is_valid_ed25519_public_key(account or ""):
        return _fail(
            name,
            "BILLPAY_SYSTEM_ACCOUNT is " + ("not set" if not account else "not a G-address"),
            "set BILLPAY_SYSTEM_ACCOUNT to the G-address that receives payments",
        )
    detail = f"{settings.network}: {settings.cngn_asset_code} issued by {issuer}"
    if profile.cngn_issuer and issuer != profile.cngn_issuer:
        detail += f" (not the published issuer {profile.cngn_issuer})"
        return Check(name, True, detail, warning=True)
    return Check(name, True, detail)


# --- database ------------------------------------------------------------------------------


def check_database(settings: Settings, client: httpx.Client | None = None) -> Check:
    """Reachable within seconds, and every sql/ migration applied."""
    import sqlalchemy as sa

    from billpay.store.engine import embedded_url, normalise_url, start_embedded
    from billpay.store.migrations import pending_migrations
    from billpay.store.queries import query

    name = "database"
    try:
        if settings.database_url:
            url = normalise_url(settings.database_url)
        else:
            url = embedded_url(start_embedded(settings.pgdata_dir))
        shown = url.render_as_string(hide_password=True)
        engine = sa.create_engine(
            url,
            poolclass=sa.pool.NullPool,
            connect_args={"connect_timeout": 5},
            hide_parameters=True,
        )
        try:
            with engine.connect() as conn:
                conn.execute(query("ping"))
        finally:
            engine.dispose()
        pending = pending_migrations(url)
    except Exception as exc:  # noqa: BLE001 - any failure to connect is this check's answer
        reason = getattr(exc, "orig", None) or exc
        first = str(reason).strip().splitlines()[0] if str(reason).strip() else ""
        fix = (
            "run `billpay db upgrade` (it creates the database and applies every migration)"
            if "does not exist" in first
            else "check BILLPAY_DATABASE_URL (host, port, user, password, database)"
        )
        return _fail(
            name, f"cannot reach the database ({type(reason).__name__}: {first[:200]})", fix
        )
    if pending:
        return _fail(
            name,
            f"{shown}: {len(pending)} migration(s) not applied ({', '.join(pending[:5])})",
            "run `billpay db upgrade`",
        )
    return Check(name, True, f"{shown}: reachable, migrations current")


# --- Horizon -------------------------------------------------------------------------------


def _horizon(settings: Settings, path: str) -> str:
    return f"{settings.horizon_url.rstrip('/')}{path}"


def check_horizon(settings: Settings, client: httpx.Client) -> Check:
    """Horizon answers its root document and serves the network our passphrase names."""
    name = "horizon"
    url = _horizon(settings, "/")
    fix_url = "check BILLPAY_HORIZON_URL (or BILLPAY_NETWORK's default)"
    try:
        status, body = _get_json(client, url)
    except httpx.HTTPError as exc:
        return _unreachable(name, "Horizon", url, exc, fix_url)
    if status != 200 or not isinstance(body, dict):
        return _fail(name, f"Horizon at {url} answered {status}, not its root document", fix_url)
    theirs = body.get("network_passphrase")
    if theirs != settings.network_passphrase:
        return _fail(
            name,
            f"Horizon at {url} serves {theirs!r}, we sign for {settings.network_passphrase!r}",
            "point BILLPAY_HORIZON_URL at a Horizon of your network, or fix "
            "BILLPAY_NETWORK / BILLPAY_NETWORK_PASSPHRASE",
        )
    version = body.get("horizon_version") or "?"
    ledger = body.get("history_latest_ledger") or body.get("core_latest_ledger") or "?"
    return Check(name, True, f"{url}: {theirs!r}, Horizon {version}, latest ledger {ledger}")


def _account(settings: Settings, client: httpx.Client, account_id: str) -> tuple[int, Any]:
    return _get_json(client, _horizon(settings, f"/accounts/{quote(account_id)}"))


def _asset_line(body: dict[str, Any], code: str, issuer: str) -> dict[str, Any] | None:
    for line in body.get("balances") or []:
        if (
            isinstance(line, dict)
            and line.get("asset_code") == code
            and line.get("asset_issuer") == issuer
        ):
            return line
    return None


def check_system_account(settings: Settings, client: httpx.Client) -> Check:
    """The system account exists, trusts code + issuer (never the code alone), is authorised."""
    name = "system account"
    account, code, issuer = settings.system_account, settings.cngn_asset_code, settings.cngn_issuer
    if not account or not issuer:
        return _fail(
            name, "BILLPAY_SYSTEM_ACCOUNT or BILLPAY_CNGN_ISSUER is not set", "set both first"
        )
    try:
        status, body = _account(settings, client, account)
    except httpx.HTTPError as exc:
        return _unreachable(name, "Horizon", settings.horizon_url, exc, "fix the Horizon check")
    if status == 404:
        return _fail(
            name,
            f"{account} does not exist on this network",
            "fund the account (create_account) on the network BILLPAY_NETWORK names",
        )
    if status != 200 or not isinstance(body, dict):
        return _fail(name, f"Horizon answered {status} for {account}", "fix the Horizon check")
    line = _asset_line(body, code, issuer)
    if line is None:
        return _fail(
            name,
            f"{account} has no trustline to {code} issued by {issuer}",
            f"add it: a change_trust operation for {code}:{issuer}, signed by the account",
        )
    if line.get("is_authorized") is not True:
        return _fail(
            name,
            f"the issuer has not authorised {account}'s {code} trustline: it can neither "
            "receive payments nor send refunds",
            "ask the issuer to authorise the trustline (set_trust_line_flags / allow_trust)",
        )
    return Check(name, True, f"{account}: trusts {code}:{issuer}, authorised, balance {_bal(line)}")


def _bal(line: dict[str, Any]) -> str:
    return _naira(line.get("balance"))


def _naira(value: object) -> str:
    """A balance as a plain decimal string (providers send numbers, Horizon 7-place strings)."""
    try:
        return f"{Decimal(str(value)).normalize():f}"
    except (InvalidOperation, ValueError):
        return "?"


ISSUER_FLAG_MEANINGS = {
    "auth_clawback_enabled": "clawback enabled: the issuer can take cNGN back from the system "
    "account, so the float (and money owed as refunds) can shrink without our doing",
    "auth_revocable": "auth revocable: the issuer can freeze our trustline; while frozen, no "
    "payment is received and every refund fails (op_not_authorized) until re-authorised",
    "auth_required": "auth required: every holder needs the issuer's authorisation; a refund to a "
    "payer whose trustline is not authorised is held for an operator",
}


def check_issuer_flags(settings: Settings, client: httpx.Client) -> Check:
    """The issuer exists; its flags are reported with what they mean for refunds (warnings)."""
    name = "cNGN issuer"
    issuer = settings.cngn_issuer
    if not issuer:
        return _fail(name, "BILLPAY_CNGN_ISSUER is not set", "set it (see network configuration)")
    try:
        status, body = _account(settings, client, issuer)
    except httpx.HTTPError as exc:
        return _unreachable(name, "Horizon", settings.horizon_url, exc, "fix the Horizon check")
    if status == 404:
        return _fail(
            name,
            f"the issuer {issuer} does not exist on this network",
            "the issuer belongs to another network: fix BILLPAY_CNGN_ISSUER or BILLPAY_NETWORK",
        )
    if status != 200 or not isinstance(body, dict):
        return _fail(name, f"Horizon answered {status} for {issuer}", "fix the Horizon check")
    flags = body.get("flags") if isinstance(body.get("flags"), dict) else {}
    raised = [flag for flag in ISSUER_FLAG_MEANINGS if flags.get(flag) is True]
    if not raised:
        return Check(name, True, f"{issuer}: no authorisation or clawback flags")
    meanings = "; ".join(ISSUER_FLAG_MEANINGS[flag] for flag in raised)
    return Check(name, True, f"{issuer}: {meanings}", warning=True)


def check_system_secret(settings: Settings, client: httpx.Client | None = None) -> Check:
    """The secret signs for the system account (refunds are signed with it)."""
    name = "system secret"
    secret = settings.system_secret.get_secret_value()
    fix = "set BILLPAY_SYSTEM_SECRET to the S-secret of BILLPAY_SYSTEM_ACCOUNT"
    if not secret:
        return _fail(name, "BILLPAY_SYSTEM_SECRET is not set: refunds cannot be signed", fix)
    try:
        public = Keypair.from_secret(secret).public_key
    except Exception:  # noqa: BLE001 - the SDK raises several types for a malformed seed
        return _fail(name, "BILLPAY_SYSTEM_SECRET is not a valid S-secret", fix)
    if public != settings.system_account:
        return _fail(name, f"the secret belongs to {public}, not the system account", fix)
    return Check(name, True, f"signs for {public}")


# --- providers -----------------------------------------------------------------------------


def routed_providers(settings: Settings) -> list[str]:
    """The providers some route sends bills to (only those need working keys)."""
    names: list[str] = []
    for bill_type in ("electricity", "airtime", "data", "cable_tv", "water"):
        for provider in settings.route_for(bill_type):
            if provider not in names:
                names.append(provider)
    return names


def _vtpass_refused(status: int, body: Any) -> bool:
    return status == 401 or (isinstance(body, dict) and str(body.get("code")) == "087")


def check_vtpass(settings: Settings, client: httpx.Client, now: datetime | None = None) -> Check:
    """GET /balance with api-key + public-key, then POST /requery (api-key + secret-key) of a
    request id that cannot exist: both are reads, and they are the two header pairs VTpass
    checks (GETs and POSTs)."""
    from billpay.providers.base import LAGOS, REFERENCE_STAMP_FORMAT

    name = "vtpass credentials"
    base = settings.vtpass_base_url.rstrip("/")
    api_key = settings.vtpass_api_key.get_secret_value()
    keys = {"api-key": api_key, "public-key": settings.vtpass_public_key.get_secret_value()}
    fix = "set BILLPAY_VTPASS_API_KEY, _PUBLIC_KEY and _SECRET_KEY from the VTpass dashboard"
    if not all(keys.values()) or not settings.vtpass_secret_key.get_secret_value():
        return _fail(name, "VTpass keys are not all set", fix)
    try:
        status, body = _get_json(client, f"{base}/balance", headers=keys)
        if _vtpass_refused(status, body):
            return _fail(name, f"VTpass refused the api-key/public-key ({status})", fix)
        contents = body.get("contents") if isinstance(body, dict) else None
        if status != 200 or not isinstance(contents, dict) or "balance" not in contents:
            return _fail(name, f"VTpass {base}/balance answered {status}", "check the base URL")
        stamp = (now or datetime.now(LAGOS)).astimezone(LAGOS).strftime(REFERENCE_STAMP_FORMAT)
        secret = {"api-key": api_key, "secret-key": settings.vtpass_secret_key.get_secret_value()}
        probe = client.post(
            f"{base}/requery", headers=secret, json={"request_id": f"{stamp}DOCTORPROBE"}
        )
        probe_body = _json_or_none(probe)
    except httpx.HTTPError as exc:
        return _unreachable(name, "VTpass", base, exc, "check BILLPAY_VTPASS_BASE_URL")
    if _vtpass_refused(probe.status_code, probe_body):
        return _fail(name, f"VTpass refused the secret-key ({probe.status_code})", fix)
    return Check(
        name, True, f"{base}: keys accepted, wallet balance NGN {_naira(contents['balance'])}"
    )


def check_flutterwave(settings: Settings, client: httpx.Client) -> Check:
    """GET /balances with the secret key as Bearer token: a read every account may make."""
    name = "flutterwave credentials"
    base = settings.flutterwave_base_url.rstrip("/")
    secret = settings.flutterwave_secret_key.get_secret_value()
    fix = "set BILLPAY_FLUTTERWAVE_SECRET_KEY (FLWSECK-... live, FLWSECK_TEST-... test)"
    if not secret:
        return _fail(name, "BILLPAY_FLUTTERWAVE_SECRET_KEY is not set", fix)
    try:
        status, body = _get_json(
            client, f"{base}/balances", headers={"Authorization": f"Bearer {secret}"}
        )
    except httpx.HTTPError as exc:
        return _unreachable(name, "Flutterwave", base, exc, "check BILLPAY_FLUTTERWAVE_BASE_URL")
    if status == 401:
        return _fail(name, "Flutterwave refused the secret key (401)", fix)
    if status != 200 or not isinstance(body, dict) or body.get("status") != "success":
        return _fail(name, f"Flutterwave {base}/balances answered {status}", "check the base URL")
    ngn = next(
        (w for w in body.get("data") or [] if isinstance(w, dict) and w.get("currency") == "NGN"),
        None,
    )
    mode = "test" if secret.startswith("FLWSECK_TEST") else "live"
    shown = f", NGN available {ngn.get('available_balance')}" if ngn else ""
    return Check(name, True, f"{base}: {mode} key accepted{shown}")


PROVIDER_CHECKS: dict[str, CheckFn] = {"vtpass": check_vtpass, "flutterwave": check_flutterwave}


def domain_checks(settings: Settings) -> list[CheckFn]:
    """The checks of this package, in the order an operator fixes things."""
    checks: list[CheckFn] = [
        check_network_config,
        check_database,
        check_horizon,
        check_system_account,
        check_issuer_flags,
        check_system_secret,
    ]
    checks += [PROVIDER_CHECKS[p] for p in routed_providers(settings) if p in PROVIDER_CHECKS]
    return checks


def run_checks(
    settings: Settings,
    client: httpx.Client | None = None,
    extra: Iterable[CheckFn] | None = None,
) -> list[Check]:
    """Every check, each isolated: one that raises is reported as failed, never fatal."""
    own = client or httpx.Client(timeout=TIMEOUT)
    results = []
    try:
        for check in [*domain_checks(settings), *(EXTRA_CHECKS if extra is None else extra)]:
            try:
                results.append(check(settings, own))
            except Exception as exc:  # noqa: BLE001 - a broken check is a failed check
                label = getattr(check, "__name__", "check").removeprefix("check_")
                results.append(_fail(label, f"the check crashed: {type(exc).__name__}", ""))
    finally:
        if client is None:
            own.close()
    return results
