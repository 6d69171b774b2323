"""``billpay bench-api``: its percentile and report arithmetic, and its two load shapes against
an in-memory server (httpx.MockTransport) that answers after a fixed delay."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import httpx
import pytest

from deployments.bench_api import (
    ORDER,
    PAY_PATH,
    RunResult,
    closed_loop,
    format_summary,
    open_loop,
    percentile,
)


def test_percentiles_interpolate_linearly_like_percentile_cont() -> None:
    values = [40.0, 10.0, 30.0, 20.0]  # unsorted on purpose
    assert percentile(values, 0.5) == 25.0
    assert percentile(values, 0.0) == 10.0 and percentile(values, 1.0) == 40.0
    assert percentile(values, 0.95) == pytest.approx(38.5)
    assert percentile(list(range(1, 101)), 0.99) == pytest.approx(99.01)
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None
    with pytest.raises(ValueError):
        percentile(values, 95)


def test_summary_counts_errors_and_rates_only_good_answers() -> None:
    run = RunResult(
        "open-loop",
        elapsed_s=2.0,
        latencies_ms=[10.0, 20.0, 30.0, 40.0],
        errors=Counter({"http_429": 2, "ReadTimeout": 1}),
        offered_rate=100,
    )
    summary = run.summary()
    assert summary["requests"] == 7 and summary["ok"] == 4
    assert summary["achieved_rate"] == 2.0
    assert summary["p50_ms"] == 25.0 and summary["max_ms"] == 40.0
    assert summary["errors"] == {"ReadTimeout": 1, "http_429": 2}
    text = format_summary(summary)
    assert "p95 38.5 ms" in text
    assert "target: p95 <= 50 ms at 100 requests/s" in text and "NOT met" in text  # errors


def test_the_target_line_says_met_when_p95_is_within_it() -> None:
    summary = RunResult("open-loop", 1.0, [5.0] * 100, offered_rate=100).summary()
    assert format_summary(summary).endswith("p95 5.0 ms: met")
    slow_offer = RunResult("open-loop", 1.0, [5.0] * 20, offered_rate=20).summary()
    assert format_summary(slow_offer).endswith("not judged: offered 20/s")
    closed = RunResult("closed-loop", 1.0, [5.0] * 100).summary()
    assert "target" not in format_summary(closed)


class SlowServer:
    """Answers 201 after ``delay`` seconds; records keys, bodies and the most in flight."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.keys: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == PAY_PATH
        assert request.headers["authorization"] == "Bearer bp_test"
        assert json.loads(request.content) == ORDER
        self.keys.append(request.headers["idempotency-key"])
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(self.delay)
        self.in_flight -= 1
        return httpx.Response(201, json={"reference": "R"})


def _bench(load: Any, delay: float, **shape: Any) -> tuple[SlowServer, RunResult]:
    """Run the load shape ``load`` against a server answering after ``delay`` seconds."""
    server = SlowServer(delay)
    transport = httpx.MockTransport(server)
    return server, asyncio.run(load("http://bench", "bp_test", transport=transport, **shape))


def test_open_loop_offers_a_fixed_rate_with_a_new_idempotency_key_each() -> None:
    server, run = _bench(open_loop, 0.02, rate=100, seconds=1, clients_=50)
    summary = run.summary()
    assert summary["requests"] == summary["ok"] == 100
    assert len(set(server.keys)) == 100
    assert summary["elapsed_s"] >= 0.98  # the offers are spread over the whole second
    assert summary["p50_ms"] >= 20


def test_open_loop_latency_includes_the_wait_for_a_free_client() -> None:
    # One client, 50 ms answers, 40 requests/s: every request waits longer than the last.
    server, run = _bench(open_loop, 0.05, rate=40, seconds=0.5, clients_=1)
    assert server.most_in_flight == 1
    assert run.latencies_ms[-1] > run.latencies_ms[0] + 50


def test_closed_loop_keeps_every_client_busy_and_no_more() -> None:
    server, run = _bench(closed_loop, 0.01, seconds=0.5, clients_=5)
    summary = run.summary()
    assert server.most_in_flight == 5
    # No rate is asserted (a loaded CI machine decides it); the shape is: each of the 5 clients
    # sent again as soon as it was answered, so there were more requests than clients, every one
    # with its own key, and the rate is what was answered over the time taken.
    assert summary["requests"] == summary["ok"] == len(server.keys) > 5
    assert len(set(server.keys)) == len(server.keys)
    assert summary["achieved_rate"] == pytest.approx(summary["ok"] / summary["elapsed_s"], rel=0.01)
    assert summary["errors"] == {}
