"""The wedge after an unclean stop, and how the automations heal it, on a real Prefect server.

A run left Pending (its submitter was killed) holds the deployment's only concurrency slot, so
every later run is Cancelled. ``billpay:`` automations with a 15 s threshold move the stranded
run to Crashed, which frees the slot: the next run enters Pending. The same for a Running run
whose heartbeats stopped, while a run that keeps beating is left alone. Operators hear of each
crash through the webhook notification block.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from deployments.services import PREFECT_SERVER_TUNING, Services, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

THRESHOLD = 15  # seconds; Prefect's proactive minimum is 10
# Proactive triggers are evaluated every 5 s; the action runs after that.
HEAL_WITHIN = THRESHOLD + 30

SERVER_ENV = {
    **PREFECT_SERVER_TUNING,
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",  # no runs but the test's own
    "PREFECT_UI_ENABLED": "false",
}


class Receiver:
    """The operators' webhook: records every JSON body POSTed to it."""

    def __init__(self) -> None:
        bodies: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                bodies.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.bodies = bodies
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alarms"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[str]:
    """A real ``prefect server start`` (all services: triggers, actions, repossessor) with the
    billpay automations applied, thresholds 15 s."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.automations import ensure_automations

    home = tmp_path_factory.mktemp("prefect-home")
    env = {**os.environ, **SERVER_ENV}
    services = Services(home)
    try:
        services.start_prefect_server(env, home / "home", free_port())
        with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
            ensure_automations(THRESHOLD, THRESHOLD, THRESHOLD, operator_webhook_url=receiver.url)
            yield env["PREFECT_API_URL"]
    finally:
        services.stop()


@pytest.fixture
def client(prefect_server: str) -> Iterator[Any]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        yield client


def _deployment(client: Any, name: str) -> UUID:
    """A deployment like ours: tagged billpay, one run at a time, newcomers cancelled."""
    from prefect import flow
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy, ConcurrencyOptions

    @flow(name="heal-probe")
    def probe() -> None:
        pass

    return client.create_deployment(
        flow_id=client.create_flow(probe),
        name=name,
        tags=["billpay"],
        concurrency_limit=1,
        concurrency_options=ConcurrencyOptions(
            collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
        ),
        entrypoint="tests/e2e/test_self_healing.py:probe",
    )


def _submit(client: Any, deployment_id: UUID) -> tuple[UUID, str]:
    """What the runner does before starting a run: propose Pending (this takes the slot)."""
    from prefect.states import Pending

    run = client.create_flow_run_from_deployment(deployment_id)
    result = client.set_flow_run_state(run.id, Pending())
    return run.id, result.state.type.value


def _state(client: Any, run_id: UUID) -> Any:
    return client.read_flow_run(run_id).state


def _wait_for(what: Callable[[], bool], seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if what():
            return time.monotonic() - started
        time.sleep(1)
    raise AssertionError(f"not within {seconds} s")


def _heartbeat(api_url: str, run_id: UUID, deployment_id: UUID) -> None:
    """The event a flow engine sends every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds."""
    from prefect.events import Event
    from prefect.types._datetime import now

    event = Event(
        id=uuid4(),
        occurred=now("UTC"),
        event="prefect.flow-run.heartbeat",
        resource={"prefect.resource.id": f"prefect.flow-run.{run_id}"},
        related=[
            {
                "prefect.resource.id": f"prefect.deployment.{deployment_id}",
                "prefect.resource.role": "deployment",
            },
            {"prefect.resource.id": "prefect.tag.billpay", "prefect.resource.role": "tag"},
        ],
    )
    httpx.post(f"{api_url}/events", json=[event.model_dump(mode="json")]).raise_for_status()


def test_a_run_stranded_pending_is_crashed_and_frees_the_slot(
    client: Any, receiver: Receiver
) -> None:
    deployment_id = _deployment(client, "pending-wedge")
    stranded, state = _submit(client, deployment_id)
    assert state == "PENDING"  # then its submitter is killed: nobody will start it

    # The wedge: the next tick's run is refused for the slot the dead run holds.
    refused, state = _submit(client, deployment_id)
    assert state == "CANCELLED"
    assert "concurrency limit" in _state(client, refused).message

    waited = _wait_for(lambda: _state(client, stranded).is_crashed(), HEAL_WITHIN)
    assert waited >= THRESHOLD - 5  # by the automation's clock, not at once
    assert "Pending for 15 s" in _state(client, stranded).message

    healed, state = _submit(client, deployment_id)
    assert state == "PENDING"  # the slot is free again

    _wait_for(lambda: any("Crashed" in b.get("subject", "") for b in receiver.bodies), 20)
    crash_alarm = next(b for b in receiver.bodies if "Crashed" in b.get("subject", ""))
    assert str(stranded) in crash_alarm["body"]


def test_a_running_run_whose_heartbeat_stopped_is_crashed_one_still_beating_is_not(
    client: Any, prefect_server: str
) -> None:
    from prefect.states import Running

    dead_deployment = _deployment(client, "heartbeat-dead")
    live_deployment = _deployment(client, "heartbeat-live")
    dead, _ = _submit(client, dead_deployment)
    live, _ = _submit(client, live_deployment)
    for run_id, deployment_id in ((dead, dead_deployment), (live, live_deployment)):
        assert client.set_flow_run_state(run_id, Running()).state.is_running()
        _heartbeat(prefect_server, run_id, deployment_id)  # then `dead`'s process is killed

    started = time.monotonic()
    while not _state(client, dead).is_crashed():
        assert time.monotonic() - started < HEAL_WITHIN, "the silent run was not crashed"
        _heartbeat(prefect_server, live, live_deployment)
        time.sleep(5)
    assert "No heartbeat for 15 s" in _state(client, dead).message
    assert _state(client, live).is_running()

    _, state = _submit(client, dead_deployment)
    assert state == "PENDING"
    refused, state = _submit(client, live_deployment)
    assert state == "CANCELLED"  # the beating run keeps its slot


def test_applying_twice_leaves_one_of_each(client: Any, receiver: Receiver) -> None:
    from deployments.automations import PREFIX, ensure_automations

    names = ensure_automations(THRESHOLD, THRESHOLD, THRESHOLD, operator_webhook_url=receiver.url)
    ensure_automations(THRESHOLD, THRESHOLD, THRESHOLD, operator_webhook_url=receiver.url)
    ours = sorted(a.name for a in client.read_automations() if a.name.startswith(PREFIX))
    assert ours == sorted(names)
    assert len(ours) == 4


def test_the_start_sweep_crashes_a_run_stranded_while_nobody_watched(client: Any) -> None:
    """`billpay serve` at start: a run stranded while the server was down never produced the
    silence the automations wait for; the sweep crashes it by age and the slot is free."""
    from deployments.automations import crash_orphaned_runs

    deployment_id = _deployment(client, "sweep-wedge")
    stranded, _ = _submit(client, deployment_id)
    time.sleep(4)
    fresh, _ = _submit(client, _deployment(client, "sweep-fresh"))
    # Earlier tests' runs still Pending/Running on this server are old enough too.
    assert crash_orphaned_runs(client, older_than_seconds=3) >= 1
    assert _state(client, stranded).is_crashed()
    assert _state(client, fresh).is_pending()  # too young to judge
    _, state = _submit(client, deployment_id)
    assert state == "PENDING"
