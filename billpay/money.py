"""Money: naira as integer kobo, cNGN as Decimal with exactly 7 places (Stellar's precision).

1 cNGN is 1 naira. Nothing here accepts or returns a float.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

KOBO_PER_NAIRA = 100
STROOPS_PER_UNIT = 10_000_000
CNGN_QUANTUM = Decimal("0.0000001")
NAIRA_QUANTUM = Decimal("0.01")


# No amount we handle has more digits before the point than this; "1e999999" is not an amount
# (and would overflow Decimal arithmetic further on instead of failing here, as a MoneyError).
MAX_INTEGER_DIGITS = 15


class MoneyError(ValueError):
    """An amount that is not a valid money value (bad text, float, too many decimals)."""


def _shown(value: object) -> str:
    """``value`` for an error message, cut short (str() of a 5000-digit int itself raises)."""
    try:
        return repr(value)[:40]
    except ValueError:
        return f"<{type(value).__name__} too long to show>"


def _to_decimal(value: object) -> Decimal:
    if isinstance(value, float):
        raise MoneyError("floats are not accepted for money; pass a str, int or Decimal")
    if isinstance(value, bool):
        raise MoneyError("booleans are not money")
    try:
        result = (
            Decimal(str(value).strip().replace(",", ""))
            if isinstance(value, str)
            else Decimal(value)
        )  # type: ignore[arg-type]
    except (InvalidOperation, TypeError, ValueError) as exc:  # ValueError: int-digit limit
        raise MoneyError(f"not a number: {_shown(value)}") from exc
    if not result.is_finite():
        raise MoneyError(f"not a finite amount: {value!r}")
    if result.adjusted() >= MAX_INTEGER_DIGITS:
        raise MoneyError(f"amount too large: {_shown(value)}")
    return result


def naira_to_kobo(naira: object) -> int:
    """``"5000"`` -> 500000. Rejects fractions of a kobo rather than rounding them away."""
    amount = _to_decimal(naira)
    kobo = amount * KOBO_PER_NAIRA
    if kobo != kobo.to_integral_value():
        raise MoneyError(f"{naira!r} has more than 2 decimal places")
    return int(kobo)


def kobo_to_naira(kobo: int) -> Decimal:
    return (Decimal(int(kobo)) / KOBO_PER_NAIRA).quantize(NAIRA_QUANTUM)


def naira_text(kobo: int | None) -> str | None:
    """Money in JSON: kobo as a decimal string of naira (``295000`` -> ``"2950.00"``); None
    (no fixed amount) stays None."""
    return None if kobo is None else str(kobo_to_naira(kobo))


def kobo_to_cngn(kobo: int) -> Decimal:
    """Kobo to a cNGN amount with exactly 7 decimal places (1 cNGN = 1 NGN)."""
    return (Decimal(int(kobo)) / KOBO_PER_NAIRA).quantize(CNGN_QUANTUM)


def parse_cngn(value: object) -> Decimal:
    """A cNGN amount as Horizon writes it (``"5000.0000000"``); at most 7 decimals, not negative."""
    amount = _to_decimal(value)
    if amount < 0:
        raise MoneyError(f"negative amount: {value!r}")
    quantized = amount.quantize(CNGN_QUANTUM, rounding=ROUND_HALF_EVEN)
    if quantized != amount:
        raise MoneyError(f"{value!r} has more than 7 decimal places")
    return quantized


def cngn_to_stroops(amount: object) -> int:
    return int(parse_cngn(amount) * STROOPS_PER_UNIT)


def stroops_to_cngn(stroops: int) -> Decimal:
    return (Decimal(int(stroops)) / STROOPS_PER_UNIT).quantize(CNGN_QUANTUM)


def cngn_to_kobo(amount: object) -> int:
    """Exact conversion; raises when the amount is not a whole number of kobo."""
    stroops = cngn_to_stroops(amount)
    per_kobo = STROOPS_PER_UNIT // KOBO_PER_NAIRA
    if stroops % per_kobo:
        raise MoneyError(f"{amount!r} is not a whole number of kobo")
    return stroops // per_kobo


def format_cngn(amount: object) -> str:
    """The 7-decimal string Stellar expects: ``Decimal('5000')`` -> ``"5000.0000000"``."""
    return f"{parse_cngn(amount):.7f}"


def format_naira(kobo: int) -> str:
    return f"NGN {kobo_to_naira(kobo):,.2f}"
