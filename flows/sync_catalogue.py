"""``sync-catalogue`` (daily, 03:00 Africa/Lagos): read both providers' whole catalogues into the
0019 tables. One task per provider, so one provider's failure (retried, then nothing applied for
it) never holds back the other's sync. The run fails when a provider failed or was refused, so
the UI shows it; operators are alerted from the sync itself (vanished billers, prices, mapping)."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from billpay.catalogue_sync import PROVIDERS
from tasks.catalogue import sync_provider_catalogue
from tasks.runtime import get_runtime


class CatalogueNotSynced(Exception):
    """At least one provider's catalogue was not applied (failed or refused)."""


@flow(name="sync-catalogue")
def sync_catalogue(providers: list[str] | None = None, force: bool = False) -> dict[str, Any]:
    get_runtime()  # built (and its SIGTERM watch set) before the tasks start
    names = providers or list(PROVIDERS)
    futures = {name: sync_provider_catalogue.submit(name, force) for name in names}
    results: dict[str, Any] = {}
    for name, future in futures.items():
        future.wait()
        state = future.state
        results[name] = (
            future.result() if state.is_completed() else {"provider": name, "outcome": "failed",
                                                           "detail": str(state.message or "")}
        )  # fmt: skip
    create_markdown_artifact(
        markdown=_markdown(results), key="sync-catalogue", description="catalogue sync outcomes"
    )
    bad = [n for n, r in results.items() if r["outcome"] not in ("applied", "unchanged")]
    if bad:
        raise CatalogueNotSynced(f"not synced: {', '.join(bad)}")
    return results


def _markdown(results: dict[str, Any]) -> str:
    lines = ["| provider | outcome | billers | items | added | changed | vanished | detail |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in results.items():
        counts = " | ".join(str(r.get(k, "")) for k in ("billers", "items", "added", "changed",
                                                           "vanished"))  # fmt: skip
        lines.append(f"| {name} | {r['outcome']} | {counts} | {r.get('detail') or ''} |")
    return "\n".join(lines)
