"""Which Horizon records are our incoming cNGN, and what we store for them (no database)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from billpay.config import Settings
from billpay.sandbox import identities as ids
from billpay.stellar.ingest import incoming_payment_from_record, parse_page
from billpay.stellar.memos import (
    memo_from_transaction,
    refund_memo_for_payment,
    refund_memo_for_reference,
    text_from_bytes,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SYSTEM = ids.system().account_id
ISSUER = ids.issuer().account_id


def _records(name: str) -> list[dict]:
    return json.loads((FIXTURES / name).read_text())["_embedded"]["records"]


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, system_account=SYSTEM, cngn_issuer=ISSUER)


def test_page_keeps_only_successful_cngn_to_the_system_account(settings: Settings) -> None:
    records = _records("horizon_payments_page1.json")
    page = parse_page(records, settings)
    assert page.last_paging_token == records[-1]["paging_token"]
    kept = {p.operation_id: p for p in page.payments}
    # create_account, native XLM, our own outgoing refund, USDC and a wrong issuer are skipped.
    assert [p.amount for p in page.payments] == [
        Decimal("5000"),
        Decimal("1000"),
        Decimal("250.5"),
        Decimal("2000"),
        Decimal("1500.5"),
        Decimal("750"),
        Decimal("300"),
        Decimal("42"),
    ]
    assert all(p.to_account == SYSTEM and p.asset_issuer == ISSUER for p in kept.values())


def test_second_page_skips_failed_merge_wrong_case_code_and_contract_transfers(
    settings: Settings,
) -> None:
    page = parse_page(_records("horizon_payments_page2.json"), settings)
    assert [(p.amount, p.memo) for p in page.payments] == [
        (Decimal("0.0000001"), "BILL-LASTONE001")
    ]


def test_multi_operation_transaction_gives_one_row_per_operation(settings: Settings) -> None:
    page = parse_page(_records("horizon_payments_page1.json"), settings)
    multi = [p for p in page.payments if p.memo == "BILL-MULTI00001"]
    assert len(multi) == 2
    assert len({p.operation_id for p in multi}) == 2
    assert len({p.transaction_hash for p in multi}) == 1


def test_path_payments_store_the_received_amount_not_the_source_amount(
    settings: Settings,
) -> None:
    page = parse_page(_records("horizon_payments_page1.json"), settings)
    paths = {p.operation_type: p for p in page.payments if p.operation_type.startswith("path")}
    assert paths["path_payment_strict_receive"].amount == Decimal("2000")
    assert paths["path_payment_strict_send"].amount == Decimal("1500.5")


def test_muxed_sender_keeps_both_addresses(settings: Settings) -> None:
    page = parse_page(_records("horizon_payments_page1.json"), settings)
    muxed = next(p for p in page.payments if p.from_muxed)
    assert muxed.from_account == ids.users()[4].account_id
    assert muxed.from_muxed.startswith("M")


def test_fee_bump_payment_is_refundable_to_the_operation_sender(settings: Settings) -> None:
    records = _records("horizon_payments_page1.json")
    bump = next(r for r in records if "fee_bump_transaction" in r["transaction"])
    payment = incoming_payment_from_record(bump, SYSTEM, "cNGN", ISSUER)
    assert payment is not None
    assert payment.from_account == ids.users()[0].account_id  # not the fee account
    assert bump["transaction"]["fee_account"] != payment.from_account


def test_memo_types(settings: Settings) -> None:
    page = parse_page(_records("horizon_payments_page1.json"), settings)
    memos = {(p.memo_type, p.memo) for p in page.payments}
    assert ("text", "BILL-ABCDE12345") in memos
    assert ("id", "1234567890") in memos
    assert ("none", None) in memos
    assert any(t == "hash" and m for t, m in memos)


def test_non_utf8_memo_bytes_are_stored_escaped_and_never_crash(settings: Settings) -> None:
    page = parse_page(_records("horizon_payments_page1.json"), settings)
    odd = next(p for p in page.payments if p.amount == Decimal("42"))
    assert odd.memo_type == "text"
    assert odd.memo == "BILL-\\xff\\xfe\\x00bad"
    assert "\x00" not in odd.memo


def test_text_from_bytes() -> None:
    assert text_from_bytes("BILL-naïra".encode()) == "BILL-naïra"
    assert text_from_bytes(b"a\x00b") == "a\\x00b"
    assert text_from_bytes(b"\xc3") == "\\xc3"


def test_memo_from_transaction_falls_back_to_memo_when_bytes_are_garbage() -> None:
    memo = memo_from_transaction({"memo_type": "text", "memo": "BILL-X", "memo_bytes": "%%%"})
    assert (memo.type, memo.value) == ("text", "BILL-X")
    assert memo_from_transaction({"memo_type": "none"}).value is None
    assert memo_from_transaction({}).type == "none"


def test_refund_memos_fit_28_bytes() -> None:
    assert refund_memo_for_reference("ABCDE12345") == "REFUND-ABCDE12345"
    assert len(refund_memo_for_payment(2**63 - 1).encode()) <= 28
    with pytest.raises(ValueError):
        refund_memo_for_reference("X" * 22)


def test_malformed_record_that_claims_to_be_ours_raises(settings: Settings) -> None:
    record = dict(_records("horizon_payments_page1.json")[1])
    record["amount"] = "not-a-number"
    with pytest.raises(ValueError):
        parse_page([record], settings)


def test_payment_from_the_system_account_to_itself_is_not_incoming(settings: Settings) -> None:
    record = dict(_records("horizon_payments_page1.json")[1])
    record["from"] = SYSTEM
    assert incoming_payment_from_record(record, SYSTEM, "cNGN", ISSUER) is None
