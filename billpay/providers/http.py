"""One HTTP exchange with a provider: request in, (status, parsed body, timing) or a transport
failure out. No outcome decisions here; adapters map the exchange to results.

Retry rule: only GETs are retried, and only when the request provably never got an answer
because the connection failed (connect errors, dropped connections). POSTs are sent once: a
payment is never repeated at the HTTP level.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr

from billpay.catalogue import Catalogue as BillerCatalogue
from billpay.catalogue import CatalogueBiller, CatalogueSource, Listing
from billpay.config import Settings
from billpay.orders import BillOrder, BillType
from billpay.providers.base import (
    MASK_BOUND,
    AccountCheck,
    CallRecord,
    Catalogue,
    ErrorClass,
    NotSupported,
    Operation,
    PaymentOutcome,
    PaymentResult,
    ProviderError,
    customer_secrets,
    masked_excerpt,
    redact,
    storable_check,
    storable_payment,
)

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

    def summary(self, secrets: Iterable[str] = ()) -> dict[str, Any]:
        """Fallback summary for bodies that are not JSON (HTML error pages, empty bodies);
        ``secrets``: the adapter's own key values and the customer's account and phone, removed
        wherever they are quoted."""
        if self.transport_error:
            return {"transport_error": self.transport_error}
        # HTML error pages and text quote meters, phones, tokens and keys back: masked like free
        # text, before the excerpt is cut.
        return {"body_excerpt": masked_excerpt(self.text, 200, secrets)}


# Shorter values are not keys (an unset key is ""); removing them would garble text.
_MIN_SECRET_LENGTH = 6


def secret_values(settings: Settings) -> tuple[str, ...]:
    """Every key value configured in ``settings`` (its SecretStr fields), longest first so a key
    that contains another is removed whole."""
    values = {
        value.get_secret_value()
        for name in type(settings).model_fields
        if isinstance(value := getattr(settings, name), SecretStr)
    }
    return tuple(sorted((v for v in values if len(v) >= _MIN_SECRET_LENGTH), key=len, reverse=True))


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


def _parse(text: str | bytes) -> Any:
    """The JSON in a body, or None. Never raises: a UTF-8 byte-order mark is skipped (some
    gateways send one), and nesting past the recursion limit or numbers past Python's int-digit
    limit make the body unparseable, not an exception."""
    if isinstance(text, str):
        text = text.lstrip("\ufeff")
    if not text.strip():
        return None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


def _parse_body(response: httpx.Response, text: str) -> Any:
    """The JSON in ``response``: its text as the charset label says, else its bytes as JSON
    itself says (json.loads detects UTF-8 with or without a BOM, UTF-16 and UTF-32). A BOM behind
    a wrong label (iso-8859-1, windows-1252) decodes to text that is no JSON at all."""
    parsed = _parse(text)
    if parsed is None and response.content:
        parsed = _parse(response.content)
    return parsed


def _nothing(_: httpx.Request) -> None:
    return None


def _exchange_once(
    client: httpx.Client, request: httpx.Request, on_send: Callable[[httpx.Request], None]
) -> Exchange:
    started_at = datetime.now(UTC)
    clock = time.monotonic()
    try:
        on_send(request)
        # The client carries the timeouts (build_client); an injected client brings its own.
        response = client.send(request)
    except httpx.RequestError as exc:  # transport errors, but also undecodable bodies
        return _finish(started_at, clock, transport_error=_classify(exc))
    text = _text(response)
    body = _parse_body(response, text)
    return _finish(started_at, clock, status=response.status_code, body=body, text=text)


def _finish(started_at: datetime, clock: float, **fields: Any) -> Exchange:
    latency_ms = int((time.monotonic() - clock) * 1000)
    text = fields.pop("text", "") or ""
    return Exchange(
        started_at=started_at,
        finished_at=datetime.now(UTC),
        latency_ms=latency_ms,
        # One character more than is masked, so the excerpt knows the body was cut there.
        text=text[: MASK_BOUND + 1],
        **fields,
    )


def exchange(
    client: httpx.Client,
    request: httpx.Request,
    *,
    on_send: Callable[[httpx.Request], None] = _nothing,
) -> Exchange:
    """Send one built request (``client.build_request``); GETs are retried a little when the
    connection itself failed. ``on_send`` runs right before each try goes out."""
    tries = 1 + (GET_RETRIES if request.method.upper() == "GET" else 0)
    result = _exchange_once(client, request, on_send)
    started_at = result.started_at
    for attempt in range(1, tries):
        retryable = result.nothing_sent or result.transport_error == TransportKind.DROPPED
        if not retryable:
            break
        time.sleep(GET_RETRY_PAUSE_SECONDS * attempt)
        result = _exchange_once(client, request, on_send)
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
# Operations after whose request we may have been charged.
_MONEY_OPERATIONS = frozenset({Operation.PAY, Operation.REQUERY})
_Method = TypeVar("_Method", bound=Callable[..., Any])


def guarded(operation: Operation) -> Callable[[_Method], _Method]:
    """The net under one public adapter operation: once a request went out, an exception while
    reading the answer becomes an outcome instead of looping the bill (verify: unknown,
    TRANSIENT; pay and requery: UNKNOWN, since we may have been charged, never FAILED; catalogue:
    TRANSIENT). Before anything was sent (building the body, the URL, the headers, encoding the
    JSON) an exception is a programming error and propagates, as does ProviderError
    (NotSupported): the pipeline's step-failure guard counts it, backs off and alerts."""

    def wrap(method: _Method) -> _Method:
        signature = inspect.signature(method)

        @functools.wraps(method)
        def guarded_method(self: HttpAdapter, *args: Any, **kwargs: Any) -> Any:
            self._calls.sent = False
            self._calls.exchange = None
            self._calls.secrets = self._secrets + _order_secrets(args, kwargs)
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:
                # A ProviderError (NotSupported) is raised before a pay is sent; after one
                # went out it may have been charged, so it is an open outcome like any other
                # (a listing's ProviderError after its GET is how a listing says "unreadable").
                after_a_pay = self._calls.sent and operation in _MONEY_OPERATIONS
                if not self._calls.sent or (isinstance(exc, ProviderError) and not after_a_pay):
                    raise
                # The call went through, so its arguments bind: (order, reference) or (biller,).
                bound = signature.bind(self, *args, **kwargs).arguments
                return self._unreadable(operation, tuple(bound.values())[1:], exc)
            finally:
                self._calls.secrets = None

        return guarded_method  # type: ignore[return-value]

    return wrap


def _order_secrets(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, ...]:
    """The customer's account and phone when the operation is about an order (verify, pay,
    requery), so everything stored or logged for it is masked with them."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, BillOrder):
            return customer_secrets(value)
    return ()


class HttpAdapter:
    """Shared plumbing for the bill adapters that speak HTTP: one injected client, timeouts from
    settings, the biller catalogue lookup (the injected source's catalogue in force) and call
    records."""

    name: str = ""

    def __init__(
        self,
        settings: Settings,
        client: httpx.Client | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        catalogue: CatalogueSource,
    ) -> None:
        self._settings = settings
        self._catalogue = catalogue
        self._clock = clock or (lambda: datetime.now(UTC))  # "not found" grace needs the time
        self._owns_client = client is None
        self._client = client if client is not None else build_client(settings)
        # The exchange of the operation running in this thread, for the guard's call record
        # (one adapter serves several threads at once).
        self._calls = threading.local()
        # Our own keys, removed wherever an answer quotes them back (error messages do).
        self._secrets = secret_values(settings)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def supports(self, bill_type: BillType | str, biller: str) -> bool:
        return self._catalogue.current().sells(self.name, bill_type, biller)

    def _listing(
        self, order: BillOrder, *, live: bool = True
    ) -> tuple[BillerCatalogue, CatalogueBiller, Listing]:
        """The catalogue in force, the order's biller and this provider's listing of it (a
        vanished one too when ``live`` is False: a requery of a bill paid before it vanished).
        Asking for a biller this provider does not sell is a routing bug, hence NotSupported."""
        catalogue = self._catalogue.current()
        biller = catalogue.find_biller(order.biller)
        listing = catalogue.listing(self.name, order.biller, live=live) if biller else None
        if biller is None or listing is None or biller.bill_type != BillType(order.bill_type):
            raise NotSupported(f"{self.name} does not sell {order.bill_type} {order.biller}")
        return catalogue, biller, listing

    def _biller(self, code: str) -> Listing:
        """This provider's live listing of one of our billers (its codes for it), for a
        catalogue read; NotSupported for a biller it does not sell."""
        listing = self._catalogue.current().listing(self.name, code)
        if listing is None:
            raise NotSupported(f"{self.name} does not sell {code}")
        return listing

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
        # Built before anything goes out: a bad URL, a missing key or a body json cannot encode
        # raises here, outside the guard's net ("sent" is still False).
        request = self._client.build_request(
            method,
            self._base_url().rstrip("/") + path,
            headers=self._headers(method),
            params=params,
            json=body,
        )
        ex = exchange(self._client, request, on_send=self._mark_sent)
        self._calls.exchange = ex
        return ex

    def _mark_sent(self, _: httpx.Request) -> None:
        self._calls.sent = True

    def _call_secrets(self) -> tuple[str, ...]:
        """Our keys, plus the customer's account and phone inside an operation on an order."""
        return getattr(self._calls, "secrets", None) or self._secrets

    def _masked(self, text: str | None, limit: int = 300) -> str | None:
        """Free text from an answer, storable and masked (our keys and the order's account and
        phone included)."""
        return masked_excerpt(text or "", limit, self._call_secrets()) or None

    def _record(
        self,
        operation: str,
        reference: str | None,
        exchange_: Exchange,
        outcome: str,
        error_class: str | None,
    ) -> CallRecord:
        body, secrets = exchange_.body, self._call_secrets()
        if isinstance(body, dict):
            summary = redact(body, secrets=secrets)
        elif body is not None:  # JSON, but not the object we expected (a list, a string...)
            summary = {"body": redact(body, secrets=secrets)}
        else:
            summary = exchange_.summary(secrets)  # the masked excerpt of the raw text
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
        return replace(storable_payment(result, self._call_secrets()), call=call)

    def _with_check_call(self, reference: str, ex: Exchange, check: AccountCheck) -> AccountCheck:
        """``check`` with the call record of the verify exchange that produced it (storable)."""
        outcome = {True: "valid", False: "invalid", None: "unknown"}[check.valid]
        error_class = check.error_class.value if check.error_class else None
        call = self._record(Operation.VERIFY, reference, ex, outcome, error_class)
        return replace(storable_check(check, self._call_secrets()), call=call)

    def _unreadable(self, operation: Operation, args: tuple[Any, ...], exc: Exception) -> Any:
        """The outcome of an answer the mapping code could not read (see ``guarded``). It is a
        bug in the mapping code, so it is logged at ERROR with the frames where it happened
        (file, line, code; never the local values, which hold the body)."""
        log.error(
            "%s %s: could not read the answer (%s: %s); outcome left open\n%s",
            self.name,
            operation,
            type(exc).__name__,
            self._masked(str(exc), 200),
            "".join(traceback.format_tb(exc.__traceback__)),
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
