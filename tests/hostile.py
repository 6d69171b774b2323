"""Hostile provider answers for the property tests: arbitrary bytes, and JSON shaped like the real
envelopes but carrying NULs, lone surrogates, a BOM, deep nesting, huge and odd numbers and wrong
types, behind random HTTP statuses and content types.

``answers()`` draws one ``httpx.Response``; ``adapter_calls()`` runs every adapter operation that
parses a body against one answer through an ``httpx.MockTransport``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from datetime import timedelta
from typing import Any

import httpx
from hypothesis import strategies as st

from billpay.catalogue import Catalogue
from billpay.config import Settings
from billpay.orders import BillOrder, BillType
from billpay.providers.base import make_attempt_reference
from billpay.providers.flutterwave import FlutterwaveProvider
from billpay.providers.vtpass import VTpassProvider
from tests.unit.provider_cases import NOW

BUILTIN = Catalogue.builtin()

BOM = b"\xef\xbb\xbf"
TOKEN = "26362054405982757802"
# Keys the adapters read, so drawn bodies reach the mapping code and not only the "no code" path.
KNOWN_KEYS = (
    "code", "content", "transactions", "status", "message", "data", "response_description",
    "token", "Token", "purchased_code", "mainToken", "bonusToken", "units", "Units",
    "mainTokenUnits", "bonusTokenUnits", "amount", "transaction_date", "Customer_Name",
    "customerName", "Address", "WrongBillersCode", "error", "Min_Purchase_Amount",
    "Max_Purchase_Amount", "Customer_Arrears", "response_code", "response_message", "name",
    "address", "minimum", "maximum", "recharge_token", "extra", "extras", "flw_ref", "reference",
    "tx_ref", "customer_reference", "variations", "varations", "variation_code",
    "variation_amount", "fixedPrice", "item_code", "fee", "transactionId", "meterNumber",
    "Customer_Number", "smartCardNumber", "date", "timezone",
)  # fmt: skip
# Number literals json.dumps cannot write: they are spliced into the text as they are.
ODD_NUMBERS = (
    "1e999999", "-1e999999", "-0", "NaN", "Infinity", "-Infinity", "9" * 5000, "1" + "0" * 400,
    "1e-999999", "0.000000000000000001", "123456789012345678901234567890", "2e308", "-5",
)  # fmt: skip
ODD_STRINGS = (
    "\x00", "ADA OBI\x00\x00\x00\x00", "\ud800", "a\udfffb", "\ufeff", "Token : " + TOKEN,
    "\x1b[31m", "N/A", "", "000", "success", "error", "delivered", "1e999999", "Infinity",
    "9" * 5000, "Africa/Lagos", "2025-03-10T12:37:04Z", "\u202e", "\x7f", "x" * 3000,
)  # fmt: skip


@dataclass(frozen=True)
class Raw:
    """A JSON fragment written verbatim (odd numbers, broken nesting)."""

    text: str


def _to_json(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        inner = ",".join(f"{json.dumps(str(k))}:{_to_json(v)}" for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ",".join(_to_json(v) for v in value) + "]"
    return json.dumps(value)  # ensure_ascii: lone surrogates go out as \ud800 escapes


any_char_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from(ODD_STRINGS),
    any_char_text,
    st.sampled_from(ODD_NUMBERS).map(Raw),
)
keys = st.one_of(st.sampled_from(KNOWN_KEYS), any_char_text)


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=6),
    )


json_values = st.recursive(leaves, _extend, max_leaves=25)


@st.composite
def envelopes(draw: st.DrawFn) -> Any:
    """A body shaped like a VTpass or Flutterwave envelope with hostile values."""
    body: dict[str, Any] = draw(st.dictionaries(st.sampled_from(KNOWN_KEYS), json_values))
    body["code"] = draw(st.one_of(st.sampled_from(["000", "020", "016", "015", "099"]), leaves))
    body["status"] = draw(st.one_of(st.sampled_from(["success", "error", "delivered"]), leaves))
    inner = draw(st.dictionaries(st.sampled_from(KNOWN_KEYS), json_values, max_size=8))
    body["content"] = draw(st.sampled_from([{"transactions": inner}, inner, [inner], None]))
    body["data"] = draw(st.sampled_from([inner, [inner], "x", None]))
    return body


def _deep(depth: int, wrap: str) -> str:
    if wrap == "list":
        return "[" * depth + "]" * depth
    return '{"token":' * depth + "1" + "}" * depth


deep_bodies = st.sampled_from([100_000, 5_000, 990, 400]).flatmap(
    lambda depth: st.sampled_from(["list", "token"]).map(lambda wrap: _deep(depth, wrap))
)
json_texts = st.one_of(envelopes().map(_to_json), json_values.map(_to_json), deep_bodies)
bodies = st.one_of(
    json_texts.map(lambda text: text.encode("utf-8", "surrogatepass")),
    json_texts.map(lambda text: BOM + text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=300),
    st.sampled_from([b"<html>meter 1111111111111 token " + TOKEN.encode() + b"</html>", b""]),
)
content_types = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "text/html", "text/plain; charset=bogus",
     "application/json; charset=utf-16", ""]
)  # fmt: skip
statuses = st.one_of(st.sampled_from([200, 200, 200, 400, 404, 500]), st.integers(200, 599))


@st.composite
def answers(draw: st.DrawFn) -> httpx.Response:
    headers = {"content-type": draw(content_types)}
    return httpx.Response(draw(statuses), content=draw(bodies), headers=headers)


# --- running the adapters -----------------------------------------------------------------

REFERENCE = make_attempt_reference("7K3M9QZ2XA", 1, NOW)
SETTINGS = Settings(
    vtpass_base_url="https://vtpass.test/api",
    vtpass_api_key="api-KEY-123",
    vtpass_public_key="PK_public_456",
    vtpass_secret_key="SK_secret_789",
    flutterwave_base_url="https://flw.test/v3",
    flutterwave_secret_key="FLWSECK_TEST-abcdef0123456789-X",
)
PREPAID = BillOrder(
    reference="7K3M9QZ2XA", phone="08031234567", bill_type=BillType.ELECTRICITY,
    biller="ikeja-electric", account_number="1111111111111", amount_kobo=200_000,
    account_type="prepaid",
)  # fmt: skip
DSTV = BillOrder(
    reference="7K3M9QZ2XA", phone="08031234567", bill_type=BillType.CABLE_TV, biller="dstv",
    account_number="0025401100", amount_kobo=180_000, product_code="dstv-padi",
)  # fmt: skip


def adapters(answer: httpx.Response) -> list[Any]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    clock = lambda: NOW + timedelta(hours=1)  # noqa: E731  past the "not found" grace
    return [
        VTpassProvider(SETTINGS, client, clock=clock, catalogue=BUILTIN),
        FlutterwaveProvider(SETTINGS, client, clock=clock, catalogue=BUILTIN),
    ]


def adapter_calls(answer: httpx.Response) -> list[tuple[str, Any]]:
    """(operation name, what the adapter returned) for every parsing operation of every adapter."""
    results: list[tuple[str, Any]] = []
    for provider in adapters(answer):
        operations: dict[str, Callable[[], Any]] = {
            "verify_prepaid": lambda p=provider: p.verify_account(PREPAID),
            "verify_dstv": lambda p=provider: p.verify_account(DSTV),
            "pay_prepaid": lambda p=provider: p.pay(PREPAID, REFERENCE),
            "pay_dstv": lambda p=provider: p.pay(DSTV, REFERENCE),
            "requery_prepaid": lambda p=provider: p.requery(PREPAID, REFERENCE),
            "catalogue": lambda p=provider: p.catalogue("dstv"),
        }
        for name, run in operations.items():
            results.append((f"{provider.name}.{name}", run()))
    return results


def strings_in(value: Any) -> list[str]:
    """Every string inside a result: its fields, its call record, keys and values of summaries."""
    if isinstance(value, str):
        return [value]
    if is_dataclass(value) and not isinstance(value, type):
        return [s for f in fields(value) for s in strings_in(getattr(value, f.name))]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings_in(k), *strings_in(v))]
    if isinstance(value, list | tuple):
        return [s for item in value for s in strings_in(item)]
    return []


def storable(text: str) -> bool:
    """What PostgreSQL text and jsonb accept: valid UTF-8 without NUL."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text
