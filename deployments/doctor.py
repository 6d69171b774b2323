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
from billpay.doctor import Check, mask_url
from deployments.registry import DeploymentSpec, all_specs

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
    url, shown = url.rstrip("/"), mask_url(url.rstrip("/"))
    wanted = {spec.name: spec for spec in all_specs()}
    try:
        health = client.get(f"{url}/health", headers=headers)
        body: dict[str, Any] = {"deployments": {"name": {"any_": list(wanted)}}, "limit": 200}
        found = client.post(f"{url}/deployments/filter", json=body, headers=headers)
        deployments = _json_list(found) if found.status_code == 200 else []
        flow_ids = sorted({str(d.get("flow_id")) for d in deployments if d.get("flow_id")})
        flows = client.post(
            f"{url}/flows/filter", json={"flows": {"id": {"any_": flow_ids}}}, headers=headers
        )
    except httpx.HTTPError as exc:
        return Check(
            name, False, f"Prefect API {shown} did not answer ({type(exc).__name__})", START_SERVER
        )
    statuses = (health.status_code, found.status_code, flows.status_code)
    if any(status != 200 for status in statuses):
        status = next(status for status in statuses if status != 200)
        fix = "check PREFECT_API_URL (and PREFECT_API_KEY for Prefect Cloud)"
        return Check(name, False, f"Prefect API {shown} answered {status}", fix)
    flow_names = {str(f.get("id")): f.get("name") for f in _json_list(flows)}
    present = {d.get("name"): flow_names.get(str(d.get("flow_id"))) for d in deployments}
    missing = [deployment for deployment in wanted if deployment not in present]
    if missing:
        return Check(
            name,
            False,
            f"{shown}: deployments missing: {', '.join(missing)}",
            "start `billpay serve` against this API (it creates every deployment)",
        )
    wrong = [
        f"{deployment} runs flow {present[deployment]!r}, not {expected!r}"
        for deployment, expected in _flow_names(wanted).items()
        if present[deployment] != expected
    ]
    if wrong:
        return Check(
            name,
            False,
            f"{shown}: " + "; ".join(wrong),
            "another project's deployments share our names: start `billpay serve` against a "
            "Prefect API of its own (or delete those deployments)",
        )
    return Check(name, True, f"{shown}: reachable, {len(wanted)} deployments present")


def _json_list(response: httpx.Response) -> list[dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        return []
    return [item for item in body if isinstance(item, dict)] if isinstance(body, list) else []


def _flow_names(specs: dict[str, DeploymentSpec]) -> dict[str, str]:
    """Deployment name -> the name of the flow its entrypoint loads (the @flow(name=...))."""
    return {deployment: spec.load_flow().name for deployment, spec in specs.items()}
