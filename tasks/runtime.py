"""The Prefect process's one :class:`~billpay.app.App`: built at the first flow start (never at
import time), shared by every task of the process, and its leases given back on SIGTERM/exit."""

from __future__ import annotations

import atexit
import logging
import signal
import threading
from typing import Any

from billpay.app import App
from billpay.store import bills as bill_store

log = logging.getLogger(__name__)

_lock = threading.Lock()
_app: App | None = None
_owned: App | None = None  # built here (not injected): its leases are released on exit


def get_runtime() -> App:
    """This process's App; every flow calls it first (see :func:`_watch_sigterm`)."""
    global _app, _owned
    with _lock:
        if _app is None or not _app.belongs_to_this_process():
            _app = App.open()
            _owned = _app
            atexit.register(lambda app=_app: _safe_release(app))
        app = _app
    if app is _owned:
        _watch_sigterm(app)
    return app


def set_runtime(app: App | None) -> None:
    """Tests and ``billpay tick`` inject an App built from their own settings."""
    global _app
    with _lock:
        _app = app


def release_claims(app: App) -> int:
    released = bill_store.release_all(app.db, worker_prefix=app.process_id + ":")
    if released:
        log.warning("released %d claims held by %s", released, app.process_id)
    return released


def _watch_sigterm(app: App) -> None:
    """SIGTERM gives back this process's leases at once, so nothing stays claimed until expiry.
    A pay in flight keeps its committed attempt row, so whoever claims the bill next requeries.

    Prefect installs its own SIGTERM handler for the length of each flow run and puts back the
    one it found when the run ends; a handler installed once (inside the first flow run, where
    the App is built) is therefore gone by the second run, and Prefect's handler ends the
    process with the default action (no atexit). So this wraps whatever handler is current at
    each flow start (every flow calls ``get_runtime`` first), in the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if getattr(current, "_billpay_releases", False):
        return

    def on_term(signum: int, frame: Any) -> None:
        _safe_release(app)
        if callable(current):
            current(signum, frame)  # Prefect's: the flow run ends as crashed, then the process
        elif current != signal.SIG_IGN:
            raise SystemExit(128 + signum)

    on_term._billpay_releases = True  # type: ignore[attr-defined]
    signal.signal(signal.SIGTERM, on_term)


def _safe_release(app: App) -> None:
    try:
        release_claims(app)
    except Exception:  # noqa: BLE001 - best effort at shutdown; leases expire anyway
        log.exception("could not release claims at shutdown")
