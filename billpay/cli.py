"""The ``billpay`` command line (typer). Commands build settings and clients once, here."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from billpay.catalogue_cli import catalogue_app
from billpay.config import Settings
from billpay.doctor_cli import register as register_doctor

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Pay Nigerian bills with cNGN.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
order_app = typer.Typer(no_args_is_help=True, help="Bill orders.")
app.add_typer(db_app, name="db")
app.add_typer(order_app, name="order")
refund_app = typer.Typer(no_args_is_help=True, help="Refunds held for a person.")
quarantine_app = typer.Typer(no_args_is_help=True, help="Horizon records that could not be read.")
app.add_typer(refund_app, name="refund")
app.add_typer(quarantine_app, name="quarantine")
apikey_app = typer.Typer(no_args_is_help=True, help="API clients and their keys.")
app.add_typer(apikey_app, name="apikey")
app.add_typer(catalogue_app, name="catalogue")
register_doctor(app)  # `billpay config show`, `billpay doctor` (billpay/doctor_cli.py)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _open_app(settings: Settings | None = None):  # noqa: ANN202 - App, imported lazily
    """The composition root for one command (imported here: ``--help`` stays fast)."""
    from billpay.app import App

    return App.open(settings)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the sql/ migrations not yet applied (idempotent, safe to run concurrently); a
    fresh database's catalogue is then seeded from the built-in table."""
    from billpay.store import catalogue
    from billpay.store.migrations import upgrade

    with _open_app() as root:
        applied = upgrade(root.db.url)
        seeded = catalogue.seed(root.db)
    typer.echo(f"applied: {', '.join(applied)}" if applied else "schema is up to date")
    if seeded:
        typer.echo("catalogue: seeded from the built-in table (run `billpay catalogue sync`)")


@db_app.command("url")
def db_url() -> None:
    """Print the database URL in use (password hidden)."""
    with _open_app() as root:
        typer.echo(root.db.url.render_as_string(hide_password=True))


@order_app.command("create")
def order_create(
    bill_type: Annotated[
        str, typer.Option("--bill-type", help="electricity|airtime|data|cable_tv|water")
    ],
    biller: Annotated[str, typer.Option(help="ikeja-electric, mtn, mtn-data, dstv, ...")],
    account: Annotated[str, typer.Option(help="meter, phone, smart card or water account")],
    amount: Annotated[str, typer.Option(help="naira, e.g. 5000 or 5000.50")],
    phone: Annotated[str, typer.Option(help="customer phone for receipts")],
    account_type: Annotated[
        str | None, typer.Option("--account-type", help="prepaid|postpaid")
    ] = None,
    product: Annotated[str | None, typer.Option(help="data plan / bouquet variation code")] = None,
    network: Annotated[
        str | None, typer.Option(help="override the network (ported numbers)")
    ] = None,
    email: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Create a pending order and print where and what to pay."""
    from billpay.intake import IntakeError, OrderRequest, create_order, validate

    settings = Settings()
    request = OrderRequest(
        bill_type=bill_type,
        biller=biller,
        account=account,
        amount=amount,
        phone=phone,
        account_type=account_type,
        product=product,
        network=network,
        email=email,
    )
    with _open_app(settings) as root:
        catalogue = root.catalogue.current()  # the synced catalogue: billers, plans, prices
        try:
            validate(request, settings, catalogue=catalogue)  # bad input stores nothing
        except IntakeError as exc:
            _fail("\n       ".join(f"{e.field}: {e.message}" for e in exc.all))
        try:
            _print_json(create_order(root.db, settings, request, catalogue=catalogue))
        except IntakeError as exc:
            _fail(str(exc))


@order_app.command("show")
def order_show(reference: str) -> None:
    """Print an order, its status and its transitions as JSON."""
    from billpay.intake import describe
    from billpay.store import bills

    with _open_app() as root:
        row = bills.get_by_reference(root.db, reference.strip().upper())
        if row is None:
            _fail(f"reference: no order {reference!r}", 1)
        _print_json(describe(row, bills.events_for(root.db, row["id"])))


@app.command()
def resolve(
    reference: Annotated[str, typer.Argument(help="the bill's reference")],
    note: Annotated[
        str | None, typer.Option(help="what the provider confirmed (mandatory, audited)")
    ] = None,
    delivered: Annotated[
        bool, typer.Option("--delivered", help="the provider delivered it (give --token)")
    ] = False,
    failed: Annotated[
        bool, typer.Option("--failed", help="the provider did not deliver it: refund")
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            help="the 20-digit electricity token; '-' reads it from stdin (keeps it out of the"
            " shell history and the process list)"
        ),
    ] = None,
    units: Annotated[str | None, typer.Option(help="units delivered, e.g. 12.5")] = None,
    actor: Annotated[
        str | None, typer.Option(help="who resolves (default: the login name)")
    ] = None,
) -> None:
    """Resolve a bill stuck in provider_processing once the provider confirmed its outcome out
    of band: --delivered (completed; the customer gets the token) or --failed (refunded). Only
    after it has been pending for BILLPAY_PENDING_ALERT_SECONDS."""
    import getpass
    from datetime import UTC, datetime

    from billpay.bills.resolve import ResolveError, check_input
    from billpay.bills.resolve import resolve as resolve_bill

    if token == "-":
        import sys

        token = sys.stdin.readline().strip()
    try:
        resolution = check_input(
            delivered=delivered, failed=failed, token=token, units=units, note=note
        )
    except ResolveError as exc:
        _fail(str(exc))
    settings = Settings()
    who = f"operator:{actor or getpass.getuser()}"
    with _open_app(settings) as root:
        try:
            done = resolve_bill(
                root.db,
                settings,
                reference.strip().upper(),
                resolution,
                actor=who,
                now=datetime.now(UTC),
            )
        except ResolveError as exc:
            _fail(str(exc), 1)
    _print_json(done)


def _operator(actor: str | None) -> str:
    import getpass

    return f"operator:{actor or getpass.getuser()}"


def _note(note: str | None) -> str:
    """An operator's note is mandatory and bounded; stored masked, like every stored text."""
    from billpay.tokens import mask_text

    text = (note or "").strip()
    if not text:
        _fail("--note: say why (it is stored with the act)")
    if len(text) > 500:
        _fail("--note: at most 500 characters")
    return mask_text(text)


def _operator_list(reader: str, limit: int) -> None:
    """Print what ``billpay.store.operator.<reader>`` lists, as JSON."""
    from billpay.store import operator

    with _open_app() as root:
        _print_json(getattr(operator, reader)(root.db, limit))


def _operator_act(
    act: str, row_id: int, note: str | None, actor: str | None, missing: str, done: dict
) -> None:
    """Run ``billpay.store.operator.<act>`` on one row with the operator's name and note."""
    from billpay.store import operator

    text = _note(note)
    with _open_app() as root:
        if not getattr(operator, act)(root.db, row_id, actor=_operator(actor), note=text):
            _fail(f"{next(iter(done))}: {missing}", 1)
    _print_json({**done, "note": text})


NoteOption = Annotated[str | None, typer.Option(help="why (mandatory, stored with the act)")]
ActorOption = Annotated[str | None, typer.Option(help="who acts (default: the login name)")]


@refund_app.command("held")
def refund_held(limit: Annotated[int, typer.Option(min=1, max=1000)] = 100) -> None:
    """List refunds held for a person (hold_reason says why), oldest first, as JSON."""
    _operator_list("held_refunds", limit)


@refund_app.command("release")
def refund_release(
    refund_id: Annotated[int, typer.Argument(help="the refund's id (billpay refund held)")],
    note: NoteOption = None,
    actor: ActorOption = None,
) -> None:
    """Let a held refund go: it is built and sent by the next pipeline tick (a contract payer's
    refund is held again: no classic payment reaches a contract)."""
    done = {"refund_id": refund_id, "status": "pending"}
    _operator_act("release_refund", refund_id, note, actor, f"no held refund {refund_id}", done)


@refund_app.command("settle")
def refund_settle(
    refund_id: Annotated[int, typer.Argument(help="the refund's id (billpay refund held)")],
    tx_hash: Annotated[
        str | None, typer.Option("--tx-hash", help="the transaction that returned the money")
    ] = None,
    note: NoteOption = None,
    actor: ActorOption = None,
) -> None:
    """Close a held refund returned by hand (e.g. a Soroban transfer to a contract payer): it is
    confirmed with that transaction, which Horizon must know as successful, and can never be
    released and sent again."""
    import re

    from billpay.store import operator

    text = _note(note)
    digest = (tx_hash or "").strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        _fail("--tx-hash: the 64-hex-digit hash of the transaction that returned the money")
    from billpay.stellar.horizon import HorizonError

    with _open_app() as root:
        try:
            found = root.horizon.transaction(digest)
        except HorizonError as exc:
            _fail(f"Horizon: cannot check {digest} now ({exc}); try again", 1)
        if found is None or found.get("successful") is not True:
            _fail(f"--tx-hash: Horizon knows no successful transaction {digest}", 1)
        why = operator.settle_refund(
            root.db, refund_id, tx_hash=digest, actor=_operator(actor), note=text
        )
        if why is not None:
            _fail(f"refund_id: {why}", 1)
    _print_json({"refund_id": refund_id, "status": "confirmed", "tx_hash": digest, "note": text})


@quarantine_app.command("list")
def quarantine_list(limit: Annotated[int, typer.Option(min=1, max=1000)] = 100) -> None:
    """List open quarantined Horizon records (the raw record and why it was unreadable)."""
    _operator_list("open_quarantine", limit)


@quarantine_app.command("resolve")
def quarantine_resolve(
    record_id: Annotated[int, typer.Argument(help="the quarantined record's id")],
    note: NoteOption = None,
    actor: ActorOption = None,
) -> None:
    """Mark a quarantined record settled by hand (say how in --note)."""
    missing = f"no open quarantined record {record_id}"
    done = {"record_id": record_id, "resolved": True}
    _operator_act("resolve_quarantine", record_id, note, actor, missing, done)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="print the whole report as JSON")] = False,
    stale_after: Annotated[
        int, typer.Option("--stale-after", min=1, help="seconds without a success: stale")
    ] = 60,
) -> None:
    """Is the pipeline moving? Read from the database only. Exit 0 when every stage succeeded
    within --stale-after seconds, 1 when one is stale or never ran (for cron and alarms)."""
    import sqlalchemy as sa

    from billpay.status import format_status, pipeline_status, stale_hint
    from billpay.store import connect

    db = connect(Settings(), create=False)  # a status check never creates a database
    try:
        report = pipeline_status(db, stale_after=stale_after)
    except sa.exc.DBAPIError as exc:
        _fail(
            f"cannot read the pipeline's state ({type(exc.orig).__name__}): is the database "
            "up and migrated (`billpay db upgrade`)?"
        )
    finally:
        db.dispose()
    if as_json:
        _print_json(report.to_json())
        if not report.ok:
            typer.echo(stale_hint(report), err=True)
    else:
        typer.echo(format_status(report))
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8765,
    host: str = "127.0.0.1",
    print_env: Annotated[
        bool, typer.Option("--print-env", help="print export lines and exit")
    ] = False,
    latency_ms: Annotated[int, typer.Option(help="added latency per provider call")] = 0,
    failure_rate: Annotated[float, typer.Option(help="share of pay calls that fail")] = 0.0,
    webhook_base_url: Annotated[
        str | None,
        typer.Option(help="billpay API base URL: send provider webhooks there (opt-in)"),
    ] = None,
) -> None:
    """Serve the Flutterwave, VTpass and Horizon simulators."""
    from billpay.sandbox.app import SandboxOptions, create_app, sandbox_env

    if print_env:
        for key, value in sandbox_env(port, host).items():
            typer.echo(f"export {key}={_shell_quote(value)}")
        return
    import uvicorn

    options = SandboxOptions(
        latency_ms=latency_ms, failure_rate=failure_rate, webhook_url=webhook_base_url
    )
    uvicorn.run(create_app(options), host=host, port=port, log_level="warning")


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Argument(help="the client app's name, e.g. wallet-one")],
    webhook_url: Annotated[
        str | None,
        typer.Option("--webhook-url", help="POST this client's order notifications here"),
    ] = None,
) -> None:
    """Issue a client and print its key (shown this once; only its hash is stored) and, with a
    webhook URL, the secret its notifications are signed with."""
    from billpay.api import clients

    settings = Settings()
    with _open_app(settings) as root:
        try:
            created = clients.create(
                root.db,
                name,
                webhook_url=webhook_url,
                master_secret=settings.webhook_secret.get_secret_value(),
            )
        except clients.ClientError as exc:
            _fail(str(exc))
    _print_json(created)


@apikey_app.command("revoke")
def apikey_revoke(name: Annotated[str, typer.Argument(help="the client's name")]) -> None:
    """Revoke the client's key: its next request is 401. Its orders stay."""
    from billpay.api import clients

    with _open_app() as root:
        try:
            revoked = clients.revoke(root.db, name)
        except clients.ClientError as exc:
            _fail(str(exc))
    _print_json(revoked)


# Longer than clients keep idle connections (httpx 5 s, most HTTP clients and proxies up to
# 60 s): with uvicorn's default of 5 s a client reused a connection the server was closing at
# that moment, and the request failed on the client (ReadError) though it may have been served.
API_KEEP_ALIVE_SECONDS = 75


@app.command()
def api(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
) -> None:
    """Serve the HTTP API for client apps (OpenAPI at /docs)."""
    import logging

    import uvicorn

    from billpay.api import create_app

    # Our own lines (webhooks received, 500s), masked where they are written, beside uvicorn's.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s:     %(name)s: %(message)s")
    logging.getLogger("billpay").setLevel(logging.INFO)

    with _open_app() as root:
        uvicorn.run(
            create_app(root),
            host=host,
            port=port,
            log_level="info",
            timeout_keep_alive=API_KEEP_ALIVE_SECONDS,
        )


def _shell_quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


def main() -> None:  # pragma: no cover - console script entry
    app()
