"""The value a bill rule returns and the store persists: the next state and what to write.

No I/O and no provider types here, so the store can take a decision without importing the rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from billpay.states import BillState

S = BillState


@dataclass(frozen=True, slots=True)
class Alert:
    """An operator notification, written to the outbox in the decision's transaction."""

    kind: str
    text: str
    dedupe_key: str
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ErrorNote:
    """``last_error`` / ``last_error_class`` to store (``None`` values clear them)."""

    message: str | None
    error_class: str | None


CLEAR_ERROR = ErrorNote(None, None)


@dataclass(frozen=True, slots=True)
class Decision:
    """The next state of one bill and what to write with it.

    ``target == source``: the bill stays and waits (``next_attempt_at``). With a
    ``refund_reason`` the bill gives up: it walks through ``target`` (``account_invalid`` or
    ``provider_failed``) to ``refund_initiated``."""

    source: BillState
    target: BillState
    summary: str  # what the step reports (the task result, the UI)
    detail: str = ""  # the audit event's text
    advances: bool = True  # whether applying it counts as the bill moving on
    retry_count: int | None = None
    requery_count: int | None = None
    next_attempt_at: datetime | None = None
    error: ErrorNote | None = None  # None: leave last_error as it is
    provider_reference: str | None = None
    verification: Mapping[str, Any] | None = None
    token: str | None = None
    units: str | None = None
    refund_reason: str | None = None
    alert: Alert | None = None

    @property
    def after(self) -> BillState:
        """The bill's state once this is applied."""
        return S.REFUND_INITIATED if self.refund_reason is not None else self.target
