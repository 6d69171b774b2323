"""``billpay bench-api``: order creation through the HTTP API, measured.

A fresh ``billpay_bench_api`` database, the sandbox and ``billpay api`` in their own processes
(``deployments.services``), one API key, then ``POST /api/bills/pay`` (each request with its own
``Idempotency-Key``) from ``clients`` concurrent clients:

- open loop: requests are due at a fixed rate whether or not earlier ones have answered; a
  request's latency runs from when it was due, so a server that falls behind shows it (no
  coordinated omission);
- closed loop: every client sends its next request as soon as the last one answered, for the
  most requests per second the server (and this load generator, on the same cores) can do.

Prints achieved rate, p50/p95/p99 latency and errors per run, with the issue's target (p95 at
most 50 ms at 100 requests/s) next to the open-loop number. The target is printed, never
asserted.
"""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from billpay.api import clients
from billpay.config import Settings
from billpay.store import Database
from deployments import services as setup
from deployments.services import BILLPAY, Services

BENCH_DATABASE = "billpay_bench_api"
TARGET_P95_MS = 50.0
TARGET_RATE = 100.0
PAY_PATH = "/api/bills/pay"
# A valid order every time: airtime for an MTN number (no provider call at intake).
ORDER = {
    "bill_type": "airtime",
    "biller": "mtn",
    "account": "08031234567",
    "amount": "100",
    "phone": "08031234567",
}


@dataclass(frozen=True)
class ApiBenchOptions:
    seconds: float = 10.0  # length of each run
    rate: float = TARGET_RATE  # open-loop requests per second
    clients: int = 50  # concurrent clients (connections)
    closed_seconds: float | None = None  # closed-loop run length; default ``seconds``
    warmup_requests: int = 50
    json_path: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. a raised API rate limit


# --- arithmetic -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` by linear interpolation between closest ranks
    (numpy's default and PostgreSQL's ``percentile_cont``); None without values."""
    if not values:
        return None
    if not 0 <= q <= 1:
        raise ValueError("q must be between 0 and 1")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class RunResult:
    """What one run saw: latencies (ms) of the good answers, errors by kind, its length."""

    mode: str
    elapsed_s: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    offered_rate: float | None = None

    def summary(self) -> dict[str, Any]:
        done = len(self.latencies_ms)
        rate = done / self.elapsed_s if self.elapsed_s > 0 else 0.0
        out: dict[str, Any] = {
            "mode": self.mode,
            "requests": done + sum(self.errors.values()),
            "ok": done,
            "errors": dict(sorted(self.errors.items())),
            "elapsed_s": round(self.elapsed_s, 3),
            "achieved_rate": round(rate, 1),
        }
        if self.offered_rate is not None:
            out["offered_rate"] = self.offered_rate
        for name, q in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
            value = percentile(self.latencies_ms, q)
            out[name] = None if value is None else round(value, 1)
        out["max_ms"] = round(max(self.latencies_ms), 1) if self.latencies_ms else None
        return out


def format_summary(summary: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "—" if value is None else f"{value:.1f} ms"

    lines = [
        f"{summary['mode']}: {summary['ok']} created of {summary['requests']} requests in "
        f"{summary['elapsed_s']:.1f} s -> {summary['achieved_rate']:.1f} requests/s"
        + (f" (offered {summary['offered_rate']:g}/s)" if "offered_rate" in summary else ""),
        f"  latency p50 {ms(summary['p50_ms'])}, p95 {ms(summary['p95_ms'])}, "
        f"p99 {ms(summary['p99_ms'])}, max {ms(summary['max_ms'])}",
        f"  errors: {summary['errors'] or 'none'}",
    ]
    if summary["mode"] == "open-loop":
        p95 = summary["p95_ms"]
        met = p95 is not None and p95 <= TARGET_P95_MS and not summary["errors"]
        verdict = "met" if met else "NOT met"
        if summary.get("offered_rate", 0) < TARGET_RATE:
            verdict = f"not judged: offered {summary.get('offered_rate')}/s"
        lines.append(
            f"  target: p95 <= {TARGET_P95_MS:g} ms at {TARGET_RATE:g} requests/s -> "
            f"p95 {ms(p95)}: {verdict}"
        )
    return "\n".join(lines)


# --- load ---------------------------------------------------------------------------------


async def _one(http: httpx.AsyncClient, result: RunResult, due: float) -> None:
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    try:
        answer = await http.post(PAY_PATH, json=ORDER, headers=headers)
    except httpx.HTTPError as exc:
        result.errors[type(exc).__name__] += 1
        return
    if answer.status_code == 201:
        result.latencies_ms.append((time.perf_counter() - due) * 1000)
    else:
        result.errors[f"http_{answer.status_code}"] += 1


def _client(
    base_url: str, key: str, clients_: int, transport: httpx.AsyncBaseTransport | None
) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=clients_, max_keepalive_connections=clients_)
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {key}"},
        limits=limits,
        timeout=httpx.Timeout(30.0),
        transport=transport,
    )


async def open_loop(
    base_url: str,
    key: str,
    *,
    rate: float,
    seconds: float,
    clients_: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> RunResult:
    """``rate`` requests/s for ``seconds``, at most ``clients_`` in flight; a request waiting
    for a free client counts that wait in its latency."""
    result = RunResult("open-loop", 0.0, offered_rate=rate)
    total = max(1, int(rate * seconds))
    async with _client(base_url, key, clients_, transport) as http:
        free = asyncio.Semaphore(clients_)

        async def send(due: float) -> None:
            async with free:
                await _one(http, result, due)

        started = time.perf_counter()
        tasks = []
        for i in range(total):
            due = started + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(send(due)))
        await asyncio.gather(*tasks)
        result.elapsed_s = time.perf_counter() - started
    return result


async def closed_loop(
    base_url: str,
    key: str,
    *,
    seconds: float,
    clients_: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> RunResult:
    """``clients_`` clients, each sending its next request when the last one answered."""
    result = RunResult("closed-loop", 0.0)
    async with _client(base_url, key, clients_, transport) as http:
        started = time.perf_counter()
        stop = started + seconds

        async def client_loop() -> None:
            while time.perf_counter() < stop:
                await _one(http, result, time.perf_counter())

        await asyncio.gather(*(client_loop() for _ in range(clients_)))
        result.elapsed_s = time.perf_counter() - started
    return result


def measure(base_url: str, key: str, opts: ApiBenchOptions) -> dict[str, Any]:
    """Warm up, then the open-loop and the closed-loop run against a running API."""
    if opts.warmup_requests:
        asyncio.run(
            open_loop(
                base_url,
                key,
                rate=max(opts.rate, 50.0),
                seconds=opts.warmup_requests / max(opts.rate, 50.0),
                clients_=opts.clients,
            )
        )
    opened = asyncio.run(
        open_loop(base_url, key, rate=opts.rate, seconds=opts.seconds, clients_=opts.clients)
    )
    closed = asyncio.run(
        closed_loop(
            base_url, key, seconds=opts.closed_seconds or opts.seconds, clients_=opts.clients
        )
    )
    return {
        "clients": opts.clients,
        "target": {"p95_ms": TARGET_P95_MS, "rate": TARGET_RATE},
        "open_loop": opened.summary(),
        "closed_loop": closed.summary(),
    }


# --- services -------------------------------------------------------------------------------


def _log(message: str) -> None:
    print(f"[bench-api] {message}", flush=True)


def check_pay_route(base_url: str, key: str) -> None:
    """Fail early and clearly when the API has no order creation route to measure."""
    answer = httpx.post(
        f"{base_url}{PAY_PATH}",
        json=ORDER,
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex},
        timeout=30,
    )
    if answer.status_code != 201:
        raise RuntimeError(
            f"POST {PAY_PATH} answered {answer.status_code}, not 201: {answer.text[:300]}"
        )


def start_api(services: Services, env: dict[str, str]) -> str:
    """``billpay api`` on a free loopback port; its base URL once /healthz answers."""
    port = setup.free_port()
    services.start("api", BILLPAY + ["api", "--host", "127.0.0.1", "--port", str(port)], env)
    url = f"http://127.0.0.1:{port}"
    setup.wait_http(f"{url}/healthz", 60)
    return url


def run_api_bench(opts: ApiBenchOptions) -> dict[str, Any]:
    setup.stop_on_sigterm()
    services = Services(Path(tempfile.mkdtemp(prefix="billpay-bench-api-")))
    try:
        url = setup.fresh_database(Settings(), BENCH_DATABASE)
        sandbox_port = setup.free_port()
        # The per-key limit stays on (its cost is measured) but high enough not to refuse the
        # load: one key stands for every client here.
        env = setup.pipeline_env(url, sandbox_port, {"BILLPAY_API_RATE_LIMIT": "1000000/minute"})
        env.update(opts.extra_env)
        sandbox = services.start_sandbox(env, sandbox_port)
        api = start_api(services, env)
        engine = sa.create_engine(url, pool_size=1, hide_parameters=True)
        db = Database(engine=engine, url=url)
        try:
            key = clients.create(db, "bench", webhook_url=None, master_secret="")["key"]
        finally:
            db.dispose()
        _log(f"database {BENCH_DATABASE}, sandbox {sandbox}, API {api} (logs {services.logs})")
        check_pay_route(api, key)
        _log(
            f"open loop at {opts.rate:g} requests/s for {opts.seconds:g} s, then closed loop, "
            f"{opts.clients} clients"
        )
        result = measure(api, key, opts)
    finally:
        services.stop()
    if opts.json_path:
        Path(opts.json_path).write_text(json.dumps(result, indent=2))
    return result


def print_result(result: dict[str, Any]) -> None:
    print(format_summary(result["open_loop"]))
    print(format_summary(result["closed_loop"]))
