"""Free-text masking (issue 12 defect 2d) and token lookup under any key spelling (defect 3)."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest

from billpay.providers.base import make_attempt_reference
from billpay.tokens import extract_token, mask_text, remove_secrets
from tests.unit.provider_cases import NOW

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


@pytest.mark.parametrize("separator", [".", "/", "_", "\u00a0", "\u200b", " - ", "\t"])
def test_tokens_are_masked_whatever_separates_their_groups(separator: str) -> None:
    text = "Token: " + separator.join(TOKEN[i : i + 4] for i in range(0, 20, 4)) + " ok"
    masked = mask_text(text)
    assert "2636" not in masked and "4059" not in masked and masked.endswith("7802 ok")


@pytest.mark.parametrize("separator", [".", "/", "_", "\u00a0"])
def test_dotted_or_slashed_numbers_elsewhere_in_a_body_do_not_become_the_token(
    separator: str,
) -> None:
    fake = separator.join(["1111", "2222", "3333", "4444", "5555"])
    assert extract_token({"token": f"ref {fake} Token : {TOKEN}"}) == TOKEN


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("mail ada.obi@example.com now", "mail a***@example.com now"),
        ("x:ada@ex.ng", "x:a***@ex.ng"),
        ("(ada@ex.ng)", "(a***@ex.ng)"),
    ],
)
def test_emails_keep_their_first_letter_and_domain(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "a" * 64_000,  # an email local part that never meets an "@"
        "a.b-" * 16_000,
        "a@" + "b" * 64_000,
        "0" + " 1" * 32_000,
        "1234 " * 13_000,
        "+234 " * 13_000,
        "Bearer " * 9_000,
    ],
)
def test_masking_long_text_takes_linear_time(text: str) -> None:
    started = time.perf_counter()
    mask_text(text)
    # A quadratic pattern needs seconds here (the old email pattern: 1.3 s for 32k characters);
    # a linear one a few milliseconds. The bound leaves room for a loaded machine.
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("Authorization: Bearer FLWSECK_TEST-abcdef0123456789-X", "abcdef"),
        ("token=FLWSECK-0a1b2c3d4e5f-X;", "0a1b2c"),
        ("pub FLWPUBK_TEST-99aa88bb77cc-X", "99aa88"),
        ("bearer eyJhbGciOiJIUzI1NiJ9.e30.abc", "eyJhbG"),
    ],
)
def test_keys_in_free_text_are_redacted(text: str, hidden: str) -> None:
    masked = mask_text(text)
    assert hidden not in masked and "[redacted]" in masked


def test_configured_secret_values_are_removed_from_free_text() -> None:
    masked = mask_text(
        "invalid api key SK_secret_789 (api-KEY-123)", ["SK_secret_789", "api-KEY-123"]
    )
    assert masked == "invalid api key [redacted] ([redacted])"


def test_every_engine_the_project_builds_hides_bound_values() -> None:
    """A failed statement's exception carries its bound values (tokens, meters) unless the
    engine hides them: the pipeline's, the admin and migration engines, the demo's and the
    bench's."""
    root = Path(__file__).resolve().parents[2]
    calls = []
    paths = [*(root / "deployments").glob("*.py"), *(root / "billpay").rglob("*.py")]
    for path in sorted(paths):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "create_engine":
                hidden = any(
                    k.arg == "hide_parameters" and getattr(k.value, "value", None) is True
                    for k in node.keywords
                )
                calls.append((path.name, node.lineno, hidden))
    assert calls and all(hidden for *_, hidden in calls), calls


# --- issue 12 review 3: grouped numbers, the customer's own values, what stays readable -------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("IUC 70 2723 4567", "70 2723 4567"),
        ("card 7027 2345 67", "7027 2345 67"),
        ("meter 45 0123 45678", "45 0123 45678"),
        ("acct 1234 5678 90123", "1234 5678 90123"),
        ("meter 45012 345678", "45012 345678"),
        ("meter 4501-2345-678 ok", "4501-2345-678"),
        ("meter 4501.2345.678", "4501.2345.678"),
    ],
)
def test_numbers_of_ten_digits_or_more_are_masked_however_they_are_grouped(
    text: str, number: str
) -> None:
    masked = mask_text(text)
    shown = "".join(c for c in masked if c.isdigit())
    assert len(shown) == 4 and shown == "".join(c for c in number if c.isdigit())[-4:]


@pytest.mark.parametrize(
    "text",
    [
        "paid 5,000.00 at 2026-12-01 10:30:00",
        "at 2026-12-01 10:30:00.000000 (Lagos)",
        "paid 1,250,000.00 on 2026-12-01T10:30:00Z",
        f"attempt {make_attempt_reference('7K3M9QZ2XA', 1, NOW)} retried",
        f"attempt {make_attempt_reference('0123456789', 12, NOW)} retried",
        "3 tries, 12 34 56",
    ],
)
def test_amounts_dates_and_our_attempt_references_stay_readable(text: str) -> None:
    assert mask_text(text) == text


def test_a_masked_token_keeps_its_last_four_next_to_other_numbers() -> None:
    masked = mask_text(f"token {TOKEN} 4501 2345 ref")
    assert masked == "token ****-****-****-****-7802 4501 2345 ref"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("meter 4501 2345 678 not found", "45012345678"),
        ("call (0803) 123-4567", "08031234567"),
        ("account ab 1234 x unknown", "AB1234X"),
        ("account FCT/12345 unknown", "FCT12345"),
        ("postpaid 4501234 unpaid", "4501234"),
    ],
)
def test_a_secret_is_removed_whatever_separates_its_characters(text: str, secret: str) -> None:
    masked = mask_text(text, [secret])
    assert "[redacted]" in masked
    assert secret.lower() not in "".join(c for c in masked.lower() if c.isalnum())


def test_a_digit_secret_inside_a_longer_number_leaves_that_number_to_its_own_rule() -> None:
    # The customer's 6-digit account inside a token must not split the token open.
    assert mask_text(f"token {TOKEN}", ["054405"]) == "token ****-****-****-****-7802"
    assert remove_secrets("stamp 202612011030", ["120110"]) == "stamp 202612011030"
