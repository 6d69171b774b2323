"""The doctor's Prefect check (outside billpay/: the domain package never imports Prefect).

The Prefect API must be a server that outlives this process: with no ``PREFECT_API_URL`` Prefect
starts a temporary server per process, and nothing scheduled there survives it. So "no API
configured" is a failure, on the sandbox too (``billpay ui`` serves one, ``billpay serve``
creates the deployments there). Registered on billpay.doctor by deployments/cli.py.
"""

from __future__ import annotations

from typing import Any

import httpx

from billpay.config import Settings
from billpay.doctor import Check
from deployments.registry import all_specs

START_SERVER = (
    "run a Prefect server (`billpay ui` serves one on :4200), export "
    "PREFECT_API_URL=http://127.0.0.1:4200/api, then start `billpay serve`"
)


def prefect_api() -> tuple[str | None, dict[str, str]]:
    """The configured API URL (None: none configured) and the headers it needs."""
    from prefect.settings import get_current_settings

    api = get_current_settings().api
    key = api.key.get_secret_value() if api.key else None
    return api.url, ({"Authorization": f"Bearer {key}"} if key else {})


def check_prefect(
    settings: Settings, client: httpx.Client, api: tuple[str | None, dict[str, str]] | None = None
) -> Check:
    """The Prefect API answers and holds every deployment of deployments/registry.py."""
    name = "prefect"
    url, headers = api or prefect_api()
    if not url:
        return Check(
            name, False, "no Prefect API configured (PREFECT_API_URL is unset)", START_SERVER
        )
    url = url.rstrip("/")
    wanted = [spec.name for spec in all_specs()]
    try:
        health = client.get(f"{url}/health", headers=headers)
        body: dict[str, Any] = {"deployments": {"name": {"any_": wanted}}, "limit": 200}
        found = client.post(f"{url}/deployments/filter", json=body, headers=headers)
    except httpx.HTTPError as exc:
        return Check(
            name, False, f"Prefect API {url} did not answer ({type(exc).__name__})", START_SERVER
        )
    if health.status_code != 200 or found.status_code != 200:
        status = found.status_code if health.status_code == 200 else health.status_code
        fix = "check PREFECT_API_URL (and PREFECT_API_KEY for Prefect Cloud)"
        return Check(name, False, f"Prefect API {url} answered {status}", fix)
    try:
        present = {d.get("name") for d in found.json() if isinstance(d, dict)}
    except (ValueError, TypeError):
        return Check(name, False, f"Prefect API {url} sent an unreadable deployment list", "")
    missing = [deployment for deployment in wanted if deployment not in present]
    if missing:
        return Check(
            name,
            False,
            f"{url}: deployments missing: {', '.join(missing)}",
            "start `billpay serve` against this API (it creates every deployment)",
        )
    return Check(name, True, f"{url}: reachable, {len(wanted)} deployments present")
