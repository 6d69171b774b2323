"""A local Horizon: an in-memory ledger served under ``/horizon`` in Horizon's JSON shapes.

It holds the deterministic sandbox accounts (billpay.sandbox.identities) with sequence numbers,
XLM and cNGN balances and trustlines. ``POST /horizon/transactions`` decodes a real signed
envelope with stellar-sdk and checks what stellar-core would (network passphrase via the hash,
signature, sequence, time bounds, fee, trustlines, authorisation, balances and limits) before
applying it; failures answer in Horizon's problem shape with ``extras.result_codes``. A tx that
fails in its operations is, as on the real network, recorded as failed and consumes its sequence.

Only ``payment`` operations are submitted (to G- or M-addresses). Contract (SAC) transfers are
simulated by :meth:`SandboxLedger.contract_transfer`: balances move and an
``invoke_host_function`` record with ``asset_balance_changes`` is listed, as Horizon lists them.
Control endpoints under ``/horizon/_sandbox``:
``POST payments`` (a sandbox user pays the system account through the same apply path; ``to``
may be an M-address), ``POST contract_transfers`` (a G- or C-address pays through the SAC),
``GET accounts``, ``POST trustlines`` (add/change/remove a trustline), ``POST flags`` (set an
account's flags, the issuer's by default: ``auth_required``, ``auth_revocable``,
``auth_clawback_enabled``, ``auth_immutable``; all false at start) and ``POST faults``
(answer the next N submissions with 504 before or after applying, or the next N payment pages
with 503).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from stellar_sdk import (
    Account,
    Asset,
    FeeBumpTransactionEnvelope,
    Keypair,
    MuxedAccount,
    TransactionBuilder,
    TransactionEnvelope,
)
from stellar_sdk.exceptions import BadSignatureError
from stellar_sdk.memo import HashMemo, IdMemo, NoneMemo, ReturnHashMemo, TextMemo
from stellar_sdk.operation import Payment

from billpay.config import SANDBOX_NETWORK_PASSPHRASE
from billpay.sandbox import identities as ids

START_SEQUENCE = 100 << 32
FIRST_LEDGER = 1000
BASE_FEE = 100
STROOP = Decimal("0.0000001")
PROTOCOL_VERSION = 22
ACCOUNT_FLAGS = ("auth_required", "auth_revocable", "auth_immutable", "auth_clawback_enabled")


def horizon_env(base_url: str) -> dict[str, str]:
    """The BILLPAY_* settings that point the pipeline at this Horizon and its identities."""
    system = ids.system()
    return {
        "BILLPAY_HORIZON_URL": f"{base_url.rstrip('/')}/horizon",
        "BILLPAY_NETWORK_PASSPHRASE": SANDBOX_NETWORK_PASSPHRASE,
        "BILLPAY_SYSTEM_ACCOUNT": system.account_id,
        "BILLPAY_SYSTEM_SECRET": system.secret,
        "BILLPAY_CNGN_ISSUER": ids.issuer().account_id,
        "BILLPAY_INGEST_START_CURSOR": "0",
    }


# --- the ledger -------------------------------------------------------------------------------


@dataclass
class Trustline:
    balance: Decimal
    limit: Decimal = ids.DEFAULT_LIMIT
    authorized: bool = True


@dataclass
class LedgerAccount:
    account_id: str
    sequence: int = START_SEQUENCE
    xlm: Decimal = ids.XLM_BALANCE
    trustlines: dict[tuple[str, str], Trustline] = field(default_factory=dict)
    # Horizon's account flags; only the issuer's matter (billpay doctor reports them).
    flags: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(ACCOUNT_FLAGS, False))


@dataclass
class Faults:
    submit_504_after_apply: int = 0
    submit_504_before_apply: int = 0
    payments_503: int = 0
    submit_delay_ms: int = 0


class TxRejected(Exception):
    def __init__(self, tx_code: str, op_codes: list[str] | None = None, detail: str = "") -> None:
        super().__init__(detail or tx_code)
        self.tx_code = tx_code
        self.op_codes = op_codes or []


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _amount(value: Decimal) -> str:
    return f"{value.quantize(STROOP):.7f}"


def problem(status: int, title: str, detail: str, **extras: Any) -> JSONResponse:
    slug = title.lower().replace(" ", "_")
    body: dict[str, Any] = {
        "type": f"https://stellar.org/horizon-errors/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if extras:
        body["extras"] = extras
    return JSONResponse(body, status_code=status)


def resource_missing() -> JSONResponse:
    return problem(404, "Resource Missing", "The resource at the url requested was not found.")


def found_or_missing(body: dict[str, Any] | None) -> dict[str, Any] | JSONResponse:
    return resource_missing() if body is None else body


class SandboxLedger:
    """Accounts, transactions and payment operations; every access holds ``lock``."""

    def __init__(self, passphrase: str = SANDBOX_NETWORK_PASSPHRASE) -> None:
        self.passphrase = passphrase
        self.asset_code = ids.CNGN_CODE
        self.issuer = ids.issuer().account_id
        self.lock = threading.RLock()
        self.faults = Faults()
        self.accounts: dict[str, LedgerAccount] = {}
        self.transactions: dict[str, dict[str, Any]] = {}
        self.operations: list[dict[str, Any]] = []
        self.ledger = FIRST_LEDGER
        for identity in ids.all_identities():
            account = LedgerAccount(identity.account_id)
            if identity.cngn is not None:
                account.trustlines[(self.asset_code, self.issuer)] = Trustline(identity.cngn)
            self.accounts[identity.account_id] = account

    # --- reads --------------------------------------------------------------------------------

    def account_json(self, account_id: str) -> dict[str, Any] | None:
        with self.lock:
            account = self.accounts.get(account_id)
            if account is None:
                return None
            balances: list[dict[str, Any]] = [
                {
                    "balance": _amount(line.balance),
                    "limit": _amount(line.limit),
                    "buying_liabilities": "0.0000000",
                    "selling_liabilities": "0.0000000",
                    "last_modified_ledger": FIRST_LEDGER,
                    "is_authorized": line.authorized,
                    "is_authorized_to_maintain_liabilities": line.authorized,
                    "asset_type": "credit_alphanum4" if len(code) <= 4 else "credit_alphanum12",
                    "asset_code": code,
                    "asset_issuer": issuer,
                }
                for (code, issuer), line in account.trustlines.items()
            ]
            balances.append(
                {
                    "balance": _amount(account.xlm),
                    "buying_liabilities": "0.0000000",
                    "selling_liabilities": "0.0000000",
                    "asset_type": "native",
                }
            )
            return {
                "_links": {"self": {"href": f"/accounts/{account_id}"}},
                "id": account_id,
                "account_id": account_id,
                "sequence": str(account.sequence),
                "subentry_count": len(account.trustlines),
                "last_modified_ledger": self.ledger,
                "thresholds": {"low_threshold": 0, "med_threshold": 0, "high_threshold": 0},
                "flags": dict(account.flags),
                "balances": balances,
                "signers": [{"weight": 1, "key": account_id, "type": "ed25519_public_key"}],
                "paging_token": account_id,
            }

    def transaction_json(self, tx_hash: str) -> dict[str, Any] | None:
        with self.lock:
            tx = self.transactions.get(tx_hash)
            return dict(tx) if tx is not None else None

    def payments(
        self,
        account: str,
        cursor: str | None,
        order: str,
        limit: int,
        join: bool,
        include_failed: bool = False,
    ) -> list[dict[str, Any]]:
        with self.lock:
            rows = [
                op
                for op in self.operations
                if _involves(op, account) and (include_failed or op["transaction_successful"])
            ]
            rows.sort(key=lambda op: int(op["id"]), reverse=order == "desc")
            if cursor and cursor != "now":
                after = int(cursor)
                rows = [
                    op
                    for op in rows
                    if (int(op["id"]) > after if order != "desc" else int(op["id"]) < after)
                ]
            elif cursor == "now":
                rows = [] if order != "desc" else rows
            page = [dict(op) for op in rows[:limit]]
            for op in page:
                if join:
                    op["transaction"] = dict(self.transactions[op["transaction_hash"]])
            return page

    # --- writes -------------------------------------------------------------------------------

    def set_trustline(
        self,
        account_id: str,
        code: str,
        issuer: str,
        *,
        limit: Decimal | None = None,
        authorized: bool | None = None,
        balance: Decimal | None = None,
        remove: bool = False,
    ) -> None:
        with self.lock:
            account = self.accounts.setdefault(account_id, LedgerAccount(account_id))
            key = (code, issuer)
            if remove:
                account.trustlines.pop(key, None)
                return
            line = account.trustlines.setdefault(key, Trustline(Decimal(0)))
            if limit is not None:
                line.limit = limit
            if authorized is not None:
                line.authorized = authorized
            if balance is not None:
                line.balance = balance

    def submit(self, xdr: str, now: float | None = None) -> dict[str, Any]:
        """Apply the envelope or raise :class:`TxRejected`; returns the transaction JSON."""
        now = time.time() if now is None else now
        if FeeBumpTransactionEnvelope.is_fee_bump_transaction_envelope(xdr):
            raise TxRejected("tx_not_supported", detail="the sandbox does not apply fee bumps")
        try:
            envelope = TransactionEnvelope.from_xdr(xdr, self.passphrase)
        except Exception as exc:  # any decoding failure is a malformed envelope
            raise TxRejected("tx_malformed", detail=f"cannot decode envelope: {exc}") from exc
        with self.lock:
            return self._apply(envelope, xdr, now)

    def _apply(self, envelope: TransactionEnvelope, xdr: str, now: float) -> dict[str, Any]:
        tx = envelope.transaction
        source_id = tx.source.account_id
        source = self.accounts.get(source_id)
        if source is None:
            raise TxRejected("tx_no_source_account")
        bounds = tx.preconditions.time_bounds if tx.preconditions else None
        if bounds is not None and bounds.max_time and now > bounds.max_time:
            raise TxRejected("tx_too_late")
        if bounds is not None and bounds.min_time and now < bounds.min_time:
            raise TxRejected("tx_too_early")
        if tx.sequence != source.sequence + 1:
            raise TxRejected("tx_bad_seq", detail=f"expected {source.sequence + 1}")
        if not _signed_by(envelope, source_id):
            raise TxRejected("tx_bad_auth")
        if tx.fee < BASE_FEE * len(tx.operations):
            raise TxRejected("tx_insufficient_fee")
        if not all(isinstance(op, Payment) for op in tx.operations):
            raise TxRejected(
                "tx_not_supported", detail="the sandbox applies payment operations only"
            )
        fee = Decimal(min(tx.fee, BASE_FEE * len(tx.operations))) * STROOP
        op_codes, moves = self._check_payments(tx, source_id)
        # Valid envelope: sequence and fee are consumed even when an operation fails.
        source.sequence = tx.sequence
        source.xlm -= fee
        self.ledger += 1
        successful = all(code == "op_success" for code in op_codes)
        if successful:
            for account_id, key, delta in moves:
                self._move(account_id, key, delta)
        record = self._record(envelope, xdr, now, successful, fee)
        if not successful:
            raise TxRejected("tx_failed", op_codes, detail=record["hash"])
        return record

    def _check_payments(self, tx: Any, source_id: str) -> tuple[list[str], list[tuple]]:
        codes: list[str] = []
        moves: list[tuple[str, tuple[str, str] | None, Decimal]] = []
        pending: dict[tuple[str, Any], Decimal] = {}
        for op in tx.operations:
            sender = op.source.account_id if op.source else source_id
            receiver = op.destination.account_id
            amount = Decimal(op.amount)
            key = None if op.asset.is_native() else (op.asset.code, op.asset.issuer)
            code = self._payment_code(sender, receiver, key, amount, pending)
            codes.append(code)
            if code == "op_success":
                moves += [(sender, key, -amount), (receiver, key, amount)]
                pending[(sender, key)] = pending.get((sender, key), Decimal(0)) - amount
                pending[(receiver, key)] = pending.get((receiver, key), Decimal(0)) + amount
        return codes, moves

    def _payment_code(
        self,
        sender: str,
        receiver: str,
        key: tuple[str, str] | None,
        amount: Decimal,
        pending: dict[tuple[str, Any], Decimal],
    ) -> str:
        if receiver not in self.accounts:
            return "op_no_destination"
        if key is None:
            have = self.accounts[sender].xlm + pending.get((sender, None), Decimal(0))
            return "op_underfunded" if have < amount else "op_success"
        if sender != key[1]:
            line = self.accounts[sender].trustlines.get(key)
            if line is None:
                return "op_src_no_trust"
            if not line.authorized:
                return "op_src_not_authorized"
            if line.balance + pending.get((sender, key), Decimal(0)) < amount:
                return "op_underfunded"
        if receiver != key[1]:
            line = self.accounts[receiver].trustlines.get(key)
            if line is None:
                return "op_no_trust"
            if not line.authorized:
                return "op_not_authorized"
            if line.balance + pending.get((receiver, key), Decimal(0)) + amount > line.limit:
                return "op_line_full"
        return "op_success"

    def _move(self, account_id: str, key: tuple[str, str] | None, delta: Decimal) -> None:
        account = self.accounts[account_id]
        if key is None:
            account.xlm += delta
        elif account_id != key[1]:  # the issuer mints and burns: no balance of its own
            account.trustlines[key].balance += delta

    def _record(
        self, envelope: TransactionEnvelope, xdr: str, now: float, successful: bool, fee: Decimal
    ) -> dict[str, Any]:
        tx = envelope.transaction
        tx_hash = envelope.hash_hex()
        bounds = tx.preconditions.time_bounds if tx.preconditions else None
        record: dict[str, Any] = {
            "id": tx_hash,
            "paging_token": str((self.ledger << 32) | (1 << 12)),
            "successful": successful,
            "hash": tx_hash,
            "ledger": self.ledger,
            "created_at": _iso(now),
            "source_account": tx.source.account_id,
            "source_account_sequence": str(tx.sequence),
            "fee_account": tx.source.account_id,
            "fee_charged": str(int(fee / STROOP)),
            "max_fee": str(tx.fee),
            "operation_count": len(tx.operations),
            "envelope_xdr": xdr,
            "result_xdr": "",
            "signatures": [base64.b64encode(s.signature).decode() for s in envelope.signatures],
            **_memo_fields(tx.memo),
        }
        if bounds is not None:
            record["valid_after"] = _iso(bounds.min_time)
            if bounds.max_time:
                record["valid_before"] = _iso(bounds.max_time)
            record["preconditions"] = {
                "timebounds": {"min_time": str(bounds.min_time), "max_time": str(bounds.max_time)}
            }
        if tx.source.account_muxed_id is not None:
            record["source_account_muxed"] = tx.source.account_muxed
            record["source_account_muxed_id"] = str(tx.source.account_muxed_id)
        self.transactions[tx_hash] = record
        for index, op in enumerate(tx.operations, start=1):
            self.operations.append(self._payment_record(op, index, tx, record, successful))
        return record

    def _payment_record(
        self, op: Payment, index: int, tx: Any, record: dict[str, Any], successful: bool
    ) -> dict[str, Any]:
        op_id = str((self.ledger << 32) | (1 << 12) | index)
        sender: MuxedAccount = op.source or tx.source
        row: dict[str, Any] = {
            "_links": {"transaction": {"href": f"/transactions/{record['hash']}"}},
            "id": op_id,
            "paging_token": op_id,
            "transaction_successful": successful,
            "source_account": sender.account_id,
            "type": "payment",
            "type_i": 1,
            "created_at": record["created_at"],
            "transaction_hash": record["hash"],
            "from": sender.account_id,
            "to": op.destination.account_id,
            "amount": _amount(Decimal(op.amount)),
        }
        if op.asset.is_native():
            row["asset_type"] = "native"
        else:
            row["asset_type"] = op.asset.type
            row["asset_code"] = op.asset.code
            row["asset_issuer"] = op.asset.issuer
        if sender.account_muxed_id is not None:
            row["from_muxed"] = sender.account_muxed
            row["from_muxed_id"] = str(sender.account_muxed_id)
        if op.destination.account_muxed_id is not None:
            row["to_muxed"] = op.destination.account_muxed
            row["to_muxed_id"] = str(op.destination.account_muxed_id)
        return row

    # --- sandbox users paying -----------------------------------------------------------------

    def pay(
        self,
        sender: ids.Identity,
        to: str,
        amount: str,
        *,
        memo: str | None = None,
        memo_type: str = "text",
        asset_code: str | None = None,
        asset_issuer: str | None = None,
        muxed_id: int | None = None,
    ) -> dict[str, Any]:
        """A real signed payment from a sandbox identity, applied like any submission."""
        with self.lock:
            account = self.accounts[sender.account_id]
            source = Account(sender.account_id, account.sequence)
            if muxed_id is not None:
                source = Account(
                    MuxedAccount(sender.account_id, muxed_id).account_muxed, account.sequence
                )
            code = asset_code or self.asset_code
            asset = Asset.native() if code == "XLM" else Asset(code, asset_issuer or self.issuer)
            builder = TransactionBuilder(source, self.passphrase, BASE_FEE)
            builder.append_payment_op(to, asset, amount).set_timeout(300)
            _add_memo(builder, memo, memo_type)
            tx = builder.build()
            tx.sign(sender.keypair)
            return self.submit(tx.to_xdr())

    # --- contract (SAC) transfers ---------------------------------------------------------

    def contract_transfer(
        self,
        sender: str,
        to: str,
        amount: str,
        *,
        asset_code: str | None = None,
        asset_issuer: str | None = None,
        muxed_id: int | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """A Stellar Asset Contract ``transfer`` from ``sender`` (G..., or C...: a contract
        whose balance the sandbox does not track) to ``to``; Soroban transactions carry no
        memo, an M-address destination shows as ``destination_muxed_id``."""
        now = time.time() if now is None else now
        code = asset_code or self.asset_code
        key = None if code == "XLM" else (code, asset_issuer or self.issuer)
        value = Decimal(amount)
        with self.lock:
            if sender.startswith("G"):
                problem = self._payment_code(sender, to, key, value, {})
            else:
                problem = "op_success" if to in self.accounts else "op_no_destination"
            if problem != "op_success":
                raise TxRejected("tx_failed", [problem])
            if sender.startswith("G"):
                self._move(sender, key, -value)
            self._move(to, key, value)
            self.ledger += 1
            return self._record_contract_transfer(sender, to, key, value, muxed_id, now)

    def _record_contract_transfer(
        self,
        sender: str,
        to: str,
        key: tuple[str, str] | None,
        value: Decimal,
        muxed_id: int | None,
        now: float,
    ) -> dict[str, Any]:
        seed = f"sac:{self.ledger}:{sender}:{to}:{value}:{muxed_id}:{now}"
        tx_hash = hashlib.sha256(seed.encode()).hexdigest()
        invoker = sender if sender.startswith("G") else ids.system().account_id
        record = {
            "id": tx_hash,
            "hash": tx_hash,
            "paging_token": str((self.ledger << 32) | (1 << 12)),
            "successful": True,
            "ledger": self.ledger,
            "created_at": _iso(now),
            "source_account": invoker,
            "fee_account": invoker,
            "operation_count": 1,
            "memo_type": "none",
        }
        self.transactions[tx_hash] = record
        change: dict[str, Any] = {"type": "transfer", "from": sender, "to": to}
        if key is None:
            change["asset_type"] = "native"
        else:
            change["asset_type"] = "credit_alphanum4" if len(key[0]) <= 4 else "credit_alphanum12"
            change["asset_code"], change["asset_issuer"] = key
        change["amount"] = _amount(value)
        if muxed_id is not None:
            change["destination_muxed_id"] = str(muxed_id)
        op_id = str((self.ledger << 32) | (1 << 12) | 1)
        self.operations.append(
            {
                "_links": {"transaction": {"href": f"/transactions/{tx_hash}"}},
                "id": op_id,
                "paging_token": op_id,
                "transaction_successful": True,
                "source_account": invoker,
                "type": "invoke_host_function",
                "type_i": 24,
                "created_at": record["created_at"],
                "transaction_hash": tx_hash,
                "function": "HostFunctionTypeHostFunctionTypeInvokeContract",
                "parameters": [],
                "address": "",
                "salt": "",
                "asset_balance_changes": [change],
            }
        )
        return record


def _involves(op: dict[str, Any], account: str) -> bool:
    """Horizon lists an operation under every account it moves value for."""
    if account in (op.get("from"), op.get("to")):
        return True
    return any(account in (c.get("from"), c.get("to")) for c in op.get("asset_balance_changes", []))


def _add_memo(builder: TransactionBuilder, memo: str | None, memo_type: str) -> None:
    if memo is None or memo_type == "none":
        return
    if memo_type == "text":
        builder.add_text_memo(memo)
    elif memo_type == "id":
        builder.add_id_memo(int(memo))
    elif memo_type == "hash":
        builder.add_hash_memo(bytes.fromhex(memo) if len(memo) == 64 else memo.encode().ljust(32))
    else:
        raise ValueError(f"unsupported memo_type {memo_type!r}")


def _memo_fields(memo: Any) -> dict[str, Any]:
    if memo is None or isinstance(memo, NoneMemo):
        return {"memo_type": "none"}
    if isinstance(memo, TextMemo):
        raw = memo.memo_text
        return {
            "memo_type": "text",
            "memo": raw.decode("utf-8", errors="replace"),
            "memo_bytes": base64.b64encode(raw).decode(),
        }
    if isinstance(memo, IdMemo):
        return {"memo_type": "id", "memo": str(memo.memo_id)}
    if isinstance(memo, ReturnHashMemo):
        return {"memo_type": "return", "memo": base64.b64encode(memo.memo_return).decode()}
    if isinstance(memo, HashMemo):
        return {"memo_type": "hash", "memo": base64.b64encode(memo.memo_hash).decode()}
    return {"memo_type": "none"}


def _signed_by(envelope: TransactionEnvelope, account_id: str) -> bool:
    keypair = Keypair.from_public_key(account_id)
    tx_hash = envelope.hash()
    for signature in envelope.signatures:
        if signature.signature_hint != keypair.signature_hint():
            continue
        try:
            keypair.verify(tx_hash, signature.signature)
            return True
        except BadSignatureError:
            continue
    return False


# --- HTTP -------------------------------------------------------------------------------------


def _rejected_response(exc: TxRejected, xdr: str) -> JSONResponse:
    codes: dict[str, Any] = {"transaction": exc.tx_code}
    if exc.op_codes:
        codes["operations"] = exc.op_codes
    title = "Transaction Malformed" if exc.tx_code == "tx_malformed" else "Transaction Failed"
    return problem(
        400,
        title,
        "The transaction failed when submitted to the stellar network. The `extras.result_codes` "
        "field on this response contains further details.",
        envelope_xdr=xdr,
        result_codes=codes,
    )


def _gateway_timeout() -> JSONResponse:
    return problem(
        504,
        "Timeout",
        "Your request timed out before completing. Please try your request again.",
    )


def _identity(key: str | None) -> ids.Identity:
    identity = ids.by_name_or_account(key or ids.USER_NAMES[0])
    if identity is None:
        raise KeyError(key)
    return identity


def mount_horizon(app: FastAPI, options: Any) -> SandboxLedger:
    """Serve a fresh ledger under ``/horizon``; also reachable as ``app.state.horizon_ledger``."""
    ledger = SandboxLedger()
    app.state.horizon_ledger = ledger
    router = APIRouter(prefix="/horizon")

    def log(operation: str, **details: Any) -> None:
        if hasattr(options, "log_call"):
            options.log_call("horizon", operation, **details)

    @router.get("/")
    def root() -> dict[str, Any]:
        # The sandbox closes a ledger whenever asked: the latest close time is now.
        with ledger.lock:
            return {
                "horizon_version": "billpay-sandbox",
                "core_version": "billpay-sandbox-core",
                "ingest_latest_ledger": ledger.ledger,
                "history_latest_ledger": ledger.ledger,
                "history_latest_ledger_closed_at": _iso(time.time()),
                "history_elder_ledger": FIRST_LEDGER,
                "core_latest_ledger": ledger.ledger,
                "network_passphrase": ledger.passphrase,
                "current_protocol_version": PROTOCOL_VERSION,
                "supported_protocol_version": PROTOCOL_VERSION,
                "core_supported_protocol_version": PROTOCOL_VERSION,
            }

    @router.get("/accounts/{account_id}")
    def get_account(account_id: str) -> Any:
        return found_or_missing(ledger.account_json(account_id))

    @router.get("/accounts/{account_id}/payments")
    def get_payments(
        account_id: str,
        request: Request,
        cursor: str | None = None,
        order: str = "asc",
        limit: int = 10,
        join: str | None = None,
        include_failed: bool = False,
    ) -> Any:
        with ledger.lock:
            if ledger.faults.payments_503 > 0:
                ledger.faults.payments_503 -= 1
                return problem(503, "Service Unavailable", "sandbox fault")
        if account_id not in ledger.accounts:
            return resource_missing()
        if cursor not in (None, "", "now") and not cursor.isdigit():
            return problem(400, "Bad Request", f"invalid cursor {cursor!r}")
        limit = max(1, min(limit, 200))
        records = ledger.payments(
            account_id, cursor, order, limit, join == "transactions", include_failed
        )
        log("payments", account=account_id, cursor=cursor, records=len(records))
        return {
            "_links": {"self": {"href": str(request.url)}},
            "_embedded": {"records": records},
        }

    @router.get("/transactions/{tx_hash}")
    def get_transaction(tx_hash: str) -> Any:
        return found_or_missing(ledger.transaction_json(tx_hash))

    @router.post("/transactions")
    async def post_transaction(request: Request) -> Any:
        form = parse_qs((await request.body()).decode())
        xdr = (form.get("tx") or [""])[0]
        with ledger.lock:
            faults = ledger.faults
            before = faults.submit_504_before_apply > 0
            after = not before and faults.submit_504_after_apply > 0
            if before:
                faults.submit_504_before_apply -= 1
            elif after:
                faults.submit_504_after_apply -= 1
            delay = faults.submit_delay_ms
        if delay:
            await asyncio.sleep(delay / 1000)
        if before:
            log("submit", outcome="504_before_apply")
            return _gateway_timeout()
        try:
            record = ledger.submit(xdr)
        except TxRejected as exc:
            log("submit", outcome=exc.tx_code, operations=exc.op_codes)
            return _gateway_timeout() if after else _rejected_response(exc, xdr)
        log("submit", outcome="applied_then_504" if after else "success", hash=record["hash"])
        return _gateway_timeout() if after else record

    # --- control --------------------------------------------------------------------------

    @router.get("/_sandbox/accounts")
    def sandbox_accounts() -> list[dict[str, Any]]:
        rows = []
        for identity in ids.all_identities():
            body = ledger.account_json(identity.account_id) or {}
            rows.append(
                {
                    "name": identity.name,
                    "account_id": identity.account_id,
                    "sequence": body.get("sequence"),
                    "balances": body.get("balances", []),
                }
            )
        return rows

    @router.post("/_sandbox/payments")
    async def sandbox_payment(request: Request) -> Any:
        body = await request.json()
        try:
            sender = _identity(body.get("from"))
        except KeyError:
            return problem(400, "Bad Request", f"unknown sandbox account {body.get('from')!r}")
        try:
            record = ledger.pay(
                sender,
                body.get("to") or ids.system().account_id,
                str(body["amount"]),
                memo=body.get("memo"),
                memo_type=body.get("memo_type") or ("text" if body.get("memo") else "none"),
                asset_code=body.get("asset_code"),
                asset_issuer=body.get("asset_issuer"),
                muxed_id=body.get("from_muxed_id"),
            )
        except TxRejected as exc:
            return _rejected_response(exc, "")
        log("sandbox_payment", sender=sender.name, hash=record["hash"])
        ops = [op for op in ledger.operations if op["transaction_hash"] == record["hash"]]
        return {
            "hash": record["hash"],
            "ledger": record["ledger"],
            "operation_ids": [op["id"] for op in ops],
            "successful": record["successful"],
        }

    @router.post("/_sandbox/contract_transfers")
    async def sandbox_contract_transfer(request: Request) -> Any:
        body = await request.json()
        sender = body.get("from") or ids.USER_NAMES[0]
        identity = ids.by_name_or_account(sender)
        try:
            record = ledger.contract_transfer(
                identity.account_id if identity else sender,
                body.get("to") or ids.system().account_id,
                str(body["amount"]),
                asset_code=body.get("asset_code"),
                asset_issuer=body.get("asset_issuer"),
                muxed_id=body.get("destination_muxed_id"),
            )
        except TxRejected as exc:
            return _rejected_response(exc, "")
        log("sandbox_contract_transfer", sender=sender, hash=record["hash"])
        return {"hash": record["hash"], "ledger": record["ledger"], "successful": True}

    @router.post("/_sandbox/trustlines")
    async def sandbox_trustline(request: Request) -> Any:
        body = await request.json()
        account = (
            _identity(body["account"]).account_id
            if ids.by_name_or_account(body["account"])
            else body["account"]
        )
        ledger.set_trustline(
            account,
            body.get("asset_code") or ledger.asset_code,
            body.get("asset_issuer") or ledger.issuer,
            limit=Decimal(str(body["limit"])) if "limit" in body else None,
            authorized=body.get("authorized"),
            balance=Decimal(str(body["balance"])) if "balance" in body else None,
            remove=bool(body.get("remove")),
        )
        return ledger.account_json(account)

    @router.post("/_sandbox/flags")
    async def sandbox_flags(request: Request) -> Any:
        """Set an account's flags (default: the issuer's), e.g. {"auth_revocable": true}."""
        body = await request.json()
        key = body.get("account") or ids.issuer().account_id
        identity = ids.by_name_or_account(key)
        account_id = identity.account_id if identity else key
        with ledger.lock:
            account = ledger.accounts.get(account_id)
            if account is None:
                return resource_missing()
            account.flags.update({f: bool(body[f]) for f in ACCOUNT_FLAGS if f in body})
        return ledger.account_json(account_id)

    @router.post("/_sandbox/faults")
    async def sandbox_faults(request: Request) -> dict[str, int]:
        body = await request.json()
        with ledger.lock:
            for name in Faults.__dataclass_fields__:
                if name in body:
                    setattr(ledger.faults, name, int(body[name]))
            return dict(vars(ledger.faults))

    app.include_router(router)
    return ledger
