"""``billpay config show`` and ``billpay doctor``: what is configured, and does it work.

Registered on the ``billpay`` app by :func:`register` (one line in billpay/cli.py). The checks
live in billpay/doctor.py; outer layers add theirs there (deployments/cli.py adds Prefect's).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from pydantic import SecretStr, ValidationError

from billpay.config import Settings
from billpay.doctor import MASK, live_problem_fields, mask_url
from billpay.networks import NetworkName

config_app = typer.Typer(no_args_is_help=True, help="The resolved settings.")

# Nothing works without these; `config show` marks them missing when empty.
REQUIRED = ("horizon_url", "network_passphrase", "system_account", "system_secret", "cngn_issuer")
# URLs whose path or query is often the secret itself (Slack's /services/T../B../<secret>, a
# ?token=): shown as scheme://host/... only.
HOST_ONLY_URLS = ("webhook_url", "operator_webhook_url", "callback_url")

# Defaults that point at the sandbox on loopback, whatever BILLPAY_NETWORK says.
SANDBOX_DEFAULT_URLS = ("flutterwave_base_url", "vtpass_base_url")

__all__ = ["MASK", "mask_url", "resolved_settings", "shown_value"]


def shown_value(name: str, value: Any) -> Any:
    """A setting as config show prints it: secrets masked, the rest as JSON-friendly values."""
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, str) and (name.endswith("_url") or "://" in value):
        return mask_url(value, host_only=name in HOST_ONLY_URLS)
    if isinstance(value, list):
        return [shown_value(name, item) for item in value]
    if value is None or isinstance(value, bool | int):
        return value
    return str(value)  # Decimal (money as a decimal string), Path, enums


def resolved_settings(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every setting: its shown value, where it came from, and whether a required one is empty."""
    out: dict[str, dict[str, Any]] = {}
    leftovers = live_problem_fields(settings)
    live = settings.network is not NetworkName.SANDBOX
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        try:
            shown = shown_value(name, value)
        except Exception:  # noqa: BLE001 - config show never crashes; unreadable = masked
            shown = MASK
        row: dict[str, Any] = {"value": shown, "source": settings.setting_source(name)}
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if name in REQUIRED and not raw:
            row["missing"] = True
        if name in leftovers:
            # A sandbox value (or a test endpoint) on a live profile: `billpay doctor` fails it.
            row["problem"] = leftovers[name]
        elif live and row["source"] == "default" and name in SANDBOX_DEFAULT_URLS:
            row["problem"] = f"still the sandbox's default on {settings.network}"
        out[name] = row
    return out


def _settings_or_exit() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            typer.echo(f"error: BILLPAY_{field.upper()}: {error['msg']}", err=True)
        raise typer.Exit(2) from None


@config_app.command("show")
def config_show(
    as_json: Annotated[bool, typer.Option("--json", help="print them as JSON")] = False,
) -> None:
    """Print every resolved setting and where it came from (env, init, profile, default);
    secrets and secret-looking URL parts masked; sandbox values left on a live profile marked."""
    rows = resolved_settings(_settings_or_exit())
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    width = max(len(name) for name in rows)
    for name, row in rows.items():
        value = "(missing)" if row.get("missing") else json.dumps(row["value"])
        flag = "  <- SANDBOX/TEST VALUE ON A LIVE PROFILE" if "problem" in row else ""
        typer.echo(f"{name:<{width}}  {value}  [{row['source']}]{flag}")


def doctor(
    as_json: Annotated[
        bool, typer.Option("--json", help="a JSON list of {name, ok, detail, fix}")
    ] = False,
) -> None:
    """Check this configuration against the live services, one line per check with what to
    fix. Exit 0 only when every check passes (warnings pass)."""
    from billpay.doctor import run_checks

    results = run_checks(_settings_or_exit())
    failed = [check for check in results if not check.ok]
    if as_json:
        typer.echo(json.dumps([check.to_json() for check in results], indent=2))
    else:
        for check in results:
            typer.echo(check.line())
        verdict = f"{len(failed)} failed" if failed else "all passed"
        typer.echo(f"{len(results)} checks, {verdict}")
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
    app.command("doctor")(doctor)
