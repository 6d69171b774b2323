"""``billpay bench``: the pipeline against the sandbox, measured.

A fresh ``billpay_bench`` database, the sandbox in its own process (provider latency and failure
rate as asked), one Prefect server, and ``--workers`` pipeline processes running ticks back to
back (``billpay work``). Prints, and writes as JSON, throughput against the ideal bound,
cNGN-received -> completed latency, per-bill overhead, idle cost and correctness counters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from billpay.config import Settings
from billpay.money import kobo_to_cngn
from billpay.orders import BillType
from billpay.store import bills as bill_store
from billpay.store import engine as db_engine
from billpay.store.migrations import upgrade
from deployments.demo import Services, _free_port, _wait_http, cpu_seconds_of, stop_on_sigterm

BENCH_DATABASE = "billpay_bench"


def run_bench(
    *,
    bills: int,
    latency_ms: int,
    provider_concurrency: int,
    failure_rate: float,
    workers: int,
    batch_size: int,
    json_path: str | None,
    reports_rows: int,
    max_seconds: float,
) -> dict[str, Any]:
    stop_on_sigterm()
    base = Settings()
    workdir = Path(tempfile.mkdtemp(prefix="billpay-bench-"))
    services = Services()
    try:
        return _bench(
            base,
            workdir,
            services,
            bills=bills,
            latency_ms=latency_ms,
            provider_concurrency=provider_concurrency,
            failure_rate=failure_rate,
            workers=workers,
            batch_size=batch_size,
            json_path=json_path,
            reports_rows=reports_rows,
            max_seconds=max_seconds,
        )
    finally:
        services.stop()


def _bench(base: Settings, workdir: Path, services: Services, **p: Any) -> dict[str, Any]:
    log = lambda msg: print(f"[bench] {msg}", flush=True)  # noqa: E731
    if base.database_url:
        url = db_engine.normalise_url(base.database_url).set(database=BENCH_DATABASE)
    else:
        url = db_engine.embedded_url(db_engine.start_embedded(base.pgdata_dir), BENCH_DATABASE)
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{BENCH_DATABASE}"'))
    admin.dispose()
    upgrade(url)

    from billpay.sandbox.app import sandbox_env

    port = _free_port()
    env = dict(os.environ)
    env.update(sandbox_env(port))
    env.update(
        {
            "BILLPAY_DATABASE_URL": url.render_as_string(hide_password=False),
            "BILLPAY_PROVIDER_CONCURRENCY": str(p["provider_concurrency"]),
            "BILLPAY_BATCH_SIZE": str(p["batch_size"]),
            "BILLPAY_DB_POOL_SIZE": str(max(5, p["provider_concurrency"])),
            "BILLPAY_RETRY_BACKOFF_SECONDS": "1,2,4",
            "BILLPAY_REQUERY_BACKOFF_SECONDS": "1,2,4",
            "PREFECT_HOME": str(workdir / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )
    cli = [sys.executable, "-m", "deployments.cli"]
    services.start(
        "sandbox",
        cli
        + [
            "sandbox",
            "--port",
            str(port),
            "--latency-ms",
            str(p["latency_ms"]),
            "--failure-rate",
            str(p["failure_rate"]),
        ],
        env,
        workdir / "sandbox.log",
    )
    sandbox = f"http://127.0.0.1:{port}"
    _wait_http(f"{sandbox}/_sandbox/calls", 30)
    api_port = _free_port()
    env["PREFECT_API_URL"] = f"http://127.0.0.1:{api_port}/api"
    prefect = str(Path(sys.executable).parent / "prefect")
    server = services.start(
        "prefect-server",
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(api_port)],
        env,
        workdir / "prefect-server.log",
    )
    _wait_http(f"http://127.0.0.1:{api_port}/api/health", 90)
    log(
        f"database {BENCH_DATABASE}, sandbox {sandbox} (latency {p['latency_ms']} ms, failure rate "
        f"{p['failure_rate']}), Prefect API {env['PREFECT_API_URL']}"
    )

    settings = Settings(
        **{
            k.removeprefix("BILLPAY_").lower(): v
            for k, v in env.items()
            if k.startswith("BILLPAY_")
        }
    )
    db = db_engine.Database(engine=sa.create_engine(url, pool_size=4), url=url)
    log(f"creating {p['bills']} prepaid electricity orders and paying them on the sandbox ledger")
    references = _create_and_pay(db, settings, sandbox, p["bills"])

    log(f"running {p['workers']} pipeline worker(s)")
    server_cpu_before = _tree_cpu(server.pid)
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            cli + ["work", "--max-seconds", str(p["max_seconds"])],
            env=env,
            stdout=subprocess.PIPE,
            stderr=(workdir / f"worker{i}.log").open("wb"),
            text=True,
        )
        for i in range(p["workers"])
    ]
    outputs = [proc.communicate()[0] for proc in procs]
    elapsed = time.monotonic() - started
    p["server_cpu"] = _tree_cpu(server.pid) - server_cpu_before
    finals = [_last_json(out) for out in outputs]
    tick_lines = [
        json.loads(line)
        for out in outputs
        for line in out.splitlines()
        if line.startswith('{"tick"')
    ]

    log("measuring idle cost (10 ticks with nothing to do)")
    idle = subprocess.run(
        cli + ["work", "--max-seconds", "0", "--idle-ticks", "10"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    idle_cpu = (_last_json(idle.stdout) or {}).get("idle_cpu", [])

    result = _measure(db, sandbox, settings, references, p, elapsed, finals, tick_lines, idle_cpu)
    if p["reports_rows"]:
        from billpay.store.reports import bench_reports

        log(f"report generation over {p['reports_rows']:,} provider_attempts rows")
        result["reports"] = bench_reports(db, rows=p["reports_rows"])
    db.dispose()
    if p["json_path"]:
        Path(p["json_path"]).write_text(json.dumps(result, indent=2, default=str))
    return result


def _create_and_pay(db: Any, settings: Settings, sandbox: str, count: int) -> list[str]:
    from datetime import timedelta

    references = []
    amount_kobo = 100_000
    with httpx.Client(base_url=sandbox, timeout=30) as client:
        for _ in range(count):
            row = bill_store.create_order(
                db,
                bill_type=BillType.ELECTRICITY,
                biller="ikeja-electric",
                account_number="1111111111111",
                account_type="prepaid",
                amount_kobo=amount_kobo,
                fee_kobo=0,
                amount_cngn=kobo_to_cngn(amount_kobo),
                phone="08011111111",
                ttl=timedelta(hours=2),
            )
            references.append(row["reference"])
            client.post(
                "/horizon/_sandbox/payments",
                json={
                    "amount": f"{kobo_to_cngn(amount_kobo):.7f}",
                    "memo": f"BILL-{row['reference']}",
                },
            ).raise_for_status()
    return references


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (the Prefect server runs a few)."""
    total = cpu_seconds_of(pid)
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for child_pid in child.read_text().split():
            total += _tree_cpu(int(child_pid))
    return total


def _last_json(text: str) -> dict[str, Any] | None:
    for line in reversed(text.splitlines()):
        if line.startswith('{"done"'):
            return json.loads(line)
    return None


def _measure(
    db: Any,
    sandbox: str,
    settings: Settings,
    references: list[str],
    p: dict[str, Any],
    elapsed: float,
    finals: list[dict[str, Any] | None],
    ticks: list[dict[str, Any]],
    idle_cpu: list[float],
) -> dict[str, Any]:
    with db.connect() as conn:
        states = dict(
            conn.execute(
                sa.text("SELECT status, count(*) FROM bill_payments GROUP BY status")
            ).all()
        )
        latency = conn.execute(
            sa.text(
                """
            WITH received AS (
                SELECT b.id, min(e.at) AS at FROM bill_payments b
                JOIN bill_payment_events e ON e.bill_payment_id = b.id AND e.to_state = 'cngn_received'
                GROUP BY b.id)
            SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY s),
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY s), max(s), count(*)
            FROM (SELECT extract(epoch FROM b.completed_at - r.at) AS s
                  FROM bill_payments b JOIN received r ON r.id = b.id
                  WHERE b.status = 'completed') t
            """
            )
        ).one()
        calls = dict(
            conn.execute(
                sa.text("SELECT provider, count(*) FROM provider_attempts GROUP BY provider")
            ).all()
        )
        first_settle = conn.execute(
            sa.text(
                "SELECT min(e.at), max(coalesce(b.completed_at, b.refunded_at)) FROM bill_payments b"
                " JOIN bill_payment_events e ON e.bill_payment_id = b.id AND e.to_state = 'cngn_received'"
            )
        ).one()
    # correctness from the outside: the providers' own call log and the ledger
    sandbox_calls = httpx.get(
        f"{sandbox}/_sandbox/calls", params={"operation": "pay"}, timeout=60
    ).json()
    accepted = Counter(
        c["reference"][12:22]
        for c in sandbox_calls
        if c.get("reference") and c.get("outcome") not in ("fail", "failed", "016", "rejected")
    )
    double_paid = sum(1 for n in accepted.values() if n > 1)
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
    double_refunded = sum(1 for n in refund_memos.values() if n > 1)

    settled = states.get("completed", 0) + states.get("refunded", 0)
    busiest = max(calls.values()) if calls else 0
    ideal_seconds = busiest * (p["latency_ms"] / 1000) / p["provider_concurrency"]
    window = (
        (first_settle[1] - first_settle[0]).total_seconds()
        if first_settle[0] and first_settle[1]
        else elapsed
    )
    throughput = settled / window if window else 0.0
    ideal_throughput = settled / ideal_seconds if ideal_seconds else 0.0
    cpu = sum(f["cpu_seconds"] for f in finals if f)
    statements = sum(f["statements"] for f in finals if f)
    task_runs = sum(
        s.get("claimed", 0)
        for t in ticks
        for k, s in t["summary"].items()
        if k in ("verify", "pay", "requery", "retry", "refund", "notify") and isinstance(s, dict)
    )
    return {
        "settings": {
            k: p[k]
            for k in (
                "bills",
                "latency_ms",
                "provider_concurrency",
                "failure_rate",
                "workers",
                "batch_size",
            )
        },
        "throughput_bills_per_s": round(throughput, 2),
        "ideal_bills_per_s": round(ideal_throughput, 2),
        "throughput_ratio": round(throughput / ideal_throughput, 3) if ideal_throughput else None,
        "processing_window_s": round(window, 2),
        "wall_s": round(elapsed, 2),
        "provider_calls": calls,
        "latency_s": {
            "p50": _r(latency[0]),
            "p95": _r(latency[1]),
            "p99": _r(latency[2]),
            "max": _r(latency[3]),
            "completed": latency[4],
        },
        "per_bill": {
            "cpu_s": round(cpu / max(settled, 1), 4),
            "prefect_server_cpu_s": round(p.get("server_cpu", 0.0) / max(settled, 1), 4),
            "db_statements": round(statements / max(settled, 1), 1),
            "prefect_task_runs": round(task_runs / max(settled, 1), 2),
        },
        "idle_cpu_s_per_tick": round(sum(idle_cpu) / len(idle_cpu), 3) if idle_cpu else None,
        "correctness": {
            "bills_paid_more_than_once": double_paid,
            "refunds_sent_more_than_once": double_refunded,
            "bills_not_settled": len(references) - settled,
            "states": states,
        },
    }


def _r(value: Any) -> float | None:
    return round(float(value), 2) if value is not None else None


def print_result(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

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
        "idle CPU s per tick": result["idle_cpu_s_per_tick"],
        "bills paid more than once": result["correctness"]["bills_paid_more_than_once"],
        "refunds sent more than once": result["correctness"]["refunds_sent_more_than_once"],
        "bills not settled": result["correctness"]["bills_not_settled"],
    }
    if "reports" in result:
        flat["reports over N attempts"] = json.dumps(result["reports"], default=str)
    for key, value in flat.items():
        table.add_row(key, str(value))
    Console().print(table)
