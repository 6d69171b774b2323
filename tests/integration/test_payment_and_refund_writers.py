"""The payment and refund status writers of sql/0007_status_writers.sql against real PostgreSQL.

Each applies in the state it expects and returns true; in another state, or on a row another
worker holds a live lease on, it returns false and changes nothing; the bill's audit event
names the actor the caller passed.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from billpay.states import BillState
from billpay.store import bills
from billpay.store.migrations import SQL_DIR, upgrade
from billpay.store.queries import query
from tests.factories import add_incoming_payment, attach_payment, bill_in_state, new_order

MAX_TIME = datetime(2030, 1, 1, tzinfo=UTC)


def _run(db, name: str, **params) -> bool:
    with db.begin() as conn:
        return bool(conn.execute(query(name), params).scalar())


def _refund(db, refund_id: int) -> dict:
    with db.begin() as conn:
        row = conn.execute(sa.text("SELECT * FROM refunds WHERE id = :id"), {"id": refund_id})
        return dict(row.mappings().one())


def _status(db, bill_id: int) -> str:
    with db.begin() as conn:
        return bills.get_by_id(conn, bill_id)["status"]


def _last_event(db, bill_id: int) -> dict:
    return bills.events_for(db, bill_id)[-1]


def _assert_last_event(db, bill_id: int, to_state: str, actor: str, detail: str) -> None:
    event = _last_event(db, bill_id)
    assert (event["to_state"], event["actor"], event["detail"]) == (to_state, actor, detail)


def _lease(db, refund_id: int, holder: str, seconds: int = 3600) -> None:
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE refunds SET claimed_by = :h,"
                " claimed_until = now() + make_interval(secs => :s) WHERE id = :id"
            ),
            {"h": holder, "s": seconds, "id": refund_id},
        )


def _refused_under_another_lease(db, refund_id: int, attempt) -> None:
    """With a live lease held by "other", ``attempt()`` (as "w") returns false, changes nothing."""
    _lease(db, refund_id, "other")
    before = _refund(db, refund_id)
    assert not attempt()
    assert _refund(db, refund_id) == before


def _unlinked_payment(db, bill: dict) -> int:
    """An incoming payment naming ``bill`` that the bill does not point at yet."""
    with db.begin() as conn:
        return add_incoming_payment(conn, memo=f"BILL-{bill['reference']}")


def _pending_refund(db) -> tuple[int, int]:
    """A bill in refund_initiated with its pending refund: (bill id, refund id)."""
    bill = bill_in_state(db, BillState.ACCOUNT_INVALID)
    attach_payment(db, bill)
    with db.begin() as conn:
        assert bills.send_to_refund(conn, bill["id"], "account_invalid", actor="setup")
        refund_id = conn.execute(
            sa.text("SELECT id FROM refunds WHERE bill_payment_id = :b"), {"b": bill["id"]}
        ).scalar_one()
    return bill["id"], refund_id


# What each refund writer is called with unless a test says otherwise.
_DEFAULTS: dict[str, dict] = {
    "refund_mark_submitted": {
        "xdr": "AAAA",
        "tx_hash": "h1",
        "sequence": 7,
        "max_time": MAX_TIME,
        "detail": "envelope stored",
    },
    "refund_reset": {
        "tx_hash": "h1",
        "status": "pending",
        "hold_reason": None,
        "last_error": "rejected",
        "result_codes": '{"transaction": "tx_failed"}',
        "next_attempt_at": None,
        "detail": "discarded",
    },
    "refund_park": {
        "status": "held",
        "hold_reason": "no_trustline",
        "last_error": "cannot receive",
        "result_codes": None,
        "next_attempt_at": datetime.now(UTC) - timedelta(seconds=1),
    },
    "refund_mark_confirmed": {"tx_hash": "h1", "detail": "on the ledger"},
}


def _writer(name: str):
    def call(db, refund_id: int, actor: str = "w", **overrides) -> bool:
        params = {**_DEFAULTS[name], "id": refund_id, "actor": actor, **overrides}
        return _run(db, name, **params)

    return call


_submit = _writer("refund_mark_submitted")
_reset = _writer("refund_reset")
_park = _writer("refund_park")
_confirm = _writer("refund_mark_confirmed")


# --- bill_mark_paid -------------------------------------------------------------------------


def test_bill_mark_paid_moves_a_pending_order_to_cngn_received_with_the_actor(db):
    bill = new_order(db)
    payment_id = _unlinked_payment(db, bill)
    paid_at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    params = {"bill_id": bill["id"], "payment_id": payment_id, "paid_at": paid_at}
    assert _run(db, "bill_mark_paid", **params, actor="matcher-1", detail="incoming payment op")
    with db.begin() as conn:
        row = bills.get_by_id(conn, bill["id"])
    assert (row["status"], row["incoming_payment_id"], row["paid_at"]) == (
        "cngn_received",
        payment_id,
        paid_at,
    )
    _assert_last_event(db, bill["id"], "cngn_received", "matcher-1", "incoming payment op")
    # Already paid: refused, nothing changes.
    assert not _run(db, "bill_mark_paid", **params, actor="matcher-2", detail=None)
    assert _last_event(db, bill["id"])["actor"] == "matcher-1"


def test_bill_mark_paid_refuses_an_order_that_is_not_pending(db):
    bill = bill_in_state(db, BillState.EXPIRED)
    payment_id = _unlinked_payment(db, bill)
    params = {"bill_id": bill["id"], "payment_id": payment_id, "paid_at": datetime.now(UTC)}
    assert not _run(db, "bill_mark_paid", **params, actor="m", detail=None)
    with db.begin() as conn:
        row = bills.get_by_id(conn, bill["id"])
    assert (row["status"], row["incoming_payment_id"], row["paid_at"]) == ("expired", None, None)


# --- bill_refund_amount_mismatch ------------------------------------------------------------


def test_amount_mismatch_links_the_payment_and_initiates_a_refund_with_the_actor(db):
    bill = new_order(db)
    payment_id = _unlinked_payment(db, bill)
    params = {"bill_id": bill["id"], "payment_id": payment_id}
    assert _run(db, "bill_refund_amount_mismatch", **params, actor="matcher", detail="op 1")
    with db.begin() as conn:
        row = bills.get_by_id(conn, bill["id"])
        refund = conn.execute(sa.text("SELECT * FROM refunds")).mappings().one()
    assert (row["status"], row["incoming_payment_id"]) == ("refund_initiated", payment_id)
    assert (refund["bill_payment_id"], refund["reason"]) == (bill["id"], "amount_mismatch")
    _assert_last_event(db, bill["id"], "refund_initiated", "matcher", "op 1")


def test_amount_mismatch_refuses_a_paid_order_and_creates_no_refund(db):
    bill = bill_in_state(db, BillState.CNGN_RECEIVED)
    payment_id = _unlinked_payment(db, bill)
    params = {"bill_id": bill["id"], "payment_id": payment_id}
    assert not _run(db, "bill_refund_amount_mismatch", **params, actor="m", detail=None)
    with db.begin() as conn:
        row = bills.get_by_id(conn, bill["id"])
        refunds = conn.execute(sa.text("SELECT count(*) FROM refunds")).scalar_one()
    assert (row["status"], row["incoming_payment_id"], refunds) == ("cngn_received", None, 0)


# --- refund_mark_submitted ------------------------------------------------------------------


def test_mark_submitted_stores_the_envelope_and_moves_the_bill_with_the_actor(db):
    bill_id, refund_id = _pending_refund(db)
    _lease(db, refund_id, "w")
    assert _submit(db, refund_id, actor="w")
    refund = _refund(db, refund_id)
    assert (refund["status"], refund["tx_hash"], refund["sequence"]) == ("submitted", "h1", 7)
    assert _status(db, bill_id) == "refund_processing"
    _assert_last_event(db, bill_id, "refund_processing", "w", "envelope stored")
    assert not _submit(db, refund_id, actor="w", tx_hash="h2")  # already submitted
    assert _refund(db, refund_id)["tx_hash"] == "h1"


def test_mark_submitted_refuses_a_refund_another_worker_leases(db):
    bill_id, refund_id = _pending_refund(db)
    _refused_under_another_lease(db, refund_id, lambda: _submit(db, refund_id, actor="w"))
    assert _status(db, bill_id) == "refund_initiated"


def test_an_expired_lease_does_not_block_the_next_worker(db):
    _, refund_id = _pending_refund(db)
    _lease(db, refund_id, "gone", seconds=-5)
    assert _submit(db, refund_id, actor="w")


# --- refund_reset ---------------------------------------------------------------------------


def test_reset_forgets_the_envelope_and_moves_the_bill_back_with_the_actor(db):
    bill_id, refund_id = _pending_refund(db)
    assert _submit(db, refund_id)
    assert _reset(db, refund_id, actor="r", status="held", hold_reason="op_no_trust")
    refund = _refund(db, refund_id)
    assert (refund["status"], refund["hold_reason"], refund["envelope_xdr"], refund["tx_hash"]) == (
        "held",
        "op_no_trust",
        None,
        None,
    )
    assert refund["result_codes"] == {"transaction": "tx_failed"}
    assert _status(db, bill_id) == "refund_initiated"
    _assert_last_event(db, bill_id, "refund_initiated", "r", "discarded")


def test_reset_refuses_another_envelope_another_lease_holder_and_an_unsent_refund(db):
    bill_id, refund_id = _pending_refund(db)
    assert not _reset(db, refund_id)  # pending: nothing to reset
    assert _submit(db, refund_id)
    assert not _reset(db, refund_id, tx_hash="other-hash")
    _refused_under_another_lease(db, refund_id, lambda: _reset(db, refund_id, actor="w"))
    assert _status(db, bill_id) == "refund_processing"


def test_reset_rejects_a_status_it_cannot_reset_to(db):
    _, refund_id = _pending_refund(db)
    assert _submit(db, refund_id)
    with pytest.raises(sa.exc.DBAPIError, match="pending or held, not confirmed"):
        _reset(db, refund_id, status="confirmed")
    assert _refund(db, refund_id)["status"] == "submitted"


# --- refund_park, refund_release, refund_release_due -----------------------------------------


def test_park_holds_a_pending_refund_and_releases_the_lease(db):
    _, refund_id = _pending_refund(db)
    _lease(db, refund_id, "w")
    assert _park(db, refund_id, actor="w")
    refund = _refund(db, refund_id)
    assert (refund["status"], refund["hold_reason"], refund["claimed_by"]) == (
        "held",
        "no_trustline",
        None,
    )
    assert not _park(db, refund_id, actor="w", status="pending")  # held now, not pending


def test_park_refuses_another_lease_holder_and_a_refund_with_an_envelope(db):
    _, refund_id = _pending_refund(db)
    _refused_under_another_lease(db, refund_id, lambda: _park(db, refund_id, actor="w"))
    _lease(db, refund_id, "w")
    assert _submit(db, refund_id, actor="w")
    assert not _park(db, refund_id, actor="w")
    assert _refund(db, refund_id)["status"] == "submitted"


def test_release_sends_a_held_refund_back_to_pending_once(db):
    _, refund_id = _pending_refund(db)
    assert not _run(db, "refund_release", id=refund_id, actor="operator")  # not held
    assert _park(db, refund_id)
    assert _run(db, "refund_release", id=refund_id, actor="operator")
    refund = _refund(db, refund_id)
    assert (refund["status"], refund["hold_reason"], refund["next_attempt_at"]) == (
        "pending",
        None,
        None,
    )
    assert not _run(db, "refund_release", id=refund_id, actor="operator")


def test_release_due_takes_only_due_refunds_held_for_the_given_reasons(db):
    _, due = _pending_refund(db)
    _, other_reason = _pending_refund(db)
    _, not_due = _pending_refund(db)
    assert _park(db, due) and _park(db, other_reason) and _park(db, not_due)
    with db.begin() as conn:
        conn.execute(
            sa.text("UPDATE refunds SET hold_reason = 'policy' WHERE id = :id"),
            {"id": other_reason},
        )
        conn.execute(
            sa.text(
                "UPDATE refunds SET next_attempt_at = now() + interval '1 hour' WHERE id = :id"
            ),
            {"id": not_due},
        )
    params = {"reasons": ["no_trustline"], "limit": 10, "actor": "recheck"}
    with db.begin() as conn:
        released = conn.execute(query("refund_release_due"), params).scalars().all()
    assert released == [due]
    assert [_refund(db, r)["status"] for r in (due, other_reason, not_due)] == [
        "pending",
        "held",
        "held",
    ]


# --- refund_mark_confirmed ------------------------------------------------------------------


def test_mark_confirmed_confirms_once_and_refunds_the_bill_with_the_actor(db):
    bill_id, refund_id = _pending_refund(db)
    assert _submit(db, refund_id)
    assert _confirm(db, refund_id, actor="confirmer")
    refund = _refund(db, refund_id)
    assert (refund["status"], refund["tx_hash"]) == ("confirmed", "h1")
    assert _status(db, bill_id) == "refunded"
    _assert_last_event(db, bill_id, "refunded", "confirmer", "on the ledger")
    assert not _confirm(db, refund_id, actor="confirmer")  # confirmed already
    assert not _confirm(db, refund_id, actor="confirmer", tx_hash="h2")


def test_mark_confirmed_refuses_another_hash_and_another_lease_holder(db):
    bill_id, refund_id = _pending_refund(db)
    assert _submit(db, refund_id)
    assert not _confirm(db, refund_id, tx_hash="not-the-envelope")
    _refused_under_another_lease(db, refund_id, lambda: _confirm(db, refund_id, actor="w"))
    assert _status(db, bill_id) == "refund_processing"


# --- the migration --------------------------------------------------------------------------


def _fresh_database(pg_server) -> tuple[sa.Engine, str]:
    name = f"billpay_mig_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return admin, name


def _seed_refund_at_0005(engine: sa.Engine) -> int:
    """An order with a payment and a pending refund, written with the 0005 schema."""
    with engine.begin() as conn:
        bill_id = conn.execute(
            sa.text(
                "INSERT INTO bill_payments (reference, bill_type, biller, account_number,"
                " customer_phone, amount_kobo, amount_cngn, expires_at)"
                " VALUES ('R1', 'airtime', 'mtn', '0803', '0803', 100000, 1000,"
                " now() + interval '1 hour') RETURNING id"
            )
        ).scalar_one()
        payment_id = conn.execute(
            sa.text(
                "INSERT INTO incoming_payments (operation_id, paging_token, transaction_hash,"
                " operation_type, from_account, to_account, asset_code, asset_issuer, amount,"
                " memo_type, memo, ledger_time) VALUES ('op1', '1', 'abc', 'payment', 'GUSER',"
                " 'GSYS', 'cNGN', 'GISS', 999, 'text', 'BILL-R1', now()) RETURNING id"
            )
        ).scalar_one()
        conn.execute(
            sa.text("UPDATE bill_payments SET incoming_payment_id = :p WHERE id = :b"),
            {"p": payment_id, "b": bill_id},
        )
        assert conn.execute(
            sa.text("SELECT transition_bill_to_refund(:b, 'amount_mismatch')"), {"b": bill_id}
        ).scalar()
        return conn.execute(sa.text("SELECT id FROM refunds")).scalar_one()


def test_upgrade_from_0005_with_data_applies_the_status_writers(pg_server, tmp_path: Path):
    at_0005 = tmp_path / "sql"
    at_0005.mkdir()
    for path in sorted(SQL_DIR.glob("000[1-5]_*.sql")):
        shutil.copy(path, at_0005 / path.name)
    admin, name = _fresh_database(pg_server)
    url = pg_server.set(database=name)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        assert "0005_notifications" in upgrade(url, at_0005)
        refund_id = _seed_refund_at_0005(engine)
        applied = upgrade(url)
        assert "0007_status_writers" in applied and "0005_notifications" not in applied
        with engine.begin() as conn:
            functions = set(
                conn.execute(sa.text("SELECT proname FROM pg_proc WHERE proname LIKE '%mark%'"))
                .scalars()
                .all()
            )
            views = set(conn.execute(sa.text("SELECT viewname FROM pg_views")).scalars().all())
            submitted = conn.execute(
                query("refund_mark_submitted"),
                {
                    "id": refund_id,
                    "xdr": "AAAA",
                    "tx_hash": "h1",
                    "sequence": 1,
                    "max_time": MAX_TIME,
                    "actor": "after-upgrade",
                    "detail": None,
                },
            ).scalar()
            status = conn.execute(sa.text("SELECT status FROM bill_payments")).scalar_one()
        assert {"bill_mark_paid", "refund_mark_submitted", "refund_mark_confirmed"} <= functions
        assert "mark_refund_processed" not in functions
        assert "bill_payments_by_status" not in views and "bill_payments_stuck" in views
        assert submitted and status == "refund_processing"
        assert upgrade(url) == []
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
