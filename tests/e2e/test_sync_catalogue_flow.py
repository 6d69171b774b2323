"""The sync-catalogue flow under Prefect's test harness, against the sandbox on loopback: both
providers' catalogues land in the tables; a provider whose catalogue cannot be read fails the
run (after its task's retries) while the other provider's sync still applies."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.e2e


@pytest.fixture
def catalogue_app(pipeline_settings) -> Iterator[None]:
    from billpay.app import App
    from tasks.runtime import set_runtime

    with App.open(pipeline_settings) as app:
        set_runtime(app)
        yield
        set_runtime(None)


def _count(db, sql: str) -> int:
    with db.connect() as conn:
        return conn.execute(sa.text(sql)).scalar_one()


def test_sync_catalogue_flow_fills_the_tables(prefect_harness, catalogue_app, db) -> None:
    from flows.sync_catalogue import sync_catalogue

    state = sync_catalogue(return_state=True)
    assert state.is_completed(), state
    result = state.result()
    assert {r["outcome"] for r in result.values()} == {"applied"}
    assert _count(db, "SELECT count(*) FROM provider_billers WHERE provider = 'flutterwave'") == 25
    assert _count(db, "SELECT count(*) FROM catalogue_syncs WHERE outcome = 'applied'") == 2


def test_a_provider_that_cannot_be_read_fails_the_run_and_applies_nothing(
    prefect_harness, catalogue_app, db, sandbox, monkeypatch
) -> None:
    import billpay.catalogue_runner as runner
    import tasks.catalogue
    from billpay.providers.base import ErrorClass, ProviderError
    from flows.sync_catalogue import sync_catalogue

    def unreadable(adapter):  # a top-level listing call failing: all or nothing for VTpass
        raise ProviderError(ErrorClass.TRANSIENT, "vtpass GET /services?identifier=data: HTTP 503")

    monkeypatch.setitem(runner.READERS, "vtpass", unreadable)
    # one service's variations failing only holds that service (it is new here: not stored)
    httpx.post(f"{sandbox.url}/vtpass/api/_sandbox/catalogue/dstv/break").raise_for_status()
    retried = tasks.catalogue.sync_provider_catalogue.with_options(retry_delay_seconds=0)
    monkeypatch.setattr("flows.sync_catalogue.sync_provider_catalogue", retried)
    state = sync_catalogue(return_state=True)
    assert state.is_failed()
    assert "vtpass" in str(state.message)
    assert _count(db, "SELECT count(*) FROM provider_billers WHERE provider = 'vtpass'") == 0
    assert _count(db, "SELECT count(*) FROM provider_billers WHERE provider = 'flutterwave'") == 25
    # the first try and both retries, each recorded with the call that failed
    assert (
        _count(
            db,
            "SELECT count(*) FROM catalogue_syncs WHERE provider = 'vtpass' AND outcome = 'failed'"
            " AND detail LIKE '%identifier=data%'",
        )
        == 3
    )
