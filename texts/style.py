"""One style per language for every figure a subscriber reads, on every channel.

Money is AZN with a dot, to the qəpik ("12.50"; a fee keeps the places it is charged in:
"0.0236"); a change carries its sign ("+5.00", "-0.60"); dates are the language's long form
without Russian's trailing "г." ("1 yanvar 2027", "January 1, 2027", "1 января 2027"); times are
24-hour; numbers are written as subscribers write them to each other ("0501234567").
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache

from babel.dates import format_date, format_time

from billing.money import fmt_azn

# Babel's own "long" pattern, minus Russian's trailing "г." that collides with a full stop.
DATE_PATTERNS = {"az": "d MMMM y", "en": "MMMM d, y", "ru": "d MMMM y"}


def _decimal(value) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def amount(value, _language: str) -> str:
    return fmt_azn(_decimal(value))


def signed_amount(value, _language: str) -> str:
    value = _decimal(value)
    return ("+" if value > 0 else "") + fmt_azn(value)


def fee(value, _language: str) -> str:
    """0.02 stays '0.02', 0.0236 keeps its four places: a price list shows what is charged."""
    text = f"{_decimal(value).normalize():f}"
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def signed_fee(value, language: str) -> str:
    """A ledger entry as posted: its sign and every place it was charged in ("-0.0236", "+5.00")."""
    value = _decimal(value)
    return ("+" if value > 0 else "") + fee(value, language)


def day(value, language: str) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        value = value.date()
    return _long_date(value, language)


@lru_cache(maxsize=8192)
def _long_date(value: date, language: str) -> str:
    # Babel parses the locale and the pattern on every call (~15 µs each): a balance reply names
    # two dates, and the same few hundred dates are asked about all day.
    return format_date(value, DATE_PATTERNS[language], locale=language)


def moment(value, language: str) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return f"{day(value, language)} {format_time(value.time(), 'HH:mm', locale=language)}"


def number(value, _language: str) -> str:
    """'+994501234567' -> '0501234567'; a foreign number stays international."""
    value = str(value)
    return "0" + value[4:] if value.startswith("+994") else value


def plain(value, _language: str) -> str:
    return str(value)


def longest_day(language: str) -> str:
    return max((day(date(2026, month, 28), language) for month in range(1, 13)), key=len)
