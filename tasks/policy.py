"""When Prefect may retry a task inside one tick: only for infrastructure blips. Business
outcomes are return values, and cross-tick retries are persisted in the database."""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa
from prefect.cache_policies import NO_CACHE

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.TimeoutError,
    httpx.TransportError,
    ConnectionError,
)


def retry_on_transient(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn``: retry only when the failure was a transient infrastructure error."""
    try:
        state.result()
    except TRANSIENT_ERRORS:
        return True
    except BaseException:  # noqa: BLE001 - anything else is not worth retrying blindly
        return False
    return False


# No Prefect task timeouts: tasks run in worker threads, where Prefect cannot interrupt a
# blocking call. Every HTTP client has its own connect/read timeouts (settings), which bound
# each provider, Horizon and webhook call instead.


# Task inputs are ids, rows, a Database or DataFrames: never hash them for a cache key, and
# never persist results (they are in the database already).
UNCACHED: dict[str, Any] = {"persist_result": False, "cache_policy": NO_CACHE}

# What every pipeline task passes to ``@task``: ``@task(name=..., **TASK_DEFAULTS)``.
TASK_DEFAULTS: dict[str, Any] = {
    **UNCACHED,
    "retries": 2,
    "retry_delay_seconds": [1, 5],
    "retry_condition_fn": retry_on_transient,
}
