"""Which Horizon records are our incoming cNGN, and what we store for them (no database)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from stellar_sdk import Keypair, MuxedAccount, StrKey

from billpay.config import Settings
from billpay.sandbox import identities as ids
from billpay.stellar.ingest import parse_page
from billpay.stellar.memos import (
    memo_from_transaction,
    refund_memo_for_payment,
    refund_memo_for_reference,
    text_from_bytes,
)
from billpay.stellar.records import MalformedRecord, inbound_transfers

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SYSTEM = ids.system().account_id
ISSUER = ids.issuer().account_id
OTHER = Keypair.from_raw_ed25519_seed(bytes(range(1, 33))).public_key


def _records(name: str) -> list[dict]:
    return json.loads((FIXTURES / name).read_text())["_embedded"]["records"]


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, system_account=SYSTEM, cngn_issuer=ISSUER)


def test_page_keeps_every_inbound_transfer_of_any_asset(settings: Settings) -> None:
    records = _records("horizon_payments_page1.json")
    page = parse_page(records, settings)
    assert page.last_paging_token == records[-1]["paging_token"]
    assert page.quarantined == []
    # Only our own outgoing refund (record 4) is not inbound: it needs no row.
    assert [(p.amount, p.asset_code) for p in page.payments] == [
        (Decimal("10000"), None),  # create_account of the system account (native XLM)
        (Decimal("5000"), "cNGN"),
        (Decimal("25"), None),  # native XLM payment
        (Decimal("10"), "USDC"),
        (Decimal("5000"), "cNGN"),  # another issuer's cNGN
        (Decimal("1000"), "cNGN"),
        (Decimal("250.5"), "cNGN"),
        (Decimal("2000"), "cNGN"),
        (Decimal("1500.5"), "cNGN"),
        (Decimal("750"), "cNGN"),
        (Decimal("300"), "cNGN"),
        (Decimal("42"), "cNGN"),
    ]
    assert all(p.to_account == SYSTEM for p in page.payments)
    assert {p.asset_issuer for p in page.payments if p.asset_code == "cNGN"} == {
        ISSUER,
        records[5]["asset_issuer"],
    }
    funding = page.payments[0]
    assert (funding.operation_type, funding.from_account, funding.asset_type) == (
        "create_account",
        ISSUER,
        "native",
    )


def test_second_page_records_merge_wrong_case_code_and_contract_transfer_not_failed_tx(
    settings: Settings,
) -> None:
    page = parse_page(_records("horizon_payments_page2.json"), settings)
    rows = [(p.operation_type, p.asset_code, p.amount) for p in page.payments]
    assert rows == [
        ("account_merge", None, None),  # Horizon does not say how much XLM a merge moved
        ("payment", "CNGN", Decimal("5000")),
        ("invoke_host_function", "cNGN", Decimal("10")),
        ("payment", "cNGN", Decimal("0.0000001")),
    ]
    contract = page.payments[2]
    assert contract.operation_id == "21539260993537:0" and contract.memo_type == "none"
    assert contract.from_account == ids.users()[2].account_id


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
    (payment,) = inbound_transfers(bump, SYSTEM)
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


def _payment_record(**changes: object) -> dict:
    record = dict(_records("horizon_payments_page1.json")[1])
    record.update(changes)
    return record


def test_payment_from_the_system_account_to_itself_is_not_incoming() -> None:
    assert inbound_transfers(_payment_record(**{"from": SYSTEM}), SYSTEM) == []


def test_outgoing_and_failed_records_are_not_inbound_even_when_malformed() -> None:
    outgoing = dict(_records("horizon_payments_page1.json")[3])
    assert outgoing["from"] == SYSTEM
    assert inbound_transfers({**outgoing, "transaction": "oops", "amount": "x"}, SYSTEM) == []
    assert inbound_transfers(_payment_record(transaction_successful=False), SYSTEM) == []


def test_legacy_path_payment_type_name_and_type_i_are_recognised() -> None:
    legacy = _payment_record(type="path_payment", type_i=2)
    (payment,) = inbound_transfers(legacy, SYSTEM)
    assert payment.operation_type == "path_payment_strict_receive"
    (by_number,) = inbound_transfers(_payment_record(type="pathPayment", type_i=2), SYSTEM)
    assert by_number.operation_type == "path_payment_strict_receive"


def test_classic_payment_to_an_m_address_keeps_the_muxed_id() -> None:
    to_muxed = MuxedAccount(SYSTEM, 2**64 - 1).account_muxed
    record = _payment_record(to_muxed=to_muxed, to_muxed_id="18446744073709551615")
    (payment,) = inbound_transfers(record, SYSTEM)
    assert payment.to_muxed_id == 2**64 - 1


def test_contract_transfer_gives_one_row_per_credit_to_us_with_stable_keys() -> None:
    contract = next(
        r for r in _records("horizon_payments_page2.json") if r["type"] == "invoke_host_function"
    )
    change = contract["asset_balance_changes"][0]
    payer_contract = StrKey.encode_contract(bytes(32))
    record = {
        **contract,
        "asset_balance_changes": [
            {**change, "to": ids.users()[2].account_id},  # to someone else: not ours
            {**change, "from": payer_contract, "destination_muxed_id": "77"},
            {**change, "type": "mint", "from": "", "amount": "3.0000000"},
        ],
    }
    first = inbound_transfers(record, SYSTEM)
    assert [(p.operation_id, p.from_account, p.to_muxed_id) for p in first] == [
        (f"{contract['id']}:1", payer_contract, 77),
        (f"{contract['id']}:2", ISSUER, None),  # a mint comes from the issuer
    ]
    assert inbound_transfers(record, SYSTEM) == first  # replay: same keys


@pytest.mark.parametrize(
    "changes",
    [
        {"transaction": "not an object"},
        {"amount": "not-a-number"},
        {"amount": "1e999999"},
        {"amount": 5000},
        {"amount": "0.00000001"},
        {"amount": "-5"},
        {"from": None},
        {"from": "G\x00bad"},
        {"transaction_hash": "\ud800"},
        {"created_at": "yesterday"},
        {"asset_type": "credit_alphanum99"},
        {"asset_code": "c\x00NGN"},
        {"to_muxed_id": "-1"},
        {"to_muxed_id": str(2**64)},
        {"type": "brand_new_type", "type_i": 99},
        {"type": ["payment"], "type_i": "1"},
        {"transaction_successful": "yes", "transaction": "x"},
    ],
)
def test_malformed_record_that_claims_to_be_ours_is_quarantined_not_raised(
    settings: Settings, changes: dict
) -> None:
    records = _records("horizon_payments_page1.json")
    page = parse_page([{**records[1], **changes}, *records[2:]], settings)
    assert len(page.payments) == 10  # every other inbound record is still stored
    (quarantined,) = page.quarantined
    assert quarantined.record_key == records[1]["paging_token"] and quarantined.error
    assert page.last_paging_token == records[-1]["paging_token"]


def test_quarantined_record_is_sanitised_for_jsonb(settings: Settings) -> None:
    record = {
        "type": "payment",
        "to": SYSTEM,
        "memo\x00": "a\x00b\ud800",
        "deep": json.loads("[" * 100 + "]" * 100),
        "huge": float("inf"),
    }
    unrelated = {"paging_token": "9", "type": "payment", "to": OTHER, "from": ISSUER}
    page = parse_page([record, unrelated], settings)
    (quarantined,) = page.quarantined
    text = json.dumps(quarantined.record, ensure_ascii=False, allow_nan=False)
    assert "\x00" not in text
    text.encode("utf-8")  # strict: a lone surrogate would raise here
    assert quarantined.record_key.startswith("sha256:")


def test_a_record_that_is_not_an_object_is_quarantined(settings: Settings) -> None:
    records = _records("horizon_payments_page1.json")
    page = parse_page(["garbage", *records], settings)
    assert len(page.quarantined) == 1 and len(page.payments) == 12


# --- review 2: no record redirects a refund, names an order falsely, or is skipped silently -----


def _contract_record(**change: object) -> dict:
    contract = next(
        r for r in _records("horizon_payments_page2.json") if r["type"] == "invoke_host_function"
    )
    return {
        **contract,
        "asset_balance_changes": [{**contract["asset_balance_changes"][0], **change}],
    }


@pytest.mark.parametrize("digits", ["\u0663", "\uff11\uff12", "1\u0663", "+1", " 1"])
def test_muxed_ids_are_ascii_digits_only(digits: str) -> None:
    with pytest.raises(MalformedRecord, match="muxed id"):
        inbound_transfers(_contract_record(destination_muxed_id=digits), SYSTEM)


@pytest.mark.parametrize(
    "changes",
    [
        # The refund goes to from_muxed: it must be an address of from, not of someone else.
        {"from_muxed": MuxedAccount(OTHER, 1).account_muxed},
        {
            "from_muxed": MuxedAccount(ids.users()[0].account_id, 1).account_muxed,
            "from_muxed_id": "2",
        },
        # The order is named by to_muxed's id: it must be an M-address of the system account.
        {"to_muxed": MuxedAccount(OTHER, 5).account_muxed, "to_muxed_id": "5"},
        {"to_muxed": MuxedAccount(SYSTEM, 5).account_muxed, "to_muxed_id": "6"},
        {"to_muxed_id": "5"},  # an id without the address it is the id of
    ],
)
def test_muxed_addresses_that_disagree_with_the_accounts_are_quarantined(
    settings: Settings, changes: dict
) -> None:
    record = _payment_record(**changes)
    assert record["from"] == ids.users()[0].account_id
    page = parse_page([record], settings)
    assert page.payments == []
    (quarantined,) = page.quarantined
    assert "muxed" in quarantined.error


def test_muxed_sender_and_destination_of_the_same_accounts_are_kept() -> None:
    sender = MuxedAccount(ids.users()[0].account_id, 9).account_muxed
    to = MuxedAccount(SYSTEM, 77).account_muxed
    record = _payment_record(from_muxed=sender, from_muxed_id="9", to_muxed=to)
    (payment,) = inbound_transfers(record, SYSTEM)
    assert (payment.from_muxed, payment.to_muxed_id) == (sender, 77)


OURS_M = MuxedAccount(SYSTEM, 7).account_muxed


def _without_to(**changes: object) -> dict:
    record = _payment_record(**changes)
    del record["to"]
    return record


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(
            {
                **_contract_record(),
                "asset_balance_changes": {"0": _contract_record()["asset_balance_changes"][0]},
            },
            id="changes-an-object",
        ),
        pytest.param(_without_to(to_muxed=OURS_M, to_muxed_id="7"), id="only-to_muxed-is-ours"),
        pytest.param(_payment_record(to=OURS_M), id="to-is-our-m-address"),
        pytest.param(_contract_record(to=OURS_M), id="contract-credits-our-m-address"),
        pytest.param(
            {
                **_contract_record(),
                "asset_balance_changes": ["?", *_contract_record()["asset_balance_changes"]],
            },
            id="contract-change-not-an-object",
        ),
        pytest.param(_without_to(), id="payment-with-no-recipient"),
        pytest.param(
            _payment_record(type="claim_claimable_balance", type_i=99, to=None), id="unknown-type"
        ),
    ],
)
def test_records_that_may_credit_us_in_an_unknown_shape_are_quarantined(
    settings: Settings, record: dict
) -> None:
    page = parse_page([record], settings)
    assert page.payments == []
    assert len(page.quarantined) == 1


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(_payment_record(**{"from": SYSTEM, "to": OTHER}), id="our-payment"),
        pytest.param(
            _payment_record(
                **{
                    "from": OTHER,
                    "to": ISSUER,
                    "source_account": OTHER,
                    "transaction": {**_payment_record()["transaction"], "source_account": SYSTEM},
                }
            ),
            id="others-payment-in-our-transaction",
        ),
        pytest.param(_contract_record(**{"from": SYSTEM, "to": OTHER}), id="our-contract-transfer"),
        pytest.param(
            {**_contract_record(), "asset_balance_changes": []}, id="contract-call-moved-nothing"
        ),
        pytest.param(
            {**_records("horizon_payments_page1.json")[0], "funder": SYSTEM, "account": OTHER},
            id="we-funded-an-account",
        ),
    ],
)
def test_records_we_sent_or_that_readably_credit_others_are_not_inbound(record: dict) -> None:
    assert inbound_transfers(record, SYSTEM) == []


# --- review 2: the cursor always moves past a page we can read ----------------------------------


@pytest.mark.parametrize(
    "last",
    [
        {"id": "99", "paging_token": "9\x009", "type": "payment", "to": OTHER, "from": ISSUER},
        "not an object",
        {"type": "payment"},
    ],
)
def test_a_last_record_without_a_usable_token_moves_the_cursor_to_the_next_link(
    settings: Settings, last: object
) -> None:
    records = [*_records("horizon_payments_page1.json")[1:3], last]
    page = parse_page(records, settings, "21522081124399")
    assert page.last_paging_token == "21522081124399"
    assert len(page.payments) == 2


@pytest.mark.parametrize("link", [None, "9\x009", "", "x" * 101])
def test_without_a_usable_link_the_cursor_waits_before_the_unusable_records(
    settings: Settings, link: str | None
) -> None:
    records = _records("horizon_payments_page1.json")[1:3]
    trailing = [{"paging_token": "9\x009", "type": "payment", "to": OTHER, "from": ISSUER}, []]
    page = parse_page([*records, *trailing], settings, link)
    assert page.last_paging_token == records[-1]["paging_token"]
    assert len(page.payments) == 2
    assert [q.record for q in page.quarantined] == [
        {**trailing[0], "paging_token": "9\\x009"},
        [],
    ]
    assert all("paging_token" in q.error for q in page.quarantined)
    nothing = parse_page(trailing, settings, link)
    assert nothing.last_paging_token is None and len(nothing.quarantined) == 2
