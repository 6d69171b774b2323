"""Self-healing and stall alarms as Prefect automations, kept as code.

After an unclean stop of ``billpay serve`` (SIGKILL, OOM, reboot) its flow runs stay Pending or
Running with no process behind them, and each holds its deployment's concurrency slot (limit 1,
CANCEL_NEW), so every later run is Cancelled. The server's own automations notice the silence and
move such runs to Crashed; leaving Pending/Running releases the slot (``ReleaseFlowConcurrencySlots``
in prefect/server/orchestration/core_policy.py), so the next scheduled run goes ahead.

``ensure_automations`` creates or updates them by name (idempotent); ``crash_orphaned_runs`` is the
same rule applied once by hand, for when the server was down and never saw the silence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.events.schemas.automations import AutomationCore

TAG = "billpay"  # every billpay deployment is created with tags=["billpay"]
PREFIX = "billpay:"
OPERATOR_BLOCK_NAME = "billpay-operators"
PIPELINE_DEPLOYMENT = "pipeline"

HEARTBEAT = "prefect.flow-run.heartbeat"
# A run that reached any of these has an owner that said something, or is finished.
TERMINAL = ("Completed", "Failed", "Crashed", "Cancelled")
LEFT_PENDING = ("Running", "Retrying", "Cancelling", "Scheduled", "AwaitingRetry", "Paused")


@dataclass(frozen=True)
class Thresholds:
    """Seconds of silence before acting. Heartbeats come every 30 s at the most often
    (Prefect's MINIMUM_HEARTBEAT_INTERVAL), so 60 s tolerates one lost heartbeat."""

    heartbeat_silence_seconds: float = 60
    pending_seconds: float = 60
    pipeline_stall_seconds: float = 60

    def __post_init__(self) -> None:
        # Prefect refuses proactive windows under 10 s.
        for name, value in vars(self).items():
            if value < 10:
                raise ValueError(f"{name} must be at least 10 seconds, got {value}")


def _events(*names: str) -> set[str]:
    return {f"prefect.flow-run.{name}" for name in names}


def _ours() -> dict[str, str]:
    """Matches an event related to a run tagged ``billpay`` (state events carry the run's,
    its flow's and its deployment's tags; heartbeats carry the run's, which include the
    deployment's)."""
    return {"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{TAG}"}


def _flow_runs() -> dict[str, str]:
    return {"prefect.resource.id": "prefect.flow-run.*"}


def _crash(why: str) -> Any:
    from prefect.events.actions import ChangeFlowRunState
    from prefect.states import StateType

    # Not forced: a run that finished meanwhile keeps its terminal state (the action then
    # fails visibly in the automation's events instead of rewriting history).
    return ChangeFlowRunState(state=StateType.CRASHED, name="Crashed", message=why)


def _tell_operators(block_id: UUID | None, subject: str, body: str) -> Any:
    from prefect.events.actions import DoNothing, SendNotification

    if block_id is None:
        # No operator channel configured: the automation still fires and its firing shows in
        # the UI (Automations, Event feed: prefect.automation.triggered); nothing is sent.
        return DoNothing()
    return SendNotification(block_document_id=block_id, subject=subject, body=body)


_RUN_BODY = (
    "Flow run {{ flow_run.name }} ({{ flow_run.id }}) of deployment {{ deployment.name }} is "
    "{{ flow_run.state.name }}: {{ flow_run.state.message }}"
)


def automation_definitions(
    thresholds: Thresholds = Thresholds(),
    notify_block_id: UUID | None = None,
    pipeline_deployment: str = PIPELINE_DEPLOYMENT,
) -> list[AutomationCore]:
    """The billpay automations, each scoped to flow runs tagged ``billpay``."""
    return _healers(thresholds) + _alarms(thresholds, notify_block_id, pipeline_deployment)


def _silence(after: set[str], expect: set[str], seconds: float) -> Any:
    """Per run of ours: ``after`` seen, then none of ``expect`` within ``seconds``."""
    from prefect.events.schemas.automations import EventTrigger, Posture

    return EventTrigger(
        posture=Posture.Proactive,
        match=_flow_runs(),
        match_related=_ours(),
        after=after,
        expect=expect,
        for_each={"prefect.resource.id"},
        threshold=1,
        within=timedelta(seconds=seconds),
    )


def _healers(thresholds: Thresholds) -> list[AutomationCore]:
    """Crash the runs no process will finish, which frees their concurrency slots."""
    from prefect.events.schemas.automations import AutomationCore

    heartbeat_s = thresholds.heartbeat_silence_seconds
    pending_s = thresholds.pending_seconds
    return [
        AutomationCore(
            name=f"{PREFIX} crash runs whose heartbeat stopped",
            description="A Running run with no heartbeat and no end has no process behind it; "
            "Crashed frees its deployment concurrency slot.",
            trigger=_silence({HEARTBEAT}, {HEARTBEAT} | _events(*TERMINAL), heartbeat_s),
            actions=[
                _crash(
                    f"No heartbeat for {heartbeat_s:g} s: the process running this "
                    "flow run is gone (killed, out of memory or restarted)."
                )
            ],
        ),
        AutomationCore(
            name=f"{PREFIX} crash runs stranded Pending",
            description="A run Pending for long was submitted by a process that died before "
            "starting it; it holds the deployment concurrency slot until it leaves Pending.",
            trigger=_silence(_events("Pending"), _events(*LEFT_PENDING, *TERMINAL), pending_s),
            actions=[
                _crash(
                    f"Pending for {pending_s:g} s without starting: the process that "
                    "submitted this flow run is gone (killed, out of memory or "
                    "restarted)."
                )
            ],
        ),
    ]


def _alarms(
    thresholds: Thresholds, notify_block_id: UUID | None, pipeline_deployment: str
) -> list[AutomationCore]:
    """Tell operators when the pipeline stops completing, and of every failed or crashed run."""
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    stall_s = thresholds.pipeline_stall_seconds
    return [
        AutomationCore(
            name=f"{PREFIX} pipeline stalled",
            description=f"No run of deployment {pipeline_deployment!r} completed within "
            f"{stall_s:g} s; repeats every {stall_s:g} s while stalled.",
            trigger=EventTrigger(
                posture=Posture.Proactive,
                match=_flow_runs(),
                match_related=[
                    _ours(),
                    {
                        "prefect.resource.role": "deployment",
                        "prefect.resource.name": pipeline_deployment,
                    },
                ],
                expect=_events("Completed"),
                threshold=1,
                within=timedelta(seconds=stall_s),
            ),
            actions=[
                _tell_operators(
                    notify_block_id,
                    "billpay: pipeline stalled",
                    f"No {pipeline_deployment} run completed in the last {stall_s:g} s. "
                    "Is `billpay serve` running? See the Prefect UI for the latest runs.",
                )
            ],
        ),
        AutomationCore(
            name=f"{PREFIX} run failed or crashed",
            description="Tells operators about every failed or crashed billpay flow run.",
            trigger=EventTrigger(
                posture=Posture.Reactive,
                match=_flow_runs(),
                match_related=_ours(),
                expect=_events("Failed", "Crashed"),
                threshold=1,
                within=timedelta(0),
            ),
            actions=[
                _tell_operators(
                    notify_block_id, "billpay: flow run {{ flow_run.state.name }}", _RUN_BODY
                )
            ],
        ),
    ]


def ensure_operator_block(url: str) -> UUID:
    """Creates or updates the notification block that POSTs to the operators' webhook."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name="billpay operators",
        url=url,
        method="POST",
        json_data={"source": "billpay", "subject": "{{subject}}", "body": "{{body}}"},
    )
    return block.save(OPERATOR_BLOCK_NAME, overwrite=True)


def apply_automations(client: SyncPrefectClient, wanted: Sequence[AutomationCore]) -> list[str]:
    """Makes the server's ``billpay:`` automations exactly ``wanted``, matched by name: updates
    those that exist, creates the missing, deletes duplicates and ones no longer defined."""
    by_name: dict[str, list[Any]] = {}
    for existing in client.read_automations():
        if existing.name.startswith(PREFIX):
            by_name.setdefault(existing.name, []).append(existing)
    for automation in wanted:
        found = by_name.pop(automation.name, [])
        if found and _fingerprint(found[0]) == _fingerprint(automation):
            pass  # unchanged: an update would reset the server's proactive clocks (a run
            # whose heartbeat stopped before this restart would never be crashed)
        elif found:
            # The client sends only fields marked set (exclude_unset), which drops defaulted
            # discriminators like an action's `type`; a round trip marks every field set. The
            # update endpoint refuses owner_resource (as prefect.automations.Automation knows).
            full = type(automation).model_validate(
                automation.model_dump(exclude={"owner_resource"})
            )
            client.update_automation(found[0].id, full)
        else:
            client.create_automation(automation)
        for duplicate in found[1:]:
            client.delete_automation(duplicate.id)
    for stale in by_name.values():
        for automation in stale:
            client.delete_automation(automation.id)
    return [automation.name for automation in wanted]


def _fingerprint(automation: Any) -> Any:
    """What defines an automation, comparable across the server's copy and ours (sets of
    event names come back in any order; ids and the owner are not part of the definition)."""

    def normal(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: normal(v) for k, v in value.items() if k not in ("id", "owner_resource")}
        if isinstance(value, list):
            items = [normal(v) for v in value]
            return sorted(items) if all(isinstance(v, str) for v in items) else items
        return value

    return normal(automation.model_dump(mode="json"))


def ensure_automations(
    heartbeat_silence_seconds: float = 60,
    pending_seconds: float = 60,
    pipeline_stall_seconds: float = 60,
    operator_webhook_url: str | None = None,
    pipeline_deployment: str = PIPELINE_DEPLOYMENT,
) -> list[str]:
    """Creates or updates the billpay automations on the configured Prefect server (sync; for
    ``billpay serve`` to call before serving). Returns their names."""
    from prefect.client.orchestration import get_client

    thresholds = Thresholds(heartbeat_silence_seconds, pending_seconds, pipeline_stall_seconds)
    block_id = ensure_operator_block(operator_webhook_url) if operator_webhook_url else None
    wanted = automation_definitions(thresholds, block_id, pipeline_deployment)
    with get_client(sync_client=True) as client:
        return apply_automations(client, wanted)


def crash_orphaned_runs(client: SyncPrefectClient, older_than_seconds: float) -> int:
    """Marks Crashed each billpay run Pending or Running whose state (and, for Running, last
    heartbeat) is older than ``older_than_seconds``. Returns how many. For ``billpay serve`` at
    start: covers runs stranded while the server was down and saw no silence. Running runs are
    judged by heartbeats, so serve with PREFECT_FLOWS_HEARTBEAT_FREQUENCY set."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[TAG]),
            state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=[StateType.PENDING, StateType.RUNNING])
            ),
        ),
        limit=200,
    )
    crashed = 0
    for run in runs:
        if run.state is None or run.state.timestamp > cutoff:
            continue
        if run.state.type == StateType.RUNNING and _heartbeat_since(client, run.id, cutoff):
            continue
        why = (
            f"{run.state.name} for over {older_than_seconds:g} s with no heartbeat: "
            "crashed by billpay serve's sweep (its process is gone)."
        )
        result = client.set_flow_run_state(run.id, Crashed(message=why))
        crashed += result.state is not None and result.state.is_crashed()
    return crashed


def _heartbeat_since(client: SyncPrefectClient, flow_run_id: UUID, since: datetime) -> bool:
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventResourceFilter,
    )

    page = client.read_events(
        filter=EventFilter(
            event=EventNameFilter(name=[HEARTBEAT]),
            resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
            occurred=EventOccurredFilter(since=since),
        ),
        limit=1,
    )
    return bool(page.events)


automations_app = typer.Typer(no_args_is_help=True, help="Self-healing and alarm automations.")


@automations_app.command("apply")
def apply_command(
    heartbeat_seconds: Annotated[float, typer.Option(help="crash Running after this silence")] = 60,
    pending_seconds: Annotated[float, typer.Option(help="crash Pending after this long")] = 60,
    stall_seconds: Annotated[float, typer.Option(help="alarm when no pipeline run completes")] = 60,
    operator_webhook_url: Annotated[
        str | None,
        typer.Option(envvar="BILLPAY_OPERATOR_WEBHOOK_URL", help="POST alarms here"),
    ] = None,
) -> None:
    """Create or update the billpay automations on the Prefect server."""
    names = ensure_automations(
        heartbeat_seconds, pending_seconds, stall_seconds, operator_webhook_url
    )
    typer.echo("\n".join(names))


@automations_app.command("list")
def list_command() -> None:
    """The billpay automations on the Prefect server and what each watches for."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        found = [a for a in client.read_automations() if a.name.startswith(PREFIX)]
    for automation in sorted(found, key=lambda a: a.name):
        state = "enabled" if automation.enabled else "disabled"
        actions = ", ".join(action.type for action in automation.actions)
        typer.echo(f"{automation.name} [{state}] -> {actions}")
        typer.echo(automation.trigger.describe_for_cli(indent=1))
