"""Exact AZN amounts.

Amounts are `Decimal` with four places (the operator lists 0.0236 AZN) and are stored as integer
units of 0.0001 AZN, so no float ever touches money. Rounding to qəpik (0.01) happens only for
display and speech, and which way depends on whose money it is: money a subscriber holds (a
balance, an advance) is shown rounded down, so no figure promises money they do not have; money
they owe (a bill, usage, a credit debt) is shown rounded up, so none is hidden; a price is shown
half up, as on a price list (the listed prices are whole qəpik anyway).
"""
from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation

from .errors import InvalidAmount

UNITS_PER_AZN = 10_000
PLACES = Decimal("0.0001")
QEPIK = Decimal("0.01")
ZERO = Decimal("0.0000")
MAX_AMOUNT = Decimal("1000000")


def parse_amount(text: str | Decimal | int, *, allow_zero: bool = True) -> Decimal:
    """An amount typed by an operator or carried in data: '12.5', '0.0236'; never negative."""
    try:
        value = Decimal(str(text).strip())
    except (InvalidOperation, ValueError):
        raise InvalidAmount(f"not an amount: {text!r} (use AZN with a dot, e.g. 12.50)") from None
    if not value.is_finite():
        raise InvalidAmount(f"not an amount: {text!r}")
    if value < 0:
        raise InvalidAmount(f"amount must not be negative: {text}")
    if value == 0 and not allow_zero:
        raise InvalidAmount("amount must be greater than zero")
    if value != value.quantize(PLACES):
        raise InvalidAmount(f"at most 4 decimal places: {text}")
    if value > MAX_AMOUNT:
        raise InvalidAmount(f"amount too large: {text}")
    return value.quantize(PLACES)


_PAYMENT = re.compile(r"^[0-9]{1,7}(\.[0-9]{1,2})?$")


def parse_payment(text: str | Decimal | int) -> Decimal:
    """A top-up as a person pays it: plain manat with at most 2 places ('5', '12.50'), above zero.
    '1e3', '0.001' or '1,5' are refused, not guessed at."""
    shown = f"{text:f}" if isinstance(text, Decimal) else str(text).strip()
    if isinstance(text, Decimal) and text == text.quantize(QEPIK):
        shown = f"{text.quantize(QEPIK):f}"
    if not _PAYMENT.match(shown):
        raise InvalidAmount(f"not a payment: {text!r} (manat with at most 2 places, e.g. 5 or 12.50)")
    return parse_amount(shown, allow_zero=False)


def to_units(amount: Decimal) -> int:
    return int((amount * UNITS_PER_AZN).to_integral_exact())


def from_units(units: int) -> Decimal:
    return (Decimal(units) / UNITS_PER_AZN).quantize(PLACES)


def to_qepik(amount: Decimal) -> Decimal:
    return amount.quantize(QEPIK, rounding=ROUND_HALF_UP)


def held(amount: Decimal) -> Decimal:
    """Money the subscriber has, as shown: 0.0164 -> 0.01 (a 0.02 fee is then plainly out of reach)."""
    return amount.quantize(QEPIK, rounding=ROUND_FLOOR)


def owed(amount: Decimal) -> Decimal:
    """Money the subscriber owes, as shown: 0.0036 -> 0.01, never 0.00."""
    return amount.quantize(QEPIK, rounding=ROUND_CEILING)


def whole_qepik_down(amount: Decimal) -> Decimal:
    """The part of an amount that is whole qəpik (what a bill can ask for); the rest is carried."""
    return amount.quantize(QEPIK, rounding=ROUND_FLOOR)


def fmt_azn(amount: Decimal) -> str:
    """'12.50': what a subscriber reads; rounded half up to qəpik."""
    return f"{to_qepik(amount):.2f}"


def fmt_exact(amount: Decimal) -> str:
    """'12.4800': the stored value, for machine-readable output."""
    return f"{amount.quantize(PLACES):.4f}"


def manat_qepik(amount: Decimal) -> tuple[int, int]:
    """(manat, qəpik) after rounding half up, for speech."""
    rounded = to_qepik(abs(amount))
    manat = int(rounded)
    return manat, int((rounded - manat) * 100)
