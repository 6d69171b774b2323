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
            ConcurrencyLimitConfig(
                limit=spec.concurrency_limit,
                collision_strategy=ConcurrencyLimitStrategy(spec.collision_strategy),
            )
            if spec.concurrency_limit
            else None
        )
        out.append(
            spec.load_flow().to_deployment(
                name=spec.name,
                schedules=schedules or None,
                parameters=spec.parameters or None,
                concurrency_limit=limit,
                description=spec.description,
                tags=["billpay"],
            )
        )
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
    from deployments.registry import load_flow

    names = (("expire-orders",) if include_expire else ()) + PIPELINE_TICK
    summary: dict[str, Any] = {}
    for name in names:
        summary.update(load_flow(name)())
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    return "\n".join(
        f"{stage:>10}: claimed={s.get('claimed', 0)} advanced={s.get('advanced', 0)} failed={s.get('failed', 0)}"
        + (f" ({s['note']})" if s.get("note") else "")
        for stage, s in summary.items()
        if isinstance(s, dict)
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


@app.command()
def work(
    until_idle: Annotated[bool, typer.Option(help="stop when a tick finds nothing to do")] = True,
    max_seconds: Annotated[float, typer.Option(help="stop after this long regardless")] = 600,
    idle_ticks: Annotated[int, typer.Option(help="extra ticks with nothing to do, timed")] = 0,
) -> None:
    """Run ticks back to back (a pipeline worker for benchmarks); prints one JSON line per tick
    and a final line with this process's CPU seconds and database statements."""
    import resource
    import threading
    import time

    from billpay.store import monitoring
    from deployments.registry import load_flow
    from tasks.runtime import get_runtime

    get_runtime()  # built in the main thread, where its SIGTERM handler can be installed
    # Like served deployments, each flow runs on its own, back to back, in its own thread.
    started = time.monotonic()
    stop = threading.Event()
    lock = threading.Lock()
    ticks = 0
    idle_rounds: dict[str, bool] = {}

    def loop(name: str, flow_fn: Any) -> None:
        nonlocal ticks
        while not stop.is_set() and time.monotonic() - started < max_seconds:
            try:
                summary = _strip(flow_fn())
            except Exception as exc:  # noqa: BLE001 - e.g. the Prefect API answered 503: a
                # served deployment would just run again at its next slot; so does this loop.
                typer.echo(f"{name} run failed: {type(exc).__name__}: {exc}", err=True)
                time.sleep(1)
                continue
            busy = sum(int(s.get("claimed", 0)) for s in summary.values() if isinstance(s, dict))
            with lock:
                ticks += 1
                idle_rounds[name] = busy == 0
                typer.echo(
                    json.dumps({"tick": ticks, "flow": name, "summary": summary}, default=str)
                )
            if busy == 0:
                time.sleep(0.5)  # nothing claimable now: wait a little, like a schedule would

    flows = {name: load_flow(name) for name in PIPELINE_TICK}
    threads = [threading.Thread(target=loop, args=item, daemon=True) for item in flows.items()]
    for thread in threads:
        thread.start()
    while time.monotonic() - started < max_seconds:
        time.sleep(1)
        with lock:
            all_idle = len(idle_rounds) == len(flows) and all(idle_rounds.values())
        if until_idle and all_idle and not monitoring.work_left(get_runtime().db):
            break
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    idle_cpu = [_idle_tick_cpu(resource) for _ in range(idle_ticks)]
    typer.echo(
        json.dumps(
            {
                "done": True,
                "ticks": ticks,
                "cpu_seconds": _cpu_seconds(resource),
                "statements": get_runtime().db.stats["statements"],
                "idle_cpu": idle_cpu,
            }
        )
    )


def _idle_tick_cpu(resource: Any) -> float:
    """CPU seconds of one tick of the 10-second flows (run when there is nothing to do)."""
    before = _cpu_seconds(resource)
    run_tick(include_expire=False)
    return _cpu_seconds(resource) - before


def _cpu_seconds(resource: Any) -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _strip(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        k: {kk: vv for kk, vv in v.items() if kk != "results"} if isinstance(v, dict) else v
        for k, v in summary.items()
    }


@deployments_app.command("yaml")
def deployments_yaml() -> None:
    """Print prefect.yaml as rendered from deployments/registry.py."""
    from deployments.registry import render_prefect_yaml

    typer.echo(render_prefect_yaml(), nl=False)


@deployments_app.command("list")
def deployments_list() -> None:
    from deployments.registry import all_specs

    for spec in all_specs():
        when = (
            f"every {spec.interval_seconds}s"
            if spec.interval_seconds
            else (f"cron {spec.cron} {spec.timezone or 'UTC'}" if spec.cron else "manual")
        )
        typer.echo(f"{spec.name:28} {when:28} {spec.entrypoint}")


@app.command()
def demo(
    time_limit: Annotated[
        int, typer.Option(help="seconds to wait for every order to settle")
    ] = 150,
) -> None:
    """The main job end to end on embedded defaults: sandbox, orders, payments, served flows."""
    from deployments.demo import run_demo

    sys.exit(run_demo(time_limit=time_limit))


@app.command()
def bench(
    bills: Annotated[int, typer.Option(help="orders to create and pay")] = 1000,
    latency_ms: Annotated[int, typer.Option(help="sandbox provider latency per call")] = 200,
    provider_concurrency: Annotated[
        int, typer.Option(help="max concurrent calls per provider")
    ] = 16,
    failure_rate: Annotated[float, typer.Option(help="share of pay calls the sandbox fails")] = 0.0,
    workers: Annotated[int, typer.Option(help="pipeline processes")] = 1,
    batch_size: Annotated[int, typer.Option(help="rows claimed per stage per tick")] = 200,
    json_path: Annotated[str | None, typer.Option("--json", help="write the results here")] = None,
    reports_rows: Annotated[
        int,
        typer.Option(help="also time the reports over this many provider_attempts rows (0: skip)"),
    ] = 0,
    max_seconds: Annotated[float, typer.Option(help="give up after this long")] = 900,
) -> None:
    """Run the pipeline against the sandbox and print throughput, latency, overhead, idle cost
    and correctness counters."""
    from deployments.bench import BenchOptions, print_result, run_bench

    measured = (bills, latency_ms, provider_concurrency, failure_rate, workers, batch_size)
    result = run_bench(BenchOptions(*measured, json_path, reports_rows, max_seconds))
    print_result(result)


def main() -> None:  # console script
    app()


if __name__ == "__main__":
    main()
