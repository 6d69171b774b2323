"""The in-process executor's choices, against a fake Prefect client: the newest due run is
run and the older due ones are closed as Skipped (an overrun never queues ticks); a run the
server gives to someone else is not run; nothing due means waiting for the next one."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from deployments import executor as ex


@dataclass
class FakeRun:
    name: str
    next_scheduled_start_time: datetime
    id: UUID = field(default_factory=uuid4)
    expected_start_time: datetime | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


class FakeClient:
    def __init__(self, runs: list[FakeRun]) -> None:
        self.runs = runs
        self.states: dict[str, Any] = {}

    def get_scheduled_flow_runs_for_deployments(self, ids: Any, scheduled_before: Any) -> Any:
        return [r for r in self.runs if r.next_scheduled_start_time <= scheduled_before]

    def set_flow_run_state(self, run_id: UUID, state: Any, force: bool = False) -> None:
        self.states[next(r.name for r in self.runs if r.id == run_id)] = state


class State:
    def __init__(self, pending: bool = False, completed: bool = False) -> None:
        self.pending, self.completed = pending, completed

    def is_pending(self) -> bool:
        return self.pending

    def is_completed(self) -> bool:
        return self.completed


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """run_flow and the Pending proposal, recorded instead of sent."""
    seen: dict[str, Any] = {"ran": [], "refuse": set(), "abort": False, "final": True}

    def propose(client: Any, state: Any, flow_run_id: UUID) -> State:
        if seen["abort"]:
            from prefect.exceptions import Abort

            raise Abort("this run is not Scheduled any more")
        return State(pending=flow_run_id not in seen["refuse"])

    def run_flow(flow: Any, flow_run: Any, return_type: str) -> State:
        seen["ran"].append(flow_run.name)
        return State(completed=seen["final"])

    monkeypatch.setattr("prefect.utilities.engine.propose_state_sync", propose)
    monkeypatch.setattr("prefect.flow_engine.run_flow", run_flow)
    return seen


def _executor() -> ex.InProcessExecutor:
    return ex.InProcessExecutor(object(), uuid4(), 10, threading.Event())


def test_after_an_overrun_the_newest_due_tick_runs_and_the_older_ones_are_skipped(engine):
    now = datetime.now(UTC)
    runs = [FakeRun(f"tick-{i}", now - timedelta(seconds=30 - 10 * i)) for i in range(3)]
    runs.append(FakeRun("future", now + timedelta(seconds=5)))
    client = FakeClient(runs)
    executor = _executor()
    executor._once(client)
    assert engine["ran"] == ["tick-2"]
    assert sorted(client.states) == ["tick-0", "tick-1"]
    assert {s.name for s in client.states.values()} == {ex.SKIPPED}
    assert all(s.type.value == "CANCELLED" for s in client.states.values())
    assert "tick-2" in client.states["tick-0"].message  # says which tick ran instead
    assert executor.counts.as_dict()["skipped"] == 2
    assert executor.counts.started == 1 and executor.counts.completed == 1


def test_a_run_the_server_gave_to_another_executor_is_not_run(engine):
    engine["abort"] = True  # what the server answers when the run is not Scheduled any more
    client = FakeClient([FakeRun("tick", datetime.now(UTC) - timedelta(seconds=1))])
    executor = _executor()
    executor._once(client)
    assert engine["ran"] == [] and executor.counts.refused == 1


def test_a_stale_tick_another_executor_took_is_not_marked_skipped(engine):
    now = datetime.now(UTC)
    taken = FakeRun("taken-elsewhere", now - timedelta(seconds=20))
    client = FakeClient([taken, FakeRun("newest", now - timedelta(seconds=1))])
    engine["refuse"].add(taken.id)
    executor = _executor()
    executor._once(client)
    assert client.states == {}  # it is running somewhere else: never relabelled Skipped
    assert engine["ran"] == ["newest"]


def test_a_tick_that_did_not_complete_is_counted_failed(engine):
    engine["final"] = False
    client = FakeClient([FakeRun("tick", datetime.now(UTC) - timedelta(seconds=1))])
    executor = _executor()
    executor._once(client)
    assert executor.counts.failed == 1 and executor.counts.completed == 0


def test_nothing_is_started_once_stopping(engine):
    client = FakeClient([FakeRun("tick", datetime.now(UTC) - timedelta(seconds=1))])
    executor = _executor()
    executor.stop.set()
    executor._once(client)
    assert engine["ran"] == [] and executor.counts.started == 0


def test_nothing_due_waits_until_the_next_tick_and_runs_nothing(engine):
    client = FakeClient([FakeRun("next", datetime.now(UTC) + timedelta(seconds=3))])
    executor = _executor()
    waited: list[float] = []
    executor.stop.wait = lambda seconds: waited.append(seconds)  # type: ignore[method-assign]
    executor._once(client)
    assert engine["ran"] == [] and client.states == {}
    assert 2 < waited[0] <= 3
