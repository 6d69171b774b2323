"""Refund envelopes decoded back with stellar-sdk; recipient checks from Horizon account JSON."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from stellar_sdk import Keypair, MuxedAccount, TransactionEnvelope
from stellar_sdk.exceptions import BadSignatureError
from stellar_sdk.memo import TextMemo

from billpay.config import SANDBOX_NETWORK_PASSPHRASE
from billpay.sandbox import identities as ids
from billpay.stellar.refunds import build_refund_envelope, destination_problem, underlying_account

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SYSTEM = ids.system()
ISSUER = ids.issuer().account_id
USER = ids.users()[0].account_id


def _build(destination: str = USER, amount: str = "5000.5", **overrides: object):
    args = dict(
        source_secret=SYSTEM.secret,
        source_sequence=41,
        network_passphrase=SANDBOX_NETWORK_PASSPHRASE,
        base_fee=100,
        destination=destination,
        asset_code="cNGN",
        asset_issuer=ISSUER,
        amount=Decimal(amount),
        memo="REFUND-ABCDE12345",
        timeout_seconds=120,
        now=1_800_000_000,
    )
    args.update(overrides)
    return build_refund_envelope(**args)  # type: ignore[arg-type]


def test_envelope_pays_the_exact_amount_of_cngn_back_with_the_refund_memo() -> None:
    signed = _build()
    envelope = TransactionEnvelope.from_xdr(signed.xdr, SANDBOX_NETWORK_PASSPHRASE)
    tx = envelope.transaction
    (op,) = tx.operations
    assert op.destination.account_id == USER
    assert op.asset.code == "cNGN" and op.asset.issuer == ISSUER
    assert Decimal(op.amount) == Decimal("5000.5")
    assert isinstance(tx.memo, TextMemo) and tx.memo.memo_text == b"REFUND-ABCDE12345"
    assert tx.source.account_id == SYSTEM.account_id
    assert tx.sequence == 42 == signed.sequence
    assert tx.preconditions.time_bounds.max_time == 1_800_000_120
    assert signed.max_time.timestamp() == 1_800_000_120
    assert envelope.hash_hex() == signed.tx_hash
    SYSTEM.keypair.verify(envelope.hash(), envelope.signatures[0].signature)


def test_signature_is_bound_to_the_configured_network_passphrase() -> None:
    signed = _build()
    other = TransactionEnvelope.from_xdr(
        signed.xdr, "Public Global Stellar Network ; September 2015"
    )
    with pytest.raises(BadSignatureError):
        SYSTEM.keypair.verify(other.hash(), other.signatures[0].signature)


def test_muxed_destination_is_kept_in_the_operation() -> None:
    muxed = MuxedAccount(USER, 77).account_muxed
    signed = _build(destination=muxed, amount="0.0000001")
    op = TransactionEnvelope.from_xdr(
        signed.xdr, SANDBOX_NETWORK_PASSPHRASE
    ).transaction.operations[0]
    assert op.destination.account_muxed == muxed and op.destination.account_muxed_id == 77
    assert Decimal(op.amount) == Decimal("0.0000001")
    assert underlying_account(muxed) == USER
    assert underlying_account(USER) == USER


def test_same_inputs_give_the_same_hash() -> None:
    assert _build().tx_hash == _build().tx_hash
    assert _build().tx_hash != _build(source_sequence=42).tx_hash


def _account(**balance: object) -> dict:
    body = json.loads((FIXTURES / "horizon_account.json").read_text())
    body["balances"][0].update(balance)
    return body


@pytest.mark.parametrize(
    ("account", "amount", "problem"),
    [
        (_account(), "999", None),
        (_account(), "1000", None),
        (None, "1", "destination_missing"),
        (_account(asset_issuer=Keypair.random().public_key), "1", "no_trustline"),
        (_account(is_authorized=False), "1", "not_authorized"),
        (_account(limit="1500.0000000"), "500", None),
        (_account(limit="1500.0000000"), "500.0000001", "line_full"),
        (_account(limit="1500.0000000", buying_liabilities="100.0000000"), "500", "line_full"),
    ],
)
def test_destination_problem(account: dict | None, amount: str, problem: str | None) -> None:
    assert destination_problem(account, Decimal(amount), "cNGN", ISSUER) == problem


def test_issuer_can_always_receive_its_asset() -> None:
    issuer_account = {"id": ISSUER, "account_id": ISSUER, "balances": [{"asset_type": "native"}]}
    assert destination_problem(issuer_account, Decimal("1"), "cNGN", ISSUER) is None
