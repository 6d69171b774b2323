"""The composition root: settings, database, provider router and slots, Horizon and webhook
clients, wired once here and nowhere else. Built on demand (never at import time) by whoever
runs the work: ``tasks/runtime.py`` once per Prefect process, the CLI once per command.

No Prefect here: the domain package never imports it.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from billpay.catalogue import CatalogueSource
from billpay.config import Settings
from billpay.providers import ProviderRouter, build_providers
from billpay.store import Database, connect
from billpay.store.catalogue import CatalogueCache
from billpay.store.slots import ProviderSlots


def process_id() -> str:
    """``host:pid``: every lease this process takes starts with it."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class App:
    settings: Settings
    db: Database
    providers: dict[str, Any]
    router: ProviderRouter
    slots: ProviderSlots
    process_id: str  # host:pid; every lease this process takes starts with it
    # The synced catalogue in force (read lazily: ``billpay db upgrade`` opens an App too).
    catalogue: CatalogueSource
    _horizon: Any = None
    _webhook: Any = None

    @classmethod
    def open(cls, settings: Settings | None = None) -> App:
        """Everything the pipeline needs, from ``settings`` (default: ``Settings()``, BILLPAY_*)."""
        settings = settings or Settings()
        db = connect(settings)
        catalogue = CatalogueCache(db)
        providers = build_providers(settings, catalogue=catalogue)
        return cls(
            settings=settings,
            db=db,
            providers=providers,
            router=ProviderRouter(providers, settings, catalogue=catalogue),
            slots=ProviderSlots(db, settings.provider_concurrency),
            process_id=process_id(),
            catalogue=catalogue,
        )

    def __enter__(self) -> App:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def worker_id(self) -> str:
        """A lease owner for one flow run: unique even for concurrent runs in one process."""
        return f"{self.process_id}:{uuid.uuid4().hex[:8]}"

    def belongs_to_this_process(self) -> bool:
        """False in a forked child: its connections and leases are the parent's."""
        return self.process_id.split(":")[-1] == str(os.getpid())

    @property
    def horizon(self) -> Any:
        if self._horizon is None:  # built on first use: most commands never talk to Horizon
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
