"""``billpay serve``: every deployment from the registry, served from one long-lived process.

The ``pipeline`` deployment (every 10 s) is run in this process by the in-process executor
(deployments/executor.py): no process per tick. The rest (reports, reprocess-stuck, the daily
report) are served by Prefect's runner, which starts a process per run: they are rare.

Every run sends heartbeats, and the automations (deployments/automations.py) crash a run
whose heartbeat stops or that never left Pending, so a SIGKILL never wedges a deployment. A
clean stop lets the tick in progress finish and leaves no run Pending or Running; with
``--pause-on-stop`` (one machine only) it also pauses the schedules, so no late runs pile up
while nothing serves them, and the next start resumes them. Without it, ticks that fell due
while serve was down are closed as Skipped when it starts again.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
from typing import Any

from billpay.config import Settings
from deployments.registry import DeploymentSpec, all_specs

log = logging.getLogger("billpay.serve")

# Prefect's floor for flow-run heartbeats (flow_engine.MINIMUM_HEARTBEAT_INTERVAL).
HEARTBEAT_SECONDS = 30


def enable_heartbeats() -> int:
    """Before Prefect is imported (its settings are read once, from the environment): a
    heartbeat every 30 s unless the environment asks for another interval. Returns it."""
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT_SECONDS))
    os.environ.setdefault("PREFECT_RUNNER_HEARTBEAT_FREQUENCY", str(HEARTBEAT_SECONDS))
    return int(os.environ["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"])


def check_heal_threshold(heal_after_seconds: int, heartbeat_seconds: int) -> None:
    """A live run must never look dead: the threshold has to cover a heartbeat and a half."""
    if heal_after_seconds < 1.5 * heartbeat_seconds:
        raise ValueError(
            f"BILLPAY_HEAL_AFTER_SECONDS={heal_after_seconds} is too short for heartbeats every "
            f"{heartbeat_seconds} s (PREFECT_FLOWS_HEARTBEAT_FREQUENCY): live runs would be "
            f"crashed; use at least {math.ceil(1.5 * heartbeat_seconds)}"
        )


def chosen_specs(names: set[str] | None = None) -> list[DeploymentSpec]:
    specs = [spec for spec in all_specs() if not names or spec.name in names]
    unknown = (names or set()) - {spec.name for spec in all_specs()}
    if unknown:
        raise KeyError(f"no deployment named {', '.join(sorted(unknown))}")
    return specs


def build_deployment(spec: DeploymentSpec) -> Any:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron, Interval

    schedules = []
    if spec.interval_seconds:
        schedules.append(Interval(spec.interval_seconds))
    if spec.cron:
        schedules.append(Cron(spec.cron, timezone=spec.timezone or "UTC"))
    limit = (
        ConcurrencyLimitConfig(
            limit=spec.concurrency_limit,
            collision_strategy=ConcurrencyLimitStrategy(spec.collision_strategy),
        )
        if spec.concurrency_limit
        else None
    )
    return spec.load_flow().to_deployment(
        name=spec.name,
        schedules=schedules or None,
        parameters=spec.parameters or None,
        concurrency_limit=limit,
        description=spec.description,
        tags=["billpay"],
    )


def build_deployments(names: set[str] | None = None) -> list[Any]:
    return [build_deployment(spec) for spec in chosen_specs(names)]


def serve(
    names: set[str] | None = None, limit: int = 10, pause_on_stop: bool = False
) -> dict[str, Any]:
    """Serve until SIGTERM/SIGINT; what the in-process executors did, at the end.

    ``pause_on_stop``: pause the schedules at a clean stop (one machine: no late runs pile
    up while nothing serves them). Off by default: with serve on several machines, one
    machine's stop must not pause the pipeline for the others."""
    from prefect import serve as prefect_serve
    from prefect.client.orchestration import get_client

    from deployments.executor import InProcessExecutor, start_in_thread, stop_and_wait

    settings = Settings()
    heartbeat_seconds = enable_heartbeats()
    check_heal_threshold(settings.heal_after_seconds, heartbeat_seconds)
    heal(settings)
    specs = chosen_specs(names)
    stop = threading.Event()
    sweeper = threading.Thread(
        target=_sweep_forever, args=(stop, settings.heal_after_seconds), daemon=True
    )
    sweeper.start()
    running: list[tuple[Any, threading.Thread, Any]] = []
    for spec in (s for s in specs if s.in_process):
        deployment_id = build_deployment(spec).apply()
        executor = InProcessExecutor(spec.load_flow(), deployment_id, spec.interval_seconds, stop)
        running.append((executor, start_in_thread(executor), deployment_id))
    served = [build_deployment(spec) for spec in specs if not spec.in_process]
    print(
        f"serving {len(specs)} deployments: {', '.join(s.name for s in specs)}"
        f" ({', '.join(s.name for s in specs if s.in_process) or 'none'} in-process)",
        flush=True,
    )
    try:
        if served:
            prefect_serve(
                *served,
                limit=limit,
                heartbeat_seconds=heartbeat_seconds,
                pause_on_shutdown=pause_on_stop,
                print_starting_message=False,
            )
        else:
            _wait_for_signal(stop)
    finally:
        for executor, thread, _ in running:
            stop_and_wait(executor, thread)
        if pause_on_stop:
            with get_client(sync_client=True) as client:
                for _, _, deployment_id in running:
                    client.pause_deployment(deployment_id)
    counts = {"executors": [executor.counts.as_dict() for executor, _, _ in running]}
    print(f"serve stopped: {counts}", flush=True)
    return counts


def heal(settings: Settings) -> None:
    """The automations (created or updated), then the same rule once by hand for runs that
    were stranded while nobody watched (an automation only sees events after it exists)."""
    from deployments import automations

    seconds = settings.heal_after_seconds
    automations.ensure_automations(
        heartbeat_silence_seconds=seconds,
        pending_seconds=seconds,
        operator_webhook_url=settings.operator_webhook_url,
    )
    _sweep(seconds)


def _sweep(seconds: float) -> int:
    from prefect.client.orchestration import get_client

    from deployments import automations

    with get_client(sync_client=True) as client:
        crashed = automations.crash_orphaned_runs(client, older_than_seconds=seconds)
    if crashed:
        print(f"crashed {crashed} run(s) left Pending/Running by a process that is gone")
    return crashed


def _sweep_forever(stop: threading.Event, seconds: float) -> None:
    """The same rule every half threshold, from here: a backstop for what the automations
    cannot see (the Prefect server was restarting when a heartbeat stopped)."""
    while not stop.wait(seconds / 2):
        try:
            _sweep(seconds)
        except Exception:  # noqa: BLE001 - the API may be restarting; try at the next round
            log.warning("sweep for orphaned runs failed", exc_info=True)


def _wait_for_signal(stop: threading.Event) -> None:
    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(1):
        pass
