"""Horizon payment records -> the inbound transfers we store (pure: no I/O, no database).

Horizon's ``/accounts/{G}/payments`` lists every operation that moves value in or out of the
account. Each record is one of:

* an inbound transfer: one :class:`IncomingPayment` per credit to the system account (a
  contract transfer can credit us several times; each credit is one row keyed
  ``<operation id>:<index in asset_balance_changes>``, stable on replay);
* recognisably not inbound (we sent it, or it readably credits only others): nothing to store,
  the cursor still moves past it (:func:`inbound_transfers` returns an empty list);
* anything else: :class:`MalformedRecord`, which the ingester quarantines: a record that
  credits us (any field, G- or M-address) in a shape we cannot read, or one we can read neither
  as inbound nor as not ours, is never skipped silently. Every value stored is checked here
  (type, shape, range, no NUL), so a hostile record can never make the database reject the
  page it arrived on.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from stellar_sdk import MuxedAccount, StrKey

from billpay.stellar.memos import Memo, memo_from_transaction

# Horizon's operation type names by type_i; old Horizon versions call type 2 ``path_payment``.
TYPE_NAMES = {
    0: "create_account",
    1: "payment",
    2: "path_payment_strict_receive",
    8: "account_merge",
    13: "path_payment_strict_send",
    24: "invoke_host_function",
}
TYPE_ALIASES = {"path_payment": "path_payment_strict_receive"}
CLASSIC_PAYMENTS = frozenset({"payment", "path_payment_strict_receive", "path_payment_strict_send"})
# Balance changes of a contract call that credit their ``to`` (burn and clawback never credit).
CREDITING_CHANGES = frozenset({"transfer", "mint"})
CREDIT_ASSET_TYPES = frozenset({"credit_alphanum4", "credit_alphanum12"})
# Where each type names the account credited (first: the G-address we store as to_account).
CREDITED_FIELDS = {
    **{name: ("to", "to_muxed") for name in CLASSIC_PAYMENTS},
    "create_account": ("account", "account_muxed"),
    "account_merge": ("into", "into_muxed"),
    "invoke_host_function": (),  # its asset_balance_changes[].to
}
ALL_CREDITED_FIELDS = ("to", "to_muxed", "account", "account_muxed", "into", "into_muxed")
# Where a record names the account value left (or the operation's source).
# ("account" of a merge is the account merged away; of a create_account it is credited, which
# credits_account decides first.)
SENDER_FIELDS = ("from", "from_muxed", "funder", "funder_muxed", "account", "source_account")
# Stellar amounts are int64 stroops; the column is numeric(20, 7).
MAX_AMOUNT = Decimal("922337203685.4775807")
MAX_MUXED_ID = 2**64 - 1
# A Horizon id or paging token: what the id columns and the ingest cursor accept.
TOKEN = re.compile(r"[0-9A-Za-z_:.\-]{1,100}")
_HASH = re.compile(r"[0-9a-f]{64}")
_ASSET_CODE = re.compile(r"[0-9A-Za-z]{1,12}")


class MalformedRecord(ValueError):
    """A record that claims to be inbound but cannot be read: quarantine it."""


@dataclass(frozen=True, slots=True)
class IncomingPayment:
    operation_id: str
    paging_token: str
    transaction_hash: str
    operation_type: str
    from_account: str  # G... (or C... for a contract payer)
    from_muxed: str | None
    to_account: str
    to_muxed_id: int | None
    asset_type: str  # native | credit_alphanum4 | credit_alphanum12
    asset_code: str | None  # None for native XLM
    asset_issuer: str | None
    amount: Decimal | None  # None only for account_merge (Horizon does not say)
    memo_type: str
    memo: str | None
    ledger: int | None
    ledger_time: datetime


# --- classifying --------------------------------------------------------------------------------


def operation_type(record: dict[str, Any]) -> str | None:
    """The canonical type name, from ``type`` or else ``type_i``; None when neither is known."""
    name = record.get("type")
    if isinstance(name, str):
        name = TYPE_ALIASES.get(name, name)
        if name in TYPE_NAMES.values():
            return name
    type_i = record.get("type_i")
    if isinstance(type_i, int) and not isinstance(type_i, bool):
        return TYPE_NAMES.get(type_i)
    return None


def _changes(record: dict[str, Any]) -> list[Any]:
    """The contract call's balance changes; a value that is not a list is unreadable."""
    changes = record.get("asset_balance_changes")
    if changes is None:
        return []
    if not isinstance(changes, list):
        raise MalformedRecord(f"asset_balance_changes is a {type(changes).__name__}, not a list")
    return changes


def _underlying(value: Any) -> str | None:
    """The account an address stands for: an M-address's G-address, any other string itself."""
    if not isinstance(value, str):
        return None
    if value.startswith("M"):
        try:
            return MuxedAccount.from_account(value).account_id
        except Exception:  # the SDK raises several types for a bad strkey
            return None
    return value


def _is_address(value: Any) -> bool:
    return isinstance(value, str) and (
        StrKey.is_valid_ed25519_public_key(value)
        or StrKey.is_valid_contract(value)
        or _is_muxed(value)
    )


def credits_account(record: dict[str, Any], kind: str | None, account: str) -> bool:
    """Does anything in the record say value went to ``account`` (its G-address or any of its
    M-addresses, in whichever field)? Then it is ours: stored, or quarantined if unreadable."""
    fields = CREDITED_FIELDS.get(kind, ALL_CREDITED_FIELDS) if kind else ALL_CREDITED_FIELDS
    if any(_underlying(record.get(name)) == account for name in fields):
        return True
    if kind not in (None, "invoke_host_function"):
        return False
    return any(
        not isinstance(c, dict) or _underlying(c.get("to")) == account for c in _changes(record)
    )


def sent_by_account(record: dict[str, Any], account: str) -> bool:
    """Is ``account`` the sender, funder, merged account or source of the operation or of its
    transaction? (Our refunds, and operations we took part in without being credited.)"""
    if any(_underlying(record.get(name)) == account for name in SENDER_FIELDS):
        return True
    transaction = record.get("transaction")
    if isinstance(transaction, dict) and account in (
        _underlying(transaction.get("source_account")),
        _underlying(transaction.get("fee_account")),
    ):
        return True
    return any(
        isinstance(c, dict) and _underlying(c.get("from")) == account for c in _changes(record)
    )


def credits_only_others(record: dict[str, Any], kind: str | None) -> bool:
    """A record of a known type whose every recipient is a readable address (not ours, which
    :func:`credits_account` already ruled out): readably about someone else."""
    if kind is None:
        return False
    if kind == "invoke_host_function":
        # Every change readably credits someone else (or no one: a burn); an empty list is a
        # contract call that moved no value.
        return all(
            isinstance(c, dict) and (c.get("to") in (None, "") or _is_address(c.get("to")))
            for c in _changes(record)
        )
    return all(_is_address(record.get(name)) for name in CREDITED_FIELDS[kind][:1])


def _successful(record: dict[str, Any]) -> bool:
    flag = record.get("transaction_successful")
    if flag is None:
        transaction = record.get("transaction")
        flag = transaction.get("successful") if isinstance(transaction, dict) else None
    if not isinstance(flag, bool):
        raise MalformedRecord("no transaction_successful flag")
    return flag


def inbound_transfers(record: Any, account: str) -> list[IncomingPayment]:
    """What this record brought to ``account``; raises :class:`MalformedRecord` (or any
    ValueError/TypeError/KeyError) for a record we cannot read as either inbound or not ours.

    ``/accounts/{G}/payments`` lists only records involving G, so a record is skipped only when
    it is recognisably not a credit to us: we sent it (refunds, which the refunds table
    records), or every recipient it names is a readable address of someone else. Anything else
    that credits us in a shape we do not know is quarantined, never skipped."""
    if not isinstance(record, dict):
        raise MalformedRecord(f"record is a {type(record).__name__}, not an object")
    kind = operation_type(record)
    if not credits_account(record, kind, account):
        if sent_by_account(record, account) or credits_only_others(record, kind):
            return []
        if record.get("transaction_successful") is False:
            return []  # a failed transaction moved nothing
        raise MalformedRecord("the record neither credits nor debits us in a shape we know")
    if kind is None:
        raise MalformedRecord(f"unknown operation type {record.get('type')!r:.80} credits us")
    if not _successful(record):
        return []  # a failed transaction moved nothing
    if kind in CLASSIC_PAYMENTS:
        if record.get("from") == account:
            # Self-payment: nothing arrived (and refunding it would loop).
            return []
        return [_classic(record, kind, account)]
    if kind == "create_account":
        return [_account_funding(record, kind, "funder", _amount(record.get("starting_balance")))]
    if kind == "account_merge":
        return [_account_funding(record, kind, "account", None)]
    return _contract_credits(record, account)


# --- building rows ------------------------------------------------------------------------------


def _common(record: dict[str, Any], kind: str) -> dict[str, Any]:
    transaction = record.get("transaction")
    if not isinstance(transaction, dict):
        raise MalformedRecord("the joined transaction is not an object")
    memo: Memo = memo_from_transaction(transaction)
    ledger = transaction.get("ledger")
    if ledger is not None and (not isinstance(ledger, int) or isinstance(ledger, bool)):
        raise MalformedRecord(f"ledger {ledger!r} is not an integer")
    if ledger is not None and not 0 <= ledger < 2**63:
        raise MalformedRecord(f"ledger {ledger!r} out of range")
    return {
        "operation_id": _token(record.get("id"), "id"),
        "paging_token": _token(record.get("paging_token"), "paging_token"),
        "transaction_hash": _hash(record.get("transaction_hash")),
        "operation_type": kind,
        "memo_type": memo.type,
        "memo": memo.value,
        "ledger": ledger,
        "ledger_time": _time(record.get("created_at") or transaction.get("created_at")),
    }


def _classic(record: dict[str, Any], kind: str, account: str) -> IncomingPayment:
    asset_type, code, issuer = _asset(record)
    from_account = _g_account(record.get("from"), "from")
    to_account = _g_account(record.get("to"), "to")
    if to_account != account:
        # Credited through to_muxed only: Horizon always names the G-address in ``to``.
        raise MalformedRecord("to_muxed is ours but to is not the system account")
    # The refund goes to from_muxed and the order is named by to_muxed's id: each must be an
    # address of the account the operation names, or a record could redirect either.
    from_muxed, _ = _muxed_of(record, "from", from_account)
    _, to_muxed_id = _muxed_of(record, "to", to_account)
    return IncomingPayment(
        **_common(record, kind),
        from_account=from_account,
        from_muxed=from_muxed,
        to_account=to_account,
        to_muxed_id=to_muxed_id,
        asset_type=asset_type,
        asset_code=code,
        asset_issuer=issuer,
        amount=_amount(record.get("amount")),
    )


def _muxed_of(record: dict[str, Any], side: str, account: str) -> tuple[str | None, int | None]:
    """``<side>_muxed`` and its id, checked against each other and against ``account``."""
    address = record.get(f"{side}_muxed") or None
    stated_id = _muxed_id(record.get(f"{side}_muxed_id"))
    if address is None:
        if stated_id is not None:
            raise MalformedRecord(f"{side}_muxed_id without {side}_muxed")
        return None, None
    if not _is_muxed(address):
        raise MalformedRecord(f"{side}_muxed is not an M-address")
    muxed = MuxedAccount.from_account(address)
    if muxed.account_id != account:
        raise MalformedRecord(f"{side}_muxed is not an address of {side}")
    if stated_id is not None and stated_id != muxed.account_muxed_id:
        raise MalformedRecord(f"{side}_muxed_id is not the id of {side}_muxed")
    return address, muxed.account_muxed_id


def _account_funding(
    record: dict[str, Any], kind: str, sender_field: str, amount: Decimal | None
) -> IncomingPayment:
    """create_account / account_merge into the system account: native XLM."""
    to_field = "account" if kind == "create_account" else "into"
    return IncomingPayment(
        **_common(record, kind),
        from_account=_g_account(record.get(sender_field), sender_field),
        from_muxed=None,
        to_account=_g_account(record.get(to_field), to_field),
        to_muxed_id=None,
        asset_type="native",
        asset_code=None,
        asset_issuer=None,
        amount=amount,
    )


def _contract_credits(record: dict[str, Any], account: str) -> list[IncomingPayment]:
    common = _common(record, "invoke_host_function")
    credits: list[IncomingPayment] = []
    # Key: ``<operation id>:<index>``. The index is the change's position in Horizon's list,
    # which follows the contract's events in ledger order and so is the same on every replay.
    # A content key (asset, from, amount) would not be unique (one call may make two equal
    # transfers), and re-keying would store every already-ingested credit a second time.
    for index, change in enumerate(_changes(record)):
        if not isinstance(change, dict):
            raise MalformedRecord(f"balance change {index} is not an object")
        if _underlying(change.get("to")) != account:
            continue  # debits, and credits to others, brought us nothing
        if change.get("to") != account:
            raise MalformedRecord(f"balance change {index} credits an M-address, not our G")
        if change.get("type") not in CREDITING_CHANGES:
            raise MalformedRecord(f"balance change type {change.get('type')!r} credits us")
        asset_type, code, issuer = _asset(change)
        sender = change.get("from")
        if change.get("type") == "mint" and not sender:
            sender = issuer  # a mint comes from the asset's issuer (its admin)
        sender = _payer(sender)
        if sender == account:
            continue  # from us to us: nothing arrived
        credits.append(
            IncomingPayment(
                **{**common, "operation_id": f"{common['operation_id']}:{index}"},
                from_account=sender,
                from_muxed=None,
                to_account=account,
                to_muxed_id=_muxed_id(change.get("destination_muxed_id")),
                asset_type=asset_type,
                asset_code=code,
                asset_issuer=issuer,
                amount=_amount(change.get("amount")),
            )
        )
    return credits


# --- field checks -------------------------------------------------------------------------------


def _token(value: Any, name: str) -> str:
    if not isinstance(value, str) or not TOKEN.fullmatch(value):
        raise MalformedRecord(f"{name} {value!r:.80} is not a Horizon id")
    return value


def _hash(value: Any) -> str:
    if not isinstance(value, str) or not _HASH.fullmatch(value):
        raise MalformedRecord(f"transaction_hash {value!r:.80} is not 64 hex digits")
    return value


def _g_account(value: Any, name: str) -> str:
    if not isinstance(value, str) or not StrKey.is_valid_ed25519_public_key(value):
        raise MalformedRecord(f"{name} {value!r:.80} is not a G-address")
    return value


def _payer(value: Any) -> str:
    """A contract transfer's sender: an account (G...) or a contract (C...)."""
    if isinstance(value, str) and (
        StrKey.is_valid_ed25519_public_key(value) or StrKey.is_valid_contract(value)
    ):
        return value
    raise MalformedRecord(f"from {value!r:.80} is neither a G- nor a C-address")


def _is_muxed(value: Any) -> bool:
    if not isinstance(value, str) or not value.startswith("M"):
        return False
    try:
        MuxedAccount.from_account(value)
    except Exception:  # the SDK raises several types for a bad strkey
        return False
    return True


def _muxed_id(value: Any) -> int | None:
    if value is None or value == "":
        return None
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    # isdigit() alone accepts other scripts' digits ("٣", "１２"), which int() then reads.
    if not isinstance(text, str) or not (text.isascii() and text.isdigit()) or len(text) > 20:
        raise MalformedRecord(f"muxed id {value!r:.80} is not an unsigned integer")
    number = int(text)
    if number > MAX_MUXED_ID:
        raise MalformedRecord(f"muxed id {value!r:.80} does not fit 64 bits")
    return number


def _asset(fields: dict[str, Any]) -> tuple[str, str | None, str | None]:
    asset_type = fields.get("asset_type")
    if asset_type == "native":
        return "native", None, None
    if asset_type not in CREDIT_ASSET_TYPES:
        raise MalformedRecord(f"asset_type {asset_type!r:.80} is not a Stellar asset type")
    code = fields.get("asset_code")
    if not isinstance(code, str) or not _ASSET_CODE.fullmatch(code):
        raise MalformedRecord(f"asset_code {code!r:.80} is not an asset code")
    return asset_type, code, _g_account(fields.get("asset_issuer"), "asset_issuer")


def _amount(value: Any) -> Decimal:
    """Horizon writes amounts as decimal strings with at most 7 places; anything else is odd."""
    if not isinstance(value, str) or len(value) > 40:
        raise MalformedRecord(f"amount {value!r:.80} is not a decimal string")
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise MalformedRecord(f"amount {value!r:.80} is not a number") from exc
    if not amount.is_finite() or not Decimal(0) < amount <= MAX_AMOUNT:
        raise MalformedRecord(f"amount {value!r:.80} is out of range")
    if amount != amount.quantize(Decimal("0.0000001")):
        raise MalformedRecord(f"amount {value!r:.80} has more than 7 decimal places")
    return amount.quantize(Decimal("0.0000001"))


def _time(value: Any) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise MalformedRecord(f"created_at {value!r:.80} is not a time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedRecord(f"created_at {value!r:.80} is not a time") from exc
    if parsed.tzinfo is None:
        raise MalformedRecord(f"created_at {value!r:.80} has no offset")
    return parsed


# --- quarantine ---------------------------------------------------------------------------------

MAX_DEPTH = 24
MAX_TEXT = 4000


def clean_text(value: str, limit: int = MAX_TEXT) -> str:
    """Text PostgreSQL accepts in ``text`` and ``jsonb``: no NUL, no lone surrogate."""
    text = value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return text[:limit]


def sanitise(value: Any, depth: int = 0) -> Any:
    """A JSON value that round-trips through jsonb: strings cleaned, non-finite floats and
    absurd integers as text, nesting cut at MAX_DEPTH."""
    if depth > MAX_DEPTH:
        return "<nested too deep>"
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, int):
        return value if abs(value) < 10**30 else clean_text(str(value)[:60])
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {clean_text(str(k), 200): sanitise(v, depth + 1) for k, v in list(value.items())}
    if isinstance(value, list | tuple):
        return [sanitise(v, depth + 1) for v in value]
    return clean_text(repr(value), 200)


def record_key(record: Any) -> str:
    """What identifies a record in quarantine: its paging token, its id, or a content hash."""
    if isinstance(record, dict):
        for name in ("paging_token", "id"):
            value = record.get(name)
            if isinstance(value, str) and TOKEN.fullmatch(value):
                return value
    canonical = json.dumps(sanitise(record), sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
