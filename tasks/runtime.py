"""The composition root: settings, database, provider and Horizon clients, built once per
process at the first flow start (never at import time) and shared by the tasks."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from billpay.config import Settings
from billpay.providers import ProviderRouter, build_providers
from billpay.store import Database, connect
from billpay.store import bills as bill_store
from billpay.store.slots import ProviderSlots

log = logging.getLogger(__name__)

_lock = threading.Lock()
_runtime: Runtime | None = None
_owned: Runtime | None = None  # built here (not injected): its leases are released on exit


@dataclass
class Runtime:
    settings: Settings
    db: Database
    providers: dict[str, Any]
    router: ProviderRouter
    slots: ProviderSlots
    process_id: str  # host:pid; every lease this process takes starts with it
    _horizon: Any = None
    _webhook: Any = None

    def worker_id(self) -> str:
        """A lease owner for one flow run: unique even for concurrent runs in one process."""
        return f"{self.process_id}:{uuid.uuid4().hex[:8]}"

    @property
    def horizon(self) -> Any:
        if self._horizon is None:
            from billpay.stellar.horizon import HorizonClient

            self._horizon = HorizonClient.from_settings(self.settings)
        return self._horizon

    @property
    def webhook_client(self) -> Any:
        if self._webhook is None:
            import httpx

            self._webhook = httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0))
        return self._webhook

    def close(self) -> None:
        for provider in self.providers.values():
            close = getattr(provider, "close", None)
            if close:
                close()
        if self._horizon is not None and hasattr(self._horizon, "close"):
            self._horizon.close()
        if self._webhook is not None:
            self._webhook.close()
        self.db.dispose()


def build_runtime(settings: Settings | None = None) -> Runtime:
    settings = settings or Settings()
    db = connect(settings)
    providers = build_providers(settings)
    return Runtime(
        settings=settings,
        db=db,
        providers=providers,
        router=ProviderRouter(providers, settings),
        slots=ProviderSlots(db, settings.provider_concurrency),
        process_id=f"{socket.gethostname()}:{os.getpid()}",
    )


def get_runtime() -> Runtime:
    global _runtime, _owned
    with _lock:
        if _runtime is None or _runtime.process_id.split(":")[-1] != str(os.getpid()):
            _runtime = build_runtime()
            _owned = _runtime
            atexit.register(lambda rt=_runtime: _safe_release(rt))
        runtime = _runtime
    if runtime is _owned:
        _watch_sigterm(runtime)
    return runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Tests and ``billpay tick`` inject a runtime built from their own settings."""
    global _runtime
    with _lock:
        _runtime = runtime


def release_claims(runtime: Runtime) -> int:
    released = bill_store.release_all(runtime.db, worker_prefix=runtime.process_id + ":")
    if released:
        log.warning("released %d claims held by %s", released, runtime.process_id)
    return released


def _watch_sigterm(runtime: Runtime) -> None:
    """SIGTERM gives back this process's leases at once, so nothing stays claimed until expiry.
    A pay in flight keeps its committed attempt row, so whoever claims the bill next requeries.

    Prefect installs its own SIGTERM handler for the length of each flow run and puts back the
    one it found when the run ends; a handler installed once (inside the first flow run, where
    the runtime is built) is therefore gone by the second run, and Prefect's handler ends the
    process with the default action (no atexit). So this wraps whatever handler is current at
    each flow start (every flow calls ``get_runtime`` first), in the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if getattr(current, "_billpay_releases", False):
        return

    def on_term(signum: int, frame: Any) -> None:
        _safe_release(runtime)
        if callable(current):
            current(signum, frame)  # Prefect's: the flow run ends as crashed, then the process
        elif current != signal.SIG_IGN:
            raise SystemExit(128 + signum)

    on_term._billpay_releases = True  # type: ignore[attr-defined]
    signal.signal(signal.SIGTERM, on_term)


def _safe_release(runtime: Runtime) -> None:
    try:
        release_claims(runtime)
    except Exception:  # noqa: BLE001 - best effort at shutdown; leases expire anyway
        log.exception("could not release claims at shutdown")
