"""``billpay catalogue sync|show|map``: the provider catalogue synced into the 0019 tables.
Mounted by billpay/cli.py as ``app.add_typer(catalogue_app, name="catalogue")``."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer

from billpay.money import naira_text

catalogue_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="The providers' catalogues: sync them, show them, map a biller by hand.",
)


class ProviderName(StrEnum):
    VTPASS = "vtpass"
    FLUTTERWAVE = "flutterwave"


class BillTypeName(StrEnum):
    ELECTRICITY = "electricity"
    AIRTIME = "airtime"
    DATA = "data"
    CABLE_TV = "cable_tv"
    WATER = "water"


JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]


def _open() -> Any:
    from billpay.app import App  # imported here: ``--help`` stays fast

    return App.open()


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@catalogue_app.command("sync")
def sync(
    provider: Annotated[
        ProviderName | None, typer.Option(help="one provider (default: both)")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="apply even when a vanish guard refuses the sync")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Read each provider's whole catalogue and apply what changed. Exits 1 when a provider
    failed (nothing applied for it) or was refused (most routed billers, a whole category or a
    routed biller's every item would vanish). A biller whose items cannot be read is held as last
    synced (named in the detail, operators told) and does not fail the sync."""
    from billpay.catalogue_runner import sync_all

    with _open() as root:
        only = provider.value if provider else None
        reports = sync_all(root.db, root.providers, only=only, force=force)
    if as_json:
        _echo_json([r.as_dict() for r in reports])
    else:
        for r in reports:
            c = r.counts
            counts = " ".join(f"{k}={c.get(k, 0)}" for k in _COUNTS)
            detail = f"  {r.detail}" if r.detail else ""
            typer.echo(f"{r.provider:<12} {r.outcome!s:<10} {counts}{detail}")
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


_COUNTS = ("billers", "items", "added", "changed", "vanished")


def _shown(biller: dict[str, Any]) -> dict[str, Any]:
    """One provider biller for people and JSON: money as decimal naira strings."""
    items = [
        {
            "code": i["item_code"],
            "product_code": i["product_code"],
            "name": i["item_name"],
            "price": naira_text(i["amount_kobo"]),
            "fee": naira_text(i["item_fee_kobo"]),
            "label": i["label"],
            "vanished_at": i["item_vanished_at"],
            "last_seen_at": i["item_last_seen_at"],
        }
        for i in biller["items"]
    ]
    return {
        "provider": biller["provider"],
        "code": biller["code"],
        "biller": biller["biller_code"],  # ours; null: unmapped, never routed
        "biller_name": biller["biller_name"],
        "bill_type": biller["bill_type"],
        "category": biller["category"],
        "name": biller["name"],
        "min_amount": naira_text(biller["min_amount_kobo"]),
        "max_amount": naira_text(biller["max_amount_kobo"]),
        "fee": naira_text(biller["fee_kobo"]),
        "vanished": biller["vanished_at"] is not None,
        "vanished_at": biller["vanished_at"],
        "last_seen_at": biller["last_seen_at"],
        "items": items,
    }


@catalogue_app.command("show")
def show(
    bill_type: Annotated[BillTypeName | None, typer.Argument(help="only this bill type")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every provider biller, mapped or not, with its items, prices, fees and vanished state."""
    from billpay.store import catalogue_sync as store

    with _open() as root:
        billers = [_shown(b) for b in store.show(root.db, bill_type.value if bill_type else None)]
        syncs = store.last_syncs(root.db)
    if as_json:
        _echo_json({"billers": billers, "last_syncs": syncs})
        return
    for b in billers:
        state = "VANISHED" if b["vanished"] else ("unmapped" if not b["biller"] else "")
        seen = b["last_seen_at"] or "never synced"
        typer.echo(
            f"{b['bill_type'] or '?':<12} {b['biller'] or '-':<22} {b['provider']:<12} "
            f"{b['code']:<22} {b['name']}  (last seen {seen}) {state}".rstrip()
        )
        for i in b["items"]:
            price = i["price"] or "open"
            gone = "  VANISHED" if i["vanished_at"] else ""
            typer.echo(
                f"    {i['code']:<20} -> {i['product_code'] or '(unmapped)':<18} "
                f"{price:>10}  fee {i['fee']}  {i['name']}{gone}"
            )
    if not billers:
        typer.echo("the catalogue is empty: run `billpay catalogue sync`")


@catalogue_app.command("map")
def map_biller(
    provider: Annotated[ProviderName, typer.Argument(help="vtpass or flutterwave")],
    provider_code: Annotated[str, typer.Argument(help="the provider's biller code, e.g. BIL999")],
    biller: Annotated[str, typer.Argument(help="our biller code, e.g. ikeja-electric")],
) -> None:
    """Map a listed provider biller to ours (its items get our product codes where the rules
    can tell); routed from then on. Recorded as a 'mapped' sync. An unmapped row (a new VTpass
    service) may name a biller of ours that does not exist yet: it is created from the row's
    bill type and name, and the message says so."""
    from billpay.catalogue_runner import map_biller as do_map

    with _open() as root:
        done = do_map(root.db, provider.value, provider_code.strip(), biller.strip().lower())
    if not done.ok:
        typer.echo(f"error: {done.message}", err=True)
        raise typer.Exit(1)
    typer.echo(done.message)
