"""The benchmark's second half: ``billpay serve`` on its real 10-second schedule. Measures
the idle cost of all 10-second work (the serve process and anything it spawns), the latency
of single bills paid one at a time (ledger -> completed, what a user waits), and what the
Prefect server recorded: pipeline runs per state, and runs left Pending or Running after a
clean stop."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from billpay.config import Settings
from billpay.money import kobo_to_cngn
from billpay.orders import BillType
from billpay.store import Database
from billpay.store import bills as bill_store
from deployments import prefect_runs
from deployments import services as setup
from deployments.executor import nearest_rank
from deployments.services import BILLPAY, Services

# NGN 900 each: 1000 bench bills and the single bills after them fit the sandbox user's
# 1,000,000 cNGN.
AMOUNT_KOBO = 90_000


def pay_one_bill(db: Database, client: httpx.Client) -> str:
    """A prepaid electricity order, paid on the sandbox ledger with its memo."""
    row = bill_store.create_order(
        db,
        bill_type=BillType.ELECTRICITY,
        biller="ikeja-electric",
        account_number="1111111111111",
        account_type="prepaid",
        amount_kobo=AMOUNT_KOBO,
        fee_kobo=0,
        amount_cngn=kobo_to_cngn(AMOUNT_KOBO),
        phone="08011111111",
        ttl=timedelta(hours=2),
    )
    client.post(
        "/horizon/_sandbox/payments",
        json={"amount": f"{kobo_to_cngn(AMOUNT_KOBO):.7f}", "memo": f"BILL-{row['reference']}"},
    ).raise_for_status()
    return str(row["reference"])


def serve_phase(
    env: dict[str, str],
    services: Services,
    db: Database,
    settings: Settings,
    sandbox: str,
    opts: Any,
) -> dict[str, Any]:
    api = env["PREFECT_API_URL"]
    since = datetime.now(UTC)
    serve = services.start("serve", BILLPAY + ["serve", "--only", "pipeline"], env)
    first = _wait_for_completed_pipeline_run(api, since, seconds=90)
    server = next(proc for name, proc in services.procs if name == "prefect-server")
    cpu_before, started = setup.tree_cpu_seconds(serve.pid), time.monotonic()
    server_before = setup.tree_cpu_seconds(server.pid)
    time.sleep(opts.serve_idle_seconds)
    tens = (time.monotonic() - started) / 10
    idle_per_10s = (setup.tree_cpu_seconds(serve.pid) - cpu_before) / tens
    server_per_10s = (setup.tree_cpu_seconds(server.pid) - server_before) / tens
    latencies = _single_bills(db, sandbox, opts.single_bills)
    os.killpg(serve.pid, signal.SIGTERM)
    serve.wait(timeout=60)
    time.sleep(2)
    runs = prefect_runs.flow_runs_since(api, since)
    ordered = sorted(latencies)
    return {
        "first_run_completed_after_s": first,
        "idle_cpu_s_per_10s": round(idle_per_10s, 3),
        "idle_prefect_server_cpu_s_per_10s": round(server_per_10s, 3),
        "single_bill_ledger_to_completed_s": [round(v, 2) for v in latencies],
        "single_bill_p95_s": round(nearest_rank(ordered, 0.95), 2) if ordered else None,
        "pipeline_runs": prefect_runs.run_states(runs, "pipeline"),
        "left_pending_or_running": prefect_runs.unfinished(runs),
    }


def _wait_for_completed_pipeline_run(api: str, since: datetime, seconds: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        states = prefect_runs.run_states(prefect_runs.flow_runs_since(api, since), "pipeline")
        if states.get("Completed"):
            return round(time.monotonic() - started, 1)
        time.sleep(1)
    return None


def _single_bills(db: Database, sandbox: str, count: int, interval: float = 10) -> list[float]:
    """Each bill paid on the ledger, then waited for: seconds until completed. A bill completes
    just after a tick starts, so waiting i/count of an interval before the next payment lands
    the payments evenly over the 10-second interval (early, mid, just missed a tick)."""
    out: list[float] = []
    with httpx.Client(base_url=sandbox, timeout=30) as client:
        for number in range(count):
            time.sleep(interval * (number + 0.5) / count)
            paid_at = datetime.now(UTC)
            reference = pay_one_bill(db, client)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                row = bill_store.get_by_reference(db, reference)
                if row and row["status"] == "completed" and row["completed_at"]:
                    out.append((row["completed_at"] - paid_at).total_seconds())
                    break
                time.sleep(0.2)
    return out
