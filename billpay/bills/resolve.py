"""An operator's way out of ``provider_processing`` (``billpay resolve``): when a provider never
answers definitively, the operator confirms with the provider out of band and records the
outcome: delivered (with the token where the bill has one) or failed (the bill is refunded).

Only for a bill pending at its provider for longer than ``pending_alert_seconds`` (when operators
are alerted), with a mandatory note; audited in the bill's events (actor, choice, note, the token
masked), through one status writer (``bill_resolve``, sql/0010) that checks again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from billpay.config import Settings
from billpay.orders import BillType
from billpay.states import BillState
from billpay.store import Database
from billpay.store import bills as bill_store
from billpay.tokens import is_valid_token, mask_text, mask_token

S = BillState
NOTE_LIMIT = 500
REFUND_REASON = "operator_resolved: the provider confirmed it was not delivered"


class ResolveError(ValueError):
    """Bad input or a bill that may not be resolved now; ``field`` names what to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Resolution:
    delivered: bool
    note: str
    token: str | None = None
    units: str | None = None

    @property
    def choice(self) -> str:
        return "delivered" if self.delivered else "failed"


def has_token(row: dict[str, Any]) -> bool:
    """Prepaid electricity delivers a token the customer types into the meter."""
    return row["bill_type"] == BillType.ELECTRICITY and row.get("account_type") == "prepaid"


def check_input(
    *, delivered: bool, failed: bool, token: str | None, units: str | None, note: str | None
) -> Resolution:
    """The command line's choices, checked before the database is touched."""
    if delivered == failed:
        raise ResolveError("--delivered/--failed", "give exactly one of them")
    text = (note or "").strip()
    if not text:
        raise ResolveError("--note", "say what the provider confirmed (mandatory)")
    if len(text) > NOTE_LIMIT:
        raise ResolveError("--note", f"at most {NOTE_LIMIT} characters")
    if failed and (token or units):
        raise ResolveError("--token/--units", "only with --delivered")
    if token is not None and not is_valid_token(token):
        raise ResolveError("--token", "an electricity token has 20 digits")
    if units is not None:
        try:
            value = Decimal(units)
        except InvalidOperation:
            value = Decimal(-1)
        if not value.is_finite() or value <= 0:
            raise ResolveError("--units", f"not a positive number: {units!r}")
    compact = "".join(ch for ch in token if ch.isdigit()) if token else None
    return Resolution(delivered, text, compact, units)


def check_bill(
    row: dict[str, Any] | None, resolution: Resolution, settings: Settings, now: datetime
) -> dict[str, Any]:
    """The bill may be resolved now, this way."""
    if row is None:
        raise ResolveError("REFERENCE", "no such bill")
    if row["status"] != S.PROVIDER_PROCESSING:
        raise ResolveError(
            "state", f"the bill is {row['status']}; only a provider_processing bill is resolved"
        )
    allowed_from = row["updated_at"] + timedelta(seconds=settings.pending_alert_seconds)
    if now < allowed_from:
        raise ResolveError(
            "too early",
            f"pending since {row['updated_at']:%Y-%m-%d %H:%M:%S}Z; resolve is allowed from "
            f"{allowed_from:%Y-%m-%d %H:%M:%S}Z (pending_alert_seconds="
            f"{settings.pending_alert_seconds}): requery it until then",
        )
    if resolution.delivered and has_token(row) and resolution.token is None:
        raise ResolveError("--token", "a prepaid electricity bill is delivered with its token")
    if resolution.token is not None and not has_token(row):
        raise ResolveError("--token", f"a {row['bill_type']} bill has no token")
    return row


def audit_detail(resolution: Resolution, actor: str) -> str:
    """The event text: who, which choice, the token masked, the note (masked too: an operator
    may paste a token or a meter into it)."""
    parts = [f"resolved {resolution.choice} by {actor}"]
    if resolution.token:
        parts.append(f"token {mask_token(resolution.token)}")
    if resolution.units:
        parts.append(f"units {resolution.units}")
    return "; ".join(parts) + f"; note: {mask_text(resolution.note)}"


def resolve(
    db: Database,
    settings: Settings,
    reference: str,
    resolution: Resolution,
    *,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    """Apply an operator's resolution; returns what the command prints (token masked)."""
    row = check_bill(bill_store.get_by_reference(db, reference), resolution, settings, now)
    detail = audit_detail(resolution, actor)
    with db.begin() as conn:
        refused = bill_store.resolve(
            conn,
            row["id"],
            choice=resolution.choice,
            actor=actor,
            detail=detail,
            min_pending_seconds=settings.pending_alert_seconds,
            token=resolution.token,
            units=resolution.units,
            refund_reason=None if resolution.delivered else REFUND_REASON,
        )
    if refused is not None:  # it changed since we looked: the writer checked again
        raise ResolveError("state", refused)
    after = bill_store.get_by_reference(db, reference) or row
    return {
        "reference": row["reference"],
        "choice": resolution.choice,
        "status": after["status"],
        "token": mask_token(resolution.token),
        "units": resolution.units,
        "actor": actor,
    }
