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
from urllib.parse import quote, unquote, urlsplit

import httpx
from stellar_sdk import Keypair, StrKey

from billpay.config import Settings
from billpay.networks import (
    SANDBOX_ACCOUNTS,
    SANDBOX_PROVIDER_KEYS,
    SANDBOX_PROVIDER_URLS,
    VTPASS_SANDBOX_HOSTS,
    NetworkName,
    is_loopback_url,
    profile_for,
)

TIMEOUT = httpx.Timeout(5.0, connect=3.0)  # a doctor answers in seconds, not in minutes


# --- showing URLs ----------------------------------------------------------------------------
# One masker for every URL the doctor or `config show` prints. When in doubt, mask: a URL is
# printed to help an operator find the host, never to show a credential.

MASK = "********"
HOST_ONLY = "/..."  # what is left of a webhook URL: its path is often the secret (Slack)
# A query parameter whose name contains one of these holds a secret.
SECRET_WORDS = (
    "pass", "pwd", "token", "key", "secret", "sig", "hash", "auth", "credential", "session",
    "jwt", "bearer", "cookie",
)  # fmt: skip


def _secret_name(name: str) -> bool:
    lowered = unquote(name).lower()
    return any(word in lowered for word in SECRET_WORDS)


def _key_like(segment: str) -> bool:
    """A path segment that looks like an API key: long, and mixing letters with digits or
    cases (``v3``, ``horizon``, ``expansion-testnet`` stay; ``a1B2c3...`` goes)."""
    text = unquote(segment)
    if len(text) >= 40:
        return True
    kinds = sum((any(c.islower() for c in text), any(c.isupper() for c in text),
                 any(c.isdigit() for c in text)))  # fmt: skip
    return len(text) >= 16 and kinds >= 2


def _masked_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        pairs.append(f"{name}={MASK}" if eq and value and _secret_name(name) else pair)
    return "&".join(pairs)


def mask_url(value: str, *, host_only: bool = False) -> str:
    """``value`` fit to print: the password, secret-looking query values, key-like path
    segments and any fragment masked; ``host_only``: ``scheme://host/...`` and nothing more.
    Anything that does not parse as a URL (a libpq ``host=db password=x`` DSN, a bad port) is
    masked whole."""
    try:
        parts = urlsplit(value.strip())
        host = parts.hostname or ""
        port = parts.port  # raises ValueError on a non-numeric port
        if not parts.scheme or "://" not in value:
            return MASK if value else value
    except (ValueError, AttributeError):
        return MASK
    host = f"[{host}]" if ":" in host else host  # IPv6 keeps its brackets
    hostport = host + (f":{port}" if port is not None else "")
    if host_only:
        return f"{parts.scheme}://{hostport}{HOST_ONLY}"
    if parts.password is not None:
        hostport = f"{parts.username or ''}:{MASK}@{hostport}"
    elif parts.username:  # a user alone may be a token (https://<token>@host)
        hostport = f"{MASK if _key_like(parts.username) else parts.username}@{hostport}"
    path = "/".join(MASK if _key_like(seg) else seg for seg in parts.path.split("/"))
    query = f"?{_masked_query(parts.query)}" if parts.query else ""
    fragment = f"#{MASK}" if parts.fragment else ""
    return f"{parts.scheme}://{hostport}{path}{query}{fragment}"


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
    return _fail(name, f"{what} at {mask_url(url)} did not answer ({type(exc).__name__})", fix)


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
    if _is_live(settings) and issuer in SANDBOX_ACCOUNTS:
        return _fail(
            name,
            f"BILLPAY_CNGN_ISSUER {issuer} is the sandbox's issuer, not a real one",
            _UNSET_SANDBOX
            + (f"; {settings.network}'s is {profile.cngn_issuer}" if profile.cngn_issuer else ""),
        )
    if profile.cngn_issuer and issuer != profile.cngn_issuer:
        detail += f" (not the published issuer {profile.cngn_issuer})"
        return Check(name, True, detail, warning=True)
    return Check(name, True, detail)


# --- sandbox leftovers on a live profile ------------------------------------------------------

_UNSET_SANDBOX = (
    "unset what `billpay sandbox --print-env` exported (a fresh shell, or `unset` each "
    "BILLPAY_ variable it printed) and set your own"
)


def _is_live(settings: Settings) -> bool:
    return settings.network is not NetworkName.SANDBOX


def _secret_account(settings: Settings) -> str | None:
    try:
        return Keypair.from_secret(settings.system_secret.get_secret_value()).public_key
    except Exception:  # noqa: BLE001 - malformed: the system secret check says so
        return None


def _sandbox_identity_problems(settings: Settings) -> list[str]:
    """The sandbox's public identities and keys, anywhere but on the sandbox."""
    problems = []
    profile = profile_for(settings.network)
    if settings.network_passphrase != profile.passphrase:
        problems.append(
            f"BILLPAY_NETWORK_PASSPHRASE is {settings.network_passphrase!r}, not "
            f"{settings.network}'s {profile.passphrase!r}: refunds would be signed for another "
            "network"
        )
    accounts = {
        "BILLPAY_SYSTEM_ACCOUNT": settings.system_account,
        "BILLPAY_SYSTEM_SECRET": _secret_account(settings) or "",
        "BILLPAY_CNGN_ISSUER": settings.cngn_issuer,
        **{f"BILLPAY_TREASURY_ACCOUNTS[{i}]": a for i, a in enumerate(settings.treasury_accounts)},
    }
    for setting, account in accounts.items():
        if account in SANDBOX_ACCOUNTS:
            problems.append(
                f"{setting} is the sandbox's {SANDBOX_ACCOUNTS[account]} identity, whose secret "
                "anyone can derive"
            )
    for field, sandbox_value in SANDBOX_PROVIDER_KEYS.items():
        if getattr(settings, field).get_secret_value() == sandbox_value:
            problems.append(f"BILLPAY_{field.upper()} is the sandbox's key")
    return problems


def _real_money_problems(settings: Settings) -> list[str]:
    """Test keys and loopback or test endpoints, on a network whose money is real."""
    if not profile_for(settings.network).real_money:
        return []
    problems = []
    if is_loopback_url(settings.horizon_url):
        problems.append(f"BILLPAY_HORIZON_URL {mask_url(settings.horizon_url)} is on loopback")
    routed = routed_providers(settings)
    for provider in ("flutterwave", "vtpass"):
        url = getattr(settings, f"{provider}_base_url")
        if provider in routed and (
            is_loopback_url(url) or url.rstrip("/") in SANDBOX_PROVIDER_URLS
        ):
            problems.append(
                f"BILLPAY_{provider.upper()}_BASE_URL {mask_url(url)} is the sandbox's or on "
                "loopback"
            )
    if "vtpass" in routed and _host(settings.vtpass_base_url) in VTPASS_SANDBOX_HOSTS:
        problems.append("BILLPAY_VTPASS_BASE_URL is VTpass's sandbox (play money)")
    flw = settings.flutterwave_secret_key.get_secret_value()
    if "flutterwave" in routed and flw.startswith("FLWSECK_TEST"):
        problems.append("BILLPAY_FLUTTERWAVE_SECRET_KEY is a test key (FLWSECK_TEST-...)")
    return problems


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def live_problems(settings: Settings) -> list[str]:
    """Every sandbox value or test endpoint left on a non-sandbox profile (empty on the
    sandbox). ``billpay config show`` marks the same settings."""
    if not _is_live(settings):
        return []
    return _sandbox_identity_problems(settings) + _real_money_problems(settings)


def live_problem_fields(settings: Settings) -> dict[str, str]:
    """Setting name -> its problem, for ``config show`` (each problem starts with the
    BILLPAY_ variable it is about)."""
    out: dict[str, str] = {}
    for problem in live_problems(settings):
        field = problem.split()[0].removeprefix("BILLPAY_").split("[")[0].lower()
        out.setdefault(field, problem)
    return out


def check_live_settings(settings: Settings, client: httpx.Client | None = None) -> Check:
    """Off the sandbox: no sandbox identity, key or passphrase; with real money, no test key
    and no loopback or test endpoint."""
    name = "live settings"
    if not _is_live(settings):
        return Check(name, True, "sandbox profile: the sandbox's identities and keys are expected")
    problems = live_problems(settings)
    if problems:
        return _fail(
            name,
            f"{settings.network}: " + "; ".join(problems),
            _UNSET_SANDBOX + " (README: Going live)",
        )
    money = "real money" if profile_for(settings.network).real_money else "test network"
    return Check(name, True, f"{settings.network} ({money}): no sandbox identity, key or endpoint")


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
        # sqlalchemy's hide_password keeps query passwords (?password=, ?sslpassword=).
        shown = mask_url(url.render_as_string(hide_password=False))
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
    shown = mask_url(url)
    fix_url = "check BILLPAY_HORIZON_URL (or BILLPAY_NETWORK's default)"
    try:
        status, body = _get_json(client, url)
    except httpx.HTTPError as exc:
        return _unreachable(name, "Horizon", url, exc, fix_url)
    if status != 200 or not isinstance(body, dict):
        return _fail(name, f"Horizon at {shown} answered {status}, not its root document", fix_url)
    theirs = body.get("network_passphrase")
    if theirs != settings.network_passphrase:
        return _fail(
            name,
            f"Horizon at {shown} serves {theirs!r}, we sign for {settings.network_passphrase!r}",
            "point BILLPAY_HORIZON_URL at a Horizon of your network, or fix "
            "BILLPAY_NETWORK / BILLPAY_NETWORK_PASSPHRASE",
        )
    version = body.get("horizon_version") or "?"
    ledger = body.get("history_latest_ledger") or body.get("core_latest_ledger") or "?"
    return Check(name, True, f"{shown}: {theirs!r}, Horizon {version}, latest ledger {ledger}")


def _load_account(
    settings: Settings, client: httpx.Client, name: str, account_id: str, *, missing: str, fix: str
) -> dict[str, Any] | Check:
    """The account's Horizon document, or the failed check saying why there is none.

    `missing` and `fix` are what the check says when the account does not exist (404).
    """
    try:
        status, body = _get_json(client, _horizon(settings, f"/accounts/{quote(account_id)}"))
    except httpx.HTTPError as exc:
        return _unreachable(name, "Horizon", settings.horizon_url, exc, "fix the Horizon check")
    if status == 404:
        return _fail(name, missing, fix)
    if status != 200 or not isinstance(body, dict):
        return _fail(name, f"Horizon answered {status} for {account_id}", "fix the Horizon check")
    return body


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
    if _is_live(settings) and account in SANDBOX_ACCOUNTS:
        # Never tell an operator to fund an account whose secret anyone can derive.
        return _fail(
            name,
            f"{account} is the sandbox's {SANDBOX_ACCOUNTS[account]} identity: its secret is "
            "public, anyone could spend what it holds",
            "create an account of your own (secret from your secret store) and set "
            "BILLPAY_SYSTEM_ACCOUNT and BILLPAY_SYSTEM_SECRET to it",
        )
    body = _load_account(
        settings,
        client,
        name,
        account,
        missing=f"{account} does not exist on this network",
        fix="fund the account (create_account) on the network BILLPAY_NETWORK names",
    )
    if isinstance(body, Check):
        return body
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
    body = _load_account(
        settings,
        client,
        name,
        issuer,
        missing=f"the issuer {issuer} does not exist on this network",
        fix="the issuer belongs to another network: fix BILLPAY_CNGN_ISSUER or BILLPAY_NETWORK",
    )
    if isinstance(body, Check):
        return body
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
    if _is_live(settings) and public in SANDBOX_ACCOUNTS:
        return _fail(name, f"the secret is the sandbox's {SANDBOX_ACCOUNTS[public]} secret", fix)
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
    name = "vtpass credentials"
    base = settings.vtpass_base_url.rstrip("/")
    shown = mask_url(base)
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
            return _fail(name, f"VTpass {shown}/balance answered {status}", "check the base URL")
    except httpx.HTTPError as exc:
        return _unreachable(name, "VTpass", base, exc, "check BILLPAY_VTPASS_BASE_URL")
    if profile_for(settings.network).real_money and _host(base) in VTPASS_SANDBOX_HOSTS:
        return _fail(
            name,
            f"{shown} is VTpass's sandbox (play money) on the real-money {settings.network}",
            "set BILLPAY_VTPASS_BASE_URL=https://vtpass.com/api and the live keys",
        )
    problem = _vtpass_secret_problem(settings, client, base, now)
    if problem:
        return _fail(name, f"could not confirm the VTpass secret key: {problem}", fix)
    return Check(
        name, True, f"{shown}: keys accepted, wallet balance NGN {_naira(contents['balance'])}"
    )


def _vtpass_secret_problem(
    settings: Settings, client: httpx.Client, base: str, now: datetime | None
) -> str | None:
    """None when VTpass answered the requery of a request id that cannot exist as VTpass does
    (HTTP 200, JSON with a code, 015 expected); else what it answered. Anything else (5xx, an
    HTML page, no answer) proves nothing about the secret key."""
    from billpay.providers.base import LAGOS, REFERENCE_STAMP_FORMAT

    stamp = (now or datetime.now(LAGOS)).astimezone(LAGOS).strftime(REFERENCE_STAMP_FORMAT)
    api_key = settings.vtpass_api_key.get_secret_value()
    secret = {"api-key": api_key, "secret-key": settings.vtpass_secret_key.get_secret_value()}
    try:
        probe = client.post(
            f"{base}/requery", headers=secret, json={"request_id": f"{stamp}DOCTORPROBE"}
        )
    except httpx.HTTPError as exc:
        return f"POST /requery did not answer ({type(exc).__name__})"
    body = _json_or_none(probe)
    if _vtpass_refused(probe.status_code, body):
        return f"VTpass refused the secret-key ({probe.status_code})"
    if probe.status_code != 200 or not isinstance(body, dict) or body.get("code") is None:
        kind = "JSON without a code" if isinstance(body, dict) else "not JSON"
        return f"POST /requery answered {probe.status_code}, {kind} (expected 200, code 015)"
    if str(body.get("code")) != "015":
        return f"POST /requery answered code {body.get('code')} (expected 015, no such request)"
    return None


def check_flutterwave(settings: Settings, client: httpx.Client) -> Check:
    """GET /balances with the secret key as Bearer token: a read every account may make."""
    name = "flutterwave credentials"
    base = settings.flutterwave_base_url.rstrip("/")
    shown = mask_url(base)
    secret = settings.flutterwave_secret_key.get_secret_value()
    fix = "set BILLPAY_FLUTTERWAVE_SECRET_KEY (FLWSECK-... live, FLWSECK_TEST-... test)"
    if not secret:
        return _fail(name, "BILLPAY_FLUTTERWAVE_SECRET_KEY is not set", fix)
    if profile_for(settings.network).real_money and secret.startswith("FLWSECK_TEST"):
        return _fail(
            name,
            f"a Flutterwave test key (FLWSECK_TEST-...) on the real-money {settings.network}",
            "set BILLPAY_FLUTTERWAVE_SECRET_KEY to the live key (FLWSECK-...)",
        )
    try:
        status, body = _get_json(
            client, f"{base}/balances", headers={"Authorization": f"Bearer {secret}"}
        )
    except httpx.HTTPError as exc:
        return _unreachable(name, "Flutterwave", base, exc, "check BILLPAY_FLUTTERWAVE_BASE_URL")
    if status == 401:
        return _fail(name, "Flutterwave refused the secret key (401)", fix)
    if status != 200 or not isinstance(body, dict) or body.get("status") != "success":
        return _fail(name, f"Flutterwave {shown}/balances answered {status}", "check the base URL")
    ngn = next(
        (w for w in body.get("data") or [] if isinstance(w, dict) and w.get("currency") == "NGN"),
        None,
    )
    mode = "test" if secret.startswith("FLWSECK_TEST") else "live"
    balance = f", NGN available {ngn.get('available_balance')}" if ngn else ""
    return Check(name, True, f"{shown}: {mode} key accepted{balance}")


PROVIDER_CHECKS: dict[str, CheckFn] = {"vtpass": check_vtpass, "flutterwave": check_flutterwave}


def domain_checks(settings: Settings) -> list[CheckFn]:
    """The checks of this package, in the order an operator fixes things."""
    checks: list[CheckFn] = [
        check_network_config,
        check_live_settings,
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
