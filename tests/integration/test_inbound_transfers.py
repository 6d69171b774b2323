"""Inbound transfers on the sandbox ledger, against real PostgreSQL: wrong assets go back in the
asset received, treasury funding stays, M-addresses and contract transfers match orders."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from stellar_sdk import Keypair, MuxedAccount, StrKey

from billpay.config import Settings, WrongAssetPolicy
from billpay.sandbox import identities as ids
from billpay.sandbox.horizon import SandboxLedger
from billpay.stellar import (
    HorizonClient,
    RefundStatus,
    ingest_payments,
    match_payments,
    process_refund,
)
from billpay.store.engine import Database
from tests.db_reads import one_row
from tests.factories import new_order
from tests.integration.conftest import sandbox_stellar_settings

SYSTEM = ids.system().account_id
USER = ids.users()[0]
TREASURY = ids.users()[4]
OTHER_ISSUER = Keypair.from_raw_ed25519_seed(bytes(range(32))).public_key
WALLET = StrKey.encode_contract(bytes(32))


@pytest.fixture
def stellar_settings(settings: Settings) -> Settings:
    return sandbox_stellar_settings(
        settings, ingest_start_cursor="0", treasury_accounts=[TREASURY.account_id]
    )


@dataclass
class Chain:
    """The sandbox ledger and our view of it, for the tests that also read the ledger back."""

    db: Database
    settings: Settings
    horizon: HorizonClient
    web: TestClient
    ledger: SandboxLedger


@pytest.fixture
def chain(
    db: Database,
    stellar_settings: Settings,
    horizon: HorizonClient,
    web: TestClient,
    ledger: SandboxLedger,
) -> Chain:
    return Chain(db, stellar_settings, horizon, web, ledger)


def _post(web: TestClient, path: str, body: dict[str, Any]) -> dict:
    response = web.post(f"/horizon/_sandbox/{path}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _settle(db: Database, settings: Settings, horizon: HorizonClient) -> dict:
    """Ingest and match; the newest incoming payment."""
    ingest_payments(db, settings, horizon)
    match_payments(db, settings, actor="matcher", limit=20)
    return one_row(db, "SELECT * FROM incoming_payments ORDER BY id DESC LIMIT 1")


def _refund_of(db: Database, payment_id: int) -> dict | None:
    rows = _rows(db, "SELECT * FROM refunds WHERE incoming_payment_id = :id", id=payment_id)
    return rows[0] if rows else None


def _rows(db: Database, sql: str, **params: Any) -> list[dict]:
    with db.begin() as conn:
        return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]


def _sent_back(ledger: SandboxLedger, to: str) -> list[dict]:
    return [
        op
        for op in ledger.operations
        if op.get("from") == SYSTEM and op.get("to") == to and op["transaction_successful"]
    ]


# --- wrong asset ------------------------------------------------------------------------------


def _refunded_on_the_ledger(chain: Chain, payment: dict) -> dict:
    """The payment's pending refund, sent and confirmed: the one payment back to USER."""
    refund = _refund_of(chain.db, payment["id"])
    assert refund is not None and refund["status"] == "pending"
    sent = process_refund(chain.db, chain.settings, chain.horizon, refund["id"], "r")
    assert sent.status == RefundStatus.CONFIRMED
    (back,) = _sent_back(chain.ledger, USER.account_id)
    return back


def _hold_other_cngn(ledger: SandboxLedger) -> None:
    """USER holds another issuer's CNGN and the system account trusts it (it can receive it)."""
    ledger.set_trustline(SYSTEM, "CNGN", OTHER_ISSUER, balance=Decimal(0))
    ledger.set_trustline(USER.account_id, "CNGN", OTHER_ISSUER, balance=Decimal(100))
    ledger.set_trustline(OTHER_ISSUER, "CNGN", OTHER_ISSUER)  # the issuer exists on the ledger


@pytest.mark.parametrize(
    ("asset", "amount"), [({"asset_code": "XLM"}, "12.5"), ({"asset_code": "CNGN"}, "40")]
)
def test_wrong_asset_is_refunded_in_the_asset_received_on_the_ledger(
    chain: Chain, asset: dict, amount: str
) -> None:
    _hold_other_cngn(chain.ledger)
    body = {"from": USER.name, "amount": amount, "memo": "BILL-ABCDE12345", **asset}
    if asset["asset_code"] == "CNGN":
        body["asset_issuer"] = OTHER_ISSUER
    _post(chain.web, "payments", body)
    payment = _settle(chain.db, chain.settings, chain.horizon)
    assert payment["match_outcome"] == "wrong_asset"
    back = _refunded_on_the_ledger(chain, payment)
    assert Decimal(back["amount"]) == Decimal(amount)
    if asset["asset_code"] == "XLM":
        assert back["asset_type"] == "native"
    else:
        assert (back["asset_code"], back["asset_issuer"]) == ("CNGN", OTHER_ISSUER)
        assert (
            chain.ledger.accounts[USER.account_id].trustlines[("CNGN", OTHER_ISSUER)].balance == 100
        )


def test_wrong_asset_under_the_hold_policy_is_held_and_nothing_is_sent(chain: Chain) -> None:
    settings = chain.settings.model_copy(update={"wrong_asset_policy": WrongAssetPolicy.HOLD})
    _post(chain.web, "payments", {"from": USER.name, "amount": "3", "asset_code": "XLM"})
    payment = _settle(chain.db, settings, chain.horizon)
    refund = _refund_of(chain.db, payment["id"])
    assert payment["match_outcome"] == "wrong_asset"
    assert refund is not None
    assert (refund["status"], refund["hold_reason"]) == ("held", "wrong_asset")
    assert refund["asset_type"] == "native" and refund["asset_code"] is None
    assert (
        process_refund(chain.db, settings, chain.horizon, refund["id"], "r").status
        == RefundStatus.HELD
    )
    assert _sent_back(chain.ledger, USER.account_id) == []


def test_wrong_asset_to_a_recipient_without_trustline_is_held_as_before(chain: Chain) -> None:
    _hold_other_cngn(chain.ledger)
    body = {"from": USER.name, "amount": "5", "asset_code": "CNGN", "asset_issuer": OTHER_ISSUER}
    _post(chain.web, "payments", body)
    payment = _settle(chain.db, chain.settings, chain.horizon)
    chain.ledger.set_trustline(USER.account_id, "CNGN", OTHER_ISSUER, remove=True)
    refund = _refund_of(chain.db, payment["id"])
    assert refund is not None
    result = process_refund(chain.db, chain.settings, chain.horizon, refund["id"], "r")
    assert result.status == RefundStatus.HELD
    assert "CNGN" in result.message
    assert _refund_of(chain.db, payment["id"])["hold_reason"] == "no_trustline"


# --- treasury -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sender", ["treasury", "issuer"])
def test_treasury_funding_is_recorded_and_never_refunded(chain: Chain, sender: str) -> None:
    identity = TREASURY if sender == "treasury" else ids.issuer()
    _post(chain.web, "payments", {"from": identity.account_id, "amount": "250000"})
    payment = _settle(chain.db, chain.settings, chain.horizon)
    assert payment["from_account"] == identity.account_id
    assert payment["match_outcome"] == "treasury"
    assert _refund_of(chain.db, payment["id"]) is None
    assert _sent_back(chain.ledger, identity.account_id) == []
    assert _treasury_alerts(chain.db) == []  # plain funding names no order: nothing to look at


def _treasury_alerts(db: Database) -> list[dict]:
    return _rows(
        db, "SELECT * FROM notifications WHERE kind = 'treasury_payment_names_order' ORDER BY id"
    )


@pytest.mark.parametrize("named_by", ["memo", "m-address"])
@pytest.mark.parametrize("sender", ["treasury", "issuer"])
def test_treasury_money_naming_a_payable_order_pays_it(
    db: Database,
    stellar_settings: Settings,
    horizon: HorizonClient,
    web: TestClient,
    sender: str,
    named_by: str,
) -> None:
    # Before: absorbed as treasury and the customer's order waited until it expired.
    identity = TREASURY if sender == "treasury" else ids.issuer()
    order = new_order(db, "5000")
    body: dict[str, Any] = {"from": identity.account_id, "amount": "5000"}
    if named_by == "memo":
        body["memo"] = f"BILL-{order['reference']}"
    else:
        body["to"] = MuxedAccount(SYSTEM, order["muxed_id"]).account_muxed
    _post(web, "payments", body)
    payment = _settle(db, stellar_settings, horizon)
    assert payment["match_outcome"] == "matched" and payment["bill_payment_id"] == order["id"]
    bill = one_row(db, "SELECT * FROM bill_payments WHERE id = :id", id=order["id"])
    assert bill["status"] == "cngn_received"
    assert _treasury_alerts(db) == []


def test_treasury_money_naming_an_order_it_cannot_pay_stays_treasury_with_an_alert(
    db: Database, stellar_settings: Settings, horizon: HorizonClient, web: TestClient
) -> None:
    paid = new_order(db, "5000")
    memo = f"BILL-{paid['reference']}"
    _post(web, "payments", {"from": USER.name, "amount": "5000", "memo": memo})
    assert _settle(db, stellar_settings, horizon)["match_outcome"] == "matched"

    for body in (
        {"memo": memo},  # already paid
        {"memo": "BILL-ZZZZZZZZZZ"},  # no such order
        {"to": MuxedAccount(SYSTEM, 2**40).account_muxed},
    ):
        _post(web, "payments", {"from": TREASURY.account_id, "amount": "5000", **body})
        payment = _settle(db, stellar_settings, horizon)
        assert payment["match_outcome"] == "treasury" and _refund_of(db, payment["id"]) is None
    alerts = _treasury_alerts(db)
    assert len(alerts) == 3 and {a["audience"] for a in alerts} == {"operator"}
    assert alerts[0]["payload"]["memo"] == memo
    bill = one_row(db, "SELECT * FROM bill_payments WHERE id = :id", id=paid["id"])
    assert bill["status"] == "cngn_received"  # unchanged


def test_treasury_funding_that_names_a_payable_order_with_another_amount_stays_funding(
    db: Database, stellar_settings: Settings, horizon: HorizonClient, web: TestClient
) -> None:
    """Found by review: an operator funding 250,000 cNGN with a customer's memo pasted got it all
    refunded, and the customer's order went to refund."""
    order = new_order(db, "5000")
    memo = f"BILL-{order['reference']}"
    _post(web, "payments", {"from": TREASURY.account_id, "amount": "250000", "memo": memo})
    payment = _settle(db, stellar_settings, horizon)
    assert payment["match_outcome"] == "treasury" and _refund_of(db, payment["id"]) is None
    assert len(_treasury_alerts(db)) == 1
    bill = one_row(db, "SELECT status FROM bill_payments WHERE id = :id", id=order["id"])
    assert bill["status"] == "pending_payment"


def test_without_the_setting_a_memo_less_payment_is_refunded(
    db: Database, stellar_settings: Settings, horizon: HorizonClient, web: TestClient
) -> None:
    settings = stellar_settings.model_copy(update={"treasury_accounts": []})
    _post(web, "payments", {"from": TREASURY.name, "amount": "10"})
    payment = _settle(db, settings, horizon)
    assert payment["match_outcome"] == "unknown_reference"
    assert _refund_of(db, payment["id"]) is not None


# --- muxed addresses ----------------------------------------------------------------------------


def test_payment_to_the_orders_m_address_without_memo_completes_matching(
    db: Database, stellar_settings: Settings, horizon: HorizonClient, web: TestClient
) -> None:
    order = new_order(db, "5000")
    to = MuxedAccount(SYSTEM, order["muxed_id"]).account_muxed
    _post(web, "payments", {"from": USER.name, "amount": "5000", "to": to})
    payment = _settle(db, stellar_settings, horizon)
    assert payment["to_muxed_id"] == order["muxed_id"] and payment["memo"] is None
    assert payment["match_outcome"] == "matched" and payment["bill_payment_id"] == order["id"]
    bill = one_row(db, "SELECT * FROM bill_payments WHERE id = :id", id=order["id"])
    assert bill["status"] == "cngn_received"


def test_an_orders_m_address_cannot_be_reached_by_counting_order_ids(
    db: Database, stellar_settings: Settings, horizon: HorizonClient, web: TestClient
) -> None:
    """Found by review: with the order's primary key as muxed id, dust sent to M(system, n)
    with the wrong amount sent order n to refund. The muxed id is random and its own."""
    order = new_order(db, "5000")
    assert order["muxed_id"] != order["id"] and order["muxed_id"] > 2**32
    to = MuxedAccount(SYSTEM, order["id"]).account_muxed
    _post(web, "payments", {"from": USER.name, "amount": "0.0000001", "to": to})
    payment = _settle(db, stellar_settings, horizon)
    assert payment["match_outcome"] == "unknown_reference" and payment["bill_payment_id"] is None
    bill = one_row(db, "SELECT status FROM bill_payments WHERE id = :id", id=order["id"])
    assert bill["status"] == "pending_payment"


def test_memo_and_muxed_id_naming_different_orders_are_held_for_review(
    db: Database, stellar_settings: Settings, horizon: HorizonClient, web: TestClient
) -> None:
    first, second = new_order(db, "5000"), new_order(db, "5000")
    to = MuxedAccount(SYSTEM, second["muxed_id"]).account_muxed
    memo = f"BILL-{first['reference']}"
    _post(web, "payments", {"from": USER.name, "amount": "5000", "to": to, "memo": memo})
    payment = _settle(db, stellar_settings, horizon)
    assert payment["match_outcome"] == "held_for_review"
    refund = _refund_of(db, payment["id"])
    assert refund is not None
    assert (refund["status"], refund["hold_reason"]) == ("held", "reference_conflict")
    for order in (first, second):
        bill = one_row(db, "SELECT * FROM bill_payments WHERE id = :id", id=order["id"])
        assert bill["status"] == "pending_payment"


def test_memo_and_muxed_id_naming_the_same_order_match(
    db: Database, stellar_settings: Settings, horizon: HorizonClient, web: TestClient
) -> None:
    order = new_order(db, "5000")
    to = MuxedAccount(SYSTEM, order["muxed_id"]).account_muxed
    memo = f"BILL-{order['reference']}"
    _post(web, "payments", {"from": USER.name, "amount": "5000", "to": to, "memo": memo})
    assert _settle(db, stellar_settings, horizon)["match_outcome"] == "matched"


# --- contract (SAC) transfers -------------------------------------------------------------------


def test_contract_transfer_to_the_orders_muxed_id_completes_matching(
    db: Database, stellar_settings: Settings, horizon: HorizonClient, web: TestClient
) -> None:
    order = new_order(db, "5000")
    body = {"from": WALLET, "amount": "5000", "destination_muxed_id": order["muxed_id"]}
    _post(web, "contract_transfers", body)
    payment = _settle(db, stellar_settings, horizon)
    assert payment["operation_type"] == "invoke_host_function"
    assert payment["operation_id"].endswith(":0") and payment["from_account"] == WALLET
    assert payment["match_outcome"] == "matched"
    bill = one_row(db, "SELECT * FROM bill_payments WHERE id = :id", id=order["id"])
    assert bill["status"] == "cngn_received"


def test_contract_payer_without_an_order_is_held_not_sent(chain: Chain) -> None:
    _post(chain.web, "contract_transfers", {"from": WALLET, "amount": "70"})
    payment = _settle(chain.db, chain.settings, chain.horizon)
    assert payment["match_outcome"] == "unknown_reference"
    refund = _refund_of(chain.db, payment["id"])
    assert refund is not None
    assert (refund["status"], refund["hold_reason"]) == ("held", "contract_payer")
    submitted_before = len(chain.ledger.transactions)
    assert (
        process_refund(chain.db, chain.settings, chain.horizon, refund["id"], "r").status == "held"
    )
    assert len(chain.ledger.transactions) == submitted_before


def test_contract_transfer_from_an_account_is_refunded_with_a_classic_payment(chain: Chain) -> None:
    _post(chain.web, "contract_transfers", {"from": USER.name, "amount": "70"})
    payment = _settle(chain.db, chain.settings, chain.horizon)
    assert payment["match_outcome"] == "unknown_reference"
    back = _refunded_on_the_ledger(chain, payment)
    assert back["type"] == "payment" and Decimal(back["amount"]) == Decimal(70)
