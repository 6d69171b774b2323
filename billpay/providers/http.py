"""One HTTP exchange with a provider: request in, (status, parsed body, timing) or a transport
failure out. No outcome decisions here; adapters map the exchange to results.

Retry rule: only GETs are retried, and only when the request provably never got an answer
because the connection failed (connect errors, dropped connections). POSTs are sent once: a
payment is never repeated at the HTTP level.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from billpay.catalogue import Biller, biller_supported, find_biller
from billpay.config import Settings
from billpay.orders import BillType
from billpay.providers.base import (
    AccountCheck,
    CallRecord,
    Catalogue,
    ErrorClass,
    NotSupported,
    Operation,
    PaymentOutcome,
    PaymentResult,
    ProviderError,
    clean_text,
    redact,
    storable_check,
    storable_payment,
)
from billpay.tokens import mask_text

log = logging.getLogger(__name__)

GET_RETRIES = 2  # extra tries after the first, GET only
GET_RETRY_PAUSE_SECONDS = 0.2


class TransportKind:
    CONNECT = "connect_error"  # nothing was sent
    CONNECT_TIMEOUT = "connect_timeout"  # nothing was sent
    READ_TIMEOUT = "read_timeout"  # sent; outcome unknown
    WRITE_TIMEOUT = "write_timeout"  # maybe partly sent; outcome unknown
    DROPPED = "connection_dropped"  # sent; the connection broke before an answer
    OTHER = "transport_error"


@dataclass(frozen=True, slots=True)
class Exchange:
    """What happened on the wire. Exactly one of ``status`` / ``transport_error`` is set."""

    started_at: datetime
    finished_at: datetime
    latency_ms: int
    status: int | None = None
    body: Any = None  # parsed JSON, or None when absent or unparseable
    text: str = ""  # first characters of the raw body, for diagnosis
    transport_error: str | None = None

    @property
    def nothing_sent(self) -> bool:
        return self.transport_error in (TransportKind.CONNECT, TransportKind.CONNECT_TIMEOUT)

    def summary(self) -> dict[str, Any]:
        """Fallback summary for bodies that are not JSON (HTML error pages, empty bodies)."""
        if self.transport_error:
            return {"transport_error": self.transport_error}
        # HTML error pages and text quote meters, phones and tokens back: masked like free text.
        return {"body_excerpt": mask_text(clean_text(self.text, 500))[:200]}


def timeout_from(settings: Settings) -> httpx.Timeout:
    read = settings.provider_read_timeout_seconds
    connect = settings.provider_connect_timeout_seconds
    return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)


def build_client(settings: Settings) -> httpx.Client:
    return httpx.Client(
        timeout=timeout_from(settings),
        limits=httpx.Limits(max_connections=max(settings.provider_concurrency, 1) * 2),
        headers={"Accept": "application/json", "User-Agent": "billpay/0.1"},
    )


def _classify(exc: httpx.RequestError) -> str:
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return TransportKind.CONNECT_TIMEOUT
    if isinstance(exc, httpx.ConnectError):
        return TransportKind.CONNECT
    if isinstance(exc, httpx.ReadTimeout):
        return TransportKind.READ_TIMEOUT
    if isinstance(exc, httpx.WriteTimeout):
        return TransportKind.WRITE_TIMEOUT
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return TransportKind.DROPPED
    return TransportKind.OTHER


def _no_constant(_: str) -> None:
    return None  # NaN and Infinity are not JSON; as amounts they mean nothing


def _text(response: httpx.Response) -> str:
    try:
        return response.text
    except (LookupError, ValueError):  # a charset this Python does not know
        return response.content.decode("utf-8", "replace")


def _parse(text: str) -> Any:
    """The JSON in a body, or None. Never raises: a UTF-8 byte-order mark is skipped (some
    gateways send one), and nesting past the recursion limit or numbers past Python's int-digit
    limit make the body unparseable, not an exception."""
    text = text.lstrip("\ufeff")
    if not text.strip():
        return None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None


def _exchange_once(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    params: Mapping[str, str] | None,
    body: Any,
) -> Exchange:
    started_at = datetime.now(UTC)
    clock = time.monotonic()
    try:
        # The client carries the timeouts (build_client); an injected client brings its own.
        response = client.request(method, url, headers=dict(headers), params=params, json=body)
    except httpx.RequestError as exc:  # transport errors, but also undecodable bodies
        return _finish(started_at, clock, transport_error=_classify(exc))
    text = _text(response)
    return _finish(started_at, clock, status=response.status_code, body=_parse(text), text=text)


def _finish(started_at: datetime, clock: float, **fields: Any) -> Exchange:
    latency_ms = int((time.monotonic() - clock) * 1000)
    text = fields.pop("text", "") or ""
    return Exchange(
        started_at=started_at,
        finished_at=datetime.now(UTC),
        latency_ms=latency_ms,
        text=text[:500],
        **fields,
    )


def exchange(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    params: Mapping[str, str] | None = None,
    body: Any = None,
) -> Exchange:
    """Send one request; GETs are retried a little when the connection itself failed."""
    tries = 1 + (GET_RETRIES if method.upper() == "GET" else 0)
    result = _exchange_once(client, method, url, headers=headers, params=params, body=body)
    started_at = result.started_at
    for attempt in range(1, tries):
        retryable = result.nothing_sent or result.transport_error == TransportKind.DROPPED
        if not retryable:
            break
        time.sleep(GET_RETRY_PAUSE_SECONDS * attempt)
        result = _exchange_once(client, method, url, headers=headers, params=params, body=body)
    # Timing covers every try, so latency reflects what the caller waited.
    return Exchange(
        started_at=started_at,
        finished_at=result.finished_at,
        latency_ms=int((result.finished_at - started_at).total_seconds() * 1000),
        status=result.status,
        body=result.body,
        text=result.text,
        transport_error=result.transport_error,
    )


def call_record(
    provider: str,
    operation: str,
    reference: str | None,
    exchange_: Exchange,
    *,
    outcome: str,
    error_class: str | None,
    summary: dict[str, Any] | None,
) -> CallRecord:
    return CallRecord(
        provider=provider,
        operation=str(operation),
        reference=reference,
        started_at=exchange_.started_at,
        finished_at=exchange_.finished_at,
        latency_ms=exchange_.latency_ms,
        outcome=outcome,
        error_class=error_class,
        http_status=exchange_.status,
        response_summary=summary if summary is not None else exchange_.summary(),
    )


UNREADABLE = "unreadable_response"
_Method = TypeVar("_Method", bound=Callable[..., Any])


def guarded(operation: Operation) -> Callable[[_Method], _Method]:
    """The net under one public adapter operation: once a request went out, an exception while
    reading the answer becomes an outcome instead of looping the bill (verify: unknown,
    TRANSIENT; pay and requery: UNKNOWN, since we may have been charged, never FAILED; catalogue:
    TRANSIENT). Before anything was sent an exception is a programming error and propagates, as
    does ProviderError (NotSupported)."""

    def wrap(method: _Method) -> _Method:
        @functools.wraps(method)
        def guarded_method(self: HttpAdapter, *args: Any) -> Any:
            self._calls.sent = False
            self._calls.exchange = None
            try:
                return method(self, *args)
            except ProviderError:
                raise
            except Exception as exc:
                if not self._calls.sent:
                    raise
                return self._unreadable(operation, args, exc)

        return guarded_method  # type: ignore[return-value]

    return wrap


class HttpAdapter:
    """Shared plumbing for the bill adapters that speak HTTP: one injected client, timeouts from
    settings, the biller catalogue lookup and call records."""

    name: str = ""

    def __init__(
        self,
        settings: Settings,
        client: httpx.Client | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock or (lambda: datetime.now(UTC))  # "not found" grace needs the time
        self._owns_client = client is None
        self._client = client if client is not None else build_client(settings)
        # The exchange of the operation running in this thread, for the guard's call record
        # (one adapter serves several threads at once).
        self._calls = threading.local()

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def supports(self, bill_type: BillType | str, biller: str) -> bool:
        return biller_supported(self.name, bill_type, biller)

    def _biller(self, code: str, bill_type: BillType | str | None = None) -> Biller:
        """The catalogue entry of a biller this adapter sells (of ``bill_type`` when given);
        asking for any other is a routing bug, hence NotSupported."""
        biller = find_biller(code)
        if biller is None or not self.supports(bill_type or biller.bill_type, code):
            kind = f"{bill_type} " if bill_type else ""
            raise NotSupported(f"{self.name} does not sell {kind}{code}")
        return biller

    def _base_url(self) -> str:
        raise NotImplementedError

    def _headers(self, method: str) -> dict[str, str]:
        raise NotImplementedError

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Exchange:
        self._calls.sent = True
        ex = exchange(
            self._client,
            method,
            self._base_url().rstrip("/") + path,
            headers=self._headers(method),
            params=params,
            body=body,
        )
        self._calls.exchange = ex
        return ex

    def _record(
        self,
        operation: str,
        reference: str | None,
        exchange_: Exchange,
        outcome: str,
        error_class: str | None,
    ) -> CallRecord:
        body = exchange_.body
        if isinstance(body, dict):
            summary: dict[str, Any] | None = redact(body)
        elif body is not None:  # JSON, but not the object we expected (a list, a string...)
            summary = {"body": redact(body)}
        else:
            summary = None  # the masked excerpt of the raw text
        return call_record(
            self.name,
            operation,
            reference,
            exchange_,
            outcome=outcome,
            error_class=error_class,
            summary=summary,
        )

    def _with_call(
        self, operation: str, reference: str, ex: Exchange, result: PaymentResult
    ) -> PaymentResult:
        """``result`` with the call record of the exchange that produced it, every string in it
        storable (see base.clean_text)."""
        error_class = result.error_class.value if result.error_class else None
        call = self._record(operation, reference, ex, result.outcome.value, error_class)
        return replace(storable_payment(result), call=call)

    def _with_check_call(self, reference: str, ex: Exchange, check: AccountCheck) -> AccountCheck:
        """``check`` with the call record of the verify exchange that produced it (storable)."""
        outcome = {True: "valid", False: "invalid", None: "unknown"}[check.valid]
        error_class = check.error_class.value if check.error_class else None
        call = self._record(Operation.VERIFY, reference, ex, outcome, error_class)
        return replace(storable_check(check), call=call)

    def _unreadable(self, operation: Operation, args: tuple[Any, ...], exc: Exception) -> Any:
        """The outcome of an answer the mapping code could not read (see ``guarded``)."""
        log.warning(
            "%s %s: could not read the answer (%s: %s); outcome left open",
            self.name,
            operation,
            type(exc).__name__,
            mask_text(clean_text(str(exc), 200)),
        )
        # The parsed body may be what broke the mapping: store the masked raw excerpt instead.
        ex = replace(self._calls.exchange or _no_exchange(), body=None)
        if operation == Operation.VERIFY:
            check = AccountCheck(
                valid=None, error_class=ErrorClass.TRANSIENT, reason_code=UNREADABLE
            )
            return self._with_check_call(args[0].reference, ex, check)
        if operation == Operation.CATALOGUE:
            call = self._record(operation, None, ex, "failed", ErrorClass.TRANSIENT.value)
            return Catalogue((), call, ErrorClass.TRANSIENT, message=UNREADABLE)
        # Pay or requery: the provider may have taken the money; a requery decides later.
        result = PaymentResult(PaymentOutcome.UNKNOWN, ErrorClass.TRANSIENT, reason_code=UNREADABLE)
        return self._with_call(operation, args[1], ex, result)


def _no_exchange() -> Exchange:
    """Stands in when the request went out but its exchange never came back to us."""
    now = datetime.now(UTC)
    return Exchange(started_at=now, finished_at=now, latency_ms=0, transport_error="unrecorded")
