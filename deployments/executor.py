"""Runs the scheduled runs of the ``pipeline`` deployment inside ``billpay serve`` itself.

Prefect's runner starts a fresh Python process for every flow run: several CPU-seconds and
3-14 s of start-up on this machine, so a 10-second tick overran its interval and collided with
the next one. This executor keeps one warm process instead. The schedule stays the server's
(pause it in the UI and ticks stop; "Run" in the UI starts one now), and each run is a normal
deployment run: the server's own state rules decide who runs it (Scheduled -> Pending is
accepted once, so two executors never run the same tick), the engine sends its heartbeats,
and the UI shows it like any other run.

A tick that overruns its interval is never queued behind: when it ends, the newest due run is
started and the older due ones are closed as ``Skipped`` (a Cancelled state with a message), a
visible, counted event rather than a pile of late runs.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

log = logging.getLogger("billpay.executor")

SKIPPED = "Skipped"


@dataclass
class ExecutorCounts:
    """What the executor did since it started (printed at shutdown, read by the bench)."""

    started: int = 0
    completed: int = 0
    failed: int = 0
    skipped: int = 0
    refused: int = 0  # the server gave the run to someone else (another executor)
    # scheduled -> started, for the last runs (bounded: serve lives for weeks)
    late_s: deque[float] = field(default_factory=lambda: deque(maxlen=1000))

    def as_dict(self) -> dict[str, Any]:
        late = sorted(self.late_s)
        return {
            "started": self.started,
            "completed": self.completed,
            "failed": self.failed,
            "skipped": self.skipped,
            "refused": self.refused,
            "start_delay_p95_s": round(nearest_rank(late, 0.95), 2) if late else None,
        }


class InProcessExecutor:
    """Polls one deployment's due runs and runs each in this process, one at a time."""

    def __init__(
        self, flow: Any, deployment_id: UUID, interval_seconds: float, stop: threading.Event
    ) -> None:
        self.flow = flow
        self.deployment_id = deployment_id
        self.interval = interval_seconds
        self.stop = stop
        self.counts = ExecutorCounts()
        self.current: UUID | None = None  # the run in progress, if any

    def run_forever(self) -> None:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            while not self.stop.is_set():
                try:
                    self._once(client)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException:  # noqa: BLE001 - the API restarting, or Prefect's Abort
                    # and Pause (BaseExceptions): this thread must outlive them all.
                    log.exception("pipeline executor: poll failed; retrying")
                    self.stop.wait(2)

    def _once(self, client: Any) -> None:
        now = datetime.now(UTC)
        runs = client.get_scheduled_flow_runs_for_deployments(
            [self.deployment_id], scheduled_before=now + timedelta(seconds=self.interval)
        )
        due = [run for run in runs if _start_time(run) <= now]
        if not due:
            upcoming = min((_start_time(run) for run in runs), default=None)
            wait = (upcoming - now).total_seconds() if upcoming else self.interval
            self.stop.wait(min(max(wait, 0.05), self.interval))
            return
        due.sort(key=_start_time)
        for stale in due[:-1]:
            self._skip(client, stale, due[-1])
        self._execute(client, due[-1])

    def _skip(self, client: Any, run: Any, newer: Any) -> None:
        """Close a stale due run, but only one this executor took (Scheduled -> Pending is
        accepted once): another executor may be running it already."""
        from prefect.states import Cancelled

        if not self._take(client, run):
            return
        message = (
            f"skipped: a newer tick ({newer.name}) was already due when this one could start "
            "(the previous tick overran its interval, or serve was down)"
        )
        try:
            client.set_flow_run_state(run.id, Cancelled(name=SKIPPED, message=message))
            self.counts.skipped += 1
        except Exception:  # noqa: BLE001 - it stays scheduled; the next poll skips it again
            log.warning("could not mark %s skipped", run.name, exc_info=True)

    def _take(self, client: Any, run: Any) -> bool:
        """Propose Pending: True when the server gave this run to us."""
        from prefect.exceptions import Abort
        from prefect.states import Pending
        from prefect.utilities.engine import propose_state_sync

        if self.stop.is_set():
            return False  # shutting down: leave it Scheduled for whoever serves next
        try:
            state = propose_state_sync(client, Pending(), flow_run_id=run.id)
        except Abort:
            state = None
        if state is None or not state.is_pending():
            self.counts.refused += 1  # taken by another executor, or cancelled meanwhile
            return False
        return True

    def _execute(self, client: Any, run: Any) -> None:
        from prefect.flow_engine import run_flow

        if not self._take(client, run):
            return
        self.counts.started += 1
        self.counts.late_s.append((datetime.now(UTC) - _start_time(run)).total_seconds())
        self.current = run.id
        try:
            final = run_flow(self.flow, flow_run=run, return_type="state")
        except BaseException:
            log.exception("pipeline run %s ended with an engine error", run.name)
            self.counts.failed += 1
            return
        finally:
            self.current = None
        if final is not None and final.is_completed():
            self.counts.completed += 1
        else:
            self.counts.failed += 1


def nearest_rank(ordered: Any, share: float) -> float:
    """The nearest-rank percentile of sorted values (p95 of 5 values is the largest)."""
    return float(ordered[max(math.ceil(share * len(ordered)) - 1, 0)])


def _start_time(run: Any) -> datetime:
    return run.next_scheduled_start_time or run.expected_start_time


def start_in_thread(executor: InProcessExecutor) -> threading.Thread:
    thread = threading.Thread(target=executor.run_forever, name="pipeline-executor", daemon=True)
    thread.start()
    return thread


def stop_and_wait(
    executor: InProcessExecutor, thread: threading.Thread, seconds: float = 20
) -> bool:
    """Stop polling and let the tick in progress finish; True when nothing is left running.

    A tick that does not end in time is marked Crashed here (its leases are given back at
    exit), so a clean shutdown never leaves a run Running; after SIGKILL the heartbeat
    automation does the same within a minute.
    """
    executor.stop.set()
    deadline = time.monotonic() + seconds
    thread.join(timeout=max(deadline - time.monotonic(), 0))
    running = executor.current
    if running is None:
        return True
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        # Not forced: a tick that finished meanwhile keeps its Completed state.
        client.set_flow_run_state(
            running, Crashed(message="billpay serve stopped before this tick finished")
        )
    return False
