"""``billpay bench``: the pipeline against the sandbox, measured.

A fresh ``billpay_bench`` database, the sandbox in its own process (provider latency and failure
rate as asked), one Prefect server, and ``--workers`` pipeline processes running ticks back to
back (``billpay work``). Prints, and writes as JSON, throughput against the ideal bound,
cNGN-received -> completed latency, per-bill overhead, idle cost and correctness counters.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from billpay.config import Settings
from billpay.store import Database, monitoring
from deployments import prefect_runs
from deployments import services as setup
from deployments.bench_serve import pay_one_bill, serve_phase
from deployments.services import BILLPAY, Services

BENCH_DATABASE = "billpay_bench"
# the sandbox's pay outcomes that did not take the customer's money
_REJECTED = ("fail", "failed", "016", "rejected")


@dataclass(frozen=True)
class BenchOptions:
    bills: int
    latency_ms: int
    provider_concurrency: int
    failure_rate: float
    workers: int
    batch_size: int
    json_path: str | None
    reports_rows: int
    max_seconds: float
    serve_idle_seconds: float = 60
    single_bills: int = 5


@dataclass
class WorkerRun:
    """What the pipeline workers reported (their final lines) and what the server counted."""

    elapsed: float
    finals: list[dict[str, Any]]
    server_cpu: float
    task_runs: int = 0
    pipeline_runs: dict[str, int] = field(default_factory=dict)


def run_bench(opts: BenchOptions) -> dict[str, Any]:
    setup.stop_on_sigterm()
    services = Services(Path(tempfile.mkdtemp(prefix="billpay-bench-")))
    try:
        return _bench(Settings(), services, opts)
    finally:
        services.stop()


def _bench(base: Settings, services: Services, opts: BenchOptions) -> dict[str, Any]:
    env, sandbox, server = _start_services(base, services, opts)
    settings = setup.settings_from_env(env)
    db = Database(
        engine=sa.create_engine(_url(env), pool_size=4, hide_parameters=True), url=_url(env)
    )
    try:
        _log(f"creating {opts.bills} prepaid electricity orders and paying them on the ledger")
        references = _create_and_pay(db, settings, sandbox, opts.bills)
        _log(f"running {opts.workers} pipeline worker(s)")
        run = _run_workers(env, services.logs, opts, server)
        _log("measuring idle cost (10 ticks with nothing to do)")
        idle_cpu = _idle_cost(env)
        result = _measure(db, sandbox, settings, references, opts, run, idle_cpu)
        if opts.serve_idle_seconds or opts.single_bills:
            _log(
                f"billpay serve on the 10-second schedule: {opts.serve_idle_seconds:.0f} s "
                f"idle, then {opts.single_bills} single bills one at a time"
            )
            result["serve"] = serve_phase(env, services, db, settings, sandbox, opts)
        if opts.reports_rows:
            from billpay.store.reports import bench_reports

            _log(f"report generation over {opts.reports_rows:,} provider_attempts rows")
            result["reports"] = bench_reports(db, rows=opts.reports_rows)
    finally:
        db.dispose()
    if opts.json_path:
        Path(opts.json_path).write_text(json.dumps(result, indent=2, default=str))
    return result


def _log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def _url(env: dict[str, str]) -> sa.URL:
    return sa.make_url(env["BILLPAY_DATABASE_URL"])


def _start_services(
    base: Settings, services: Services, opts: BenchOptions
) -> tuple[dict[str, str], str, subprocess.Popen[bytes]]:
    """A fresh database, the sandbox with the asked latency and failure rate, a Prefect server."""
    url = setup.fresh_database(base, BENCH_DATABASE)
    port = setup.free_port()
    env = setup.pipeline_env(
        url,
        port,
        {
            "BILLPAY_PROVIDER_CONCURRENCY": str(opts.provider_concurrency),
            "BILLPAY_BATCH_SIZE": str(opts.batch_size),
            "BILLPAY_DB_POOL_SIZE": str(max(5, opts.provider_concurrency)),
            "BILLPAY_RETRY_BACKOFF_SECONDS": "1,2,4",
            "BILLPAY_REQUERY_BACKOFF_SECONDS": "1,2,4",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        },
    )
    sandbox = services.start_sandbox(
        env,
        port,
        *("--latency-ms", str(opts.latency_ms), "--failure-rate", str(opts.failure_rate)),
    )
    server = services.start_prefect_server(env, services.logs / "prefect", setup.free_port())
    _log(
        f"database {BENCH_DATABASE}, sandbox {sandbox} (latency {opts.latency_ms} ms, failure "
        f"rate {opts.failure_rate}), Prefect API {env['PREFECT_API_URL']}"
    )
    return env, sandbox, server


def _create_and_pay(db: Database, settings: Settings, sandbox: str, count: int) -> list[str]:
    with httpx.Client(base_url=sandbox, timeout=30) as client:
        return [pay_one_bill(db, client) for _ in range(count)]


def _run_workers(
    env: dict[str, str], logs: Path, opts: BenchOptions, server: subprocess.Popen[bytes]
) -> WorkerRun:
    """``--workers`` processes of ``billpay work``, until the pipeline is idle."""
    server_cpu_before = setup.tree_cpu_seconds(server.pid)
    started = time.monotonic()
    since = datetime.now(UTC)
    procs = [
        subprocess.Popen(
            BILLPAY + ["work", "--max-seconds", str(opts.max_seconds)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=(logs / f"worker{i}.log").open("wb"),
            text=True,
        )
        for i in range(opts.workers)
    ]
    outputs = [proc.communicate()[0] for proc in procs]
    elapsed = time.monotonic() - started
    api = env["PREFECT_API_URL"]
    time.sleep(3)  # the server records task runs from events, a moment after they happen
    return WorkerRun(
        task_runs=prefect_runs.task_runs_since(api, since),
        pipeline_runs=prefect_runs.run_states(prefect_runs.flow_runs_since(api, since)),
        elapsed=elapsed,
        finals=[final for out in outputs if (final := _last_json(out))],
        server_cpu=setup.tree_cpu_seconds(server.pid) - server_cpu_before,
    )


def _idle_cost(env: dict[str, str]) -> list[float]:
    """CPU seconds of each of 10 ticks that find nothing to do."""
    idle = subprocess.run(
        BILLPAY + ["work", "--max-seconds", "0", "--idle-ticks", "10"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return (_last_json(idle.stdout) or {}).get("idle_cpu", [])


def _last_json(text: str) -> dict[str, Any] | None:
    for line in reversed(text.splitlines()):
        if line.startswith('{"done"'):
            return json.loads(line)
    return None


def _measure(
    db: Database,
    sandbox: str,
    settings: Settings,
    references: list[str],
    opts: BenchOptions,
    run: WorkerRun,
    idle_cpu: list[float],
) -> dict[str, Any]:
    counts = monitoring.pipeline_counts(db)
    settled = counts.states.get("completed", 0) + counts.states.get("refunded", 0)
    latency = counts.latency
    return {
        "settings": {
            k: v
            for k, v in asdict(opts).items()
            if k not in ("json_path", "reports_rows", "max_seconds")
        },
        **_throughput(counts, opts, run.elapsed, settled),
        "provider_calls": counts.provider_calls,
        "latency_s": {
            "p50": _r(latency.p50),
            "p95": _r(latency.p95),
            "p99": _r(latency.p99),
            "max": _r(latency.max),
            "completed": latency.completed,
        },
        "per_bill": _per_bill(run, settled),
        "idle_cpu_s_per_tick": round(sum(idle_cpu) / len(idle_cpu), 3) if idle_cpu else None,
        "worker_runs": run.pipeline_runs,
        "correctness": {
            **_paid_and_refunded_once(sandbox, settings),
            "bills_not_settled": len(references) - settled,
            "states": counts.states,
        },
    }


def _throughput(
    counts: monitoring.PipelineCounts, opts: BenchOptions, elapsed: float, settled: int
) -> dict[str, Any]:
    """Settled bills per second against the bound the busiest provider's latency sets."""
    busiest = max(counts.provider_calls.values()) if counts.provider_calls else 0
    ideal_seconds = busiest * (opts.latency_ms / 1000) / opts.provider_concurrency
    if counts.first_received and counts.last_settled:
        window = (counts.last_settled - counts.first_received).total_seconds()
    else:
        window = elapsed
    throughput = settled / window if window else 0.0
    ideal = settled / ideal_seconds if ideal_seconds else 0.0
    return {
        "throughput_bills_per_s": round(throughput, 2),
        "ideal_bills_per_s": round(ideal, 2),
        "throughput_ratio": round(throughput / ideal, 3) if ideal else None,
        "processing_window_s": round(window, 2),
        "wall_s": round(elapsed, 2),
    }


def _per_bill(run: WorkerRun, settled: int) -> dict[str, float]:
    """What one settled bill cost: CPU, Prefect server CPU, statements, task runs."""
    per = max(settled, 1)
    task_runs = run.task_runs  # as the Prefect server recorded them, stage tasks included
    return {
        "cpu_s": round(sum(f["cpu_seconds"] for f in run.finals) / per, 4),
        "prefect_server_cpu_s": round(run.server_cpu / per, 4),
        "db_statements": round(sum(f["statements"] for f in run.finals) / per, 1),
        "prefect_task_runs": round(task_runs / per, 2),
    }


def _paid_and_refunded_once(sandbox: str, settings: Settings) -> dict[str, int]:
    """Correctness from the outside: the providers' own call log and the ledger."""
    sandbox_calls = httpx.get(
        f"{sandbox}/_sandbox/calls", params={"operation": "pay"}, timeout=60
    ).json()
    accepted = Counter(
        c["reference"][12:22]
        for c in sandbox_calls
        if c.get("reference") and c.get("outcome") not in _REJECTED
    )
    ledger = httpx.get(
        f"{sandbox}/horizon/accounts/{settings.system_account}/payments",
        params={"limit": 200, "order": "desc", "join": "transactions"},
        timeout=60,
    ).json()
    refund_memos = Counter(
        r["transaction"].get("memo")
        for r in ledger["_embedded"]["records"]
        if r.get("from") == settings.system_account
    )
    return {
        "bills_paid_more_than_once": sum(1 for n in accepted.values() if n > 1),
        "refunds_sent_more_than_once": sum(1 for n in refund_memos.values() if n > 1),
    }


def _r(value: Any) -> float | None:
    return round(float(value), 2) if value is not None else None


def print_result(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    serve = result.get("serve", {})
    table = Table(title="billpay bench")
    table.add_column("metric")
    table.add_column("value")
    flat = {
        "bills / latency / concurrency / workers": "{bills} / {latency_ms} ms / {provider_concurrency} / {workers}".format(
            **result["settings"]
        ),
        "throughput (bills/s)": result["throughput_bills_per_s"],
        "ideal bound (bills/s)": result["ideal_bills_per_s"],
        "ratio": result["throughput_ratio"],
        "latency p50/p95/p99/max (s)": "{p50} / {p95} / {p99} / {max}".format(
            **result["latency_s"]
        ),
        "CPU s per bill (pipeline workers)": result["per_bill"]["cpu_s"],
        "CPU s per bill (Prefect server)": result["per_bill"]["prefect_server_cpu_s"],
        "DB statements per bill": result["per_bill"]["db_statements"],
        "Prefect task runs per bill": result["per_bill"]["prefect_task_runs"],
        "idle CPU s per tick (in-process)": result["idle_cpu_s_per_tick"],
        "pipeline runs during the run (workers)": result["worker_runs"],
        "serve: idle CPU s per 10 s (all 10-second work)": serve.get("idle_cpu_s_per_10s"),
        "serve: idle Prefect server CPU s per 10 s": serve.get("idle_prefect_server_cpu_s_per_10s"),
        "serve: single bill ledger -> completed p95 (s)": serve.get("single_bill_p95_s"),
        "serve: single bills (s)": serve.get("single_bill_ledger_to_completed_s"),
        "serve: pipeline runs by state": serve.get("pipeline_runs"),
        "serve: runs left Pending/Running after stop": serve.get("left_pending_or_running"),
        "bills paid more than once": result["correctness"]["bills_paid_more_than_once"],
        "refunds sent more than once": result["correctness"]["refunds_sent_more_than_once"],
        "bills not settled": result["correctness"]["bills_not_settled"],
    }
    if "reports" in result:
        flat["reports over N attempts"] = json.dumps(result["reports"], default=str)
    for key, value in flat.items():
        table.add_row(key, str(value))
    Console().print(table)
