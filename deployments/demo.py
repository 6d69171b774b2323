"""``make demo``: the main job end to end on embedded defaults.

Starts the embedded PostgreSQL (a fresh ``billpay_demo`` database), the sandbox (providers and
Horizon), a local Prefect server and ``billpay serve`` (the real deployments on their schedules);
creates a mixed batch of orders, pays them like users would (some wrongly), waits for every
order to settle, prints the outcome per order and the reports, and exits 0 only when every
order ended as its scenario expects.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from rich.console import Console
from rich.live import Live
from rich.table import Table

from billpay.config import Settings
from billpay.intake import OrderRequest, create_order
from billpay.store import engine as db_engine
from billpay.store.migrations import upgrade

console = Console(width=None if sys.stdout.isatty() else 150)
DEMO_DATABASE = "billpay_demo"
UI_PORT = 4200


@dataclass
class Scenario:
    name: str
    request: OrderRequest | None  # None: a payment with no order behind it
    expect: str  # final bill state (or refund status for an orphan payment)
    pay_amount: str | None = None  # None: exactly what the order asks
    memo: str | None = None  # None: the order's memo
    expire_first: bool = False
    reference: str | None = None
    memo_sent: str | None = None
    paid_at: float | None = None
    settled_at: float | None = None
    final: str = "-"
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def scenarios() -> list[Scenario]:
    def req(bill_type: str, biller: str, account: str, amount: str, **kw: Any) -> OrderRequest:
        return OrderRequest(
            bill_type=bill_type,
            biller=biller,
            account=account,
            amount=amount,
            phone=kw.pop("phone", "08011111111"),
            **kw,
        )

    return [
        Scenario(
            "electricity prepaid",
            req("electricity", "ikeja-electric", "1111111111111", "5000", account_type="prepaid"),
            "completed",
        ),
        Scenario(
            "electricity postpaid",
            req("electricity", "eko-electric", "1010101010101", "12000", account_type="postpaid"),
            "completed",
        ),
        Scenario(
            "airtime MTN",
            req("airtime", "mtn", "08031234567", "500", phone="08031234567"),
            "completed",
        ),
        Scenario(
            "airtime Airtel",
            req("airtime", "airtel", "08021234567", "200", phone="08021234567"),
            "completed",
        ),
        Scenario(
            "airtime Glo",
            req("airtime", "glo", "08051234567", "1000", phone="08051234567"),
            "completed",
        ),
        Scenario(
            "airtime 9mobile",
            req("airtime", "9mobile", "08091234567", "100", phone="08091234567"),
            "completed",
        ),
        Scenario(
            "data MTN 1GB",
            req(
                "data",
                "mtn-data",
                "08061234567",
                "1000",
                product="mtn-1gb-1000",
                phone="08061234567",
            ),
            "completed",
        ),
        Scenario(
            "cable DStv Padi",
            req("cable_tv", "dstv", "1212121212", "2950", product="dstv-padi"),
            "completed",
        ),
        Scenario("water Lagos", req("water", "lagos-water", "12345678", "3500"), "completed"),
        Scenario(
            "meter the provider rejects",
            req("electricity", "ikeja-electric", "1234567890123", "2500", account_type="prepaid"),
            "refunded",
        ),
        Scenario(
            "provider leaves it pending",
            req("electricity", "kano-electric", "2010000000000", "4000", account_type="prepaid"),
            "completed",
        ),
        Scenario(
            "provider times out",
            req("electricity", "abuja-electric", "3000000000000", "3000", account_type="prepaid"),
            "completed",
        ),
        Scenario(
            "wrong amount sent",
            req("airtime", "mtn", "08139876543", "750", phone="08139876543"),
            "refunded",
            pay_amount="705.0000000",
        ),
        Scenario(
            "late payment, order expired",
            req("airtime", "glo", "08159876543", "400", phone="08159876543"),
            "expired",
            expire_first=True,
        ),
        Scenario(
            "unknown memo",
            None,
            "refund confirmed",
            pay_amount="250.0000000",
            memo="BILL-NOTANORDER",
        ),
    ]


def _free_port(preferred: int | None = None) -> int:
    if preferred:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up within {seconds:.0f}s")


class Services:
    """The processes the demo starts, stopped in reverse order however the demo ends."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, args: list[str], env: dict[str, str], log: Path
    ) -> subprocess.Popen[bytes]:
        handle = log.open("wb")
        proc = subprocess.Popen(
            args, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append((name, proc))
        return proc

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def stop_on_sigterm() -> None:
    """SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C so the services are stopped."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU of a live process (Linux /proc), for the benchmark."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_demo(time_limit: int = 150) -> int:
    stop_on_sigterm()
    started = time.monotonic()
    base = Settings()
    data_dir = base.data_dir.resolve()
    logs = data_dir / "demo-logs"
    logs.mkdir(parents=True, exist_ok=True)
    services = Services()
    try:
        return _run(base, data_dir, logs, services, started, time_limit)
    finally:
        services.stop()


def _run(
    base: Settings, data_dir: Path, logs: Path, services: Services, started: float, time_limit: int
) -> int:
    console.rule("[bold]billpay demo")
    # 1. the database: a fresh demo database on the embedded server (or the configured one)
    if base.database_url:
        url = db_engine.normalise_url(base.database_url).set(database=DEMO_DATABASE)
    else:
        console.print(f"starting embedded PostgreSQL under {base.pgdata_dir}")
        url = db_engine.embedded_url(db_engine.start_embedded(base.pgdata_dir), DEMO_DATABASE)
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{DEMO_DATABASE}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{DEMO_DATABASE}"'))
    admin.dispose()
    upgrade(url)
    console.print(f"database {DEMO_DATABASE} ready (schema applied)")

    # 2. the sandbox: providers + Horizon on loopback
    from billpay.sandbox.app import sandbox_env

    sandbox_port = _free_port(8765)
    env = dict(os.environ)
    env.update(sandbox_env(sandbox_port))
    env.update(
        {
            "BILLPAY_DATABASE_URL": url.render_as_string(hide_password=False),
            "BILLPAY_PROVIDER_READ_TIMEOUT_SECONDS": "5",
            "BILLPAY_SANDBOX_TIMEOUT_SECONDS": "8",
            "BILLPAY_REQUERY_BACKOFF_SECONDS": "5,10,20",
            "PYTHONUNBUFFERED": "1",
        }
    )
    billpay = [sys.executable, "-m", "deployments.cli"]
    services.start(
        "sandbox", billpay + ["sandbox", "--port", str(sandbox_port)], env, logs / "sandbox.log"
    )
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    _wait_http(f"{sandbox_url}/_sandbox/calls", 30)
    console.print(f"sandbox (Flutterwave, VTpass, Horizon) on {sandbox_url}")

    # 3. Prefect: a local server keeping its history under the data folder, then `billpay serve`
    prefect_home = data_dir / "prefect"
    env["PREFECT_HOME"] = str(prefect_home)
    api_port = _free_port(UI_PORT)
    env["PREFECT_API_URL"] = f"http://127.0.0.1:{api_port}/api"
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or "prefect"
    services.start(
        "prefect-server",
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(api_port)],
        env,
        logs / "prefect-server.log",
    )
    _wait_http(f"http://127.0.0.1:{api_port}/api/health", 90)
    console.print(f"Prefect server on http://127.0.0.1:{api_port} (UI)")
    services.start("serve", billpay + ["serve"], env, logs / "serve.log")
    console.print(
        "serving the deployments on their schedules (ingest-payments, process-bills, "
        "process-refunds, dispatch-notifications every 10 s; expire-orders every minute)"
    )

    # 4. orders and the users' payments
    settings = Settings(
        **{
            k.removeprefix("BILLPAY_").lower(): v
            for k, v in env.items()
            if k.startswith("BILLPAY_") and k != "BILLPAY_SANDBOX_TIMEOUT_SECONDS"
        }
    )
    db = db_engine.Database(engine=sa.create_engine(url), url=url)
    plan = scenarios()
    for item in plan:
        if item.request is None:
            continue
        item.reference = create_order(db, settings, item.request)["reference"]
    expired = [s.reference for s in plan if s.expire_first]
    with db.begin() as conn:  # these users come back after the order's 10 minutes ran out
        conn.execute(
            sa.text(
                "UPDATE bill_payments SET expires_at = now() - interval '1 second'"
                " WHERE reference = ANY(:refs)"
            ),
            {"refs": expired},
        )
    with httpx.Client(base_url=sandbox_url, timeout=10) as client:
        for item in plan:
            row = _order_row(db, item.reference) if item.reference else None
            amount = item.pay_amount or f"{row['amount_cngn']:.7f}"
            memo = item.memo or f"BILL-{item.reference}"
            client.post(
                "/horizon/_sandbox/payments", json={"amount": amount, "memo": memo}
            ).raise_for_status()
            item.memo_sent = memo
            item.paid_at = time.monotonic()
    console.print(
        f"created {sum(1 for s in plan if s.reference)} orders and sent {len(plan)} cNGN payments"
    )

    # 5. wait for every order to settle, with a progress display
    deadline = started + time_limit
    with Live(_progress_table(plan, started), console=console, refresh_per_second=2) as live:
        while time.monotonic() < deadline:
            _refresh(db, plan)
            live.update(_progress_table(plan, started))
            if all(s.final == s.expect for s in plan):
                break
            if any(proc.poll() is not None for _, proc in services.procs):
                console.print("[red]a service exited early; see " + str(logs))
                break
            time.sleep(1)
    _refresh(db, plan)

    # 6. results
    console.print(_final_table(plan))
    for report in ("success-rate", "provider-performance"):
        console.rule(f"report {report} (last hour)")
        out = subprocess.run(
            billpay + ["report", report, "--window", "1h"],
            env={**env, "COLUMNS": "150"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        console.print(out.stdout or out.stderr)
    good = sum(1 for s in plan if s.final == s.expect)
    elapsed = time.monotonic() - started
    console.rule()
    console.print(f"{good}/{len(plan)} scenarios ended as expected in {elapsed:.0f}s. Logs: {logs}")
    console.print(
        f"Prefect UI: run [bold]make ui[/] and open http://127.0.0.1:{UI_PORT} "
        "(Runs: one flow run per deployment every 10 s; task runs are named after the "
        "bill reference, e.g. pay-<reference>)"
    )
    db.dispose()
    return 0 if good == len(plan) else 1


def _order_row(db: Any, reference: str) -> dict[str, Any]:
    from billpay.store import bills

    row = bills.get_by_reference(db, reference)
    assert row is not None
    return row


def _refresh(db: Any, plan: list[Scenario]) -> None:
    with db.connect() as conn:
        for item in plan:
            if item.reference:
                row = (
                    conn.execute(
                        sa.text(
                            "SELECT b.status, b.token, b.updated_at, r.tx_hash, r.status AS refund_status,"
                            " r.reason FROM bill_payments b LEFT JOIN refunds r ON r.incoming_payment_id ="
                            " (SELECT id FROM incoming_payments WHERE memo = :memo ORDER BY id LIMIT 1)"
                            " WHERE b.reference = :ref"
                        ),
                        {"ref": item.reference, "memo": item.memo_sent},
                    )
                    .mappings()
                    .first()
                )
                final = row["status"]
                if (
                    item.expect == "expired"
                    and final == "expired"
                    and row["refund_status"] != "confirmed"
                ):
                    final = "expired (refund pending)"
                item.detail = _detail(row)
            else:
                row = (
                    conn.execute(
                        sa.text(
                            "SELECT r.status AS refund_status, r.tx_hash, r.reason FROM incoming_payments p"
                            " LEFT JOIN refunds r ON r.incoming_payment_id = p.id WHERE p.memo = :memo"
                        ),
                        {"memo": item.memo_sent},
                    )
                    .mappings()
                    .first()
                )
                final = (
                    f"refund {row['refund_status']}" if row and row["refund_status"] else "waiting"
                )
                if final == "refund confirmed":
                    pass
                item.detail = _detail(row) if row else ""
            if final != item.final:
                item.final = final
                item.settled_at = time.monotonic() if final == item.expect else None


def _detail(row: Any) -> str:
    from billpay.tokens import format_token

    if row.get("token"):
        return f"token {format_token(row['token'])}"
    if row.get("tx_hash"):
        return f"refund {row['tx_hash'][:16]}… ({row.get('reason')})"
    return ""


def _progress_table(plan: list[Scenario], started: float) -> Table:
    table = Table(title=f"waiting for orders to settle ({time.monotonic() - started:.0f}s)")
    table.add_column("scenario")
    table.add_column("reference")
    table.add_column("state")
    for item in plan:
        mark = "[green]" if item.final == item.expect else "[yellow]"
        table.add_row(item.name, item.reference or "-", f"{mark}{item.final}")
    return table


def _final_table(plan: list[Scenario]) -> Table:
    table = Table(title="billpay demo: every order")
    for column in (
        "reference",
        "bill type",
        "scenario",
        "final state",
        "expected",
        "token / refund",
        "paid -> settled",
    ):
        table.add_column(column)
    for item in plan:
        bill_type = str(item.request.bill_type) if item.request else "(no order)"
        took = f"{item.settled_at - item.paid_at:.1f}s" if item.settled_at and item.paid_at else "-"
        ok = "[green]" if item.final == item.expect else "[red]"
        table.add_row(
            item.reference or item.memo_sent or "-",
            bill_type,
            item.name,
            f"{ok}{item.final}",
            item.expect,
            item.detail,
            took,
        )
    return table


if __name__ == "__main__":  # pragma: no cover
    threading.excepthook = lambda args: None
    sys.exit(run_demo())
