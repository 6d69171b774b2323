"""The reporting flows under Prefect's test harness: both report tables fill, reruns for the
same as_of keep one snapshot, and the table and markdown artifacts exist in the Prefect API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from uuid import UUID

import pytest
import sqlalchemy as sa

from tests.integration.test_reports_db import AS_OF, seed_history

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def report_harness(prefect_harness: None) -> Iterator[None]:
    """The session's one Prefect test server (tests/e2e/conftest.py)."""
    yield


@pytest.fixture
def report_app(settings) -> Iterator[None]:
    """The process's App, on the test database, for the report flows to read and write."""
    from billpay.app import App
    from tasks.runtime import set_runtime

    with App.open(settings) as app:
        set_runtime(app)
        yield
        set_runtime(None)


@pytest.fixture
def report_db(db, report_app):
    """The test database, seeded."""
    seed_history(db)
    return db


def _artifacts(flow_run_id: UUID) -> dict[str, object]:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {artifact.key: artifact for artifact in found}


def _count(db, table: str, where: str = "true") -> int:
    with db.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar_one()


def test_report_flows_fill_tables_and_publish_artifacts(report_harness, report_db):
    from flows.daily_report import daily_report
    from flows.report_provider_performance import report_provider_performance
    from flows.report_success_rate import report_success_rate

    windows = ["1h", "24h", "7d"]
    first = report_success_rate(windows=windows, as_of=AS_OF, return_state=True)
    assert first.is_completed(), first
    assert first.result()["rows"] == 15
    again = report_success_rate(windows=windows, as_of=AS_OF)  # same as_of: replaced
    assert again["rows"] == 15
    assert _count(report_db, "report_success_rate") == 15

    earlier = report_provider_performance(windows=windows, as_of=AS_OF - timedelta(hours=1))
    assert earlier["rows"] > 0
    state = report_provider_performance(windows=windows, as_of=AS_OF, return_state=True)
    assert state.is_completed(), state
    assert (
        _count(report_db, "report_provider_performance", "as_of = '2026-11-20T12:00Z'")
        == (state.result()["rows"])
    )

    success_artifacts = _artifacts(first.state_details.flow_run_id)
    assert success_artifacts["report-success-rate"].type == "table"
    summary = success_artifacts["report-success-rate-summary"]
    assert summary.type == "markdown"
    assert "data:image/png;base64," in summary.data and "ikeja-electric" in summary.data

    provider_artifacts = _artifacts(state.state_details.flow_run_id)
    assert provider_artifacts["report-provider-performance"].type == "table"
    markdown = provider_artifacts["report-provider-performance-summary"].data
    # an hour earlier FW-1..3 had not happened: flutterwave pay success moved beyond 5 points
    assert "**flutterwave / pay**" in markdown
    assert "data:image/png;base64," in markdown

    # 06:00 Lagos on 21 Nov reports 20 Nov (Lagos): everything from AS_OF - 11h to AS_OF
    daily = daily_report(as_of=AS_OF + timedelta(hours=17), return_state=True)
    assert daily.is_completed(), daily
    result = daily.result()
    assert result["day"] == "2026-11-19T23:00:00+00:00"
    assert (
        _count(report_db, "report_success_rate", "window_label = 'day'")
        == (result["success_rate"]["rows"])
    )
    assert _count(report_db, "report_provider_performance", "window_label = 'day'") > 0
    daily_artifacts = _artifacts(daily.state_details.flow_run_id)
    assert {
        "daily-report-success-rate",
        "daily-report-success-rate-summary",
        "daily-report-provider-performance",
        "daily-report-provider-performance-summary",
    } <= set(daily_artifacts)


def test_report_flow_on_an_empty_database_says_no_data(report_harness, report_app):
    from flows.report_provider_performance import report_provider_performance

    state = report_provider_performance(windows=["15m"], as_of=AS_OF, return_state=True)
    assert state.is_completed(), state
    assert state.result()["rows"] == 1  # the (*, *) row of zeros
    markdown = _artifacts(state.state_details.flow_run_id)[
        "report-provider-performance-summary"
    ].data
    assert "no data" in markdown
