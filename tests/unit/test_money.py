from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billpay.money import (
    MoneyError,
    cngn_to_kobo,
    cngn_to_stroops,
    format_cngn,
    kobo_to_cngn,
    kobo_to_naira,
    naira_to_kobo,
    parse_cngn,
    stroops_to_cngn,
)


def test_naira_to_kobo_is_exact():
    assert naira_to_kobo("5000") == 500_000
    assert naira_to_kobo("5000.5") == 500_050
    assert naira_to_kobo("1,000.25") == 100_025
    assert naira_to_kobo(Decimal("0.01")) == 1


def test_fractions_of_a_kobo_are_rejected_not_rounded():
    with pytest.raises(MoneyError, match="2 decimal places"):
        naira_to_kobo("10.001")


@pytest.mark.parametrize("bad", [0.1, "abc", "NaN", "Infinity", True, None])
def test_floats_and_garbage_are_rejected(bad):
    with pytest.raises(MoneyError):
        naira_to_kobo(bad)


def test_cngn_has_exactly_seven_places():
    assert kobo_to_cngn(500_000) == Decimal("5000.0000000")
    assert str(kobo_to_cngn(500_050)) == "5000.5000000"
    assert format_cngn("1") == "1.0000000"
    assert parse_cngn("5000.0000000") == Decimal("5000")
    with pytest.raises(MoneyError, match="7 decimal places"):
        parse_cngn("0.00000001")
    with pytest.raises(MoneyError, match="negative"):
        parse_cngn("-1")


def test_stroops_round_trip():
    assert cngn_to_stroops("5000.0000001") == 50_000_000_001
    assert stroops_to_cngn(50_000_000_001) == Decimal("5000.0000001")
    assert cngn_to_kobo("5000.5000000") == 500_050
    with pytest.raises(MoneyError, match="whole number of kobo"):
        cngn_to_kobo("5000.0000001")
    assert kobo_to_naira(123) == Decimal("1.23")


@given(st.integers(min_value=1, max_value=10**13))
def test_kobo_cngn_stroops_round_trip(kobo):
    cngn = kobo_to_cngn(kobo)
    assert cngn_to_kobo(cngn) == kobo
    assert stroops_to_cngn(cngn_to_stroops(cngn)) == cngn
    assert parse_cngn(format_cngn(cngn)) == cngn
