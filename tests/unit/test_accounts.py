from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billpay.accounts import (
    NETWORK_PREFIXES,
    Network,
    PhoneNumber,
    ValidationError,
    detect_network,
    normalize_phone,
    parse_phone,
    resolve_network,
    validate_account,
    validate_amount_kobo,
)
from billpay.orders import BillType

# REFERENCE.md's prefix table, written out independently of the code under test.
REFERENCE_TABLE: dict[Network | None, str] = {
    # 0910: newer than REFERENCE.md's table, named MTN by issue 14.
    Network.MTN: "0703 0704 0706 0707 0803 0806 0810 0813 0814 0816 0903 0906 0910 0913 0916"
    " 07025 07026",
    Network.AIRTEL: "0701 0708 0802 0808 0812 0901 0902 0904 0907 0911 0912",
    Network.GLO: "0705 0805 0807 0811 0815 0905 0915",
    Network.NINE_MOBILE: "0809 0817 0818 0908 0909",
    None: "0804 0801 07020",
}
EXPECTED = [(p, net) for net, prefixes in REFERENCE_TABLE.items() for p in prefixes.split()]


def _number_with_prefix(prefix: str) -> str:
    return (prefix + "12345678901")[:11]


@pytest.mark.parametrize(("prefix", "network"), EXPECTED)
def test_detect_network_agrees_with_every_prefix_in_the_reference_table(
    prefix: str, network: Network | None
) -> None:
    phone = _number_with_prefix(prefix)
    assert detect_network(phone) == network
    assert detect_network("+234" + phone[1:]) == network


def test_code_table_has_exactly_the_reference_prefixes() -> None:
    assert dict(NETWORK_PREFIXES) == dict(EXPECTED)


def test_0910_numbers_are_mtn() -> None:
    assert detect_network("09101234567") == Network.MTN
    assert detect_network("+2349101234567") == Network.MTN
    assert resolve_network("0910 123 4567") == Network.MTN


def test_five_digit_prefixes_win_over_four_digit_ones() -> None:
    assert detect_network("07025123456") == Network.MTN
    assert detect_network("07020123456") is None  # Smile, not sold
    assert detect_network("07021123456") is None  # 0702 is not in the table at all


def test_network_value_for_9mobile() -> None:
    assert Network.NINE_MOBILE.value == "9mobile"


@pytest.mark.parametrize(
    "raw",
    ["08031234567", "2348031234567", "+2348031234567", "+234 803 123 4567", "0803-123-4567"],
)
def test_phone_forms_normalise_to_local_and_e164(raw: str) -> None:
    assert parse_phone(raw) == PhoneNumber(local="08031234567", e164="+2348031234567")


@pytest.mark.parametrize(
    "raw",
    ["", "8031234567", "0803123456", "080312345678", "+44803123456", "0803123456a", "+2340803123"],
)
def test_bad_phones_are_rejected_with_a_reason(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_phone(raw)
    assert caught.value.code == "invalid_phone"
    assert caught.value.field == "phone"
    assert str(caught.value).startswith("phone: ")


def test_non_ascii_digits_are_not_phone_digits() -> None:
    with pytest.raises(ValidationError):
        parse_phone("0803١٢٣٤٥٦٧")


def test_explicit_network_wins_over_prefix() -> None:
    assert resolve_network("08031234567", None) == Network.MTN
    assert resolve_network("08031234567", "airtel") == Network.AIRTEL  # ported number
    assert resolve_network("08091234567", "etisalat") == Network.NINE_MOBILE


def test_unknown_network_needs_an_explicit_choice() -> None:
    with pytest.raises(ValidationError) as caught:
        resolve_network("08041234567", None)
    assert caught.value.code == "unknown_network"
    with pytest.raises(ValidationError):
        resolve_network("08031234567", "vodafone")


local_numbers = st.from_regex(r"0[789][01][0-9]{8}", fullmatch=True)


@given(local_numbers, st.sampled_from(["local", "234", "+234"]), st.sampled_from(["", " ", "-"]))
def test_phone_normalisation_round_trips(local: str, form: str, sep: str) -> None:
    national = local[1:]
    text = {"local": local, "234": "234" + national, "+234": "+234" + national}[form]
    spaced = sep.join([text[:4], text[4:7], text[7:]]) if sep else text
    phone = parse_phone(spaced)
    assert phone.local == local
    assert phone.e164 == "+234" + national
    assert parse_phone(phone.e164) == phone
    assert normalize_phone(phone.local) == phone.local


@pytest.mark.parametrize(
    ("bill_type", "biller", "account", "account_type", "expected"),
    [
        (BillType.ELECTRICITY, "ikeja-electric", "1111111111111", "prepaid", "1111111111111"),
        (BillType.ELECTRICITY, "ikeja-electric", "4512 3456 789", "prepaid", "45123456789"),
        (BillType.ELECTRICITY, "eko-electric", "1010101010101", "postpaid", "1010101010101"),
        (BillType.ELECTRICITY, "eko-electric", "123456", "postpaid", "123456"),
        (BillType.CABLE_TV, "dstv", "1212121212", None, "1212121212"),
        (BillType.CABLE_TV, "gotv", "12-1212-1212", None, "1212121212"),
        (BillType.CABLE_TV, "startimes", "12121212121", None, "12121212121"),
        (BillType.AIRTIME, "mtn", "+234 803 123 4567", None, "08031234567"),
        (BillType.DATA, "mtn-data", "2348031234567", None, "08031234567"),
        (BillType.WATER, "lagos-water", "123456", None, "123456"),
        (BillType.WATER, "fct-water", "FCT1234", None, "FCT1234"),
    ],
)
def test_valid_accounts_come_back_normalised(
    bill_type: BillType, biller: str, account: str, account_type: str | None, expected: str
) -> None:
    assert validate_account(bill_type, biller, account, account_type) == expected


METER = "invalid_meter_number"
FIELD_OF = {"invalid_account_type": "account_type", "unknown_biller": "biller"}


@pytest.mark.parametrize(
    ("bill_type", "biller", "account", "account_type", "code"),
    [
        ("electricity", "ikeja-electric", "123456789012", "prepaid", METER),
        ("electricity", "ikeja-electric", "1111111111a11", "prepaid", METER),
        ("electricity", "eko-electric", "12345", "postpaid", METER),
        ("electricity", "eko-electric", "12345678901234567", "postpaid", METER),
        ("electricity", "eko-electric", "1111111111111", None, "invalid_account_type"),
        ("cable_tv", "dstv", "121212121", None, "invalid_smart_card"),
        ("cable_tv", "startimes", "1212121212", None, "invalid_smart_card"),
        ("cable_tv", "netflix", "1212121212", None, "unknown_biller"),
        ("airtime", "mtn", "0803123", None, "invalid_phone"),
        ("water", "lagos-water", "ABC123", None, "invalid_account_number"),
        ("water", "fct-water", "F1", None, "invalid_account_number"),
    ],
)
def test_invalid_accounts_raise_typed_errors(
    bill_type: str, biller: str, account: str, account_type: str | None, code: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_account(bill_type, biller, account, account_type)
    assert (caught.value.code, caught.value.field) == (code, FIELD_OF.get(code, "account_number"))
    assert caught.value.message in str(caught.value)


def test_amount_rules() -> None:
    assert validate_amount_kobo(500_000, 5_000, 50_000_000) == 500_000
    for bad in (0, -1, True):
        with pytest.raises(ValidationError) as caught:
            validate_amount_kobo(bad)  # type: ignore[arg-type]
        assert caught.value.code == "invalid_amount"
    with pytest.raises(ValidationError):
        validate_amount_kobo(100, minimum_kobo=5_000)
    with pytest.raises(ValidationError):
        validate_amount_kobo(10**9, maximum_kobo=50_000_000)


def test_international_form_cannot_hide_a_trunk_zero() -> None:
    with pytest.raises(ValidationError):
        parse_phone("+2340803123456")
