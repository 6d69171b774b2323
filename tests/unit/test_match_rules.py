"""What the money is decides first (treasury, account funding, wrong asset); no database."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from billpay.config import Settings, WrongAssetPolicy
from billpay.sandbox import identities as ids
from billpay.stellar.matching import FundsDecision, MatchOutcome, decide_funds

SQL = Path(__file__).resolve().parents[2] / "sql"
ISSUER = ids.issuer().account_id
TREASURY = ids.users()[4].account_id
USER = ids.users()[0].account_id


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, cngn_issuer=ISSUER, treasury_accounts=[TREASURY])


def _payment(**changes: object) -> dict:
    payment = {
        "operation_type": "payment",
        "from_account": USER,
        "asset_type": "credit_alphanum4",
        "asset_code": "cNGN",
        "asset_issuer": ISSUER,
        "amount": Decimal("5"),
    }
    return {**payment, **changes}


def test_match_outcomes_are_the_ones_the_check_constraint_allows() -> None:
    text = (SQL / "0009_inbound_transfers.sql").read_text()
    check = re.search(r"match_outcome IN \(([^)]*)\)", text)
    assert check is not None
    allowed = set(re.findall(r"'([a-z_]+)'", check.group(1)))
    assert allowed == {outcome.value for outcome in MatchOutcome}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, None),  # cNGN from a customer: an order decides
        ({"from_account": TREASURY, "asset_type": "native"}, FundsDecision("treasury", None)),
        ({"from_account": ISSUER}, FundsDecision(MatchOutcome.TREASURY, None)),
        (
            {"operation_type": "create_account", "asset_type": "native", "asset_code": None},
            FundsDecision(MatchOutcome.HELD_FOR_REVIEW, "account_funding", held=True),
        ),
        (
            {"operation_type": "account_merge", "asset_type": "native", "amount": None},
            FundsDecision(MatchOutcome.HELD_FOR_REVIEW, None, held=True),
        ),
        (
            {"asset_type": "native", "asset_code": None, "asset_issuer": None},
            FundsDecision(MatchOutcome.WRONG_ASSET, "wrong_asset"),
        ),
        ({"asset_code": "CNGN"}, FundsDecision(MatchOutcome.WRONG_ASSET, "wrong_asset")),
        ({"asset_issuer": USER}, FundsDecision(MatchOutcome.WRONG_ASSET, "wrong_asset")),
    ],
)
def test_decide_funds(settings: Settings, changes: dict, expected: FundsDecision | None) -> None:
    assert decide_funds(_payment(**changes), settings) == expected


def test_hold_policy_holds_wrong_assets(settings: Settings) -> None:
    hold = settings.model_copy(update={"wrong_asset_policy": WrongAssetPolicy.HOLD})
    decision = decide_funds(_payment(asset_code="USDC"), hold)
    assert decision == FundsDecision(MatchOutcome.WRONG_ASSET, "wrong_asset", held=True)


def test_treasury_accounts_are_comma_separated_and_validated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BILLPAY_TREASURY_ACCOUNTS", f" {TREASURY}, {USER} ,")
    assert Settings(_env_file=None).treasury_accounts == [TREASURY, USER]
    monkeypatch.setenv("BILLPAY_TREASURY_ACCOUNTS", f"{TREASURY},MABC")
    with pytest.raises(ValidationError, match="not G-addresses"):
        Settings(_env_file=None)
