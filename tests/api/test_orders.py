"""POST /api/bills/pay, GET /api/bills/history and GET /api/bills/{reference} as a client app
sees them, under a real uvicorn server over a real database."""

from __future__ import annotations

import threading
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from stellar_sdk import MuxedAccount

from billpay.sandbox.identities import issuer as cngn_issuer
from billpay.sandbox.identities import system
from tests.api.bodies import (
    AIRTIME,
    ELECTRICITY,
    ELECTRICITY_ACCOUNT,
    post_order,
    problem_body,
    stored_orders,
)
from tests.api.conftest import ApiServer
from tests.db_reads import scalar


def test_pay_answers_payment_instructions_and_a_sep7_uri(api: ApiServer) -> None:
    with api.client(api.new_key("wallet")) as http:
        answer = post_order(http, ELECTRICITY)
    assert answer.status_code == 201, answer.text
    out = answer.json()
    assert out["amount_cngn"] == "5000.0000000"  # no service fee in these settings
    assert out["memo"] == f"BILL-{out['reference']}"
    assert out["destination"] == system().account_id
    assert out["asset_code"] == "cNGN" and out["asset_issuer"] == cngn_issuer().account_id
    assert MuxedAccount.from_account(out["muxed_destination"]).account_id == system().account_id
    assert answer.headers["location"] == f"/api/bills/{out['reference']}"
    uri = urlsplit(out["sep7_uri"])
    assert (uri.scheme, uri.path) == ("web+stellar", "pay")
    query = {name: values[0] for name, values in parse_qs(uri.query).items()}
    assert query == {
        "destination": out["destination"],
        "amount": out["amount_cngn"],
        "asset_code": "cNGN",
        "asset_issuer": out["asset_issuer"],
        "memo": out["memo"],
        "memo_type": "MEMO_TEXT",
        "network_passphrase": api.runtime.settings.network_passphrase,
    }
    assert "%20" in out["sep7_uri"] and " " not in out["sep7_uri"]  # the passphrase, encoded
    row = scalar(
        api.runtime.db,
        "SELECT c.name FROM bill_payments b JOIN api_clients c ON c.id = b.api_client_id"
        " WHERE b.reference = :ref",
        ref=out["reference"],
    )
    assert row == "wallet"


def test_a_ported_number_is_created_with_a_masked_warning_in_the_201(api: ApiServer) -> None:
    ported = AIRTIME | {"account": "08021234567"}  # an Airtel prefix, bought as MTN airtime
    with api.client(api.new_key("wallet")) as http:
        answer = post_order(http, ported, key="ported")
        replay = post_order(http, ported, key="ported")
        plain = post_order(http, AIRTIME, key="plain")
    assert answer.status_code == 201, answer.text
    (warning,) = answer.json()["warnings"]
    assert "0802" in warning and "Airtel" in warning and "MTN" in warning
    assert "08021234567" not in answer.text and "1234567" not in warning
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == answer.json()  # the very answer, warning included
    assert plain.status_code == 201 and plain.json()["warnings"] == []
    network = scalar(
        api.runtime.db,
        "SELECT network FROM bill_payments WHERE reference = :ref",
        ref=answer.json()["reference"],
    )
    assert network == "mtn"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": 5000}, "amount"),  # a JSON number is not money
        ({"amount": "5000.005"}, "amount"),
        ({"amount": "10"}, "amount"),  # below the minimum
        ({"bill_type": "gas"}, "bill_type"),
        ({"biller": "nowhere-electric"}, "biller"),
        ({"account": "12ab"}, "account"),
        ({"account_type": "monthly"}, "account_type"),
        ({"phone": "12345"}, "phone"),
        ({"email": "a\x00@b.c"}, "email"),
        ({"colour": "red"}, "colour"),  # unknown fields are refused, not ignored
    ],
)
def test_bad_order_input_is_a_422_naming_the_field_and_stores_nothing(
    api: ApiServer, change: dict, field: str
) -> None:
    with api.client(api.new_key("wallet")) as http:
        problem = problem_body(post_order(http, ELECTRICITY | change), 422)
    assert field in {e["field"] for e in problem["errors"]}, problem
    assert field in problem["detail"]
    assert stored_orders(api) == 0


def test_one_422_names_every_bad_field_whichever_check_refused_it(api: ApiServer) -> None:
    # The schema refuses amount (a JSON number) and the header; intake refuses phone and
    # account: a client fixes them all from one answer.
    bad = ELECTRICITY | {"amount": 5000, "phone": "0803", "account": "12"}
    with api.client(api.new_key("wallet")) as http:
        problem = problem_body(http.post("/api/bills/pay", json=bad), 422)
        checked = problem_body(
            http.post("/api/bills/validate", json=ELECTRICITY_ACCOUNT | {"account": "12", "x": 1}),
            422,
        )
    assert {e["field"] for e in problem["errors"]} == {
        "amount",
        "phone",
        "account",
        "Idempotency-Key",
    }
    assert all(name in problem["detail"] for name in ("amount", "phone", "account"))
    assert {e["field"] for e in checked["errors"]} == {"x", "account"}
    assert stored_orders(api) == 0


def test_missing_or_bad_idempotency_key_is_a_422_naming_the_header(api: ApiServer) -> None:
    with api.client(api.new_key("wallet")) as http:
        missing = problem_body(http.post("/api/bills/pay", json=ELECTRICITY), 422)
        too_long = problem_body(post_order(http, ELECTRICITY, key="k" * 256), 422)
        not_ascii = problem_body(post_order(http, ELECTRICITY, key="clé".encode()), 422)
        control = problem_body(post_order(http, ELECTRICITY, key="a\tb"), 422)
    for problem in (missing, too_long, not_ascii, control):
        assert [e["field"] for e in problem["errors"]] == ["Idempotency-Key"]
    assert stored_orders(api) == 0


def test_a_replay_answers_the_same_order_and_another_body_is_refused(api: ApiServer) -> None:
    with api.client(api.new_key("wallet")) as http:
        first = post_order(http, ELECTRICITY, key="k-1")
        # The same order written differently is the same body.
        again = post_order(
            http, ELECTRICITY | {"amount": "5000.00", "biller": "IKEJA-ELECTRIC"}, "k-1"
        )
        other = post_order(http, ELECTRICITY | {"amount": "6000"}, key="k-1")
        fresh = post_order(http, ELECTRICITY, key="k-2")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    problem = problem_body(other, 422)
    assert problem["code"] == "idempotency_key_reused"
    assert problem["errors"][0]["field"] == "Idempotency-Key"
    assert fresh.status_code == 201 and fresh.json()["reference"] != first.json()["reference"]
    assert stored_orders(api) == 2


def test_a_replay_after_a_price_change_still_answers_the_order_it_made(api: ApiServer) -> None:
    """A client that lost the 201 retries with the same key after a sync raised the price: it
    gets the order it made (at the price it was made at), not a 422 that would lead it to make
    a second order under a new key. A new key with the old price is refused, naming amount."""
    padi = {
        "bill_type": "cable_tv",
        "biller": "dstv",
        "account": "1212121212",
        "product": "dstv-padi",
        "amount": "2950",
        "phone": "08011111111",
    }
    with api.client(api.new_key("wallet")) as http:
        first = post_order(http, padi, key="tv-1")
        with api.runtime.db.begin() as conn:  # what a sync that saw 3100 at both providers does
            conn.execute(
                sa.text(
                    "UPDATE provider_items SET amount_kobo = 310000 WHERE product_code = 'dstv-padi'"
                )
            )
            conn.execute(sa.text("INSERT INTO catalogue_syncs (outcome) VALUES ('applied')"))
        api.runtime.catalogue.refresh()
        replay = post_order(http, padi, key="tv-1")
        fresh = post_order(http, padi, key="tv-2")
        changed = post_order(http, padi | {"amount": "3000"}, key="tv-1")
    assert first.status_code == 201, first.text
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    assert replay.json()["amount_cngn"] == "2950.0000000"
    problem_body(fresh, 422, "amount")
    problem_body(changed, 422, "amount")  # another body under the key: today's rules answer it
    assert stored_orders(api) == 1


def test_another_client_may_use_the_same_idempotency_key(api: ApiServer) -> None:
    with api.client(api.new_key("one")) as one, api.client(api.new_key("two")) as two:
        a = post_order(one, ELECTRICITY, key="same")
        b = post_order(two, ELECTRICITY, key="same")
    assert a.status_code == b.status_code == 201
    assert a.json()["reference"] != b.json()["reference"]


def test_concurrent_duplicates_make_one_order(api: ApiServer) -> None:
    key = api.new_key("wallet")
    answers: list = []
    start = threading.Barrier(8)

    def send() -> None:
        with api.client(key) as http:
            start.wait()
            answers.append(post_order(http, AIRTIME, key="race"))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [201] * 8
    assert len({a.json()["reference"] for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 7
    assert stored_orders(api) == 1


def test_an_order_reads_back_with_its_instructions_while_pending(api: ApiServer) -> None:
    with api.client(api.new_key("wallet")) as http:
        created = post_order(http, ELECTRICITY).json()
        answer = http.get(f"/api/bills/{created['reference']}")
        lower = http.get(f"/api/bills/{created['reference'].lower()}")
    assert answer.status_code == 200, answer.text
    out = answer.json()
    assert lower.json() == out
    assert out["reference"] == created["reference"] and out["status"] == "pending_payment"
    assert (out["bill_type"], out["biller"], out["product"]) == (
        "electricity",
        "ikeja-electric",
        None,
    )
    assert out["amount"] == "5000.00" and out["amount_cngn"] == "5000.0000000"
    assert out["account"] == "*********1111" and out["phone"] == "*******1111"
    # The instructions again; the warnings belong to the creation answer (they are not stored).
    assert out["payment"] == {k: v for k, v in created.items() if k != "warnings"}
    assert out["token"] is None and out["units"] is None and out["refund"] is None
    assert out["created_at"].endswith("+00:00") and out["paid_at"] is None
    assert [(e["from"], e["to"]) for e in out["events"]] == [(None, "pending_payment")]
    assert out["events"][0]["actor"] == "api"  # never our hosts, processes or staff
    assert Decimal(out["fee"]) == 0


def test_another_clients_order_is_not_found_and_not_in_its_history(api: ApiServer) -> None:
    with api.client(api.new_key("one")) as one, api.client(api.new_key("two")) as two:
        reference = post_order(one, ELECTRICITY).json()["reference"]
        theirs = two.get(f"/api/bills/{reference}")
        missing = two.get("/api/bills/ZZZZZZZZZZ")
        weird = two.get("/api/bills/%00%27")
        history = two.get("/api/bills/history")
        own = one.get("/api/bills/history")
    problem = problem_body(theirs, 404)
    assert problem_body(missing, 404)["code"] == problem["code"] == "order_not_found"
    assert problem_body(weird, 404)["code"] == "not_found"  # not even a reference's shape
    assert history.json() == {"items": [], "next_cursor": None}
    assert [item["reference"] for item in own.json()["items"]] == [reference]


def test_history_pages_newest_first_and_filters(api: ApiServer) -> None:
    with api.client(api.new_key("wallet")) as http:
        made = [post_order(http, ELECTRICITY, key=f"e-{i}").json()["reference"] for i in range(5)]
        airtime = post_order(http, AIRTIME | {"phone": "08099999999"}, key="a").json()["reference"]
        seen, cursor, pages = [], None, 0
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = http.get("/api/bills/history", params=params).json()
            seen += [item["reference"] for item in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        by_phone = http.get("/api/bills/history", params={"phone": "+234 809 999 9999"}).json()
        by_account = http.get("/api/bills/history", params={"account": "2348031234567"}).json()
        by_meter = http.get("/api/bills/history", params={"account": "1111111111111"}).json()
    assert seen == [airtime, *reversed(made)] and pages == 3
    assert [i["reference"] for i in by_phone["items"]] == [airtime]
    assert [i["reference"] for i in by_account["items"]] == [airtime]
    assert len(by_meter["items"]) == 5
    item = by_phone["items"][0]
    assert item["phone"] == "*******9999" and item["account"] == "*******4567"
    assert item["amount"] == "500.00" and item["status"] == "pending_payment"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "djE6MA"}, "cursor"),  # v1:0
        ({"phone": "12345"}, "phone"),
        ({"account": "<script>"}, "account"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
    ],
)
def test_bad_history_query_is_a_422_naming_the_field(
    api: ApiServer, params: dict, field: str
) -> None:
    with api.client(api.new_key("wallet")) as http:
        problem = problem_body(http.get("/api/bills/history", params=params), 422)
    assert [e["field"] for e in problem["errors"]] == [field]
