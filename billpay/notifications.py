"""Notification messages per bill type, and their delivery (signed webhook, or the log).

Customer messages carry the electricity token (the user needs it); what is logged never does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx

from billpay.money import format_naira, naira_text
from billpay.tokens import format_token, mask_account, mask_token

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Billpay-Signature"

REFUND_REASONS = {
    "amount_mismatch": "the amount sent did not match the order",
    "order_not_payable": "the order was no longer payable (expired or already paid)",
    "unknown_reference": "the payment memo did not name a bill order",
    "account_invalid": "the provider could not verify the account",
    "provider_failed": "the provider could not deliver the bill",
    "operator_refund": "our operations team cancelled the bill",
    "provider_reversed": "the provider reversed the bill after delivering it",
}


@dataclass(frozen=True)
class Message:
    kind: str
    audience: str
    reference: str | None
    text: str  # what the user or operator reads
    log_text: str  # the same with tokens and accounts masked

    def body(self, notification_id: int, data: Mapping[str, Any]) -> dict[str, Any]:
        """The webhook's JSON. ``data`` is the event's payload, plus ``amount``: the naira as a
        decimal string (as the API writes money) beside the integer ``amount_kobo``."""
        payload = dict(data)
        kobo = payload.get("amount_kobo")
        if isinstance(kobo, int) and not isinstance(kobo, bool) and "amount" not in payload:
            payload["amount"] = naira_text(kobo)
        return {
            "id": notification_id,
            "kind": self.kind,
            "audience": self.audience,
            "reference": self.reference,
            "message": self.text,
            "data": payload,
        }


def render(kind: str, audience: str, payload: Mapping[str, Any]) -> Message:
    reference = payload.get("reference")
    if kind == "bill_completed":
        text, log_text = _completed(payload)
    elif kind == "bill_refunded":
        text = log_text = _refunded(payload)
    elif kind == "bill_reversed":
        text = log_text = _reversed(payload)
    else:
        text = log_text = _operator_alert(kind, payload)
    return Message(kind, audience, reference, text, log_text)


def _completed(p: Mapping[str, Any]) -> tuple[str, str]:
    amount = format_naira(int(p.get("amount_kobo") or 0))
    bill_type = p.get("bill_type")
    account = str(p.get("account_number") or "")
    ref = p.get("reference")
    if bill_type == "electricity":
        token = p.get("token")
        units = f", {p['units']} units" if p.get("units") else ""
        meter = f"meter {account}"
        if token:
            text = (
                f"{ref}: {amount} {p.get('biller')} token {format_token(token)} for {meter}{units}."
            )
            masked = f"{ref}: {amount} {p.get('biller')} token {mask_token(token)} for meter {mask_account(account)}{units}."
            return text, masked
        text = f"{ref}: {amount} paid to {p.get('biller')} for {meter} ({p.get('account_type') or 'postpaid'})."
        return text, text.replace(account, mask_account(account))
    if bill_type in ("airtime", "data"):
        what = "airtime" if bill_type == "airtime" else f"data ({p.get('product_code')})"
        text = f"{ref}: {amount} {what} delivered to {mask_account(account)}."
        return text, text
    if bill_type == "cable_tv":
        text = f"{ref}: {p.get('biller')} {p.get('product_code') or ''} renewed for smart card {mask_account(account)} ({amount})."
        return text, text
    text = f"{ref}: {amount} paid to {p.get('biller')} for account {mask_account(account)}."
    return text, text


def _refunded(p: Mapping[str, Any]) -> str:
    reason = str(p.get("reason") or "")
    code, _, detail = reason.partition(":")
    human = REFUND_REASONS.get(code.strip(), reason or "the bill could not be paid")
    if code.strip() in REFUND_REASONS and detail.strip():
        human = f"{human} ({detail.strip()})"
    amount = p.get("amount_cngn")
    amount_text = f"{Decimal(str(amount)):,.7f} cNGN" if amount else "your cNGN"
    tx = f" (transaction {p['tx_hash']})" if p.get("tx_hash") else ""
    return f"{p.get('reference')}: refunded {amount_text} because {human}{tx}."


def _reversed(p: Mapping[str, Any]) -> str:
    amount = format_naira(int(p.get("amount_kobo") or 0))
    account = mask_account(str(p.get("account_number") or ""))
    cngn = p.get("amount_cngn")
    back = f"{Decimal(str(cngn)):,.7f} cNGN" if cngn else "your cNGN"
    return (
        f"{p.get('reference')}: {p.get('biller')} reversed the {amount} payment for {account}; "
        f"we are refunding {back}."
    )


def _operator_alert(kind: str, p: Mapping[str, Any]) -> str:
    details = ", ".join(f"{k}={v}" for k, v in p.items() if k not in ("token",))
    return f"ALERT {kind}: {details}"


class DeliveryError(Exception):
    """A delivery that did not go through; the dispatcher retries with backoff."""


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_secret(master_secret: str, salt: str) -> str:
    """An API client's signing secret: HMAC of its salt under the server's webhook secret.
    (Here, not in billpay.api, because delivery re-derives it and adapters import no API.)"""
    digest = hmac.new(master_secret.encode(), f"billpay-client:{salt}".encode(), hashlib.sha256)
    return "whsec_" + digest.hexdigest()


@dataclass(frozen=True)
class Destination:
    """Where one outbox row goes: a webhook URL and the secret that signs it, or the log."""

    url: str | None
    secret: str = field(repr=False)  # never in a repr, a log line or an error
    owner: str  # "default", or "client <name>": says whose endpoint, never the URL

    def describe(self) -> str:
        """The destination for logs and run summaries: the owner and host, no path or query
        (a query string or user info may carry the receiver's own token)."""
        if not self.url:
            return "log"
        host = urlsplit(self.url).hostname or "?"
        return (
            f"default webhook ({host})"
            if self.owner == "default"
            else f"webhook of {self.owner} ({host})"
        )


def destination(
    audience: str,
    *,
    client_name: str | None,
    client_webhook_url: str | None,
    client_webhook_salt: str | None,
    default_url: str | None,
    master_secret: str,
) -> Destination:
    """A customer message of an API client's order goes to that client's webhook, signed with
    that client's secret; everything else (CLI orders, a client with no webhook URL, every
    operator alert) goes to the global default. A revoked client still gets the receipts of
    the orders it made while its key was valid: they are its customers' receipts (tokens
    included), the client app is their only way to the customer, and its signing secret is
    unchanged (revoking stops the key, not the URL)."""
    if audience == "customer" and client_webhook_url and client_webhook_salt:
        if not master_secret:  # a secret derived from "" would not verify: retry, loudly
            raise DeliveryError(
                f"client {client_name}: BILLPAY_WEBHOOK_SECRET is unset, cannot sign"
            )
        return Destination(
            client_webhook_url,
            webhook_secret(master_secret, client_webhook_salt),
            f"client {client_name}",
        )
    return Destination(default_url, master_secret, "default")


def deliver(
    message: Message,
    body: dict[str, Any],
    *,
    webhook_url: str | None,
    secret: str,
    client: httpx.Client | None,
) -> str:
    """Send to the webhook (JSON, HMAC-SHA256 signature header) or, with none set, to the log.
    Returns where it went; raises DeliveryError on a failure worth retrying."""
    if not webhook_url:
        log.info("notify %s %s: %s", message.audience, message.kind, message.log_text)
        return "log"
    raw = json.dumps(body, default=str, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(raw, secret)}
    try:
        assert client is not None
        response = client.post(webhook_url, content=raw, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"webhook unreachable: {type(exc).__name__}") from exc
    if response.status_code >= 300:
        raise DeliveryError(f"webhook answered HTTP {response.status_code}")
    log.info("notified %s %s via webhook: %s", message.audience, message.kind, message.log_text)
    return "webhook"
