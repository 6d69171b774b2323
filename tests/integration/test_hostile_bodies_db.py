"""Hostile provider answers against real PostgreSQL (issue 12 acceptance):

A. whatever an adapter returns is stored by the pipeline's own writers and reads back equal;
B. a bill whose provider answers carry NULs, surrogates and a BOM completes with its token;
and a failed write never shows its bound values (the token) in the exception.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from sqlalchemy.engine import Connection

from billpay.bills.context import StepContext
from billpay.bills.pay import pay_bill
from billpay.bills.requery import requery_bill
from billpay.bills.verify import verify_account
from billpay.catalogue import Catalogue
from billpay.providers.routing import ProviderRouter
from billpay.providers.vtpass import VTpassProvider
from billpay.store import attempts as attempt_store
from billpay.store import bills as bill_store
from billpay.store import incoming as pay_store
from billpay.store.engine import Database, connect
from tests.factories import PREPAID_ELECTRICITY, add_incoming_payment, new_order
from tests.hostile import BOM, SETTINGS, TOKEN, adapter_calls, answers, strings_in
from tests.integration.test_not_found_resend import _claim
from tests.unit.provider_cases import fixture

BUILTIN = Catalogue.builtin()

# Each example runs twelve adapter operations and ~25 statements: 60 examples take a few seconds.
ROUND_TRIP = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _numbers_as_floats(value: Any) -> Any:
    """jsonb keeps numbers as numeric: 1e308 reads back as an int. Compare numbers by value."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {k: _numbers_as_floats(v) for k, v in value.items()}
    return [_numbers_as_floats(v) for v in value]


def _store_and_read_back(conn: Connection, label: str, result: Any) -> None:
    call = getattr(result, "call", None)
    if call is not None:
        # A fresh reference per write: pay rows are unique per (provider, reference).
        call = replace(call, reference=f"{call.reference}-{label}")
        row_id = attempt_store.record_call(conn, None, call)
        stored = conn.execute(
            sa.text("SELECT response_summary FROM provider_attempts WHERE id = :id"), {"id": row_id}
        ).scalar_one()
        expected = json.loads(json.dumps(call.response_summary, default=str))
        assert _numbers_as_floats(stored) == _numbers_as_floats(expected)
    texts = strings_in(replace(result, call=None))
    if texts:
        conn.execute(sa.text("INSERT INTO echo (v) VALUES (:v)"), [{"v": t} for t in texts])
        back = conn.execute(sa.text("SELECT v FROM echo ORDER BY id")).scalars().all()
        assert back == texts
        conn.execute(sa.text("TRUNCATE echo"))


def test_whatever_an_adapter_returns_round_trips_through_postgresql(db: Database) -> None:
    with db.connect() as conn:
        conn.execute(sa.text("CREATE TEMP TABLE echo (id serial PRIMARY KEY, v text)"))
        conn.commit()

        @ROUND_TRIP
        @given(answers())
        def round_trip(answer: httpx.Response) -> None:
            with conn.begin():
                for label, result in adapter_calls(answer):
                    _store_and_read_back(conn, label, result)
                conn.rollback()

        round_trip()


# --- B: a bill through verify, pay and requery with hostile bodies -------------------------

VERIFY_BODY = (
    '{"code":"000","response_description":"\\u0000","content":{"Customer_Name":'
    '"ADA OBI\\u0000\\u0000\\u0000\\u0000","Address":"1 Marina \\ud800","MeterNumber":'
    '"1111111111111","Min_Purchase_Amount":500,"WrongBillersCode":false}}'
)
PAY_BODY = '{"code":"099","response_description":"TRANSACTION PROCESSING \\ud83d","content":{}}'


def _requery_body() -> bytes:
    body = fixture("vtpass_pay_electricity_prepaid_success.json")
    for key in ("token", "purchased_code", "units"):
        del body[key]
    body["content"]["transactions"]["extras"] = f"Token : {TOKEN}\u0000\u0000"
    body["Units"] = "79.9 kWh\u0000"
    body["response_description"] = "TRANSACTION SUCCESSFUL \ud800"
    body["customerName"] = "ADA OBI\u0000\u0000"
    return BOM + json.dumps(body).encode()


def _hostile_vtpass(request: httpx.Request) -> httpx.Response:
    answers_by_path = {
        "/api/merchant-verify": VERIFY_BODY.encode(),
        "/api/pay": BOM + PAY_BODY.encode(),
        "/api/requery": _requery_body(),
    }
    return httpx.Response(200, content=answers_by_path[request.url.path])


def test_a_bill_with_nul_surrogate_and_bom_answers_completes_with_its_token(settings, db):
    configured = settings.model_copy(
        update={
            "route_electricity": ["vtpass"],
            "vtpass_base_url": "https://vtpass.test/api",
            "vtpass_api_key": SETTINGS.vtpass_api_key,
            "vtpass_public_key": SETTINGS.vtpass_public_key,
            "vtpass_secret_key": SETTINGS.vtpass_secret_key,
        }
    )
    client = httpx.Client(transport=httpx.MockTransport(_hostile_vtpass))
    # Requery is asked well after the pay: the clock is only read for "not found" answers.
    vtpass = VTpassProvider(configured, client, clock=lambda: datetime.now(UTC), catalogue=BUILTIN)
    ctx = StepContext(
        db, configured, ProviderRouter({"vtpass": vtpass}, configured, catalogue=BUILTIN), "w1"
    )
    row = new_order(db, "2000", ttl=timedelta(hours=1), **PREPAID_ELECTRICITY)
    with db.begin() as conn:
        payment = add_incoming_payment(conn, amount="2000")
        pay_store.mark_order_paid(conn, row["id"], payment, datetime.now(UTC))

    for step in (verify_account, pay_bill, requery_bill):
        _claim(db, row["id"])
        step(ctx, row["id"])

    with db.connect() as conn:
        bill = bill_store.get_by_id(conn, row["id"])
    assert bill["status"] == "completed"
    assert bill["token"] == TOKEN
    assert bill["units"] == "79.9 kWh"
    assert bill["verification"]["customer_name"] == "ADA OBI"
    with db.connect() as conn:
        summaries = (
            conn.execute(
                sa.text(
                    "SELECT response_summary::text FROM provider_attempts WHERE bill_payment_id = :b"
                ),
                {"b": row["id"]},
            )
            .scalars()
            .all()
        )
    assert len(summaries) == 3
    assert not any(TOKEN in s or "1111111111111" in s for s in summaries)


def test_a_failed_write_never_shows_its_bound_values(settings) -> None:
    database = connect(settings, create=False)
    try:
        with pytest.raises(sa.exc.DataError) as failure, database.begin() as conn:
            # A completion write that fails on another value: before hide_parameters the
            # exception text listed every bound value, the token among them.
            conn.execute(
                sa.text("UPDATE bill_payments SET token = :token WHERE id = CAST(:id AS integer)"),
                {"token": TOKEN, "id": "not-a-number"},
            )
    finally:
        database.dispose()
    assert TOKEN not in str(failure.value)
