"""Prefect task of the ``sync-catalogue`` flow: one provider's catalogue sync. No sync logic
here (that is ``billpay.catalogue_runner`` and ``billpay.catalogue_sync``)."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from billpay.catalogue_runner import sync_provider
from billpay.catalogue_sync import Outcome
from tasks.policy import UNCACHED
from tasks.runtime import get_runtime

# A failed read is usually the provider's passing trouble: a few tries, minutes apart. A refusal
# is a decision (most billers would vanish), so it is not retried: an operator looks.
SYNC_RETRIES = 2
SYNC_RETRY_DELAY_SECONDS = 120


class CatalogueSyncFailed(Exception):
    """The provider's catalogue could not be read whole; nothing was applied."""


@task(
    name="sync-provider-catalogue",
    retries=SYNC_RETRIES,
    retry_delay_seconds=SYNC_RETRY_DELAY_SECONDS,
    retry_condition_fn=lambda _task, _run, state: _is_failed_read(state),
    **UNCACHED,
)
def sync_provider_catalogue(provider: str, force: bool = False) -> dict[str, Any]:
    runtime = get_runtime()
    report = sync_provider(runtime.db, provider, runtime.providers[provider], force=force)
    get_run_logger().info("%s: %s %s", provider, report.outcome, dict(report.counts))
    if report.outcome == Outcome.FAILED:
        raise CatalogueSyncFailed(f"{provider}: {report.detail}")
    return report.as_dict()


def _is_failed_read(state: Any) -> bool:
    try:
        state.result()
    except CatalogueSyncFailed:
        return True
    except BaseException:  # noqa: BLE001 - bugs and refusals are not retried blindly
        return False
    return False
