"""What every sandbox simulator shares: latency and failure knobs, the seeded RNG, the call log."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class SandboxOptions:
    latency_ms: int = 0  # added to every provider call
    failure_rate: float = 0.0  # share of provider pay calls answered with a definitive failure
    seed: int = 0
    # Opt-in provider webhooks: the base URL of the billpay API (``http://127.0.0.1:8000``).
    # When set, a pending payment settles on its own after ``pending_seconds`` and the sandbox
    # POSTs the provider's webhook to ``<webhook_url>/webhooks/<provider>`` (as each provider
    # would to the URL set on its dashboard); a reversal sends VTpass's too.
    webhook_url: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def log_call(self, provider: str, operation: str, **details: Any) -> None:
        entry = {"provider": provider, "operation": operation, "at": datetime.now(UTC).isoformat()}
        entry.update(details)
        with self.lock:
            self.calls.append(entry)
