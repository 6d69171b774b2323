"""The billpay automations as the Prefect server will read them: which events each one watches,
for whose runs, how long it waits and what it does. No server: the server's own trigger schema
decides what an event matches."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from typer.testing import CliRunner

from deployments.automations import Thresholds, automation_definitions, automations_app

BLOCK = UUID("00000000-0000-0000-0000-00000000b10c")
RUN = f"prefect.flow-run.{uuid4()}"


def _server_view(**kwargs: Any) -> dict[str, Any]:
    """Name -> the automation parsed by the server's schema (as POST /automations would)."""
    from prefect.server.events.schemas.automations import AutomationCore

    return {
        a.name: AutomationCore.model_validate(a.model_dump(mode="json"))
        for a in automation_definitions(**kwargs)
    }


def _event(name: str, *, tags: tuple[str, ...] = ("billpay",), deployment: str = "pipeline") -> Any:
    from prefect.server.events.schemas.events import ReceivedEvent
    from prefect.types._datetime import now

    related = [
        {
            "prefect.resource.id": f"prefect.deployment.{uuid4()}",
            "prefect.resource.role": "deployment",
            "prefect.resource.name": deployment,
        }
    ] + [{"prefect.resource.id": f"prefect.tag.{t}", "prefect.resource.role": "tag"} for t in tags]
    return ReceivedEvent(
        id=uuid4(),
        occurred=now("UTC"),
        event=f"prefect.flow-run.{name}",
        resource={"prefect.resource.id": RUN},
        related=related,
    )


def test_four_automations_all_named_billpay():
    names = list(_server_view())
    assert names == [
        "billpay: crash runs whose heartbeat stopped",
        "billpay: crash runs stranded Pending",
        "billpay: pipeline stalled",
        "billpay: run failed or crashed",
    ]


def test_a_running_run_silent_past_the_threshold_is_crashed_per_run():
    automation = _server_view(thresholds=Thresholds(heartbeat_silence_seconds=45))[
        "billpay: crash runs whose heartbeat stopped"
    ]
    trigger = automation.trigger
    assert trigger.posture == "Proactive"
    assert trigger.within == timedelta(seconds=45)
    assert trigger.for_each == {"prefect.resource.id"}  # one clock per flow run
    assert trigger.starts_after("prefect.flow-run.heartbeat")
    for still_alive_or_done in ("heartbeat", "Completed", "Failed", "Crashed", "Cancelled"):
        assert trigger.expects(f"prefect.flow-run.{still_alive_or_done}")
    assert trigger.covers(_event("heartbeat"))
    assert not trigger.covers(_event("heartbeat", tags=("someone-else",)))
    (action,) = automation.actions
    assert (action.type, action.state.value, action.force) == (
        "change-flow-run-state",
        "CRASHED",
        False,
    )
    assert "No heartbeat for 45 s" in action.message


def test_a_run_pending_past_the_threshold_is_crashed_unless_it_moved_on():
    automation = _server_view(thresholds=Thresholds(pending_seconds=20))[
        "billpay: crash runs stranded Pending"
    ]
    trigger = automation.trigger
    assert (trigger.posture, trigger.within) == ("Proactive", timedelta(seconds=20))
    assert trigger.for_each == {"prefect.resource.id"}
    assert trigger.starts_after("prefect.flow-run.Pending")
    # Pending itself must not count as "moved on", or the clock would never run out.
    assert not trigger.expects("prefect.flow-run.Pending")
    for moved_on in ("Running", "Completed", "Failed", "Crashed", "Cancelled", "Scheduled"):
        assert trigger.expects(f"prefect.flow-run.{moved_on}")
    assert trigger.covers(_event("Pending"))
    assert not trigger.covers(_event("Pending", tags=()))
    assert automation.actions[0].state.value == "CRASHED"


def test_the_stall_alarm_listens_for_completed_pipeline_runs_only():
    trigger = _server_view(thresholds=Thresholds(pipeline_stall_seconds=90))[
        "billpay: pipeline stalled"
    ].trigger
    assert (trigger.posture, trigger.within) == ("Proactive", timedelta(seconds=90))
    assert not trigger.after and not trigger.for_each  # one clock, always running
    assert trigger.covers(_event("Completed"))
    assert not trigger.covers(_event("Completed", deployment="expire-orders"))
    assert not trigger.covers(_event("Completed", tags=()))
    assert not trigger.expects("prefect.flow-run.Failed")


def test_every_failed_or_crashed_run_of_ours_raises_an_alarm_at_once():
    trigger = _server_view()["billpay: run failed or crashed"].trigger
    assert trigger.posture == "Reactive" and trigger.immediate
    assert trigger.covers(_event("Failed")) and trigger.covers(_event("Crashed"))
    assert not trigger.covers(_event("Completed"))
    assert not trigger.covers(_event("Failed", tags=("other",)))


def test_alarms_notify_through_the_operator_block_when_there_is_one():
    alarms = ("billpay: pipeline stalled", "billpay: run failed or crashed")
    with_block = _server_view(notify_block_id=BLOCK)
    without = _server_view()
    for name in alarms:
        (action,) = with_block[name].actions
        assert (action.type, action.block_document_id) == ("send-notification", BLOCK)
        assert [a.type for a in without[name].actions] == ["do-nothing"]


def test_thresholds_below_prefects_proactive_minimum_are_refused():
    with pytest.raises(ValueError, match="pending_seconds"):
        Thresholds(pending_seconds=5)


def test_the_cli_offers_apply_and_list():
    result = CliRunner().invoke(automations_app, ["--help"])
    assert result.exit_code == 0
    assert "apply" in result.output and "list" in result.output


class _FakeClient:
    """The three calls crash_orphaned_runs makes, over a fixed set of runs and heartbeats."""

    def __init__(self, runs: list[Any], beating: set[UUID]) -> None:
        self.runs, self.beating, self.crashed = runs, beating, []

    def read_flow_runs(self, **_: Any) -> list[Any]:
        return self.runs

    def read_events(self, filter: Any, limit: int) -> Any:
        run_id = UUID(filter.resource.id[0].removeprefix("prefect.flow-run."))
        return type("Page", (), {"events": [object()] if run_id in self.beating else []})

    def set_flow_run_state(self, run_id: UUID, state: Any) -> Any:
        self.crashed.append((run_id, state.message))
        return type("Result", (), {"state": state})


def _run(state: Any, seconds_ago: float) -> Any:
    from prefect.client.schemas.objects import FlowRun
    from prefect.types._datetime import now

    state.timestamp = now("UTC") - timedelta(seconds=seconds_ago)
    return FlowRun(id=uuid4(), flow_id=uuid4(), name="probe", state=state, tags=["billpay"])


def test_the_start_sweep_crashes_old_silent_runs_and_spares_the_rest():
    from prefect.states import Pending, Running

    from deployments.automations import crash_orphaned_runs

    old_pending, young_pending = _run(Pending(), 120), _run(Pending(), 5)
    silent, beating = _run(Running(), 120), _run(Running(), 120)
    client = _FakeClient([old_pending, young_pending, silent, beating], {beating.id})
    assert crash_orphaned_runs(client, older_than_seconds=60) == 2  # type: ignore[arg-type]
    assert [run_id for run_id, _ in client.crashed] == [old_pending.id, silent.id]
    assert "Pending for over 60 s" in client.crashed[0][1]
