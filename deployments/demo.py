"""``make demo``: the main job end to end on embedded defaults.

Starts the embedded PostgreSQL (a fresh ``billpay_demo`` database), the sandbox (providers and
Horizon), a local Prefect server, ``billpay serve`` (the real deployments on their schedules) and
the HTTP API (``billpay api``, with a demo client); creates a mixed batch of orders, pays them
like users would (some wrongly), waits for every order to settle, prints the outcome per order
and the reports, and exits 0 only when every order ended as its scenario expects.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from rich.console import Console
from rich.live import Live
from rich.table import Table
from sqlalchemy.engine import URL

from billpay.api import clients
from billpay.config import Settings
from billpay.intake import OrderRequest
from billpay.store import Database, monitoring
from billpay.store import catalogue as catalogue_store
from billpay.store import engine as db_engine
from deployments import demo_prefect
from deployments.services import (
    BILLPAY,
    Services,
    free_port,
    fresh_database,
    pipeline_env,
    settings_from_env,
    stop_on_sigterm,
)

console = Console(width=None if sys.stdout.isatty() else 150)
DEMO_DATABASE = "billpay_demo"
UI_PORT = 4200
API_PORT = 8000  # preferred; any free port when taken
DEMO_CLIENT = "demo-wallet"
NEW_PADI_PRICE = "3100"  # naira: what the sandbox's VTpass lists DStv Padi at during the demo
DEMO_ENV = {
    "BILLPAY_PROVIDER_READ_TIMEOUT_SECONDS": "5",
    "BILLPAY_SANDBOX_TIMEOUT_SECONDS": "8",
    "BILLPAY_REQUERY_BACKOFF_SECONDS": "5,10,20",
    "PYTHONUNBUFFERED": "1",
}


@dataclass
class Scenario:
    name: str
    request: OrderRequest | None  # None: a payment with no order behind it
    expect: str  # final bill state (or refund status for an orphan payment)
    pay_amount: str | None = None  # None: exactly what the order asks
    memo: str | None = None  # None: the order's memo
    expire_first: bool = False
    # How the user pays: "memo" (text memo BILL-<ref>), "muxed" (to the order's M-address, no
    # memo) or "contract" (a smart wallet's Stellar Asset Contract transfer to that M-address).
    pay_via: str = "memo"
    asset_code: str | None = None  # None: cNGN; "XLM": the wrong asset
    # Once delivered, VTpass takes the delivery back (its operator's reversal: requery code 040
    # and its reversal webhook to our API); the customer must get the cNGN back.
    reverse_when_delivered: bool = False
    reference: str | None = None
    muxed_destination: str | None = None
    memo_sent: str | None = None
    paid_at: float | None = None
    settled_at: float | None = None
    final: str = "-"
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _order(bill_type: str, biller: str, account: str, amount: str, **options: str) -> OrderRequest:
    phone = options.pop("phone", "08011111111")
    return OrderRequest(
        bill_type=bill_type, biller=biller, account=account, amount=amount, phone=phone, **options
    )


def _airtime(biller: str, phone: str, amount: str) -> OrderRequest:
    return _order("airtime", biller, phone, amount, phone=phone)


def _prepaid(biller: str, meter: str, amount: str) -> OrderRequest:
    return _order("electricity", biller, meter, amount, account_type="prepaid")


def scenarios() -> list[Scenario]:
    """The demo's orders: every bill type, and each way a payment can go wrong."""
    postpaid = _order(
        "electricity", "eko-electric", "1010101010101", "12000", account_type="postpaid"
    )
    data = _order(
        "data", "mtn-data", "08061234567", "1000", product="mtn-1gb-1000", phone="08061234567"
    )
    return [
        Scenario(
            "electricity prepaid", _prepaid("ikeja-electric", "1111111111111", "5000"), "completed"
        ),
        Scenario("electricity postpaid", postpaid, "completed"),
        Scenario("airtime MTN", _airtime("mtn", "08031234567", "500"), "completed"),
        Scenario("airtime Airtel", _airtime("airtel", "08021234567", "200"), "completed"),
        Scenario("airtime Glo", _airtime("glo", "08051234567", "1000"), "completed"),
        Scenario("airtime 9mobile", _airtime("9mobile", "08091234567", "100"), "completed"),
        Scenario("data MTN 1GB", data, "completed"),
        Scenario(  # VTpass raised the bouquet from 2950 before the demo's catalogue sync
            "cable DStv Padi, new price",
            _order("cable_tv", "dstv", "1212121212", NEW_PADI_PRICE, product="dstv-padi"),
            "completed",
        ),
        Scenario(  # a number first issued by Airtel, ported to MTN: a warning, not an error
            "airtime MTN, ported number",
            _airtime("mtn", "08021234568", "300"),
            "completed",
        ),
        Scenario("water Lagos", _order("water", "lagos-water", "12345678", "3500"), "completed"),
        Scenario(
            "meter the provider rejects",
            _prepaid("ikeja-electric", "1234567890123", "2500"),
            "refunded",
        ),
        Scenario(
            "provider leaves it pending",
            _prepaid("kano-electric", "2010000000000", "4000"),
            "completed",
        ),
        Scenario(
            "provider times out", _prepaid("abuja-electric", "3000000000000", "3000"), "completed"
        ),
        Scenario(
            "wrong amount sent",
            _airtime("mtn", "08139876543", "750"),
            "refunded",
            pay_amount="705.0000000",
        ),
        Scenario(
            "late payment, order expired",
            _airtime("glo", "08159876543", "400"),
            "expired",
            expire_first=True,
        ),
        *_ways_to_pay(),
    ]


def _ways_to_pay() -> list[Scenario]:
    """Payments that are not a plain memo and exact cNGN: an M-address, a contract transfer,
    a delivery the provider takes back, the wrong asset, a memo naming no order."""
    return [
        Scenario(
            "paid to the M-address, no memo",
            _airtime("airtel", "08029876543", "300"),
            "completed",
            pay_via="muxed",
        ),
        Scenario(
            "smart wallet, contract transfer",
            _airtime("mtn", "08039876543", "600"),
            "completed",
            pay_via="contract",
        ),
        Scenario(
            "VTpass reverses it after delivery",
            _airtime("mtn", "08031112222", "400"),
            "refunded",
            reverse_when_delivered=True,
        ),
        Scenario(
            "paid in XLM, not cNGN",
            None,
            "refund confirmed",
            pay_amount="3.5000000",
            memo="DEMO-WRONG-ASSET",
            asset_code="XLM",
        ),
        Scenario(
            "unknown memo",
            None,
            "refund confirmed",
            pay_amount="250.0000000",
            memo="BILL-NOTANORDER",
        ),
    ]


def run_demo(time_limit: int = 150) -> int:
    stop_on_sigterm()
    started = time.monotonic()
    base = Settings()
    logs = base.data_dir.resolve() / "demo-logs"
    logs.mkdir(parents=True, exist_ok=True)
    services = Services(logs)
    try:
        return _run(base, services, started, time_limit)
    finally:
        services.stop()


def _run(base: Settings, services: Services, started: float, time_limit: int) -> int:
    console.rule("[bold]billpay demo")
    url = _demo_database(base)
    env, sandbox_url, api_url = _start_services(base, services, url)
    settings = settings_from_env(env, skip=("BILLPAY_SANDBOX_TIMEOUT_SECONDS",))
    db = db_engine.Database(engine=sa.create_engine(url, hide_parameters=True), url=url)
    if catalogue_store.seed(db):  # as `billpay db upgrade` does on a fresh database
        console.print("catalogue seeded from the built-in table")
    since = datetime.now(UTC)
    try:
        ready = _operator_checks(env, sandbox_url)
        plan = scenarios()
        with _demo_client(db, settings, api_url) as api:
            _place_orders_and_pay(db, settings, plan, sandbox_url, api)
        _wait_until_settled(
            db, plan, services, sandbox_url, deadline=started + time_limit, started=started
        )
        reports = demo_prefect.run_reports(env["PREFECT_API_URL"])
        console.print("report deployments: " + ", ".join(f"{k} {v}" for k, v in reports.items()))
        good = _print_results(plan, env, started, services.logs, api_url)
    finally:
        db.dispose()
    return _check_run_history(services, env, since, ready and good == len(plan))


def _operator_checks(env: dict[str, str], sandbox_url: str) -> bool:
    """3b. What an operator runs before going live, here on the sandbox: `billpay doctor` until
    it is green (serve registers the deployments it looks for), then a provider raises a price
    and `billpay catalogue sync` brings it in, so the order below is charged the new price."""
    console.rule("billpay doctor")
    doctor = _run_cli(["doctor"], env)
    deadline = time.monotonic() + 60
    while doctor.returncode != 0 and time.monotonic() < deadline:
        time.sleep(3)
        doctor = _run_cli(["doctor"], env)
    console.print(doctor.stdout.rstrip() or doctor.stderr.rstrip(), markup=False)
    console.rule("billpay catalogue sync")
    price = {"item": "dstv-padi", "amount": NEW_PADI_PRICE}
    httpx.post(f"{sandbox_url}/vtpass/api/_sandbox/catalogue/dstv/price", json=price, timeout=10)
    console.print(f"the sandbox's VTpass now lists DStv Padi at {NEW_PADI_PRICE} naira")
    synced = _run_cli(["catalogue", "sync"], env)
    console.print(synced.stdout.rstrip() or synced.stderr.rstrip(), markup=False)
    if doctor.returncode or synced.returncode:
        console.print("[red]doctor or catalogue sync did not pass (above)")
    return doctor.returncode == 0 and synced.returncode == 0


def _run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        BILLPAY + args,
        env={**env, "COLUMNS": "150"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _check_run_history(
    services: Services, env: dict[str, str], since: datetime, scenarios_ok: bool
) -> int:
    """7. Stop serve as an operator would, then read what the Prefect server kept."""
    services.stop_one("serve")
    history = demo_prefect.run_history(env["PREFECT_API_URL"], since)
    console.rule("Prefect run history")
    for line in history.lines():
        console.print(line)
    if not history.ok:
        console.print("[red]the run history is not what an operator should see (above)")
    return 0 if scenarios_ok and history.ok else 1


def _demo_database(base: Settings) -> URL:
    """1. A fresh demo database on the embedded server (or the configured one)."""
    if not base.database_url:
        console.print(f"starting embedded PostgreSQL under {base.pgdata_dir}")
    url = fresh_database(base, DEMO_DATABASE)
    console.print(f"database {DEMO_DATABASE} ready (schema applied)")
    return url


def _start_services(
    base: Settings, services: Services, url: URL
) -> tuple[dict[str, str], str, str]:
    """2. The sandbox (providers + Horizon on loopback), 3. a local Prefect server keeping its
    history under the data folder, then `billpay serve` and the HTTP API (`billpay api`)."""
    sandbox_port = free_port(8765)
    api_port = free_port(API_PORT)
    env = pipeline_env(url, sandbox_port, DEMO_ENV)
    # The providers announce settled and reversed payments to our API, as they would live.
    sandbox_url = services.start_sandbox(
        env, sandbox_port, "--webhook-base-url", f"http://127.0.0.1:{api_port}"
    )
    console.print(
        f"sandbox (Flutterwave, VTpass, Horizon) on {sandbox_url}, sending provider webhooks "
        f"to http://127.0.0.1:{api_port}/webhooks"
    )
    ui_port = free_port(UI_PORT)
    services.start_prefect_server(env, base.data_dir.resolve() / "prefect", ui_port)
    console.print(f"Prefect server on http://127.0.0.1:{ui_port} (UI)")
    # One machine: pause the schedules at the end, so `make ui` shows no pile of late runs.
    services.start("serve", BILLPAY + ["serve", "--pause-on-stop"], env)
    console.print(
        "serving the deployments on their schedules (pipeline every 10 s, in-process: "
        "expire -> ingest + match -> bills -> refunds -> notifications -> recheck; reports "
        "every 15 min)"
    )
    api_url = services.start_api(env, api_port)
    console.print(f"HTTP API on {api_url} (OpenAPI docs: {api_url}/docs)")
    return env, sandbox_url, api_url


def _demo_client(db: Database, settings: Settings, api_url: str) -> httpx.Client:
    """An API client for the demo's own requests, as an httpx client carrying its key (the key
    stays in this process: it is a secret); prints the client's name and key prefix only."""
    made = clients.create(
        db, DEMO_CLIENT, webhook_url=None, master_secret=settings.webhook_secret.get_secret_value()
    )
    console.print(
        f"API client {made['name']} (key {made['key_prefix']}…); make your own with "
        "`billpay apikey create NAME [--webhook-url URL]` and send it as "
        "`Authorization: Bearer <key>`"
    )
    return httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {made['key']}"}, timeout=30
    )


def create_order_via_api(api: httpx.Client, request: OrderRequest) -> dict[str, Any]:
    """POST /api/bills/pay as a client app does (``api`` carries the bearer key): the order's
    fields as JSON (amount a decimal string) and an Idempotency-Key; the 201 answer is the
    payment instructions (what ``billpay.intake.create_order`` returns)."""
    body = {name: value for name, value in asdict(request).items() if value is not None}
    response = api.post("/api/bills/pay", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
    if response.status_code != 201:
        raise RuntimeError(f"POST /api/bills/pay answered {response.status_code}: {response.text}")
    return response.json()


def _place_orders_and_pay(
    db: Database, settings: Settings, plan: list[Scenario], sandbox_url: str, api: httpx.Client
) -> None:
    """4. The orders, and the users' payments (some wrong, one late, one with no order)."""
    for item in plan:
        if item.request is None:
            continue
        created = create_order_via_api(api, item.request)  # as every client app does
        for warning in created.get("warnings") or []:
            console.print(f"{item.name}: the API warns: {warning}", markup=False)
        item.reference = created["reference"]
        item.muxed_destination = created["muxed_destination"]
    # these users come back after the order's 10 minutes ran out
    monitoring.expire_orders_now(db, [s.reference for s in plan if s.expire_first and s.reference])
    with httpx.Client(base_url=sandbox_url, timeout=10) as client:
        for item in plan:
            row = _order_row(db, item.reference) if item.reference else None
            amount = item.pay_amount or f"{row['amount_cngn']:.7f}"
            _send_payment(client, item, amount, row)
            item.paid_at = time.monotonic()
    console.print(
        f"created {sum(1 for s in plan if s.reference)} orders and sent {len(plan)} payments"
    )


def _send_payment(
    client: httpx.Client, item: Scenario, amount: str, row: dict[str, Any] | None
) -> None:
    """The user's payment, the way the scenario says they pay."""
    if item.pay_via == "contract":  # Soroban: no memo, the order named by the muxed id
        body = {"amount": amount, "destination_muxed_id": int(row["muxed_id"]) if row else None}
        client.post("/horizon/_sandbox/contract_transfers", json=body).raise_for_status()
        return
    if item.pay_via == "muxed":
        body = {"amount": amount, "to": item.muxed_destination}
    else:
        item.memo_sent = item.memo or f"BILL-{item.reference}"
        body = {"amount": amount, "memo": item.memo_sent}
    if item.asset_code:
        body["asset_code"] = item.asset_code
    client.post("/horizon/_sandbox/payments", json=body).raise_for_status()


def _wait_until_settled(
    db: Database,
    plan: list[Scenario],
    services: Services,
    sandbox_url: str,
    *,
    deadline: float,
    started: float,
) -> None:
    """5. Every order settled as expected, the deadline, or a service gone: with a progress
    display. A scenario reversed at the provider is reversed there once it is delivered."""
    with Live(_progress_table(plan, started), console=console, refresh_per_second=2) as live:
        while time.monotonic() < deadline:
            _refresh(db, plan)
            for item in plan:
                if item.reverse_when_delivered and item.final == "completed":
                    _reverse_at_vtpass(db, item, sandbox_url)
            live.update(_progress_table(plan, started))
            if all(s.final == s.expect for s in plan):
                break
            if services.any_exited():
                console.print("[red]a service exited early; see " + str(services.logs))
                break
            time.sleep(1)
    _refresh(db, plan)


def _print_results(
    plan: list[Scenario], env: dict[str, str], started: float, logs: Path, api_url: str
) -> int:
    """6. Every order's outcome and the reports; how many ended as expected."""
    console.print(_final_table(plan))
    for report in ("success-rate", "provider-performance"):
        console.rule(f"report {report} (last hour)")
        out = subprocess.run(
            BILLPAY + ["report", report, "--window", "1h"],
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
        "(Runs: one `pipeline` run every 10 s, its stages as task runs and under them one "
        "task run per bill, bill-<reference>; the reports' artifacts under Artifacts)"
    )
    console.print(
        f"HTTP API: {api_url} (docs {api_url}/docs), stopped with the demo; "
        "serve it on your database with [bold]billpay api --port 8000[/]"
    )
    return good


def _reverse_at_vtpass(db: Database, item: Scenario, sandbox_url: str) -> None:
    """VTpass's operator reverses the delivered transaction (once): its requery now answers
    040 and its reversal webhook reaches our API, which makes the bill's re-check due."""
    if item.extra.get("reversed_at_provider"):
        return
    attempt = _order_row(db, item.reference or "")["attempt_reference"]
    answer = httpx.post(f"{sandbox_url}/vtpass/api/_sandbox/transactions/{attempt}/reverse")
    answer.raise_for_status()
    item.extra["reversed_at_provider"] = True


def _order_row(db: Database, reference: str) -> dict[str, Any]:
    from billpay.store import bills

    row = bills.get_by_reference(db, reference)
    assert row is not None
    return row


def _refresh(db: Database, plan: list[Scenario]) -> None:
    for item in plan:
        final, item.detail = _outcome(db, item)
        if final != item.final:
            item.final = final
            item.settled_at = time.monotonic() if final == item.expect else None


def _outcome(db: Database, item: Scenario) -> tuple[str, str]:
    """Where a scenario stands now, and its token or refund."""
    if item.reference is None:  # a payment with no order: its refund is the outcome
        row = monitoring.payment_refund_outcome(db, item.memo_sent)
        if row and row["refund_status"]:
            return f"refund {row['refund_status']}", _detail(row)
        return "waiting", _detail(row) if row else ""
    row = monitoring.order_outcome(db, item.reference, item.memo_sent)
    assert row is not None
    final = row["status"]
    if item.expect == "expired" and final == "expired" and row["refund_status"] != "confirmed":
        final = "expired (refund pending)"
    return final, _detail(row)


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
