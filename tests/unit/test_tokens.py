from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billpay.tokens import extract_token, format_token, is_valid_token, mask_account, mask_token

TOKEN = "26362054405982757802"


@pytest.mark.parametrize(
    "value",
    [
        "Token : 26362054405982757802",
        "Token : 2636 2054 4059 8275 7802",
        "2636-2054-4059-8275-7802",
        "Token: 2636-2054-4059-8275-7802 Units: 79.9kWh",
        TOKEN,
        {"token": "Token : 26362054405982757802", "units": "79.9"},
        {"mainToken": "26362054405982757802"},
        {"purchased_code": "Token : 26362054405982757802"},
        {"extras": ["nothing here", "Token : 2636 2054 4059 8275 7802"]},
        {"extra": {"token": "2636-2054-4059-8275-7802"}},
        int(TOKEN),
    ],
)
def test_extract_token_finds_the_twenty_digits_in_provider_shapes(value: object) -> None:
    assert extract_token(value) == TOKEN


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "N/A",
        "Token : 1234",
        "17416102247366731230557150",  # a 26-digit transaction id, not a token
        {"tx_ref": "CF-FLYAPI-20240324091413750321", "extra": None},
        {"resetToken": TOKEN},  # key-change tokens are not the customer's token
        True,
    ],
)
def test_extract_token_ignores_non_tokens(value: object) -> None:
    assert extract_token(value) is None


def test_main_token_is_preferred_to_other_token_fields() -> None:
    body = {"kct1": "11112222333344445555", "token": TOKEN, "configureToken": "9" * 20}
    assert extract_token(body) == TOKEN


def test_format_and_mask() -> None:
    assert format_token(TOKEN) == "2636-2054-4059-8275-7802"
    assert format_token("2636 2054 4059 8275 7802") == "2636-2054-4059-8275-7802"
    assert mask_token(TOKEN) == "****-****-****-****-7802"
    assert mask_token("garbage") == "****"
    assert mask_token(None) is None
    assert is_valid_token("2636-2054-4059-8275-7802")
    assert not is_valid_token("2636-2054-4059-8275-780")
    assert not is_valid_token("Token : 26362054405982757802")
    with pytest.raises(ValueError):
        format_token("123")


def test_mask_account_keeps_the_last_four() -> None:
    assert mask_account("1212121212") == "******1212"
    assert mask_account("08031234567") == "*******4567"
    assert mask_account("123") == "***"
    assert mask_account(None) == ""


digits20 = st.from_regex(r"[0-9]{20}", fullmatch=True)


@given(digits20)
def test_format_extract_round_trip(token: str) -> None:
    formatted = format_token(token)
    assert len(formatted) == 24 and formatted.count("-") == 4
    assert extract_token(formatted) == token
    assert extract_token(f"Token : {formatted.replace('-', ' ')}") == token
    assert format_token(formatted) == formatted
    assert mask_token(formatted).endswith(token[-4:])
    assert token[:16] not in mask_token(token)


noise = st.text(alphabet="abcXYZ :,.", max_size=10)


@given(digits20, noise, noise)
def test_token_survives_surrounding_text(token: str, before: str, after: str) -> None:
    assert extract_token(before + token + after) == token
