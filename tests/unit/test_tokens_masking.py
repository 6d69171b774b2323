"""Free-text masking (issue 12 defect 2d) and token lookup under any key spelling (defect 3)."""

from __future__ import annotations

import pytest

from billpay.tokens import extract_token, mask_text

TOKEN = "26362054405982757802"


@pytest.mark.parametrize(
    ("text", "hidden", "kept"),
    [
        ("call +234 803 123 4567", "803 123", "4567"),
        ("call 0803-123-4567", "0803-123", "4567"),
        ("call (0803) 123 4567", "0803", "4567"),
        ("call 234-803-123-4567", "803-123", "4567"),
        ("write to ada.obi+bills@example.com", "ada.obi", "@example.com"),
        ("meter 0101 2345 6789 not found", "0101 2345", "6789"),
        ("token 2636-2054-4059-8275-7802", "2636-2054", "7802"),
    ],
)
def test_mask_text_hides_phones_emails_and_grouped_numbers(text, hidden, kept) -> None:
    masked = mask_text(text)
    assert hidden not in masked and kept in masked


@pytest.mark.parametrize("text", ["HTTP 502 at 2025-03-10 12:37:04", "code 016, 3 tries", "N/A"])
def test_mask_text_keeps_dates_codes_and_short_numbers(text: str) -> None:
    assert mask_text(text) == text


@pytest.mark.parametrize(
    "body",
    [
        {"MainToken": TOKEN},
        {"main_token": TOKEN},
        {"TOKEN": f"Token : {TOKEN}"},
        {"Purchased_Code": f"Token : {TOKEN}"},
        {"bonusToken": "1111 2222 3333 4444 5555", "mainToken": TOKEN},
        {"bonus_token": "1111 2222 3333 4444 5555", "tokenCode": TOKEN},
    ],
)
def test_the_main_token_is_found_under_any_spelling_before_a_bonus_token(body) -> None:
    assert extract_token(body) == TOKEN


def test_a_bonus_token_alone_is_still_a_token() -> None:
    assert extract_token({"bonusToken": TOKEN}) == TOKEN


def test_deeply_nested_token_fields_do_not_raise() -> None:
    body: object = TOKEN
    for _ in range(5000):
        body = {"token": body}
    assert extract_token(body) is None  # deeper than any provider nests: not looked for
