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


def test_a_failed_provider_call_changes_nothing(sandbox_url, db) -> None:
    synced()
    before = rows(db, "SELECT provider, code, name, last_seen_at, vanished_at FROM provider_items"
                      " ORDER BY 1, 2")  # fmt: skip
    control(sandbox_url, "/flutterwave/v3/_sandbox/catalogue/BIL120/break")
    control(sandbox_url, "/flutterwave/v3/_sandbox/catalogue/BIL119/remove")
    result = synced()
    assert result["_exit"]["code"] == 1
    assert result["flutterwave"]["outcome"] == "failed"
    assert "/billers/BIL120/items" in result["flutterwave"]["detail"]
    assert result["vtpass"]["outcome"] == "unchanged"  # the other provider still synced
    after = rows(db, "SELECT provider, code, name, last_seen_at, vanished_at FROM provider_items"
                     " ORDER BY 1, 2")  # fmt: skip
    flutterwave = [r for r in before if r.provider == "flutterwave"]
    assert [r for r in after if r.provider == "flutterwave"] == flutterwave  # not even last_seen
    assert (
        rows(db, "SELECT count(*) FROM provider_billers WHERE vanished_at IS NOT NULL")[0][0] == 0
    )


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
