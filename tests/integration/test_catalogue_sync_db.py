"""`billpay catalogue sync|show|map` on real PostgreSQL against the sandbox on loopback: the sync
fills the 0019 tables, `show --json` lists every Flutterwave biller code the sandbox returns, a
price changed at the provider is synced, a removed biller vanishes (and operators are alerted),
and a failed provider call changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from billpay.catalogue import BILLERS
from billpay.sandbox.app import create_app, sandbox_env
from deployments.cli import app
from tests.servers import free_port, served

runner = CliRunner()


@pytest.fixture
def sandbox_url(monkeypatch: pytest.MonkeyPatch, database_url) -> Iterator[str]:
    """The sandbox on loopback, and every BILLPAY_* setting the CLI needs pointed at it."""
    port = free_port()
    with served(create_app(), port, what="sandbox") as url:
        for key, value in sandbox_env(port).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv(
            "BILLPAY_DATABASE_URL", database_url.render_as_string(hide_password=False)
        )
        yield url


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["catalogue", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


def synced(*args: str) -> dict[str, dict[str, Any]]:
    code, out = cli("sync", "--json", *args)
    return {r["provider"]: r for r in json.loads(out)} | {"_exit": {"code": code}}


def shown(*args: str) -> list[dict[str, Any]]:
    code, out = cli("show", "--json", *args)
    assert code == 0, out
    return json.loads(out)["billers"]


def control(url: str, path: str, body: dict[str, Any] | None = None) -> None:
    httpx.post(f"{url}{path}", json=body or {}).raise_for_status()


def rows(db, sql: str) -> list[Any]:
    with db.connect() as conn:
        return list(conn.execute(sa.text(sql)))


def sandbox_flutterwave_codes(url: str) -> set[str]:
    from billpay.sandbox.providers import SANDBOX_FLUTTERWAVE_SECRET_KEY

    auth = {"Authorization": f"Bearer {SANDBOX_FLUTTERWAVE_SECRET_KEY}"}
    codes = set()
    for category in httpx.get(f"{url}/flutterwave/v3/top-bill-categories", headers=auth).json()[
        "data"
    ]:
        answer = httpx.get(f"{url}/flutterwave/v3/bills/{category['code']}/billers", headers=auth)
        codes |= {b["biller_code"] for b in answer.json()["data"]}
    return codes


def test_sync_fills_the_tables_and_show_lists_every_flutterwave_biller(sandbox_url, db) -> None:
    control(  # a biller we have never heard of: listed, stored unmapped, operators told
        sandbox_url,
        "/flutterwave/v3/_sandbox/catalogue",
        {"code": "BIL999", "name": "SHOWMAX", "category": "CABLEBILLS", "bill_type": "cable_tv",
         "items": [{"code": "SM1", "name": "Showmax Mobile", "amount_kobo": 120000}]},
    )  # fmt: skip
    result = synced()
    assert result["_exit"]["code"] == 0
    assert result["vtpass"]["outcome"] == result["flutterwave"]["outcome"] == "applied"
    assert result["flutterwave"]["billers"] == 26

    billers = shown()
    listed = {b["code"] for b in billers if b["provider"] == "flutterwave"}
    assert listed == sandbox_flutterwave_codes(sandbox_url)
    dstv = next(b for b in billers if b["provider"] == "flutterwave" and b["code"] == "BIL119")
    assert dstv["biller"] == "dstv" and not dstv["vanished"] and dstv["last_seen_at"]
    padi = next(i for i in dstv["items"] if i["code"] == "CB141")
    assert (padi["product_code"], padi["price"]) == ("dstv-padi", "2950.00")
    showmax = next(b for b in billers if b["code"] == "BIL999")
    assert showmax["biller"] is None and showmax["items"][0]["product_code"] is None

    # on an empty catalogue the sync creates every biller of ours it finds, named by the table
    assert rows(db, "SELECT count(*) FROM catalogue_billers")[0][0] == len(BILLERS)
    (alert,) = rows(
        db, "SELECT payload FROM notifications WHERE kind = 'catalogue_biller_unmapped'"
    )
    assert alert.payload["billers"] == "BIL999"

    # an operator maps it to a biller of ours; a bouquet the rules cannot name stays unmapped
    with db.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO catalogue_billers VALUES ('showmax', 'cable_tv', 'Showmax')")
        )
    code, out = cli("map", "flutterwave", "BIL999", "showmax")
    assert code == 0, out
    showmax = next(b for b in shown("cable_tv") if b["code"] == "BIL999")
    assert showmax["biller"] == "showmax" and showmax["items"][0]["product_code"] is None
    assert (
        rows(db, "SELECT outcome FROM catalogue_syncs ORDER BY id DESC LIMIT 1")[0][0] == "mapped"
    )

    again = synced()
    assert again["vtpass"]["outcome"] == again["flutterwave"]["outcome"] == "unchanged"


def test_a_price_changed_at_the_provider_is_synced_and_operators_told(sandbox_url, db) -> None:
    synced()
    control(sandbox_url, "/vtpass/api/_sandbox/catalogue/dstv/price",
            {"item": "dstv-padi", "amount": "3100.00"})  # fmt: skip
    result = synced("--provider", "vtpass")
    assert list(result) == ["vtpass", "_exit"]
    assert (result["vtpass"]["outcome"], result["vtpass"]["changed"]) == ("applied", 1)
    vt_dstv = next(
        b for b in shown("cable_tv") if b["provider"] == "vtpass" and b["code"] == "dstv"
    )
    assert next(i for i in vt_dstv["items"] if i["code"] == "dstv-padi")["price"] == "3100.00"
    (alert,) = rows(db, "SELECT payload FROM notifications WHERE kind = 'catalogue_price_changed'")
    assert "dstv/dstv-padi 2950.00 -> 3100.00" in alert.payload["changes"]


def test_a_removed_biller_vanishes_and_comes_back(sandbox_url, db) -> None:
    synced()
    control(sandbox_url, "/flutterwave/v3/_sandbox/catalogue/BIL112/remove")
    assert synced("--provider", "flutterwave")["flutterwave"]["vanished"] == 3  # biller + 2 items
    (row,) = rows(db, "SELECT vanished_at FROM provider_billers WHERE code = 'BIL112'")
    assert row.vanished_at is not None
    (alert,) = rows(
        db, "SELECT payload FROM notifications WHERE kind = 'catalogue_biller_vanished'"
    )
    assert alert.payload["routed"] == "ikeja-electric (BIL112)"
    ikeja = next(b for b in shown("electricity") if b["code"] == "BIL112")
    assert ikeja["vanished"] and all(i["vanished_at"] for i in ikeja["items"])

    control(sandbox_url, "/flutterwave/v3/_sandbox/catalogue/BIL112/restore")
    synced("--provider", "flutterwave")
    (row,) = rows(db, "SELECT vanished_at, biller_code FROM provider_billers WHERE code = 'BIL112'")
    assert (row.vanished_at, row.biller_code) == (None, "ikeja-electric")


def test_a_biller_whose_items_call_fails_is_held_and_the_rest_applies(sandbox_url, db) -> None:
    synced()
    items = "SELECT provider_biller, code, name, last_seen_at, vanished_at FROM provider_items"
    gotv_before = rows(db, f"{items} WHERE provider_biller = 'BIL120' ORDER BY 2")
    control(sandbox_url, "/flutterwave/v3/_sandbox/catalogue/BIL120/break")
    control(sandbox_url, "/flutterwave/v3/_sandbox/catalogue/BIL119/remove")
    result = synced("--provider", "flutterwave")
    assert result["flutterwave"]["outcome"] == "applied"
    assert "held, items unreadable: BIL120" in result["flutterwave"]["detail"]
    # the held biller: neither vanished nor updated, not even last_seen_at
    assert rows(db, f"{items} WHERE provider_biller = 'BIL120' ORDER BY 2") == gotv_before
    (gotv,) = rows(db, "SELECT vanished_at FROM provider_billers WHERE code = 'BIL120'")
    assert gotv.vanished_at is None
    (dstv,) = rows(db, "SELECT vanished_at FROM provider_billers WHERE code = 'BIL119'")
    assert dstv.vanished_at is not None  # everything else applied
    synced("--provider", "flutterwave")  # held again: operators are told once, not every run
    (alert,) = rows(
        db, "SELECT payload FROM notifications WHERE kind = 'catalogue_biller_unreadable'"
    )
    assert "BIL120" in alert.payload["billers"]


def test_a_crashing_sync_is_recorded_alerted_once_a_day_and_the_next_provider_runs(
    sandbox_url, db, monkeypatch
) -> None:
    from billpay.store import catalogue_sync as store

    real = store.sync

    def crash_vtpass(db_, provider, planner, started_at):
        if provider == "vtpass":
            raise RuntimeError("boom with Bearer FLWSECK_TEST-abc123-X inside")
        return real(db_, provider, planner, started_at)

    monkeypatch.setattr(store, "sync", crash_vtpass)
    for _ in range(2):
        result = synced()
        assert result["_exit"]["code"] == 1
        assert result["vtpass"]["outcome"] == "failed"
        assert result["flutterwave"]["outcome"] in ("applied", "unchanged")
    logged = rows(db, "SELECT outcome, detail FROM catalogue_syncs WHERE provider = 'vtpass'")
    assert [r.outcome for r in logged] == ["failed", "failed"]
    assert "RuntimeError" in logged[0].detail and "FLWSECK_TEST-abc123-X" not in logged[0].detail
    (alert,) = rows(db, "SELECT payload FROM notifications WHERE kind = 'catalogue_sync_failed'")
    assert alert.payload["provider"] == "vtpass"


def test_a_code_back_after_an_operator_remap_comes_back_unmapped(sandbox_url, db) -> None:
    synced()
    control(sandbox_url, "/flutterwave/v3/_sandbox/catalogue/BIL119/remove")
    synced("--provider", "flutterwave")
    control(sandbox_url, "/flutterwave/v3/_sandbox/catalogue",
            {"code": "BIL999", "name": "DSTV new", "category": "CABLEBILLS",
             "bill_type": "cable_tv",
             "items": [{"code": "CB141", "name": "DStv Padi", "amount_kobo": 295000}]})  # fmt: skip
    synced("--provider", "flutterwave")
    assert cli("map", "flutterwave", "BIL999", "dstv") == (
        0, "flutterwave BIL999 now sells dstv\n"
    )  # fmt: skip
    control(sandbox_url, "/flutterwave/v3/_sandbox/catalogue/BIL119/restore")
    for _ in range(2):  # and every later sync too
        result = synced("--provider", "flutterwave")
        assert result["flutterwave"]["outcome"] in ("applied", "unchanged"), result
    mapped = rows(db, "SELECT code, biller_code, vanished_at FROM provider_billers"
                      " WHERE code IN ('BIL119', 'BIL999') ORDER BY code")  # fmt: skip
    assert [(r.code, r.biller_code, r.vanished_at) for r in mapped] == [
        ("BIL119", None, None), ("BIL999", "dstv", None)
    ]  # fmt: skip
    (alert,) = rows(db, "SELECT payload FROM notifications WHERE kind = 'catalogue_biller_unmapped'"
                        " AND payload ? 'returned'")  # fmt: skip
    assert alert.payload["returned"] == "BIL119 (dstv is sold under BIL999)"


def test_an_item_back_never_clashes_with_the_item_now_selling_its_product(sandbox_url, db) -> None:
    synced()
    base = {"code": "BIL112", "name": "Ikeja Electric (IKEDC)", "category": "UTILITYBILLS",
            "bill_type": "electricity"}  # fmt: skip
    new, post = (
        {"code": "UB999", "name": "Ikeja prepaid (new)"},
        {"code": "UB158", "name": "Ikeja postpaid"},
    )
    control(sandbox_url, "/flutterwave/v3/_sandbox/catalogue", base | {"items": [new, post]})
    assert synced("--provider", "flutterwave")["flutterwave"]["outcome"] == "applied"
    old = {"code": "UB157", "name": "Ikeja prepaid"}
    control(sandbox_url, "/flutterwave/v3/_sandbox/catalogue", base | {"items": [old, new, post]})
    for _ in range(2):
        result = synced("--provider", "flutterwave")
        assert result["flutterwave"]["outcome"] in ("applied", "unchanged"), result
    got = rows(db, "SELECT code, product_code FROM provider_items WHERE provider_biller = 'BIL112'"
                   " AND vanished_at IS NULL ORDER BY code")  # fmt: skip
    assert [tuple(r) for r in got] == [("UB157", None), ("UB158", "postpaid"), ("UB999", "prepaid")]


def test_a_new_vtpass_service_waits_unmapped_until_an_operator_maps_it(sandbox_url, db) -> None:
    synced()
    control(sandbox_url, "/vtpass/api/_sandbox/catalogue",
            {"code": "foreign-airtime", "name": "Foreign Airtime", "category": "airtime",
             "bill_type": "airtime", "items": []})  # fmt: skip
    synced("--provider", "vtpass")
    (row,) = rows(db, "SELECT biller_code FROM provider_billers WHERE code = 'foreign-airtime'")
    assert row.biller_code is None  # listed, never sold
    assert rows(db, "SELECT code FROM catalogue_billers WHERE code = 'foreign-airtime'") == []
    (alert,) = rows(
        db, "SELECT payload FROM notifications WHERE kind = 'catalogue_biller_unmapped'"
    )
    assert alert.payload["billers"] == "foreign-airtime"
    code, out = cli("map", "vtpass", "foreign-airtime", "foreign-airtime")
    assert code == 0
    assert out.startswith("created our biller foreign-airtime (airtime, 'Foreign Airtime'); ")
    (row,) = rows(db, "SELECT biller_code FROM provider_billers WHERE code = 'foreign-airtime'")
    assert row.biller_code == "foreign-airtime"
    assert synced("--provider", "vtpass")["vtpass"]["outcome"] == "unchanged"  # mapping kept
    code, _ = cli("map", "flutterwave", "BIL112", "ikeja-typo")  # a typo moves no live sales
    assert code == 1
    assert rows(db, "SELECT biller_code FROM provider_billers WHERE code = 'BIL112'")[0][0] == (
        "ikeja-electric"
    )


def test_a_price_with_kobo_is_synced_exactly_from_flutterwave(sandbox_url, db) -> None:
    synced()
    control(sandbox_url, "/flutterwave/v3/_sandbox/catalogue/BIL119/price",
            {"item": "CB141", "amount": "3100.50"})  # fmt: skip
    synced("--provider", "flutterwave")
    (row,) = rows(db, "SELECT amount_kobo FROM provider_items WHERE code = 'CB141'")
    assert row.amount_kobo == 310_050


def test_a_sync_that_would_vanish_most_billers_is_refused_unless_forced(sandbox_url, db) -> None:
    synced()
    for code in (
        "BIL119",
        "BIL120",
        "BIL123",
        "BIL099",
        "BIL100",
        "BIL102",
        "BIL103",
        "BIL104",
        "BIL105",
        "BIL106",
        "BIL107",
        "BIL112",
        "BIL113",
    ):
        control(sandbox_url, f"/flutterwave/v3/_sandbox/catalogue/{code}/remove")
    result = synced("--provider", "flutterwave")
    assert result["_exit"]["code"] == 1 and result["flutterwave"]["outcome"] == "refused"
    assert (
        rows(db, "SELECT count(*) FROM provider_billers WHERE vanished_at IS NOT NULL")[0][0] == 0
    )
    synced("--provider", "flutterwave")  # refused again: the same alert is not queued again
    assert (
        rows(db, "SELECT count(*) FROM notifications WHERE kind = 'catalogue_sync_refused'")[0][0]
        == 1
    )
    forced = synced("--provider", "flutterwave", "--force")
    assert forced["flutterwave"]["outcome"] == "applied" and forced["_exit"]["code"] == 0
    assert (
        rows(db, "SELECT count(*) FROM provider_billers WHERE vanished_at IS NOT NULL")[0][0] == 13
    )


def test_show_on_an_empty_catalogue_says_so(sandbox_url) -> None:
    code, out = cli("show")
    assert code == 0 and "run `billpay catalogue sync`" in out
