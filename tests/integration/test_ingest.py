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
from billpay.status import format_status, pipeline_status
from billpay.stellar import (
    HorizonClient,
    IngestConfigError,
    StopReason,
    ingest_payments,
    match_payments,
)
from billpay.store.engine import Database

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BASE = "https://horizon.test"
SYSTEM = ids.system().account_id
PAGES = {
    name: json.loads((FIXTURES / f"horizon_payments_{name}.json").read_text())
    for name in ("page1", "page2", "page3_hostile", "empty")
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


def _serve_pages(
    failures: dict[str, httpx.Response | Exception] | None = None, *, hostile: bool = False
) -> respx.Route:
    """Serve page1 after cursor 0, page2 after page1, (page3_hostile after page2,) then empty
    pages."""
    failures = failures or {}
    order = {"0": "page1", LAST_OF_PAGE1: "page2"}
    if hostile:
        order[LAST_OF_PAGE2] = "page3_hostile"

    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params["cursor"]
        failure = failures.get(cursor)
        if isinstance(failure, Exception):
            raise failure
        if failure is not None:
            return failure
        name = order.get(cursor, "empty")
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


# --- every inbound transfer has exactly one stored row with an outcome -------------------------

SETTLED = {
    "incoming": "SELECT count(*) FROM incoming_payments",
    "unmatched": "SELECT count(*) FROM incoming_payments WHERE match_outcome IS NULL",
    "quarantined": "SELECT count(*) FROM ingest_quarantine",
    "alerts": "SELECT count(*) FROM notifications WHERE kind = 'ingest_record_quarantined'",
    "refunds": "SELECT count(*) FROM refunds",
}


def _counts(db: Database) -> dict[str, int]:
    with db.begin() as conn:
        return {name: conn.execute(sa.text(sql)).scalar_one() for name, sql in SETTLED.items()}


def _inbound_keys(record: dict, account: str) -> list[str]:
    """The test's own reading of a record: the keys of what it credited ``account``."""
    if record.get("transaction_successful") is False:
        return []
    changes = record.get("asset_balance_changes")
    if changes:
        return [
            f"{record['id']}:{i}"
            for i, c in enumerate(changes)
            if c["to"] == account and c["from"] != account
        ]
    credited = account in (record.get("to"), record.get("account"), record.get("into"))
    return [record["id"]] if credited and record.get("from") != account else []


@respx.mock
def test_every_inbound_transfer_has_exactly_one_stored_row_with_an_outcome(
    db: Database, stellar_settings: Settings, horizon: HorizonClient
) -> None:
    _serve_pages(hostile=True)
    settings = stellar_settings.model_copy(
        update={"treasury_accounts": [ids.keypair_for("treasury").public_key]}
    )
    records = [r for name in ("page1", "page2", "page3_hostile") for r in _records(name)]
    expected = {key for r in records for key in _inbound_keys(r, SYSTEM)}

    summary = ingest_payments(db, settings, horizon)
    match_payments(db, settings, actor="matcher", limit=100)

    assert summary.stop_reason == StopReason.CAUGHT_UP
    assert summary.cursor == _records("page3_hostile")[-1]["paging_token"] == _cursor(db)
    with db.begin() as conn:
        stored = dict(
            conn.execute(sa.text("SELECT operation_id, match_outcome FROM incoming_payments")).all()
        )
        quarantined = set(
            conn.execute(sa.text("SELECT record_key FROM ingest_quarantine")).scalars()
        )
    assert not set(stored) & quarantined
    assert set(stored) | quarantined == expected  # one row each, nothing unrecorded
    assert None not in stored.values()
    # The four malformed records of page 3 are the quarantined ones.
    hostile = _records("page3_hostile")
    assert quarantined == {hostile[i]["paging_token"] for i in (4, 5, 6, 7)}
    outcomes = {r["operation_id"]: r["match_outcome"] for r in _payments(db)}
    assert outcomes[hostile[0]["id"]] == "unknown_reference"  # legacy path_payment, no order
    assert outcomes[hostile[2]["id"]] == "treasury"
    assert outcomes[f"{hostile[1]['id']}:0"] == "unknown_reference"  # contract, muxed id 987654321
    assert outcomes[hostile[10]["id"]] == outcomes[hostile[11]["id"]] == "wrong_asset"
    assert outcomes[_records("page1")[0]["id"]] == "treasury"  # the issuer created the account
    assert outcomes[_records("page2")[1]["id"]] == "held_for_review"  # a merge: for a person
    with db.begin() as conn:  # it has no amount, so no refund row to list: operators are told
        told = conn.execute(
            sa.text(
                "SELECT payload->>'operation_id' FROM notifications"
                " WHERE kind = 'inbound_transfer_held_without_refund'"
            )
        ).scalars()
        assert list(told) == [_records("page2")[1]["id"]]

    before = _counts(db)
    assert before["alerts"] == before["quarantined"] == 4
    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM ingest_cursors"))
    again = ingest_payments(db, settings, horizon)
    match_payments(db, settings, actor="matcher", limit=100)
    assert (again.payments_stored, again.quarantined) == (0, 0)
    assert _counts(db) == before  # replaying the pages stores nothing twice


def _records(name: str) -> list[dict]:
    return PAGES[name]["_embedded"]["records"]


@respx.mock
def test_a_malformed_record_is_quarantined_and_alerted_and_the_cursor_moves_on(
    db: Database, stellar_settings: Settings, horizon: HorizonClient
) -> None:
    bad = dict(_records("page1")[1], transaction="oops", amount="\u0000")
    page = {"_embedded": {"records": [bad, *_records("page1")[2:]]}}
    respx.get(f"{BASE}/accounts/{SYSTEM}/payments").mock(
        side_effect=lambda request: httpx.Response(
            200, json=page if request.url.params["cursor"] == "0" else PAGES["empty"]
        )
    )
    summary = ingest_payments(db, stellar_settings, horizon)
    assert summary.stop_reason == StopReason.CAUGHT_UP and summary.quarantined == 1
    assert _cursor(db) == LAST_OF_PAGE1
    with db.begin() as conn:
        row = conn.execute(sa.text("SELECT * FROM ingest_quarantine")).mappings().one()
        alert = conn.execute(sa.text("SELECT * FROM notifications")).mappings().one()
    assert row["record"]["transaction"] == "oops" and row["record"]["amount"] == "\\x00"
    assert "transaction is not an object" in row["error"]
    assert alert["kind"] == "ingest_record_quarantined" and alert["audience"] == "operator"
    assert alert["payload"]["quarantine_id"] == row["id"]
    status = pipeline_status(db)
    assert status.quarantine.open == 1 and status.quarantine.oldest_at == row["created_at"]
    assert status.to_json()["quarantine"]["open"] == 1
    assert "1 Horizon record(s) unread" in format_status(status)


def _serve(page: dict) -> None:
    """``page`` after cursor 0, empty pages after that."""
    respx.get(f"{BASE}/accounts/{SYSTEM}/payments").mock(
        side_effect=lambda request: httpx.Response(
            200, json=page if request.url.params["cursor"] == "0" else PAGES["empty"]
        )
    )


UNUSABLE_LAST = [
    {"id": "99", "paging_token": "9\u00009", "type": "payment", "to": "GOTHER"},
    "not an object",
    {"type": "payment"},
]


@respx.mock
@pytest.mark.parametrize("last", UNUSABLE_LAST)
def test_a_last_record_without_a_usable_token_moves_the_cursor_to_the_next_link(
    db: Database, stellar_settings: Settings, horizon: HorizonClient, last: object
) -> None:
    # Before: "9\x009" made the cursor update raise DataError on every run; the other two made
    # the whole page MALFORMED on every run. Either way the cursor never moved again.
    _serve({**PAGES["page1"], "_embedded": {"records": [*_records("page1")[:-1], last]}})
    for _ in range(2):
        summary = ingest_payments(db, stellar_settings, horizon)
        assert summary.stop_reason == StopReason.CAUGHT_UP
        assert _cursor(db) == LAST_OF_PAGE1  # the page's _links.next cursor
    assert len(_payments(db)) == ON_PAGE1 - 1
    with db.begin() as conn:
        quarantined = conn.execute(sa.text("SELECT count(*) FROM ingest_quarantine")).scalar()
    assert quarantined == 1  # the unusable record is ours to look at, once


@respx.mock
def test_without_a_next_link_the_cursor_waits_before_unusable_records_and_then_moves_on(
    db: Database, stellar_settings: Settings, horizon: HorizonClient
) -> None:
    records = _records("page1")
    held_at = records[1]["paging_token"]
    pages = {
        "0": {"_embedded": {"records": [*records[:2], *UNUSABLE_LAST]}},
        held_at: {"_embedded": {"records": UNUSABLE_LAST}},  # nothing newer yet
    }
    respx.get(f"{BASE}/accounts/{SYSTEM}/payments").mock(
        side_effect=lambda request: httpx.Response(
            200, json=pages.get(request.url.params["cursor"], PAGES["empty"])
        )
    )
    first = ingest_payments(db, stellar_settings, horizon)
    assert first.stop_reason == StopReason.CURSOR_HELD and first.quarantined == 3
    assert _cursor(db) == held_at and len(_payments(db)) == 2
    again = ingest_payments(db, stellar_settings, horizon)  # nothing newer: waits, no new alerts
    assert (again.stop_reason, again.quarantined, _cursor(db)) == (
        StopReason.CURSOR_HELD,
        0,
        held_at,
    )

    # A later record gives the cursor a token to move to.
    pages[held_at] = {"_embedded": {"records": [*UNUSABLE_LAST, records[2]]}}
    moved = ingest_payments(db, stellar_settings, horizon)
    assert moved.stop_reason == StopReason.CAUGHT_UP and moved.quarantined == 0
    assert _cursor(db) == records[2]["paging_token"] and len(_payments(db)) == 3
    with db.begin() as conn:
        alerts = conn.execute(sa.text(SETTLED["alerts"])).scalar()
    assert alerts == 3
