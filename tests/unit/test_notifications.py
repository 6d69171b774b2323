"""Customer and operator notification messages, and their delivery: what the user reads per
bill type, what the log shows (never a raw token), and the signed webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import httpx
import pytest

from billpay.notifications import (
    SIGNATURE_HEADER,
    DeliveryError,
    Destination,
    Message,
    deliver,
    destination,
    render,
    webhook_secret,
)

TOKEN = "26362054405982757802"


def _completed(**payload: object) -> dict[str, object]:
    return {"reference": "7K3M9QZ2XA", "provider": "vtpass", **payload}


def _receipt(
    bill_type: str, biller: str, account_number: str, amount_kobo: int, **payload: object
) -> Message:
    """The customer's bill_completed message for such a bill."""
    details = {"bill_type": bill_type, "biller": biller, "account_number": account_number}
    return render(
        "bill_completed", "customer", _completed(**details, amount_kobo=amount_kobo, **payload)
    )


def test_electricity_receipt_shows_grouped_token_meter_and_units_and_logs_only_a_mask():
    message = _receipt(
        "electricity",
        "ikeja-electric",
        "45012345678",
        500_000,
        account_type="prepaid",
        token=TOKEN,
        units="32.5",
    )
    assert message.reference == "7K3M9QZ2XA"
    assert message.text == (
        "7K3M9QZ2XA: NGN 5,000.00 ikeja-electric token 2636-2054-4059-8275-7802"
        " for meter 45012345678, 32.5 units."
    )
    assert "****-****-****-****-7802" in message.log_text
    assert "*******5678" in message.log_text
    for raw in (TOKEN, "2636-2054-4059-8275-7802", "2636 2054", "45012345678"):
        assert raw not in message.log_text


def test_postpaid_electricity_receipt_has_no_token_and_masks_the_meter_in_the_log():
    message = _receipt(
        "electricity", "eko-electric", "201000000000", 300_000, account_type="postpaid", token=None
    )
    assert message.text == (
        "7K3M9QZ2XA: NGN 3,000.00 paid to eko-electric for meter 201000000000 (postpaid)."
    )
    assert "201000000000" not in message.log_text and "********0000" in message.log_text


@pytest.mark.parametrize(
    ("bill_type", "product", "what"),
    [("airtime", None, "airtime"), ("data", "airtel-1gb-1000", "data (airtel-1gb-1000)")],
)
def test_airtime_and_data_receipts_mask_the_phone(bill_type, product, what):
    message = _receipt(bill_type, "mtn", "08031234567", 50_000, product_code=product)
    assert message.text == f"7K3M9QZ2XA: NGN 500.00 {what} delivered to *******4567."
    assert "08031234567" not in message.text and "08031234567" not in message.log_text


def test_cable_tv_receipt_masks_the_smart_card():
    message = _receipt("cable_tv", "dstv", "1212121212", 295_000, product_code="dstv-padi")
    assert message.text == (
        "7K3M9QZ2XA: dstv dstv-padi renewed for smart card ******1212 (NGN 2,950.00)."
    )
    assert "1212121212" not in message.log_text


def test_refund_message_gives_the_reason_amount_and_transaction():
    message = render(
        "bill_refunded",
        "customer",
        {
            "reference": "7K3M9QZ2XA",
            "reason": "amount_mismatch",
            "amount_cngn": "499.9900000",
            "tx_hash": "ab" * 32,
        },
    )
    assert message.text == (
        "7K3M9QZ2XA: refunded 499.9900000 cNGN because the amount sent did not match the order"
        f" (transaction {'ab' * 32})."
    )
    failed = render(
        "bill_refunded",
        "customer",
        {"reference": "R1", "reason": "provider_failed: declined", "amount_cngn": "1500"},
    )
    assert failed.text.startswith("R1: refunded 1,500.0000000 cNGN because ")
    assert "declined" in failed.text


def test_operator_alert_never_carries_a_token():
    message = render(
        "bill_pending_too_long",
        "operator",
        {"reference": "R1", "provider": "vtpass", "token": TOKEN},
    )
    assert message.text.startswith("ALERT bill_pending_too_long: ")
    assert "provider=vtpass" in message.text
    assert TOKEN not in message.text and TOKEN not in message.log_text


def _message() -> Message:
    return _receipt("electricity", "ikeja-electric", "45012345678", 100_000, token=TOKEN)


def test_webhook_body_is_signed_with_hmac_sha256_over_the_exact_bytes():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    message = _message()
    body = message.body(42, {"token": TOKEN, "reference": "7K3M9QZ2XA", "amount_kobo": 500050})
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        channel = deliver(
            message, body, webhook_url="https://hooks.example/bp", secret="s3cret", client=client
        )
    assert channel == "webhook"
    (request,) = seen
    raw = request.content
    expected = hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers[SIGNATURE_HEADER], expected)
    assert request.headers["content-type"] == "application/json"
    sent = json.loads(raw)
    assert sent["id"] == 42 and sent["kind"] == "bill_completed"
    assert "2636-2054-4059-8275-7802" in sent["message"]  # the customer needs the token
    assert sent["data"]["token"] == TOKEN
    assert sent["data"]["amount"] == "5000.50" and sent["data"]["amount_kobo"] == 500050
    # a different secret, or one changed byte, does not verify
    assert request.headers[SIGNATURE_HEADER] != hmac.new(b"other", raw, hashlib.sha256).hexdigest()
    tampered = raw.replace(b'"id":42', b'"id":43')
    assert request.headers[SIGNATURE_HEADER] != (
        hmac.new(b"s3cret", tampered, hashlib.sha256).hexdigest()
    )


@pytest.mark.parametrize("status", [301, 400, 500, 503])
def test_webhook_non_2xx_raises_delivery_error(status):
    transport = httpx.MockTransport(lambda request: httpx.Response(status))
    with (
        httpx.Client(transport=transport) as client,
        pytest.raises(DeliveryError, match=str(status)),
    ):
        deliver(_message(), {}, webhook_url="https://hooks.example/bp", secret="x", client=client)


def test_webhook_transport_error_raises_delivery_error():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        pytest.raises(DeliveryError, match="unreachable: ConnectError"),
    ):
        deliver(_message(), {}, webhook_url="https://hooks.example/bp", secret="x", client=client)


def test_without_a_webhook_the_message_goes_to_the_log_masked(caplog):
    caplog.set_level(logging.INFO, logger="billpay.notifications")
    channel = deliver(_message(), {}, webhook_url=None, secret="", client=None)
    assert channel == "log"
    assert "****-****-****-****-7802" in caplog.text
    assert TOKEN not in caplog.text and "2636-2054-4059-8275-7802" not in caplog.text


def test_webhook_success_logs_only_the_masked_text(caplog):
    caplog.set_level(logging.INFO, logger="billpay.notifications")
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    with httpx.Client(transport=transport) as client:
        deliver(_message(), {}, webhook_url="https://hooks.example/bp", secret="x", client=client)
    assert "via webhook" in caplog.text
    assert TOKEN not in caplog.text and "2636-2054-4059-8275-7802" not in caplog.text


# --- where a row goes: an API client's webhook or the global default (issue 13, item 7) -----

MASTER = "master-webhook-secret"
CLIENT = {
    "client_name": "wallet-one",
    "client_webhook_url": "https://wallet.example/hooks?token=receiver-own-token",
    "client_webhook_salt": "a1b2c3",
}


def _route(audience: str, **client: str | None) -> Destination:
    return destination(
        audience, **client, default_url="https://ops.example/bp", master_secret=MASTER
    )


def _where(audience: str, **client: str | None) -> tuple[str | None, str]:
    target = _route(audience, **client)
    return target.url, target.secret


def test_a_clients_customer_message_goes_to_its_webhook_signed_with_its_own_secret():
    target = _route("customer", **CLIENT)
    assert target.url == CLIENT["client_webhook_url"]
    assert target.secret == webhook_secret(MASTER, "a1b2c3") != MASTER
    assert target.secret != webhook_secret(MASTER, "another-salt")  # clients cannot forge
    assert target.secret != webhook_secret("another-master", "a1b2c3")


def test_operator_alerts_and_orders_without_a_client_webhook_go_to_the_default():
    default = ("https://ops.example/bp", MASTER)
    assert _where("operator", **CLIENT) == default
    no_client = {"client_name": None, "client_webhook_url": None, "client_webhook_salt": None}
    assert _where("customer", **no_client) == default
    no_url = {**CLIENT, "client_webhook_url": None}
    assert _where("customer", **no_url) == default


def test_a_client_webhook_without_the_master_secret_is_a_retryable_failure_not_a_bad_signature():
    with pytest.raises(DeliveryError, match="BILLPAY_WEBHOOK_SECRET"):
        destination("customer", **CLIENT, default_url=None, master_secret="")


def test_a_destination_never_shows_its_secret_or_the_urls_path_and_query():
    target = _route("customer", **CLIENT)
    shown = f"{target!r} {target.describe()}"
    assert target.secret not in shown
    assert "receiver-own-token" not in target.describe() and "/hooks" not in target.describe()
    assert target.describe() == "webhook of client wallet-one (wallet.example)"
    assert _route("operator", **CLIENT).describe() == "default webhook (ops.example)"
    assert (
        destination(
            "customer", **CLIENT | {"client_webhook_url": None}, default_url=None, master_secret=""
        ).describe()
        == "log"
    )


def test_the_api_issues_the_same_signing_secret_delivery_derives():
    from billpay.api import keys

    assert keys.webhook_secret(MASTER, "a1b2c3") == webhook_secret(MASTER, "a1b2c3")
    assert webhook_secret(MASTER, "a1b2c3").startswith("whsec_")
