"""The ``billpay`` console script: the domain commands of ``billpay.cli`` plus the ones that run
flows (serve, tick, deployments, demo, bench). They live here, outside ``billpay/``, because the
domain package never imports Prefect."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from billpay.cli import app

PIPELINE_TICK = ("ingest-payments", "process-bills", "process-refunds", "dispatch-notifications")

deployments_app = typer.Typer(no_args_is_help=True, help="Deployment definitions.")
app.add_typer(deployments_app, name="deployments")

try:  # the reporting commands, when present
    from billpay.report_cli import report_app

    app.add_typer(report_app, name="report")
except ImportError:  # pragma: no cover
    pass


def build_deployments(names: set[str] | None = None) -> list[Any]:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron, Interval

    from deployments.registry import all_specs

    out = []
    for spec in all_specs():
        if names and spec.name not in names:
            continue
        schedules = []
        if spec.interval_seconds:
            schedules.append(Interval(spec.interval_seconds))
        if spec.cron:
            schedules.append(Cron(spec.cron, timezone=spec.timezone or "UTC"))
        limit = (
            ConcurrencyLimitConfig(limit=spec.concurrency_limit,
                                   collision_strategy=ConcurrencyLimitStrategy(spec.collision_strategy))
            if spec.concurrency_limit else None
        )
        out.append(spec.load_flow().to_deployment(
            name=spec.name, schedules=schedules or None, parameters=spec.parameters or None,
            concurrency_limit=limit, description=spec.description, tags=["billpay"],
        ))
    return out


@app.command()
def serve(
    only: Annotated[list[str] | None, typer.Option(help="serve only these deployments")] = None,
    limit: Annotated[int, typer.Option(help="max concurrent flow runs in this process")] = 10,
) -> None:
    """Serve every deployment on its schedule from this process (single-machine production)."""
    from prefect import serve as prefect_serve

    deployments = build_deployments(set(only) if only else None)
    typer.echo(f"serving {len(deployments)} deployments: " + ", ".join(d.name for d in deployments))
    prefect_serve(*deployments, limit=limit)


def run_tick(include_expire: bool = True) -> dict[str, Any]:
    """Each 10-second flow once, in order, in this process."""
    from flows.bills import process_bills
    from flows.expire import expire_orders
    from flows.notifications import dispatch_notifications
    from flows.payments import ingest_payments
    from flows.refunds import process_refunds

    summary: dict[str, Any] = {}
    if include_expire:
        summary.update(expire_orders())
    summary.update(ingest_payments())
    summary.update(process_bills())
    summary.update(process_refunds())
    summary.update(dispatch_notifications())
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    return "\n".join(
        f"{stage:>10}: claimed={s.get('claimed', 0)} advanced={s.get('advanced', 0)} failed={s.get('failed', 0)}"
        + (f" ({s['note']})" if s.get("note") else "")
        for stage, s in summary.items() if isinstance(s, dict)
    )


@app.command()
def tick(
    times: Annotated[int, typer.Option(help="how many ticks")] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="print summaries as JSON")] = False,
) -> None:
    """Run each 10-second flow once, in order, in-process; print the stage summaries."""
    for number in range(1, times + 1):
        summary = run_tick()
        if json_out:
            typer.echo(json.dumps(_strip(summary), default=str))
        else:
            typer.echo(f"tick {number}:\n{format_summary(summary)}")


def _strip(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: {kk: vv for kk, vv in v.items() if kk != "results"} if isinstance(v, dict) else v
            for k, v in summary.items()}


@deployments_app.command("yaml")
def deployments_yaml() -> None:
    """Print prefect.yaml as rendered from deployments/registry.py."""
    from deployments.registry import render_prefect_yaml

    typer.echo(render_prefect_yaml(), nl=False)


@deployments_app.command("list")
def deployments_list() -> None:
    from deployments.registry import all_specs

    for spec in all_specs():
        when = f"every {spec.interval_seconds}s" if spec.interval_seconds else (
            f"cron {spec.cron} {spec.timezone or 'UTC'}" if spec.cron else "manual")
        typer.echo(f"{spec.name:28} {when:28} {spec.entrypoint}")


@app.command()
def demo(
    time_limit: Annotated[int, typer.Option(help="seconds to wait for every order to settle")] = 150,
) -> None:
    """The main job end to end on embedded defaults: sandbox, orders, payments, served flows."""
    from deployments.demo import run_demo

    sys.exit(run_demo(time_limit=time_limit))


def main() -> None:  # console script
    app()


if __name__ == "__main__":
    main()
