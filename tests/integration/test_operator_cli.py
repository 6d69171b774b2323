"""`billpay refund held|release` and `billpay quarantine list|resolve`: what an operator does
with what the pipeline parks for a person, on real PostgreSQL, each act audited."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from billpay.store import incoming as pay_store
from deployments.cli import app
from tests.db_reads import one_row
from tests.factories import add_incoming_payment

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch, database_url):
    monkeypatch.setenv("BILLPAY_DATABASE_URL", database_url.render_as_string(hide_password=False))
    return database_url


def _held_refund(db, reason: str = "wrong_asset") -> int:
    with db.begin() as conn:
        payment = add_incoming_payment(conn, "250")
        refund = pay_store.insert_refund(
            conn,
            payment_id=payment,
            destination="GUSER",
            amount=Decimal("250"),
            memo="REFUND-X",
            reason=reason,
            held=True,
        )
    assert refund is not None
    return refund


def _quarantined(db) -> int:
    record = {"id": "q1", "paging_token": "q1", "type": "payment", "transaction": "oops"}
    pay_store.store_page(
        db,
        "GSYS",
        "0",
        "q1",
        [],
        [{"record_key": "q1", "paging_token": "q1", "record": record, "error": "bad join"}],
    )
    return one_row(db, "SELECT id FROM ingest_quarantine WHERE record_key = 'q1'")["id"]


def test_a_held_refund_is_listed_and_released_with_a_mandatory_note(db, cli_env) -> None:
    refund = _held_refund(db)
    listed = runner.invoke(app, ["refund", "held"])
    assert listed.exit_code == 0, listed.output
    row = next(r for r in json.loads(listed.output) if r["id"] == refund)
    assert row["hold_reason"] == "wrong_asset" and row["amount"] == "250.0000000"

    no_note = runner.invoke(app, ["refund", "release", str(refund)])
    assert no_note.exit_code == 2 and "--note" in no_note.output
    assert one_row(db, "SELECT status FROM refunds WHERE id = :id", id=refund)["status"] == "held"

    done = runner.invoke(
        app, ["refund", "release", str(refund), "--note", "user confirmed", "--actor", "ada"]
    )
    assert done.exit_code == 0, done.output
    stored = one_row(
        db, "SELECT status, operator_note, released_by FROM refunds WHERE id = :id", id=refund
    )
    assert stored == {
        "status": "pending",
        "operator_note": "user confirmed",
        "released_by": "operator:ada",
    }
    again = runner.invoke(app, ["refund", "release", str(refund), "--note", "twice"])
    assert again.exit_code == 1 and "no held refund" in again.output


def test_a_quarantined_record_is_listed_and_resolved_once(db, cli_env) -> None:
    record_id = _quarantined(db)
    listed = runner.invoke(app, ["quarantine", "list"])
    assert listed.exit_code == 0, listed.output
    row = next(r for r in json.loads(listed.output) if r["id"] == record_id)
    assert row["error"] == "bad join" and row["record"]["transaction"] == "oops"

    assert runner.invoke(app, ["quarantine", "resolve", str(record_id)]).exit_code == 2
    done = runner.invoke(
        app, ["quarantine", "resolve", str(record_id), "--note", "refunded by hand, tx abc"]
    )
    assert done.exit_code == 0, done.output
    stored = one_row(
        db,
        "SELECT resolved_at IS NOT NULL AS resolved, resolution_note FROM ingest_quarantine"
        " WHERE id = :id",
        id=record_id,
    )
    assert stored == {"resolved": True, "resolution_note": "refunded by hand, tx abc"}
    assert record_id not in [
        r["id"] for r in json.loads(runner.invoke(app, ["quarantine", "list"]).output)
    ]
    again = runner.invoke(app, ["quarantine", "resolve", str(record_id), "--note", "again"])
    assert again.exit_code == 1 and "no open quarantined record" in again.output


HASH = "ab" * 32


class _Horizon:
    """What the settle command asks Horizon: does this transaction exist, did it succeed."""

    def __init__(self, known: dict[str, dict]) -> None:
        self.known = known

    def transaction(self, tx_hash: str) -> dict | None:
        return self.known.get(tx_hash)


def _horizon_knows(monkeypatch, known: dict[str, dict]) -> None:
    from billpay.app import App

    monkeypatch.setattr(App, "horizon", property(lambda self: _Horizon(known)))


def test_a_held_refund_settled_by_hand_is_confirmed_and_can_never_be_sent_again(
    db, cli_env, monkeypatch
) -> None:
    """Found by review: a refund returned by hand stayed held, listed forever, and a later
    release would have sent it a second time."""
    refund = _held_refund(db, "contract_payer")
    _horizon_knows(monkeypatch, {HASH: {"hash": HASH, "successful": True}})
    bad = runner.invoke(app, ["refund", "settle", str(refund), "--tx-hash", "zz", "--note", "x"])
    assert bad.exit_code == 2 and "--tx-hash" in bad.output
    unknown = "cd" * 32
    missing = runner.invoke(
        app, ["refund", "settle", str(refund), "--tx-hash", unknown, "--note", "x"]
    )
    assert missing.exit_code == 1 and "knows no successful transaction" in missing.output
    assert one_row(db, "SELECT status FROM refunds WHERE id = :id", id=refund)["status"] == "held"

    done = runner.invoke(
        app,
        ["refund", "settle", str(refund), "--tx-hash", HASH, "--note", "SAC transfer by hand"],
    )
    assert done.exit_code == 0, done.output
    stored = one_row(
        db, "SELECT status, tx_hash, operator_note FROM refunds WHERE id = :id", id=refund
    )
    assert stored == {
        "status": "confirmed",
        "tx_hash": HASH,
        "operator_note": "SAC transfer by hand",
    }
    listed = json.loads(runner.invoke(app, ["refund", "held"]).output)
    assert refund not in [r["id"] for r in listed]
    again = runner.invoke(app, ["refund", "release", str(refund), "--note", "oops"])
    assert again.exit_code == 1
    assert one_row(db, "SELECT status FROM refunds WHERE id = :id", id=refund)["status"] == (
        "confirmed"
    )


def test_notes_are_stored_masked(db, cli_env) -> None:
    refund = _held_refund(db)
    note = "customer 08031234567 confirmed, token 1234-5678-9012-3456-7890"
    done = runner.invoke(app, ["refund", "release", str(refund), "--note", note])
    assert done.exit_code == 0, done.output
    stored = one_row(db, "SELECT operator_note FROM refunds WHERE id = :id", id=refund)
    assert "08031234567" not in stored["operator_note"]
    assert "1234-5678-9012-3456-7890" not in stored["operator_note"]
