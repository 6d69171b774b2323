"""The ``billpay`` console script: the domain commands of ``billpay.cli`` plus the ones that run
flows (serve, tick, deployments, demo, bench). They live here, outside ``billpay/``, because the
domain package never imports Prefect."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from billpay import doctor as doctor_checks
from billpay.cli import app
from deployments.automations import automations_app
from deployments.doctor import check_prefect

deployments_app = typer.Typer(no_args_is_help=True, help="Deployment definitions.")
app.add_typer(deployments_app, name="deployments")
app.add_typer(automations_app, name="automations")
doctor_checks.register(check_prefect)  # `billpay doctor` checks the Prefect API too

try:  # the reporting commands, when present
    from billpay.report_cli import report_app

    app.add_typer(report_app, name="report")
except ImportError:  # pragma: no cover
    pass


@app.command()
def serve(
    only: Annotated[list[str] | None, typer.Option(help="serve only these deployments")] = None,
    limit: Annotated[int, typer.Option(help="max concurrent runner flow runs")] = 10,
    pause_on_stop: Annotated[
        bool,
        typer.Option(
            help="pause the schedules at a clean stop (one machine only: it pauses "
            "them for every machine)"
        ),
    ] = False,
) -> None:
    """Serve every deployment on its schedule from this process (single-machine production):
    the 10-second pipeline in-process, the rest through Prefect's runner."""
    from deployments.serving import enable_heartbeats

    enable_heartbeats()  # before Prefect reads its settings
    from deployments.serving import serve as serve_all

    serve_all(set(only) if only else None, limit=limit, pause_on_stop=pause_on_stop)


def run_tick() -> dict[str, Any]:
    """One pipeline run (every stage once, in order), in this process; tagged like the
    deployment's runs, so the automations watch it too."""
    from prefect import tags

    from flows.pipeline import pipeline

    with tags("billpay"):
        return pipeline()


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
    """Run the pipeline once (every stage, in order), in-process; print the stage summaries."""
    from deployments.serving import enable_heartbeats

    enable_heartbeats()  # a long tick must not look dead to serve's sweep
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
    parallel: Annotated[
        int, typer.Option(help="pipeline runs at once (one's wind-down overlaps the next)")
    ] = 2,
) -> None:
    """Run pipeline ticks back to back (a worker for benchmarks); prints one JSON line per tick
    and a final line with this process's CPU seconds and database statements."""
    import resource
    import threading
    import time

    from deployments.serving import enable_heartbeats

    enable_heartbeats()  # a long tick must not look dead to serve's sweep
    from billpay.store import monitoring
    from tasks.runtime import get_runtime

    get_runtime()  # built in the main thread, where its SIGTERM handler can be installed
    started = time.monotonic()
    stop = threading.Event()
    lock = threading.Lock()
    idle: dict[int, bool] = {}
    ticks = [0]

    def loop(number: int) -> None:
        while not stop.is_set() and time.monotonic() - started < max_seconds:
            try:
                summary = _strip(run_tick())
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # noqa: BLE001 - the API answered 503, or Prefect's
                # Abort (a BaseException): a served deployment would run again at its next
                # slot; so does this loop.
                typer.echo(f"pipeline run failed: {type(exc).__name__}: {exc}", err=True)
                time.sleep(1)
                continue
            busy = sum(int(s.get("claimed", 0)) for s in summary.values() if isinstance(s, dict))
            with lock:
                ticks[0] += 1
                idle[number] = not busy
                typer.echo(json.dumps({"tick": ticks[0], "summary": summary}, default=str))
            if not busy:
                time.sleep(0.5)  # nothing claimable now: wait a little, like a schedule would

    threads = [threading.Thread(target=loop, args=(n,), daemon=True) for n in range(parallel)]
    for thread in threads:
        thread.start()
    while time.monotonic() - started < max_seconds:
        time.sleep(0.5)
        with lock:
            all_idle = len(idle) == parallel and all(idle.values())
        if until_idle and all_idle and not monitoring.work_left(get_runtime().db):
            break
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    idle_cpu = []
    for _ in range(idle_ticks):
        before = _cpu_seconds(resource)
        run_tick()
        idle_cpu.append(_cpu_seconds(resource) - before)
    final = {"done": True, "ticks": ticks[0], "cpu_seconds": _cpu_seconds(resource)}
    final.update(statements=get_runtime().db.stats["statements"], idle_cpu=idle_cpu)
    typer.echo(json.dumps(final))


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
def ui(
    port: Annotated[int, typer.Option(help="port of the UI and API")] = 4200,
) -> None:
    """The Prefect server (and UI) the demo used, its history kept under the data folder, with
    the batching settings every server of this project runs with."""
    import os

    from billpay.config import Settings
    from deployments.services import PREFECT_SERVER_TUNING, prefect_server_command

    home = Settings().data_dir.resolve() / "prefect"
    env = {**os.environ, **PREFECT_SERVER_TUNING, "PREFECT_HOME": str(home)}
    typer.echo(f"Prefect UI on http://127.0.0.1:{port} (history under {home})")
    os.execvpe(prefect_server_command(port)[0], prefect_server_command(port), env)


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
    serve_idle_seconds: Annotated[
        float, typer.Option(help="then: billpay serve idle for this long, its CPU measured")
    ] = 60,
    single_bills: Annotated[
        int, typer.Option(help="then: bills paid one at a time under serve, latency measured")
    ] = 5,
) -> None:
    """Run the pipeline against the sandbox and print throughput, latency, overhead, idle cost
    and correctness counters."""
    from deployments.bench import BenchOptions, print_result, run_bench

    measured = (bills, latency_ms, provider_concurrency, failure_rate, workers, batch_size)
    extra = (json_path, reports_rows, max_seconds, serve_idle_seconds, single_bills)
    result = run_bench(BenchOptions(*measured, *extra))
    print_result(result)


@app.command("bench-api")
def bench_api(
    seconds: Annotated[float, typer.Option(help="length of each run")] = 10,
    rate: Annotated[float, typer.Option(help="open-loop requests per second")] = 100,
    clients: Annotated[int, typer.Option(help="concurrent clients")] = 50,
    closed_seconds: Annotated[
        float | None, typer.Option(help="closed-loop run length (default: --seconds)")
    ] = None,
    json_path: Annotated[str | None, typer.Option("--json", help="write the results here")] = None,
) -> None:
    """Order creation through the HTTP API (POST /api/bills/pay) from concurrent clients: an
    open-loop run at a fixed rate and a closed-loop max-throughput run, with p50/p95/p99."""
    from deployments.bench_api import ApiBenchOptions, print_result, run_api_bench

    opts = ApiBenchOptions(seconds, rate, clients, closed_seconds, json_path=json_path)
    print_result(run_api_bench(opts))


def main() -> None:  # console script
    app()


if __name__ == "__main__":
    main()
