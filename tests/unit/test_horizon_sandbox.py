"""The sandbox Horizon speaks Horizon's shapes and checks envelopes like stellar-core would."""

from __future__ import annotations

from decimal import Decimal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from stellar_sdk import Account, Asset, Keypair, TransactionBuilder

from billpay.config import SANDBOX_NETWORK_PASSPHRASE
from billpay.sandbox import identities as ids
from billpay.sandbox.horizon import SandboxLedger, horizon_env, mount_horizon
from billpay.sandbox.options import SandboxOptions

SYSTEM = ids.system()
ISSUER = ids.issuer().account_id
CNGN = Asset("cNGN", ISSUER)


@pytest.fixture
def app() -> FastAPI:
    app = FastAPI()
    mount_horizon(app, SandboxOptions())
    return app


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


def _ledger(app: FastAPI) -> SandboxLedger:
    return app.state.horizon_ledger


def _cngn_balance(client: TestClient, account: str) -> Decimal | None:
    body = client.get(f"/horizon/accounts/{account}").json()
    for balance in body["balances"]:
        if balance.get("asset_code") == "cNGN":
            return Decimal(balance["balance"])
    return None


def _signed_payment(
    client: TestClient,
    destination: str,
    amount: str = "10",
    *,
    signer: Keypair = SYSTEM.keypair,
    sequence_offset: int = 0,
    passphrase: str = SANDBOX_NETWORK_PASSPHRASE,
    timeout: int = 60,
) -> str:
    seq = int(client.get(f"/horizon/accounts/{SYSTEM.account_id}").json()["sequence"])
    tx = (
        TransactionBuilder(Account(SYSTEM.account_id, seq + sequence_offset), passphrase, 100)
        .append_payment_op(destination, CNGN, amount)
        .add_text_memo("REFUND-TEST")
        .set_timeout(timeout)
        .build()
    )
    tx.sign(signer)
    return tx.to_xdr()


def test_identities_are_deterministic_and_the_env_points_at_them() -> None:
    assert ids.system().account_id == ids.keypair_for("system").public_key
    assert ids.system().account_id == "GCJS3K6UX2TBV4LNJ5L2JJ7CJOGYLE3NSN37OEFTWGC76BE3VE2LV6KI"
    env = horizon_env("http://127.0.0.1:8765")
    assert env["BILLPAY_HORIZON_URL"] == "http://127.0.0.1:8765/horizon"
    assert env["BILLPAY_SYSTEM_ACCOUNT"] == SYSTEM.account_id
    assert Keypair.from_secret(env["BILLPAY_SYSTEM_SECRET"]).public_key == SYSTEM.account_id
    assert env["BILLPAY_CNGN_ISSUER"] == ISSUER
    assert env["BILLPAY_INGEST_START_CURSOR"] == "0"
    assert len({i.account_id for i in ids.all_identities()}) == len(ids.all_identities())


def test_account_has_horizon_shape(client: TestClient) -> None:
    body = client.get(f"/horizon/accounts/{ids.users()[0].account_id}").json()
    assert isinstance(body["sequence"], str)
    cngn = next(b for b in body["balances"] if b.get("asset_code") == "cNGN")
    assert cngn["asset_issuer"] == ISSUER and cngn["is_authorized"] is True
    assert Decimal(cngn["limit"]) > 0
    assert any(b["asset_type"] == "native" for b in body["balances"])
    missing = client.get(f"/horizon/accounts/{Keypair.random().public_key}")
    assert missing.status_code == 404 and missing.json()["status"] == 404


def test_sandbox_payment_lands_on_the_payments_page(client: TestClient) -> None:
    paid = client.post(
        "/horizon/_sandbox/payments", json={"from": "user2", "amount": "1500", "memo": "BILL-X"}
    ).json()
    page = client.get(
        f"/horizon/accounts/{SYSTEM.account_id}/payments",
        params={"order": "asc", "limit": 200, "join": "transactions", "cursor": "0"},
    ).json()
    records = page["_embedded"]["records"]
    assert [r["id"] for r in records] == paid["operation_ids"]
    record = records[0]
    assert record["from"] == ids.users()[1].account_id and record["to"] == SYSTEM.account_id
    assert record["amount"] == "1500.0000000" and record["asset_code"] == "cNGN"
    assert record["paging_token"] == record["id"] and record["transaction_successful"] is True
    assert (
        record["transaction"]["memo_type"] == "text" and record["transaction"]["memo"] == "BILL-X"
    )
    assert record["transaction"]["memo_bytes"] == "QklMTC1Y"
    after = client.get(
        f"/horizon/accounts/{SYSTEM.account_id}/payments", params={"cursor": record["id"]}
    ).json()
    assert after["_embedded"]["records"] == []


def test_valid_refund_is_applied_once_and_found_by_hash(client: TestClient) -> None:
    user = ids.users()[0].account_id
    before = _cngn_balance(client, user)
    xdr = _signed_payment(client, user, "25.5")
    response = client.post("/horizon/transactions", data={"tx": xdr})
    assert response.status_code == 200, response.text
    tx_hash = response.json()["hash"]
    assert _cngn_balance(client, user) == before + Decimal("25.5")
    again = client.post("/horizon/transactions", data={"tx": xdr})
    assert again.json()["extras"]["result_codes"]["transaction"] == "tx_bad_seq"
    assert client.get(f"/horizon/transactions/{tx_hash}").json()["successful"] is True
    absent = client.get(f"/horizon/transactions/{'0' * 64}")
    assert absent.status_code == 404 and absent.json()["title"] == "Resource Missing"


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"sequence_offset": 1}, "tx_bad_seq"),
        ({"signer": Keypair.random()}, "tx_bad_auth"),
        ({"passphrase": "Test SDF Network ; September 2015"}, "tx_bad_auth"),
    ],
)
def test_bad_envelopes_are_rejected_with_result_codes(
    client: TestClient, kwargs: dict, code: str
) -> None:
    response = client.post(
        "/horizon/transactions",
        data={"tx": _signed_payment(client, ids.users()[0].account_id, **kwargs)},
    )
    assert response.status_code == 400
    assert response.json()["extras"]["result_codes"]["transaction"] == code


def test_expired_envelope_is_too_late(client: TestClient, app: FastAPI) -> None:
    xdr = _signed_payment(client, ids.users()[0].account_id)
    with pytest.raises(Exception) as caught:
        _ledger(app).submit(xdr, now=10**10)
    assert caught.value.tx_code == "tx_too_late"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("destination", "setup", "op_code"),
    [
        (ids.user_without_trustline().account_id, None, "op_no_trust"),
        (Keypair.random().public_key, None, "op_no_destination"),
        (ids.users()[2].account_id, {"authorized": False}, "op_not_authorized"),
        (ids.users()[3].account_id, {"limit": "1000000"}, "op_line_full"),
    ],
)
def test_recipient_problems_fail_the_transaction(
    client: TestClient, destination: str, setup: dict | None, op_code: str
) -> None:
    if setup:
        client.post("/horizon/_sandbox/trustlines", json={"account": destination, **setup})
    seq_before = client.get(f"/horizon/accounts/{SYSTEM.account_id}").json()["sequence"]
    response = client.post(
        "/horizon/transactions", data={"tx": _signed_payment(client, destination)}
    )
    codes = response.json()["extras"]["result_codes"]
    assert response.status_code == 400
    assert codes == {"transaction": "tx_failed", "operations": [op_code]}
    seq_after = client.get(f"/horizon/accounts/{SYSTEM.account_id}").json()["sequence"]
    assert int(seq_after) == int(seq_before) + 1  # a failed tx consumes its sequence


def test_underfunded_system_account(client: TestClient) -> None:
    response = client.post(
        "/horizon/transactions",
        data={"tx": _signed_payment(client, ids.users()[0].account_id, "99999999")},
    )
    assert response.json()["extras"]["result_codes"]["operations"] == ["op_underfunded"]


def test_fault_switch_applies_then_answers_504(client: TestClient) -> None:
    user = ids.users()[0].account_id
    before = _cngn_balance(client, user)
    client.post("/horizon/_sandbox/faults", json={"submit_504_after_apply": 1})
    xdr = _signed_payment(client, user, "7")
    assert client.post("/horizon/transactions", data={"tx": xdr}).status_code == 504
    assert _cngn_balance(client, user) == before + 7
    client.post("/horizon/_sandbox/faults", json={"submit_504_before_apply": 1})
    xdr = _signed_payment(client, user, "3")
    assert client.post("/horizon/transactions", data={"tx": xdr}).status_code == 504
    assert _cngn_balance(client, user) == before + 7
    assert client.post("/horizon/transactions", data={"tx": xdr}).status_code == 200
    assert _cngn_balance(client, user) == before + 10


def test_sandbox_accounts_lists_every_identity(client: TestClient) -> None:
    rows = client.get("/horizon/_sandbox/accounts").json()
    names = {row["name"] for row in rows}
    assert {"system", "issuer", "user1", ids.NO_TRUSTLINE_USER} <= names


def test_invalid_cursor_is_a_bad_request(client: TestClient) -> None:
    response = client.get(f"/horizon/accounts/{SYSTEM.account_id}/payments", params={"cursor": "x"})
    assert response.status_code == 400
