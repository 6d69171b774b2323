"""Amounts that are not amounts fail as MoneyError, never as an overflow (issue 12 defect 1)."""

from __future__ import annotations

import pytest

from billpay.money import MoneyError, naira_to_kobo, parse_cngn


@pytest.mark.parametrize(
    "value",
    ["1e999999", "-1e999999", "9" * 5000, 10**5000, "1e15"],
    ids=["1e999999", "-1e999999", "5000 nines", "int 10**5000", "1e15"],
)
def test_huge_amounts_are_money_errors(value: object) -> None:
    with pytest.raises(MoneyError):
        naira_to_kobo(value)
    with pytest.raises(MoneyError):
        parse_cngn(value)


def test_large_but_real_amounts_still_convert() -> None:
    assert naira_to_kobo("99999999999999") == 9_999_999_999_999_900
    assert str(parse_cngn("123456789.1234567")) == "123456789.1234567"
