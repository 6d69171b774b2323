"""Acceptance: a client app's order end to end. A key from `billpay apikey create`, an order
from POST /api/bills/pay, paid on the sandbox ledger, run through the pipeline's ticks, read
back with GET /api/bills/{reference}: completed with its token, or refunded with the hash."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from billpay.tokens import format_token, is_valid_token
from deployments.cli import app
from tests.api.bodies import AIRTIME, ELECTRICITY, post_order
from tests.api.conftest import ApiServer
from tests.e2e.conftest import prefect_harness, runtime  # noqa: F401 - the pipeline's fixtures
from tests.e2e.pipeline_helpers import bill_row, refund_payments, ticks_until_settled

pytestmark = pytest.mark.e2e


@pytest.fixture
def key(api: ApiServer, monkeypatch: pytest.MonkeyPatch) -> str:
    url = api.runtime.settings.database_url
    monkeypatch.setenv("BILLPAY_DATABASE_URL", str(url))
    result = CliRunner().invoke(app, ["apikey", "create", "wallet-app"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["key"]


def _settled_order(
    api: ApiServer, key: str, rt, sandbox, body: dict, paid: str | None, settles_as: str
) -> tuple[dict, dict]:
    """Order ``body`` through the API, pay ``paid`` cNGN (the amount asked if None) on the
    ledger, tick until it settles as ``settles_as``: the order and GET /api/bills/{reference}."""
    with api.client(key) as http:
        answer = post_order(http, body, f"{body['bill_type']}-1")
        assert answer.status_code == 201, answer.text
        order = answer.json()
        sandbox.pay(order["memo"], paid or order["amount_cngn"])
        assert ticks_until_settled(rt, [order["reference"]]) == {order["reference"]: settles_as}
        return order, http.get(f"/api/bills/{order['reference']}").json()


def test_an_api_order_paid_on_the_ledger_completes_with_its_token(
    api: ApiServer,
    key: str,
    runtime,  # noqa: F811 - the imported fixture
    sandbox,
) -> None:
    order, out = _settled_order(api, key, runtime, sandbox, ELECTRICITY, None, "completed")
    row = bill_row(runtime, order["reference"])
    assert out["status"] == "completed"
    assert is_valid_token(row["token"]) and out["token"] == format_token(row["token"])
    assert out["units"] == row["units"]  # None when the provider gives no units
    assert out["paid_at"] and out["completed_at"] and out["payment"] is None
    assert out["refund"] is None
    assert [e["to"] for e in out["events"]] == [
        "pending_payment",
        "cngn_received",
        "verifying_account",
        "processing_bill",
        "completed",
    ]
    assert row["token"] not in json.dumps(out["events"])


def test_a_wrong_amount_reads_back_refunded_with_the_refund_hash(
    api: ApiServer,
    key: str,
    runtime,  # noqa: F811 - the imported fixture
    sandbox,
) -> None:
    order, out = _settled_order(api, key, runtime, sandbox, AIRTIME, "499.9900000", "refunded")
    [on_ledger] = refund_payments(sandbox, runtime)
    assert out["status"] == "refunded" and out["token"] is None
    assert out["refund"] == {
        "status": "confirmed",
        "reason": "amount_mismatch",
        "amount": "499.9900000",
        "asset": f"cNGN:{order['asset_issuer']}",
        "tx_hash": on_ledger["transaction_hash"],
    }
    assert out["refunded_at"] and out["events"][-1]["to"] == "refunded"
