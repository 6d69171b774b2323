"""Horizon over httpx: each method turns one request into parsed JSON or a :class:`HorizonError`.

Retry decisions live with the callers (ingest stops the run, refunds look the hash up); this
adapter only says what happened. Submitting is the exception: its outcome is a value
(:class:`SubmitOutcome`) because "unknown" is a normal answer there, not an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from billpay.config import Settings

PAGE_LIMIT = 200


class HorizonErrorKind(StrEnum):
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    CLIENT_ERROR = "client_error"
    MALFORMED = "malformed"


class HorizonError(Exception):
    """A Horizon call that gave no usable answer. ``retry_after`` in seconds when Horizon said."""

    def __init__(
        self,
        kind: HorizonErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


class SubmitStatus(StrEnum):
    SUCCESS = "success"  # on the ledger
    REJECTED = "rejected"  # Horizon answered 400 with result codes: not applied successfully
    UNKNOWN = "unknown"  # 504, 5xx, 429, timeout or dropped connection: look the hash up


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    status: SubmitStatus
    http_status: int | None = None
    transaction_code: str | None = None
    operation_codes: tuple[str, ...] = ()
    detail: str = ""
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def result_codes(self) -> dict[str, Any]:
        return {"transaction": self.transaction_code, "operations": list(self.operation_codes)}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def _error_for_status(response: httpx.Response) -> HorizonError:
    status = response.status_code
    detail = f"Horizon answered {status} for {response.request.method} {response.request.url.path}"
    if status == 429:
        return HorizonError(
            HorizonErrorKind.RATE_LIMITED, detail, status=status, retry_after=_retry_after(response)
        )
    if status >= 500:
        return HorizonError(
            HorizonErrorKind.SERVER_ERROR, detail, status=status, retry_after=_retry_after(response)
        )
    return HorizonError(HorizonErrorKind.CLIENT_ERROR, detail, status=status)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        # RecursionError: absurdly nested JSON; ValueError: e.g. an integer too long to parse.
        raise HorizonError(
            HorizonErrorKind.MALFORMED, f"Horizon sent a body that is not JSON: {exc!r:.200}"
        ) from exc
    if not isinstance(body, dict):
        raise HorizonError(HorizonErrorKind.MALFORMED, "Horizon sent JSON that is not an object")
    return body


def _records(body: dict[str, Any]) -> list[Any]:
    """The page's records. Only the page's shape is checked here: a record that is not an
    object is the ingester's to quarantine, like any other unreadable record."""
    embedded = body.get("_embedded") if isinstance(body, dict) else None
    records = embedded.get("records") if isinstance(embedded, dict) else None
    if not isinstance(records, list):
        raise HorizonError(HorizonErrorKind.MALFORMED, "Horizon page has no _embedded.records list")
    return records


@dataclass(frozen=True, slots=True)
class PaymentsPage:
    records: list[Any]
    # The cursor of the page's ``_links.next.href`` (Horizon always sends it), unchecked: the
    # ingester validates it like any paging token. None when the link is missing or unreadable.
    next_cursor: str | None = None


def _next_cursor(body: dict[str, Any]) -> str | None:
    links = body.get("_links")
    nxt = links.get("next") if isinstance(links, dict) else None
    href = nxt.get("href") if isinstance(nxt, dict) else None
    if not isinstance(href, str) or len(href) > 2000:
        return None
    try:
        values = parse_qs(urlsplit(href).query).get("cursor")
    except ValueError:
        return None
    return values[0] if values and len(values) == 1 else None


class HorizonClient:
    """The few Horizon endpoints billpay uses. Inject the ``httpx.Client``; build once per run."""

    def __init__(self, base_url: str, client: httpx.Client, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings, client: httpx.Client | None = None) -> HorizonClient:
        return cls(
            settings.horizon_url,
            client or httpx.Client(timeout=settings.horizon_timeout_seconds),
            timeout=settings.horizon_timeout_seconds,
        )

    def close(self) -> None:
        self.client.close()

    # --- transport --------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = f"{self.base_url}{path}"
        try:
            return self.client.request(method, url, timeout=self.timeout, **kwargs)
        except httpx.TimeoutException as exc:
            raise HorizonError(HorizonErrorKind.TIMEOUT, f"Horizon timed out: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise HorizonError(
                HorizonErrorKind.CONNECTION, f"Horizon connection failed: {exc!r}"
            ) from exc

    def _get_object(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """JSON object, or None on 404."""
        response = self._send("GET", path, params=params)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _error_for_status(response)
        return _json_object(response)

    # --- endpoints --------------------------------------------------------------------------

    def payments_page(self, account: str, cursor: str, limit: int = PAGE_LIMIT) -> PaymentsPage:
        """One ascending page of the account's payment operations after ``cursor`` (exclusive),
        each joined with its transaction, and the cursor of the page's next link."""
        params = {"order": "asc", "limit": limit, "join": "transactions", "cursor": cursor}
        body = self._get_object(f"/accounts/{quote(account)}/payments", params)
        if body is None:
            raise HorizonError(
                HorizonErrorKind.CLIENT_ERROR, f"account {account} not found on Horizon", status=404
            )
        return PaymentsPage(_records(body), _next_cursor(body))

    def account(self, account_id: str) -> dict[str, Any] | None:
        """The account object, or None when the account does not exist."""
        return self._get_object(f"/accounts/{quote(account_id)}")

    def transaction(self, tx_hash: str) -> dict[str, Any] | None:
        """The transaction (successful or failed), or None when Horizon does not know the hash."""
        return self._get_object(f"/transactions/{quote(tx_hash)}")

    def latest_ledger_closed_at(self) -> datetime | None:
        """Close time of the latest ledger Horizon has ingested (its root resource)."""
        body = self._get_object("/")
        value = (body or {}).get("history_latest_ledger_closed_at")
        if not value:
            return None
        try:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError as exc:
            raise HorizonError(HorizonErrorKind.MALFORMED, f"bad ledger time {value!r}") from exc

    def submit(self, envelope_xdr: str) -> SubmitOutcome:
        try:
            response = self._send("POST", "/transactions", data={"tx": envelope_xdr})
        except HorizonError as exc:
            return SubmitOutcome(SubmitStatus.UNKNOWN, detail=str(exc))
        if response.status_code == 200:
            return SubmitOutcome(SubmitStatus.SUCCESS, 200, body=_safe_json(response))
        if response.status_code == 400:
            return _rejected(response)
        return SubmitOutcome(
            SubmitStatus.UNKNOWN,
            response.status_code,
            detail=f"Horizon answered {response.status_code} to the submission",
            body=_safe_json(response),
        )


def _safe_json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _rejected(response: httpx.Response) -> SubmitOutcome:
    body = _safe_json(response)
    codes = (body.get("extras") or {}).get("result_codes") or {}
    operations = codes.get("operations") or []
    transaction_code = codes.get("transaction")
    if not transaction_code:
        # A 400 without result codes (malformed request): we cannot know it was not applied.
        return SubmitOutcome(
            SubmitStatus.UNKNOWN,
            400,
            detail=str(body.get("detail") or "400 without result codes"),
            body=body,
        )
    return SubmitOutcome(
        SubmitStatus.REJECTED,
        400,
        transaction_code=str(transaction_code),
        operation_codes=tuple(str(code) for code in operations),
        detail=str(body.get("detail") or body.get("title") or ""),
        body=body,
    )
