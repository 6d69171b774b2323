"""Items 1 and 7 together, once POST /api/bills/pay is merged: an order the demo's code path
(``deployments.demo.create_order_via_api``) creates through the real API server belongs to the
client whose key made it, and its receipt reaches that client's webhook, signed with the secret
`billpay apikey create` printed."""

from __future__ import annotations

from billpay.api import clients
from billpay.intake import OrderRequest
from billpay.states import BillState
from billpay.store import bills
from deployments.demo import create_order_via_api
from tests.api.bodies import ELECTRICITY
from tests.api.conftest import WEBHOOK_SECRET, api, api_settings  # noqa: F401 - fixtures
from tests.e2e.conftest import pipeline_settings, sandbox  # noqa: F401 - fixtures
from tests.factories import force_state
from tests.integration.test_client_webhooks import (  # noqa: F401 - the receiver fixture
    TOKEN,
    _body,
    _dispatch,
    receiver,
)
from tests.webhook_receiver import signed_with


def test_an_order_made_through_the_api_sends_its_receipt_to_that_clients_webhook(
    api,  # noqa: F811 - the imported fixture
    receiver,  # noqa: F811 - the imported fixture
):
    wallet = clients.create(
        api.runtime.db,
        "wallet-one",
        webhook_url=receiver.url("/wallet-one"),
        master_secret=WEBHOOK_SECRET,
    )
    order = OrderRequest(**ELECTRICITY)
    with api.client(wallet["key"]) as http:
        created = create_order_via_api(http, order)
    assert created["memo"] == f"BILL-{created['reference']}"
    bill = bills.get_by_reference(api.runtime.db, created["reference"])
    assert bill is not None
    with api.runtime.db.begin() as conn:  # the pipeline's road to delivery, shortened
        force_state(conn, bill["id"], BillState.COMPLETED, token=TOKEN, provider="vtpass")

    (result,) = _dispatch(api.runtime)
    assert result["detail"] == "sent via webhook of client wallet-one (127.0.0.1)"
    (request,) = receiver.at("/wallet-one")
    assert _body(request)["reference"] == created["reference"]
    assert signed_with(request, wallet["webhook_signing_secret"])
