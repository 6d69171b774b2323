"""The API's access log (uvicorn, INFO) never carries a phone or an account from a query."""

from __future__ import annotations

import logging
import time

import httpx

from billpay.api import clients, create_app
from billpay.app import App
from billpay.config import Settings
from tests.api.conftest import WEBHOOK_SECRET
from tests.servers import served


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_history_query_values_are_masked_in_the_access_log(api_settings: Settings) -> None:
    runtime = App.open(api_settings)
    key = clients.create(runtime.db, "logged", webhook_url=None, master_secret=WEBHOOK_SECRET)[
        "key"
    ]
    capture = _Capture()
    try:
        with served(create_app(runtime), log_level="info", what="API server") as url:
            logging.getLogger("uvicorn.access").addHandler(capture)
            answer = httpx.get(
                f"{url}/api/bills/history",
                params={"phone": "08031234567", "limit": "5"},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert answer.status_code == 200
            deadline = time.monotonic() + 5
            while not capture.lines and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        logging.getLogger("uvicorn.access").removeHandler(capture)
        runtime.close()
    assert capture.lines, "the access log wrote no line"
    assert any("/api/bills/history?phone=***&limit=***" in line for line in capture.lines)
    assert not any("08031234567" in line or "8031234567" in line for line in capture.lines)
