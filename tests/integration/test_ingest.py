"""Ingestion against real PostgreSQL with Horizon pages served by respx."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx
import sqlalchemy as sa

from billpay.config import Settings
from billpay.sandbox import identities as ids
from billpay.stellar import HorizonClient, IngestConfigError, StopReason, ingest_payments
from billpay.store.engine import Database

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BASE = "https://horizon.test"
SYSTEM = ids.system().account_id
PAGES = {
    name: json.loads((FIXTURES / f"horizon_payments_{name}.json").read_text())
    for name in ("page1", "page2", "empty")
}
LAST_OF_PAGE1 = PAGES["page1"]["_embedded"]["records"][-1]["paging_token"]
LAST_OF_PAGE2 = PAGES["page2"]["_embedded"]["records"][-1]["paging_token"]
ON_PAGE1, ON_PAGE2 = 12, 4  # inbound transfers (see tests/unit/test_horizon_records.py)
STORED_FROM_PAGES = ON_PAGE1 + ON_PAGE2


@pytest.fixture
def stellar_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "horizon_url": BASE,
            "system_account": SYSTEM,
            "cngn_issuer": ids.issuer().account_id,
            "ingest_start_cursor": "0",
            "ingest_page_budget": 10,
        }
    )


@pytest.fixture
def horizon(stellar_settings: Settings) -> HorizonClient:
    return HorizonClient.from_settings(stellar_settings, httpx.Client())


def _serve_pages(failures: dict[str, httpx.Response | Exception] | None = None) -> respx.Route:
    """Serve page1 after cursor 0, page2 after page1, then empty pages."""
    failures = failures or {}

    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params["cursor"]
        failure = failures.get(cursor)
        if isinstance(failure, Exception):
            raise failure
        if failure is not None:
            return failure
        name = {"0": "page1", LAST_OF_PAGE1: "page2"}.get(cursor, "empty")
        return httpx.Response(200, json=PAGES[name])

    return respx.get(f"{BASE}/accounts/{SYSTEM}/payments").mock(side_effect=handler)


def _payments(db: Database) -> list[dict]:
    with db.begin() as conn:
        rows = conn.execute(sa.text("SELECT * FROM incoming_payments ORDER BY id")).mappings()
        return [dict(r) for r in rows]


def _cursor(db: Database) -> str | None:
    with db.begin() as conn:
        return conn.execute(sa.text("SELECT cursor FROM ingest_cursors")).scalar()


@respx.mock
def test_ingesting_the_same_pages_twice_stores_each_payment_once(
    db: Database, stellar_settings: Settings, horizon: HorizonClient
) -> None:
    _serve_pages()
    first = ingest_payments(db, stellar_settings, horizon)
    assert first.stop_reason == StopReason.CAUGHT_UP
    assert (first.pages, first.payments_stored, first.cursor) == (
        2,
        STORED_FROM_PAGES,
        LAST_OF_PAGE2,
    )
    assert _cursor(db) == LAST_OF_PAGE2

    # Replaying from the start (a lost cursor, an operator reset) adds nothing.
    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM ingest_cursors"))
    again = ingest_payments(db, stellar_settings, horizon)
    assert again.payments_stored == 0 and again.pages == 2
    rows = _payments(db)
    assert len(rows) == STORED_FROM_PAGES
    assert len({r["operation_id"] for r in rows}) == STORED_FROM_PAGES
    assert _cursor(db) == LAST_OF_PAGE2


@respx.mock
def test_stored_rows_carry_what_matching_and_refunds_need(
    db: Database, stellar_settings: Settings, horizon: HorizonClient
) -> None:
    _serve_pages()
    ingest_payments(db, stellar_settings, horizon)
    rows = {r["amount"]: r for r in _payments(db)}
    muxed = next(r for r in rows.values() if r["from_muxed"])
    assert muxed["from_muxed"].startswith("M") and muxed["from_account"].startswith("G")
    odd = rows[42]
    assert odd["memo_type"] == "text" and odd["memo"].startswith("BILL-\\x")
    first = next(r for r in _payments(db) if r["asset_code"] == "cNGN")
    assert first["memo"] == "BILL-ABCDE12345" and first["ledger"] is not None
    assert first["ledger_time"].isoformat().startswith("2026-11-20T10:02:00")
    assert all(r["match_outcome"] is None for r in rows.values())


@respx.mock
def test_missing_cursor_without_configured_start_is_an_error(
    db: Database, stellar_settings: Settings, horizon: HorizonClient
) -> None:
    route = _serve_pages()
    unset = stellar_settings.model_copy(update={"ingest_start_cursor": None})
    with pytest.raises(IngestConfigError, match="BILLPAY_INGEST_START_CURSOR"):
        ingest_payments(db, unset, horizon)
    assert not route.called


@respx.mock
def test_stored_cursor_wins_over_the_configured_start(
    db: Database, stellar_settings: Settings, horizon: HorizonClient
) -> None:
    route = _serve_pages()
    with db.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO ingest_cursors (account, cursor) VALUES (:a, :c)"),
            {"a": SYSTEM, "c": LAST_OF_PAGE1},
        )
    summary = ingest_payments(db, stellar_settings, horizon)
    assert route.calls[0].request.url.params["cursor"] == LAST_OF_PAGE1
    assert summary.payments_stored == ON_PAGE2


@respx.mock
@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(429, headers={"Retry-After": "3"}),
        httpx.Response(503, json={"status": 503}),
        httpx.Response(200, text="not json"),
        httpx.Response(200, json={"_embedded": {"records": [{"id": "1", "type": "payment"}]}}),
        httpx.ReadTimeout("slow"),
    ],
)
def test_horizon_failure_stops_the_run_with_the_cursor_where_it_was(
    db: Database,
    stellar_settings: Settings,
    horizon: HorizonClient,
    failure: httpx.Response | Exception,
) -> None:
    _serve_pages({LAST_OF_PAGE1: failure})
    summary = ingest_payments(db, stellar_settings, horizon)
    assert summary.stop_reason == StopReason.HORIZON_ERROR
    assert summary.error
    assert summary.cursor == LAST_OF_PAGE1 == _cursor(db)
    assert len(_payments(db)) == ON_PAGE1


@respx.mock
def test_page_budget_ends_the_run_and_the_next_run_continues(
    db: Database, stellar_settings: Settings, horizon: HorizonClient
) -> None:
    _serve_pages()
    budget = stellar_settings.model_copy(update={"ingest_page_budget": 1})
    first = ingest_payments(db, budget, horizon)
    assert (first.stop_reason, first.cursor) == (StopReason.PAGE_BUDGET, LAST_OF_PAGE1)
    second = ingest_payments(db, budget, horizon)
    assert (second.stop_reason, second.cursor) == (StopReason.PAGE_BUDGET, LAST_OF_PAGE2)
    third = ingest_payments(db, budget, horizon)
    assert third.stop_reason == StopReason.CAUGHT_UP and third.pages == 0


@respx.mock
def test_crash_inside_the_page_transaction_replays_without_duplicates(
    db: Database, stellar_settings: Settings, horizon: HorizonClient
) -> None:
    _serve_pages()
    # The crash: the database fails on the last row of page 2, after the cursor moved and the
    # other rows were written in the same transaction.
    last_op = PAGES["page2"]["_embedded"]["records"][-1]["id"]
    with db.begin() as conn:
        conn.execute(
            sa.text(
                f"""
                CREATE FUNCTION crash() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.operation_id = '{last_op}' THEN
                        RAISE EXCEPTION 'simulated crash';
                    END IF;
                    RETURN NEW;
                END $$;
                CREATE TRIGGER crash BEFORE INSERT ON incoming_payments
                    FOR EACH ROW EXECUTE FUNCTION crash();
                """
            )
        )
    with pytest.raises(sa.exc.DBAPIError, match="simulated crash"):
        ingest_payments(db, stellar_settings, horizon)
    assert _cursor(db) == LAST_OF_PAGE1  # page 1 committed, page 2 rolled back whole
    assert len(_payments(db)) == ON_PAGE1

    with db.begin() as conn:
        conn.execute(sa.text("DROP TRIGGER crash ON incoming_payments"))
    summary = ingest_payments(db, stellar_settings, horizon)
    assert summary.payments_stored == ON_PAGE2
    assert len(_payments(db)) == STORED_FROM_PAGES
    assert _cursor(db) == LAST_OF_PAGE2


@respx.mock
def test_an_ingester_that_lost_the_race_writes_nothing(
    db: Database, stellar_settings: Settings, horizon: HorizonClient
) -> None:
    def other_ingester_commits_first(request: httpx.Request) -> httpx.Response:
        with db.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO ingest_cursors (account, cursor) VALUES (:a, :c)"),
                {"a": SYSTEM, "c": LAST_OF_PAGE2},
            )
        return httpx.Response(200, json=PAGES["page1"])

    respx.get(f"{BASE}/accounts/{SYSTEM}/payments").mock(side_effect=other_ingester_commits_first)
    summary = ingest_payments(db, stellar_settings, horizon)
    assert summary.stop_reason == StopReason.CURSOR_MOVED
    assert _payments(db) == [] and _cursor(db) == LAST_OF_PAGE2
