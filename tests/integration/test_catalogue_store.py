"""The synced catalogue on real PostgreSQL: the seed of a fresh database, the snapshot the
runtime loads, and what a sync's writes change for intake, pricing and routing (through the
per-process cache). A sync's writes are simulated with plain SQL here: the sync lives elsewhere."""

from __future__ import annotations

import threading
from decimal import Decimal

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from billpay.catalogue import Catalogue
from billpay.config import Settings
from billpay.intake import IntakeError, OrderRequest, create_order
from billpay.orders import BillOrder, BillType
from billpay.providers import ProviderRouter, build_providers
from billpay.sandbox.identities import issuer as cngn_issuer
from billpay.sandbox.identities import system
from billpay.store import Database, connect
from billpay.store import catalogue as store
from billpay.store.catalogue import CatalogueCache, one_snapshot
from deployments.cli import app
from tests.db_reads import all_rows, scalar


def write(db: Database, sql: str, **params: object) -> None:
    with db.begin() as conn:
        conn.execute(sa.text(sql), params)


def sync_applied(db: Database, sql: str, **params: object) -> None:
    """What a sync does: change the rows and record an 'applied' sync, in one transaction."""
    with db.begin() as conn:
        conn.execute(sa.text(sql), params)
        conn.execute(
            sa.text("INSERT INTO catalogue_syncs (provider, outcome) VALUES ('vtpass', 'applied')")
        )


@pytest.fixture
def order_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"system_account": system().account_id, "cngn_issuer": cngn_issuer().account_id}
    )


PADI = OrderRequest(
    bill_type="cable_tv", biller="dstv", account="1212121212", amount="3100",
    phone="08011111111", product="dstv-padi",
)  # fmt: skip


def test_a_fresh_database_is_seeded_once_even_when_asked_twice(db: Database) -> None:
    assert store.version(db) == 0
    assert store.seed(db) is True
    assert store.seed(db) is False
    assert all_rows(db, "SELECT outcome, provider FROM catalogue_syncs") == [("seeded", None)]
    assert store.version(db) == scalar(db, "SELECT id FROM catalogue_syncs")
    assert scalar(db, "SELECT count(*) FROM provider_billers WHERE last_seen_at IS NOT NULL") == 0
    assert store.load(db) == Catalogue.builtin()


def test_processes_starting_at_once_seed_once(settings: Settings) -> None:
    databases = [connect(settings, create=False) for _ in range(4)]
    start = threading.Barrier(len(databases))
    results: list[bool] = []

    def seed(db: Database) -> None:
        start.wait()
        results.append(store.seed(db))

    threads = [threading.Thread(target=seed, args=(db,)) for db in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert sorted(results) == [False, False, False, True]
        assert scalar(databases[0], "SELECT count(*) FROM catalogue_syncs") == 1
    finally:
        for db in databases:
            db.dispose()


def test_the_cache_seeds_an_empty_catalogue_on_first_use(db: Database) -> None:
    cache = CatalogueCache(db)
    assert cache.current() == Catalogue.builtin()
    assert cache.current().version == store.version(db) > 0


def test_a_changed_price_reaches_intake_within_the_check_interval(
    db: Database, order_settings: Settings
) -> None:
    now = [0.0]
    cache = CatalogueCache(db, check_every=5.0, clock=lambda: now[0])
    with pytest.raises(IntakeError, match="costs 2950 naira"):
        create_order(db, order_settings, PADI, catalogue=cache.current())
    sync_applied(
        db,
        "UPDATE provider_items SET amount_kobo = 310000, last_seen_at = now() "
        "WHERE provider = 'vtpass' AND product_code = 'dstv-padi'",
    )
    now[0] = 4.0  # not yet time to ask
    assert cache.current().price("dstv", "dstv-padi", ["vtpass"]) == 295_000
    now[0] = 5.0
    created = create_order(db, order_settings, PADI, catalogue=cache.current())
    assert Decimal(created["amount_cngn"]) == Decimal("3100") + order_settings.service_fee_naira
    assert scalar(db, "SELECT amount_kobo FROM bill_payments") == 310_000


def test_a_vanished_listing_is_skipped_by_routing(db: Database, settings: Settings) -> None:
    cache = CatalogueCache(db, check_every=0)
    providers = build_providers(settings, client_factory=lambda _: httpx.Client(), catalogue=cache)
    router = ProviderRouter(providers, settings, catalogue=cache)
    bill = BillOrder(
        reference="7K3M9QZ2XA", bill_type=BillType.ELECTRICITY, biller="ikeja-electric",
        account_number="1111111111111", amount_kobo=500_000, phone="08011111111",
        account_type="prepaid",
    )  # fmt: skip
    assert [p.name for p in router.route(bill)] == ["flutterwave", "vtpass"]
    sync_applied(
        db,
        "UPDATE provider_billers SET vanished_at = now() "
        "WHERE provider = 'flutterwave' AND biller_code = 'ikeja-electric'",
    )
    assert [p.name for p in router.route(bill)] == ["vtpass"]
    assert not providers["flutterwave"].supports(BillType.ELECTRICITY, "ikeja-electric")


def test_a_sync_that_changed_nothing_does_not_reload(db: Database) -> None:
    cache = CatalogueCache(db, check_every=0)
    first = cache.current()
    write(db, "INSERT INTO catalogue_syncs (provider, outcome) VALUES ('vtpass', 'unchanged')")
    assert cache.current() is first
    write(db, "INSERT INTO catalogue_syncs (provider, outcome) VALUES (NULL, 'mapped')")
    assert cache.current() is not first


def test_cli_order_create_is_priced_from_the_synced_catalogue(
    monkeypatch: pytest.MonkeyPatch, database_url: sa.URL, db: Database
) -> None:
    monkeypatch.setenv("BILLPAY_DATABASE_URL", database_url.render_as_string(hide_password=False))
    monkeypatch.setenv("BILLPAY_SYSTEM_ACCOUNT", system().account_id)
    monkeypatch.setenv("BILLPAY_CNGN_ISSUER", cngn_issuer().account_id)
    store.seed(db)
    sync_applied(
        db,
        "UPDATE provider_items SET amount_kobo = 310000 "
        "WHERE provider = 'vtpass' AND product_code = 'dstv-padi'",
    )
    args = ["order", "create", "--bill-type", "cable_tv", "--biller", "dstv", "--account",
            "1212121212", "--product", "dstv-padi", "--phone", "08011111111", "--amount"]  # fmt: skip
    refused = CliRunner().invoke(app, [*args, "2950"])
    assert refused.exit_code == 2 and "costs 3100 naira" in refused.output
    accepted = CliRunner().invoke(app, [*args, "3100"])
    assert accepted.exit_code == 0, accepted.output
    assert scalar(db, "SELECT amount_kobo FROM bill_payments") == 310_000


PADI_PRICE_UP = (
    "UPDATE provider_items SET amount_kobo = 310000, last_seen_at = now() "
    "WHERE provider = 'vtpass' AND product_code = 'dstv-padi'"
)


def padi_price(catalogue: Catalogue) -> int | None:
    return catalogue.price("dstv", "dstv-padi", ["vtpass"])


def test_a_failed_version_check_serves_the_cached_snapshot(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    cache = CatalogueCache(db, check_every=5.0, clock=lambda: now[0])
    first = cache.current()
    real_version = store.version

    def database_away(_db: Database) -> int:
        raise sa.exc.OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(store, "version", database_away)
    now[0] = 5.0
    assert cache.current() is first  # served, not raised
    sync_applied(db, PADI_PRICE_UP)
    monkeypatch.setattr(store, "version", real_version)
    now[0] = 7.0  # the failed check counts as one: asked again next interval
    assert cache.current() is first
    now[0] = 10.0
    assert padi_price(cache.current()) == 310_000


def test_the_snapshot_is_one_transaction_even_when_a_sync_commits_mid_load(db: Database) -> None:
    """A sync committing between load()'s version read and its rows read: the snapshot is the
    one before the sync (its version and price), never the old version with the new rows."""
    store.seed(db)
    before = store.version(db)
    fired = []

    def sync_between(conn, cursor, statement, *args) -> None:
        if "FROM catalogue_billers" in statement and not fired:
            fired.append(True)
            sync_applied(db, PADI_PRICE_UP)

    sa.event.listen(db.engine, "before_cursor_execute", sync_between)
    try:
        loaded = store.load(db)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", sync_between)
    assert fired and store.version(db) > before
    assert (loaded.version, padi_price(loaded)) == (before, 295_000)
    assert padi_price(store.load(db)) == 310_000


def test_one_step_reads_one_snapshot_even_if_a_sync_lands(db: Database) -> None:
    cache = CatalogueCache(db, check_every=0)
    with one_snapshot():
        first = cache.current()
        sync_applied(db, PADI_PRICE_UP)
        assert cache.current() is first and padi_price(cache.current()) == 295_000
    assert padi_price(cache.current()) == 310_000
