"""``billpay serve`` killed with SIGKILL in the middle of a tick, then started again: the
pipeline resumes by itself (a run Completes within 90 s of the restart), the dead tick is
Crashed by the heartbeat automation, and the bill it was paying is paid exactly once.

A real ``prefect server start`` (the schedule, the automations, the heartbeats) and real
``billpay serve`` processes against the test's sandbox and database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments import prefect_runs
from deployments.services import Services, free_port
from tests.e2e.pipeline_helpers import bill_row, open_pay_attempt, pay_calls, place_order

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RESUME_WITHIN = 90  # the acceptance bound, seconds after the restart
CRASHED_WITHIN = 120  # heartbeat silence 60 s + Prefect's evaluation, after the kill


def _serve(env: dict[str, str], log: Path, *options: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "deployments.cli", "serve", "--only", "pipeline", *options],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _pipeline_runs(api: str, since: datetime) -> list[dict[str, Any]]:
    return [
        run
        for run in prefect_runs.flow_runs_since(api, since)
        if run["deployment_name"] == "pipeline"
    ]


def _wait(condition: Any, seconds: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(
        f"{what} within {seconds:.0f} s\n{log.read_text(errors='replace')[-3000:]}"
    )


def test_serve_killed_mid_tick_resumes_after_restart_and_pays_once(
    runtime, sandbox, database_url, tmp_path
):
    services = Services(tmp_path)
    env = {
        **os.environ,
        **sandbox.env(),
        "BILLPAY_DATABASE_URL": database_url.render_as_string(hide_password=False),
        "BILLPAY_LEASE_SECONDS": "20",  # the dead tick's lease on the bill runs out soon
        "BILLPAY_PROVIDER_READ_TIMEOUT_SECONDS": "20",
    }
    log = tmp_path / "serve.log"
    try:
        services.start_prefect_server(env, tmp_path / "prefect", free_port())
        api = env["PREFECT_API_URL"]
        since = datetime.now(UTC)
        order = place_order(
            runtime,
            "electricity",
            "ikeja-electric",
            "1111111111111",
            "6000",
            account_type="prepaid",
        )
        sandbox.options.latency_ms = 8000  # the tick is at the provider when it dies
        sandbox.pay(order["memo"], order["amount_cngn"])
        first = _serve(env, log)
        _wait(lambda: open_pay_attempt(runtime), 90, "the first serve never reached the pay", log)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        killed_at = time.monotonic()
        dead = [r for r in _pipeline_runs(api, since) if r["state_type"] == "RUNNING"]
        assert len(dead) == 1, "the killed tick is left Running: nobody told the server"

        sandbox.options.latency_ms = 0
        restarted = datetime.now(UTC)
        second = _serve(env, log, "--pause-on-stop")
        _wait(
            lambda: [
                r
                for r in _pipeline_runs(api, restarted)
                if r["state_name"] == "Completed" and r["id"] != dead[0]["id"]
            ],
            RESUME_WITHIN,
            "no pipeline run Completed after the restart",
            log,
        )
        crashed = _wait(
            lambda: httpx.get(f"{api}/flow_runs/{dead[0]['id']}").json()["state_type"] == "CRASHED",
            CRASHED_WITHIN - (time.monotonic() - killed_at),
            "the killed tick was never Crashed",
            log,
        )
        assert crashed
        _wait(
            lambda: bill_row(runtime, order["reference"])["status"] == "completed",
            60,
            "the bill was never completed after the restart",
            log,
        )
        os.killpg(second.pid, signal.SIGTERM)  # a clean stop leaves nothing Running
        second.wait(timeout=60)
        runs = prefect_runs.flow_runs_since(api, since)
        assert prefect_runs.unfinished(runs) == []
        # the tick in progress finished on its own: none was crashed by the stop itself
        messages = [((r["state"] or {}).get("message") or "") for r in runs]
        assert not [m for m in messages if "serve stopped" in m], messages
        deployment = httpx.get(f"{api}/deployments/name/pipeline/pipeline").json()
        assert deployment["paused"], "a clean stop pauses the schedule (no late runs pile up)"

        resumed = datetime.now(UTC)
        third = _serve(env, log)  # and the next start resumes it
        _wait(
            lambda: [r for r in _pipeline_runs(api, resumed) if r["state_name"] == "Completed"],
            RESUME_WITHIN,
            "no pipeline run Completed after a clean stop and start",
            log,
        )
        os.killpg(third.pid, signal.SIGTERM)
        third.wait(timeout=60)
    finally:
        services.stop()
        for proc in ("first", "second", "third"):
            handle = locals().get(proc)
            if handle is not None and handle.poll() is None:
                os.killpg(handle.pid, signal.SIGKILL)
    assert sum(pay_calls(sandbox).values()) == 1  # the pay in flight was not repeated...
    assert sandbox.calls(operation="requery")  # ...but asked about, by its reference
    assert bill_row(runtime, order["reference"])["token"]
