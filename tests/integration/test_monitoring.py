"""The monitoring queries the demo, the benchmark and `billpay work` read, on a real database."""

from __future__ import annotations

import sqlalchemy as sa

from billpay.store import monitoring
from tests.factories import new_order


def test_an_empty_pipeline_has_no_work_and_no_counts(db):
    assert monitoring.work_left(db) == 0
    counts = monitoring.pipeline_counts(db)
    assert counts.states == {} and counts.provider_calls == {}
    assert counts.latency.completed == 0 and counts.latency.p50 is None
    assert counts.first_received is None and counts.last_settled is None


def test_an_unpaid_order_is_not_work_and_expires_when_told(db):
    order = new_order(db, "500")
    assert monitoring.work_left(db) == 0  # pending_payment waits for the customer
    outcome = monitoring.order_outcome(db, order["reference"], f"BILL-{order['reference']}")
    assert outcome is not None and outcome["status"] == "pending_payment"
    assert outcome["refund_status"] is None
    monitoring.expire_orders_now(db, [order["reference"]])
    with db.connect() as conn:
        expired = conn.execute(
            sa.text("SELECT expires_at < now() FROM bill_payments WHERE reference = :r"),
            {"r": order["reference"]},
        ).scalar_one()
    assert expired
    assert monitoring.pipeline_counts(db).states == {"pending_payment": 1}
    assert monitoring.payment_refund_outcome(db, "BILL-NOTANORDER") is None


def test_recreate_database_leaves_an_empty_database(database_url):
    url = database_url.set(database="billpay_monitoring_test")
    monitoring.recreate_database(url)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE leftover (id int)"))
    finally:
        engine.dispose()
    monitoring.recreate_database(url)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                sa.text("SELECT count(*) FROM pg_tables WHERE tablename = 'leftover'")
            )
            assert tables.scalar_one() == 0
    finally:
        engine.dispose()
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE billpay_monitoring_test WITH (FORCE)"))
    admin.dispose()
