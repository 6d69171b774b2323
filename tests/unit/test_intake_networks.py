"""Intake's airtime and data rules: the biller names the network (issue 14)."""

from __future__ import annotations

from typing import Any

import pytest

from billpay.catalogue import Catalogue
from billpay.config import Settings
from billpay.intake import IntakeError, OrderRequest, ValidOrder, validate

SETTINGS = Settings()


def _order(**changes: Any) -> ValidOrder:
    fields: dict[str, Any] = {
        "bill_type": "airtime",
        "biller": "mtn",
        "account": "08031234567",
        "amount": "500",
        "phone": "08031234567",
    }
    return validate(OrderRequest(**(fields | changes)), SETTINGS, catalogue=Catalogue.builtin())


def test_mtn_with_an_airtel_prefix_is_accepted_as_mtn_with_a_warning() -> None:
    order = _order(account="+234 802 123 4567")
    assert order.network == "mtn" and order.account_number == "08021234567"
    (warning,) = order.warnings
    assert warning.startswith("numbers starting 0802 were first issued by Airtel")
    assert "MTN" in warning and "1234567" not in warning  # the prefix, never the number


@pytest.mark.parametrize("account", ["09101234567", "08031234567", "07025123456"])
def test_an_mtn_prefix_on_mtn_has_no_warning(account: str) -> None:
    order = _order(account=account)
    assert (order.network, order.warnings) == ("mtn", ())


@pytest.mark.parametrize(
    ("account", "prefix"),
    [("08011111111", "0801"), ("07021234567", "0702"), ("08041234567", "0804")],
)
def test_a_prefix_of_no_network_we_know_is_taken_on_the_billers_network(
    account: str, prefix: str
) -> None:
    """New ranges are allocated before a prefix table knows them (0910 was missing): a user who
    chose MTN knows the line; the provider refuses it if not, and the order is refunded."""
    order = _order(account=account)
    assert order.network == "mtn"
    (warning,) = order.warnings
    assert f"starting {prefix}" in warning and account not in warning


def test_data_billers_name_their_network_too() -> None:
    order = _order(
        bill_type="data", biller="etisalat-data", product="eti-1gb-1000", amount="1000",
        account="08051234567",
    )  # fmt: skip
    assert order.network == "9mobile"
    (warning,) = order.warnings
    assert "Glo" in warning and "9mobile" in warning


def test_naming_the_billers_network_silences_the_warning() -> None:
    assert _order(account="08021234567", network="MTN").warnings == ()


def test_a_network_contradicting_the_biller_is_an_error_naming_the_field() -> None:
    with pytest.raises(IntakeError) as caught:
        _order(account="08021234567", network="airtel")
    assert [e.field for e in caught.value.all] == ["network"]
    with pytest.raises(IntakeError) as unknown:
        _order(network="vodafone")
    assert [e.field for e in unknown.value.all] == ["network"]


def test_warnings_are_not_order_columns() -> None:
    order = _order(account="08021234567")
    assert order.warnings and "warnings" not in order.columns()
    assert order.columns()["network"] == "mtn"


def test_other_bill_types_have_no_network_and_no_warnings() -> None:
    order = _order(
        bill_type="electricity", biller="ikeja-electric", account="1111111111111",
        account_type="prepaid", amount="5000",
    )  # fmt: skip
    assert (order.network, order.warnings) == (None, ())
