"""Refunds on the ledger: check the recipient, build and sign, store, submit, confirm by hash.

Rules that keep a refund from being sent twice (DESIGN invariant 2):

* The signed envelope, its hash, sequence and max_time are committed before the first POST, and
  every POST is counted before it is made.
* After an unknown outcome (504, timeout, dropped connection) the same envelope is resubmitted or
  its hash looked up; never a new one while the old one could still land.
* An envelope is discarded (and a new one built) only when it cannot be on the ledger: Horizon
  rejected it and it was never sent before, or Horizon has it as failed, or Horizon's latest
  closed ledger is later than its max_time and Horizon does not know its hash.
* All of this runs under a PostgreSQL advisory lock on the source account, so sequence numbers
  never race across workers or processes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from stellar_sdk import Account, Asset, Keypair, MuxedAccount, TransactionBuilder

from billpay.config import Settings
from billpay.money import cngn_to_stroops, format_cngn, parse_cngn
from billpay.stellar.horizon import HorizonClient, HorizonError, SubmitOutcome, SubmitStatus
from billpay.store import refunds as store
from billpay.store.engine import Database
from billpay.store.refunds import RefundRow

log = logging.getLogger(__name__)

RECHECK_SUBMITTED = timedelta(seconds=5)
RETRY_HORIZON_DOWN = timedelta(seconds=30)
RETRY_UNDERFUNDED = timedelta(minutes=5)
RETRY_ALERT = timedelta(minutes=5)
HOLD_RECHECK = timedelta(hours=1)
MAX_BUILDS_PER_CALL = 2

# The recipient cannot receive: hold for review (or a later recheck), never resubmit blindly.
RECIPIENT_OP_CODES = frozenset(
    {"op_no_trust", "op_not_authorized", "op_line_full", "op_no_destination"}
)
# Hold reasons a periodic recheck may clear (the user can fix them by adding a trustline, ...).
RECHECKABLE_HOLDS = [
    "destination_missing",
    "no_trustline",
    "not_authorized",
    "line_full",
    "op_no_trust",
    "op_not_authorized",
    "op_line_full",
    "op_no_destination",
]
# Rejected before applying because of the envelope itself: rebuild it.
REBUILD_TX_CODES = frozenset({"tx_bad_seq", "tx_too_late", "tx_too_early", "tx_insufficient_fee"})


class RefundStatus(StrEnum):
    CONFIRMED = "confirmed"  # on the ledger
    SUBMITTED = "submitted"  # an envelope is out and may still land; recheck soon
    HELD = "held"  # needs a change or a person (hold_reason says which)
    RETRY = "retry"  # nothing in flight; try again at next_attempt_at


@dataclass(frozen=True, slots=True)
class RefundResult:
    refund_id: int
    status: RefundStatus
    message: str
    tx_hash: str | None = None
    result_codes: dict[str, Any] | None = None
    alert: bool = False  # an operator should look (e.g. the system account lacks cNGN)


@dataclass(frozen=True, slots=True)
class SignedRefund:
    xdr: str
    tx_hash: str
    sequence: int
    max_time: datetime


@dataclass
class _Ctx:
    db: Database
    settings: Settings
    horizon: HorizonClient
    actor: str
    builds: int = 0
    notes: list[str] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(UTC)


# --- pure parts -------------------------------------------------------------------------------


def underlying_account(destination: str) -> str:
    """The G... account behind a G... or M... address."""
    return MuxedAccount.from_account(destination).account_id


def refund_asset(code: str | None, issuer: str | None) -> Asset:
    """The asset to send back: native XLM when there is no code, else (code, issuer)."""
    if code is None:
        return Asset.native()
    if issuer is None:
        raise ValueError(f"asset {code} has no issuer")
    return Asset(code, issuer)


def asset_name(code: str | None, issuer: str | None) -> str:
    return "XLM" if code is None else f"{code}:{issuer}"


def destination_problem(
    account: dict[str, Any] | None, amount: Decimal, code: str | None, issuer: str | None
) -> str | None:
    """Why ``account`` cannot receive ``amount`` of the asset (code None: native XLM), or None
    when it can."""
    if account is None:
        return "destination_missing"
    if code is None:
        return None  # every account holds XLM; it has no trustline or limit to check
    if account.get("account_id", account.get("id")) == issuer:
        return None  # the issuer accepts its own asset without a trustline
    for balance in account.get("balances") or []:
        if balance.get("asset_code") == code and balance.get("asset_issuer") == issuer:
            if balance.get("is_authorized") is False:
                return "not_authorized"
            room = (
                cngn_to_stroops(balance.get("limit", "0"))
                - cngn_to_stroops(balance.get("balance", "0"))
                - cngn_to_stroops(balance.get("buying_liabilities", "0"))
            )
            return "line_full" if room < cngn_to_stroops(amount) else None
    return "no_trustline"


def build_refund_envelope(
    *,
    source_secret: str,
    source_sequence: int,
    network_passphrase: str,
    base_fee: int,
    destination: str,
    asset_code: str | None,
    asset_issuer: str | None,
    amount: Decimal,
    memo: str,
    timeout_seconds: int,
    now: float | None = None,
) -> SignedRefund:
    """One signed payment of ``amount`` of the asset (code None: native XLM) to ``destination``
    (G or M), valid for timeout."""
    keypair = Keypair.from_secret(source_secret)
    max_time = int(now if now is not None else time.time()) + timeout_seconds
    tx = (
        TransactionBuilder(
            Account(keypair.public_key, source_sequence), network_passphrase, base_fee
        )
        .append_payment_op(destination, refund_asset(asset_code, asset_issuer), format_cngn(amount))
        .add_text_memo(memo)
        .add_time_bounds(0, max_time)
        .build()
    )
    tx.sign(keypair)
    return SignedRefund(
        tx.to_xdr(), tx.hash_hex(), tx.transaction.sequence, datetime.fromtimestamp(max_time, UTC)
    )


# --- the public API ---------------------------------------------------------------------------


def claim_refunds(db: Database, actor: str, limit: int, lease_seconds: int) -> list[RefundRow]:
    return store.claim_refunds(db, actor, limit, lease_seconds)


def requeue_held_refunds(db: Database, limit: int = 100) -> list[int]:
    """Held refunds whose recipient problem may be fixed by now go back to the queue."""
    return store.requeue_held_refunds(db, RECHECKABLE_HOLDS, limit)


def release_held_refund(db: Database, refund_id: int) -> bool:
    """Operator action: send a held refund (e.g. ``unknown_reference`` under the hold policy)."""
    return store.release_held_refund(db, refund_id)


def process_refund(
    db: Database, settings: Settings, horizon: HorizonClient, refund_id: int, actor: str
) -> RefundResult:
    """Move one refund as far as it can go now. Idempotent; safe to rerun after a crash anywhere.

    Raises only for unexpected errors (unknown refund id, misconfiguration, database errors).
    """
    ctx = _Ctx(db, settings, horizon, actor)
    with store.source_account_lock(db, settings.system_account):
        refund = store.get_refund(db, refund_id)
        if refund is None:
            raise LookupError(f"no refund {refund_id}")
        return _advance(ctx, refund)


def _advance(ctx: _Ctx, refund: RefundRow) -> RefundResult:
    while True:
        if refund.status == "confirmed":
            return RefundResult(
                refund.id, RefundStatus.CONFIRMED, "already confirmed", refund.tx_hash
            )
        if refund.status == "held":
            return RefundResult(refund.id, RefundStatus.HELD, f"held: {refund.hold_reason}")
        if refund.envelope_xdr is None:
            if ctx.builds >= MAX_BUILDS_PER_CALL:
                return _retry(ctx, refund, "rebuilt too often in one call", RETRY_ALERT, alert=True)
            built = _build(ctx, refund)
            if isinstance(built, RefundResult):
                return built
            refund = built
        result = _send(ctx, refund)
        if result is not None:
            return result
        refund = _reload(ctx, refund.id)  # the envelope was discarded: build a fresh one


def _reload(ctx: _Ctx, refund_id: int) -> RefundRow:
    refund = store.get_refund(ctx.db, refund_id)
    if refund is None:
        raise LookupError(f"refund {refund_id} disappeared")
    return refund


def _retry(
    ctx: _Ctx,
    refund: RefundRow,
    message: str,
    delay: timedelta,
    *,
    alert: bool = False,
    result_codes: dict[str, Any] | None = None,
) -> RefundResult:
    store.park(
        ctx.db,
        refund,
        status="pending",
        next_attempt_at=_now() + delay,
        last_error=message,
        result_codes=result_codes,
        actor=ctx.actor,
    )
    (log.error if alert else log.warning)("refund %s: %s", refund.id, message)
    return RefundResult(refund.id, RefundStatus.RETRY, message, None, result_codes, alert)


def _hold(
    ctx: _Ctx,
    refund: RefundRow,
    reason: str,
    message: str,
    result_codes: dict[str, Any] | None = None,
) -> RefundResult:
    store.park(
        ctx.db,
        refund,
        status="held",
        hold_reason=reason,
        last_error=message,
        next_attempt_at=_now() + HOLD_RECHECK,
        result_codes=result_codes,
        actor=ctx.actor,
    )
    log.warning("refund %s held: %s", refund.id, message)
    return RefundResult(refund.id, RefundStatus.HELD, message, None, result_codes)


# --- build ------------------------------------------------------------------------------------


def _build(ctx: _Ctx, refund: RefundRow) -> RefundRow | RefundResult:
    settings = ctx.settings
    if refund.destination.startswith("C"):
        # A contract holds SAC balances; a classic payment op cannot address it.
        return _hold(ctx, refund, "contract_payer", "the payer is a contract: refund by hand")
    destination = underlying_account(refund.destination)
    try:
        recipient = ctx.horizon.account(destination)
        source = ctx.horizon.account(settings.system_account)
    except HorizonError as exc:
        return _retry(
            ctx, refund, f"Horizon unavailable before building: {exc}", RETRY_HORIZON_DOWN
        )
    problem = destination_problem(
        recipient, parse_cngn(refund.amount), refund.asset_code, refund.asset_issuer
    )
    if problem is not None:
        asset = asset_name(refund.asset_code, refund.asset_issuer)
        return _hold(ctx, refund, problem, f"{destination} cannot receive {asset}: {problem}")
    if source is None:
        raise RuntimeError(f"system account {settings.system_account} does not exist on Horizon")
    signed = _sign(settings, refund, int(source["sequence"]))
    store.store_envelope(
        ctx.db,
        refund,
        xdr=signed.xdr,
        tx_hash=signed.tx_hash,
        sequence=signed.sequence,
        max_time=signed.max_time,
        actor=ctx.actor,
    )
    ctx.builds += 1
    return _reload(ctx, refund.id)


def _sign(settings: Settings, refund: RefundRow, account_sequence: int) -> SignedRefund:
    secret = settings.system_secret.get_secret_value()
    if not secret or Keypair.from_secret(secret).public_key != settings.system_account:
        raise RuntimeError("BILLPAY_SYSTEM_SECRET is not the secret of BILLPAY_SYSTEM_ACCOUNT")
    return build_refund_envelope(
        source_secret=secret,
        source_sequence=account_sequence,
        network_passphrase=settings.network_passphrase,
        base_fee=settings.stellar_base_fee,
        destination=refund.destination,
        asset_code=refund.asset_code,
        asset_issuer=refund.asset_issuer,
        amount=parse_cngn(refund.amount),
        memo=refund.memo,
        timeout_seconds=settings.refund_timeout_seconds,
    )


# --- submit and resolve -----------------------------------------------------------------------


def _send(ctx: _Ctx, refund: RefundRow) -> RefundResult | None:
    """Submit (or resolve) the stored envelope. None means it was discarded: build again."""
    assert refund.tx_hash and refund.envelope_xdr and refund.max_time
    if refund.submit_attempts > 0:
        # An earlier POST of this envelope may have landed: ask before sending again.
        resolved = _resolve_by_hash(ctx, refund)
        if resolved is not _RESUBMIT:
            return resolved
    elif _now() >= refund.max_time:
        # Never sent and already too late: it cannot land.
        _discard(ctx, refund, "envelope expired before its first submit")
        return None
    prior_attempts = store.note_submit_attempt(ctx.db, refund) - 1
    outcome = ctx.horizon.submit(refund.envelope_xdr)
    if outcome.status == SubmitStatus.SUCCESS:
        return _confirm(ctx, refund)
    if outcome.status == SubmitStatus.UNKNOWN:
        refund = _reload(ctx, refund.id)
        resolved = _resolve_by_hash(ctx, refund, after=outcome.detail)
        return _in_flight(ctx, refund, outcome.detail) if resolved is _RESUBMIT else resolved
    return _rejected(ctx, _reload(ctx, refund.id), outcome, prior_attempts)


_RESUBMIT: Any = object()


def _resolve_by_hash(ctx: _Ctx, refund: RefundRow, after: str = "") -> RefundResult | None | Any:
    """Confirm, discard (None) or say the envelope may be resubmitted (_RESUBMIT).

    An absent envelope is discarded only once Horizon's latest closed ledger is later than its
    max_time: no future ledger can include it, and one that did is already ingested. The root is
    read before the hash so that a ledger closing in between cannot be missed.
    """
    assert refund.max_time is not None
    try:
        past_on_ledger = _now() >= refund.max_time and _ledger_passed(ctx, refund.max_time)
        found = ctx.horizon.transaction(refund.tx_hash or "")
    except HorizonError as exc:
        return _in_flight(ctx, refund, f"{after} hash lookup failed: {exc}".strip())
    if found is not None and found.get("successful") is True:
        return _confirm(ctx, refund)
    if found is not None:
        _discard(ctx, refund, "envelope failed on the ledger", found.get("result_xdr"))
        return None
    if past_on_ledger:
        _discard(ctx, refund, "envelope expired and is not on the ledger")
        return None
    if _now() < refund.max_time:
        return _RESUBMIT
    return _in_flight(ctx, refund, "past max_time; waiting for Horizon to close a later ledger")


def _ledger_passed(ctx: _Ctx, max_time: datetime) -> bool:
    closed = ctx.horizon.latest_ledger_closed_at()
    return closed is not None and closed > max_time


def _in_flight(ctx: _Ctx, refund: RefundRow, message: str) -> RefundResult:
    store.recheck_later(
        ctx.db,
        refund,
        next_attempt_at=_now() + RECHECK_SUBMITTED,
        last_error=message or "outcome unknown",
    )
    return RefundResult(
        refund.id, RefundStatus.SUBMITTED, message or "outcome unknown", refund.tx_hash
    )


def _confirm(ctx: _Ctx, refund: RefundRow) -> RefundResult:
    tx_hash = refund.tx_hash or ""
    if not store.confirm(ctx.db, refund, tx_hash, ctx.actor):
        current = _reload(ctx, refund.id)
        if current.status != "confirmed" or current.tx_hash != tx_hash:
            raise store.RefundConflict(f"refund {refund.id} could not be confirmed with {tx_hash}")
    return RefundResult(refund.id, RefundStatus.CONFIRMED, "on the ledger", tx_hash)


def _discard(ctx: _Ctx, refund: RefundRow, message: str, detail: Any = None) -> None:
    log.info("refund %s: %s (%s)", refund.id, message, refund.tx_hash)
    store.discard_envelope(
        ctx.db,
        refund,
        actor=ctx.actor,
        last_error=message,
        result_codes={"result_xdr": detail} if detail else None,
    )


def _rejected(
    ctx: _Ctx, refund: RefundRow, outcome: SubmitOutcome, prior_attempts: int
) -> RefundResult | None:
    codes = outcome.result_codes
    text = f"{outcome.transaction_code} {list(outcome.operation_codes)}".strip()
    if prior_attempts > 0:
        # An earlier POST had an unknown outcome; this answer does not prove it did not land.
        resolved = _resolve_by_hash(ctx, refund, after=f"rejected: {text}")
        if resolved is not _RESUBMIT:
            return resolved
        return _in_flight(ctx, refund, f"rejected ({text}) after an unknown outcome; waiting")
    recipient = next((c for c in outcome.operation_codes if c in RECIPIENT_OP_CODES), None)
    if recipient is not None:
        store.discard_envelope(
            ctx.db,
            refund,
            actor=ctx.actor,
            status="held",
            hold_reason=recipient,
            last_error=f"recipient cannot receive: {text}",
            result_codes=codes,
            next_attempt_at=_now() + HOLD_RECHECK,
        )
        return RefundResult(refund.id, RefundStatus.HELD, f"held: {text}", None, codes)
    if "op_underfunded" in outcome.operation_codes:
        asset = asset_name(refund.asset_code, refund.asset_issuer)
        message = f"ALERT: the system account lacks {asset} for this refund ({text})"
        return _retry_and_alert(ctx, refund, message, codes, RETRY_UNDERFUNDED)
    if outcome.transaction_code in REBUILD_TX_CODES:
        _discard(ctx, refund, f"rejected: {text}; rebuilding")
        return None
    message = f"ALERT: Horizon rejected the refund: {text} {outcome.detail}".strip()
    return _retry_and_alert(ctx, refund, message, codes, RETRY_ALERT)


def _retry_and_alert(
    ctx: _Ctx, refund: RefundRow, message: str, codes: Any, wait: timedelta
) -> RefundResult:
    """Nothing landed and an operator must look: drop the envelope, try again after ``wait``."""
    store.discard_envelope(
        ctx.db,
        refund,
        actor=ctx.actor,
        last_error=message,
        result_codes=codes,
        next_attempt_at=_now() + wait,
    )
    log.error("refund %s: %s", refund.id, message)
    return RefundResult(refund.id, RefundStatus.RETRY, message, None, codes, alert=True)
