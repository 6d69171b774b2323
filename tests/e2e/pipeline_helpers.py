"""What the end-to-end tests share: placing orders, reading bills, ticking until settled, and
reading the sandbox's own call log and ledger."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from billpay.config import Settings
from billpay.intake import OrderRequest, create_order
from billpay.store import bills as bill_store
from deployments.cli import run_tick


def place_order(
    rt: Any, bill_type: str, biller: str, account: str, amount: str = "1000", **kw: Any
) -> dict[str, Any]:
    request = OrderRequest(
        bill_type=bill_type,
        biller=biller,
        account=account,
        amount=amount,
        phone=kw.pop("phone", "08011111111"),
        **kw,
    )
    return create_order(rt.db, rt.settings, request, catalogue=rt.catalogue.current())


@contextmanager
def runtime_with(settings: Settings, **update: Any) -> Iterator[Any]:
    """The pipeline's runtime on ``settings`` changed by ``update``, for one scenario."""
    from billpay.app import App
    from tasks.runtime import set_runtime

    rt = App.open(settings.model_copy(update=update))
    set_runtime(rt)
    try:
        yield rt
    finally:
        set_runtime(None)
        rt.close()


def bill_row(rt: Any, reference: str) -> dict[str, Any]:
    row = bill_store.get_by_reference(rt.db, reference)
    assert row is not None
    return row


def ticks_until_settled(rt: Any, references: list[str], max_ticks: int = 8) -> dict[str, str]:
    for _ in range(max_ticks):
        run_tick()
        states = {ref: bill_row(rt, ref)["status"] for ref in references}
        if all(s in ("completed", "refunded", "expired") for s in states.values()):
            return states
    return states


def successful_pays(sandbox: Any) -> Counter[str]:
    return Counter(
        call.get("reference")
        for call in sandbox.calls(operation="pay")
        if call.get("outcome")
        in ("success", "delivered", "pending", "timeout", "no_response", "unexpected")
    )


def pay_calls(sandbox: Any) -> Counter[str]:
    return Counter(call.get("reference") for call in sandbox.calls(operation="pay"))


def refund_payments(sandbox: Any, rt: Any) -> list[dict[str, Any]]:
    return [
        r
        for r in sandbox.horizon_transactions(rt.settings.system_account)
        if r.get("from") == rt.settings.system_account
    ]


def open_pay_attempt(rt: Any) -> bool:
    with rt.db.connect() as conn:
        return bool(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM provider_attempts WHERE operation = 'pay' AND finished_at IS NULL"
                )
            ).scalar_one()
        )


def db_now(rt: Any):
    with rt.db.connect() as conn:
        return conn.execute(sa.text("SELECT now()")).scalar_one()
