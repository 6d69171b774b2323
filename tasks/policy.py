"""When Prefect may retry a task inside one tick: only for infrastructure blips. Business
outcomes are return values, and cross-tick retries are persisted in the database."""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa

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
