"""HorizonClient against respx: requests as Horizon expects them, failures as HorizonError."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx

from billpay.config import Settings
from billpay.stellar.horizon import HorizonClient, HorizonError, HorizonErrorKind, SubmitStatus

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BASE = "https://horizon.test"
ACCOUNT = "GCJS3K6UX2TBV4LNJ5L2JJ7CJOGYLE3NSN37OEFTWGC76BE3VE2LV6KI"


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def horizon() -> HorizonClient:
    settings = Settings(_env_file=None, horizon_url=BASE + "/", horizon_timeout_seconds=2)
    return HorizonClient.from_settings(settings, httpx.Client())


@respx.mock
def test_payments_page_asks_for_an_ascending_joined_page_after_the_cursor(
    horizon: HorizonClient,
) -> None:
    route = respx.get(f"{BASE}/accounts/{ACCOUNT}/payments").mock(
        return_value=httpx.Response(200, json=_fixture("horizon_payments_page1.json"))
    )
    page = horizon.payments_page(ACCOUNT, "12345")
    assert len(page.records) == 13
    assert page.next_cursor == "21522081124353"  # from _links.next.href
    params = route.calls.last.request.url.params
    assert dict(params) == {
        "order": "asc",
        "limit": "200",
        "join": "transactions",
        "cursor": "12345",
    }


@respx.mock
@pytest.mark.parametrize(
    ("response", "kind", "retry_after"),
    [
        (
            httpx.Response(429, headers={"Retry-After": "7"}, json={}),
            HorizonErrorKind.RATE_LIMITED,
            7,
        ),
        (httpx.Response(503, json={"status": 503}), HorizonErrorKind.SERVER_ERROR, None),
        (httpx.Response(200, text="<html>gateway</html>"), HorizonErrorKind.MALFORMED, None),
        (httpx.Response(200, json={"_embedded": {}}), HorizonErrorKind.MALFORMED, None),
        (httpx.Response(200, json=[1, 2]), HorizonErrorKind.MALFORMED, None),
    ],
)
def test_payments_page_failures(
    horizon: HorizonClient,
    response: httpx.Response,
    kind: HorizonErrorKind,
    retry_after: float | None,
) -> None:
    respx.get(f"{BASE}/accounts/{ACCOUNT}/payments").mock(return_value=response)
    with pytest.raises(HorizonError) as caught:
        horizon.payments_page(ACCOUNT, "0")
    assert caught.value.kind == kind
    assert caught.value.retry_after == retry_after


@respx.mock
@pytest.mark.parametrize(
    "links",
    [
        None,
        {"next": "not an object"},
        {"next": {"href": 5}},
        {"next": {"href": "https://h/payments?order=asc"}},
        {"next": {"href": "https://h/payments?cursor=1&cursor=2"}},
    ],
)
def test_a_page_without_a_readable_next_link_has_no_next_cursor(
    horizon: HorizonClient, links: object
) -> None:
    body = {"_embedded": {"records": []}, "_links": links}
    respx.get(f"{BASE}/accounts/{ACCOUNT}/payments").mock(
        return_value=httpx.Response(200, json=body)
    )
    assert horizon.payments_page(ACCOUNT, "0").next_cursor is None


@respx.mock
def test_timeouts_and_dropped_connections(horizon: HorizonClient) -> None:
    respx.get(f"{BASE}/accounts/{ACCOUNT}/payments").mock(side_effect=httpx.ReadTimeout("slow"))
    respx.get(f"{BASE}/accounts/{ACCOUNT}").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(HorizonError) as timeout:
        horizon.payments_page(ACCOUNT, "0")
    with pytest.raises(HorizonError) as refused:
        horizon.account(ACCOUNT)
    assert timeout.value.kind == HorizonErrorKind.TIMEOUT
    assert refused.value.kind == HorizonErrorKind.CONNECTION


@respx.mock
def test_account_and_transaction_lookups(horizon: HorizonClient) -> None:
    respx.get(f"{BASE}/accounts/{ACCOUNT}").mock(
        return_value=httpx.Response(200, json=_fixture("horizon_account.json"))
    )
    respx.get(f"{BASE}/transactions/abc").mock(
        return_value=httpx.Response(404, json=_fixture("horizon_not_found.json"))
    )
    assert horizon.account(ACCOUNT)["sequence"] == "429496729600"
    assert horizon.transaction("abc") is None


@respx.mock
def test_submit_sends_the_envelope_as_form_field_tx(horizon: HorizonClient) -> None:
    route = respx.post(f"{BASE}/transactions").mock(
        return_value=httpx.Response(200, json={"hash": "h", "successful": True})
    )
    outcome = horizon.submit("AAAA+/=")
    assert outcome.status == SubmitStatus.SUCCESS
    assert route.calls.last.request.content == b"tx=AAAA%2B%2F%3D"


@respx.mock
@pytest.mark.parametrize(
    ("response", "status"),
    [
        (httpx.Response(504, json={"status": 504}), SubmitStatus.UNKNOWN),
        (httpx.Response(502, text="bad gateway"), SubmitStatus.UNKNOWN),
        (httpx.Response(429, headers={"Retry-After": "1"}), SubmitStatus.UNKNOWN),
        (httpx.Response(400, json={"title": "Bad Request"}), SubmitStatus.UNKNOWN),
        (httpx.ReadTimeout("slow"), SubmitStatus.UNKNOWN),
        (httpx.RemoteProtocolError("dropped"), SubmitStatus.UNKNOWN),
    ],
)
def test_submit_outcome_unknown(
    horizon: HorizonClient, response: object, status: SubmitStatus
) -> None:
    route = respx.post(f"{BASE}/transactions")
    if isinstance(response, Exception):
        route.mock(side_effect=response)
    else:
        route.mock(return_value=response)
    assert horizon.submit("AAAA").status == status


@respx.mock
def test_submit_rejected_carries_result_codes(horizon: HorizonClient) -> None:
    respx.post(f"{BASE}/transactions").mock(
        return_value=httpx.Response(400, json=_fixture("horizon_submit_tx_failed_no_trust.json"))
    )
    outcome = horizon.submit("AAAA")
    assert outcome.status == SubmitStatus.REJECTED
    assert outcome.transaction_code == "tx_failed"
    assert outcome.operation_codes == ("op_no_trust",)
    assert outcome.result_codes == {"transaction": "tx_failed", "operations": ["op_no_trust"]}


@respx.mock
def test_latest_ledger_close_time_from_the_root(horizon: HorizonClient) -> None:
    route = respx.get(f"{BASE}/").mock(
        return_value=httpx.Response(
            200,
            json={
                "history_latest_ledger": 7,
                "history_latest_ledger_closed_at": "2026-11-26T07:00:05Z",
            },
        )
    )
    closed = horizon.latest_ledger_closed_at()
    assert closed is not None and closed.isoformat() == "2026-11-26T07:00:05+00:00"
    route.mock(return_value=httpx.Response(200, json={}))
    assert horizon.latest_ledger_closed_at() is None
