"""The providers' webhooks, as the sandbox sends them when ``SandboxOptions.webhook_url`` is set.

Wire formats as documented (REFERENCE.md): VTpass ``{"type": "transaction-update", "data":
<the requery answer>}`` with no signature; Flutterwave ``{"event": "singlebillpayment.status",
"event.type": "SingleBillPayment", "data": {...}}`` with the dashboard's secret hash in the
``verif-hash`` header. Like the providers, a webhook whose answer is not a success is sent again
(VTpass: up to 5 times); each send is in the call log as operation ``webhook``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from billpay.sandbox.options import SandboxOptions

# What the sandbox's "dashboard" has set: BILLPAY_FLUTTERWAVE_WEBHOOK_HASH (see provider_env).
SANDBOX_FLUTTERWAVE_WEBHOOK_HASH = "sandbox-flutterwave-webhook-hash-0000000000"
MAX_SENDS = 5
RESEND_AFTER_SECONDS = 0.5
SEND_TIMEOUT_SECONDS = 5.0


def vtpass_body(requery_answer: dict[str, Any]) -> dict[str, Any]:
    return {"type": "transaction-update", "data": requery_answer}


def flutterwave_body(status_data: dict[str, Any], delivered: bool) -> dict[str, Any]:
    data = {
        "customer": status_data.get("customer_id"),
        "amount": status_data.get("amount"),
        "network": status_data.get("product"),
        "tx_ref": status_data.get("tx_ref"),
        "flw_ref": status_data.get("flw_ref"),
        "batch_reference": None,
        "customer_reference": status_data.get("customer_reference"),
        "status": "success" if delivered else "fail",
        "message": "Bill Payment was completed successfully"
        if delivered
        else "Bill Payment failed",
        "reference": None,
    }
    return {"event": "singlebillpayment.status", "event.type": "SingleBillPayment", "data": data}


async def send(options: SandboxOptions, provider: str, reference: str, body: dict[str, Any]) -> str:
    """POST one webhook to ``<webhook_url>/webhooks/<provider>``, again after a failure; returns
    the last outcome (an HTTP status, or the transport error's name)."""
    assert options.webhook_url
    url = f"{options.webhook_url.rstrip('/')}/webhooks/{provider}"
    headers = {"Content-Type": "application/json"}
    if provider == "flutterwave":
        headers["verif-hash"] = SANDBOX_FLUTTERWAVE_WEBHOOK_HASH
    outcome = "not_sent"
    async with httpx.AsyncClient(timeout=SEND_TIMEOUT_SECONDS) as client:
        for _ in range(MAX_SENDS):
            try:
                response = await client.post(url, json=body, headers=headers)
                outcome = str(response.status_code)
                if response.status_code < 300:
                    break
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            await asyncio.sleep(RESEND_AFTER_SECONDS)
    options.log_call(
        provider, "webhook", reference=reference, account=None, amount=None, outcome=outcome
    )
    return outcome
