"""Reply texts: one catalogue (sms/texts.toml), rendered in the subscriber's language (az default).

The catalogue is checked when it loads: every template present in every language, only known
placeholders, and every template rendered with worst-case figures fits 2 SMS parts. A bad file stops
start-up with an error naming the template, never a truncated SMS to a subscriber.
"""
from __future__ import annotations

import os
import string
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from babel.dates import format_date, format_time

from billing.datafile import data_path, read_toml
from billing.money import fmt_azn
from billing.tariffs import LANGUAGES

from .encoding import size_of

DEFAULT_PATH = Path(__file__).with_name("texts.toml")
DEFAULT_LANGUAGE = "az"

# Each template and the placeholders it may use. The kind of a placeholder decides how it is
# formatted and which worst-case value the length check feeds it.
AMOUNT, SIGNED_AMOUNT, FEE, DATE, WHEN, NUMBER, SERIAL, COUNT, TARIFF, WORD = (
    "amount", "signed-amount", "fee", "date", "when", "number", "serial", "count", "tariff", "word")
FIELDS = {
    "balance": AMOUNT, "billed": AMOUNT, "current": AMOUNT, "advance": AMOUNT, "usage": AMOUNT,
    "value": SIGNED_AMOUNT, "change": SIGNED_AMOUNT, "fee": FEE, "expires": DATE, "ends": DATE,
    "when": WHEN, "number": NUMBER, "serial": SERIAL, "count": COUNT, "tariff": TARIFF,
    "roaming": WORD,
}
TEMPLATES = {
    "prepaid_balance": {"balance", "expires", "ends"},
    "postpaid_balance": {"billed", "current", "advance"},
    "shared_postpaid": {"number", "billed", "current", "advance"},
    "shared_prepaid": {"number", "balance", "expires"},
    "use_650": set(), "use_2112": set(),
    "grant_made": {"number"}, "grant_exists": {"number"}, "grant_needs_postpaid": set(), "grant_self": set(),
    "revoke_done": {"number"}, "revoke_none": {"number"},
    "revoke_all_done": {"count"}, "revoke_all_none": set(),
    "shared_refused": set(), "invalid_number": set(),
    "line_info": {"tariff", "roaming"}, "roaming_on": set(), "roaming_off": set(),
    "card_unused": {"serial"}, "card_used": {"serial", "when"}, "card_unknown": {"serial"},
    "usage_2112": {"fee"}, "usage_650": set(), "usage_1005": {"fee"}, "usage_1003": {"fee"},
    "not_served": set(), "unknown_sender": set(), "insufficient_balance": {"fee"}, "unavailable": set(),
    "balance_changed_balance": {"change", "value"}, "balance_changed_current": {"change", "value"},
    "bill_issued": {"usage", "billed", "advance"},
    "usage_700": set(),
    "friend_credit_sent": {"balance", "number"}, "friend_credit_declined": {"number"},
    "friend_credit_none": set(), "friend_credit_expired": set(), "friend_credit_refused": set(),
}
WORDS = {"roaming": ("roaming_on", "roaming_off")}  # templates that are words inside other templates

TARIFF_TITLE_MAX = 24  # longer titles would break the length guarantee: refused at load
_WORST_NUMBER = "0501234567"
_WORST_SERIAL = "9999999999"
_WORST_COUNT = "9999"
_WORST_AMOUNT = "-9999999.99"
_WORST_SIGNED = "-9999999.99"
_WORST_FEE = "9999.9999"
_WORST_TARIFF = "Ж" * TARIFF_TITLE_MAX  # not GSM-7: forces the tighter UCS-2 limit


class InvalidTexts(Exception):
    """The catalogue is unusable; the message names the language and template."""


def fmt_fee(fee: Decimal) -> str:
    """0.02 stays '0.02', 0.0236 keeps its four places: a price list shows what is charged."""
    text = f"{fee.normalize():f}"
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def fmt_signed(amount: Decimal) -> str:
    return ("+" if amount > 0 else "") + fmt_azn(amount)


def fmt_number(msisdn: str) -> str:
    """'+994501234567' -> '0501234567', as subscribers write numbers to each other."""
    return "0" + msisdn[4:] if msisdn.startswith("+994") else msisdn


# Babel's own "long" pattern, minus Russian's trailing "г." that collides with a full stop.
DATE_PATTERNS = {"az": "d MMMM y", "en": "MMMM d, y", "ru": "d MMMM y"}


def fmt_date(value: date, language: str) -> str:
    return format_date(value, DATE_PATTERNS.get(language, "long"), locale=language)


def fmt_when(value: datetime, language: str) -> str:
    return f"{fmt_date(value.date(), language)} {format_time(value.time(), 'HH:mm', locale=language)}"


def _longest_date(language: str) -> str:
    return max((fmt_date(date(2026, month, 28), language) for month in range(1, 13)), key=len)


def _worst_values(language: str, roaming_words: dict[str, str]) -> dict[str, str]:
    longest_date = _longest_date(language)
    when = f"{longest_date} 23:59"
    by_kind = {
        AMOUNT: _WORST_AMOUNT, SIGNED_AMOUNT: _WORST_SIGNED, FEE: _WORST_FEE, DATE: longest_date,
        WHEN: when, NUMBER: _WORST_NUMBER, SERIAL: _WORST_SERIAL, COUNT: _WORST_COUNT,
        TARIFF: _WORST_TARIFF, WORD: max(roaming_words.values(), key=len),
    }
    return {name: by_kind[kind] for name, kind in FIELDS.items()}


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


@dataclass(frozen=True)
class Catalogue:
    texts: dict[str, dict[str, str]]

    def template(self, key: str, language: str) -> str:
        return self.texts[language if language in self.texts else DEFAULT_LANGUAGE][key]

    def render(self, key: str, language: str, **values) -> str:
        return self.template(key, language).format(**values)

    def worst_case(self, key: str, language: str) -> str:
        """The template filled with the longest values it can receive."""
        words = {w: self.template(w, language) for w in WORDS["roaming"]}
        return self.render(key, language, **_worst_values(language, words))


def check_catalogue(raw: dict) -> Catalogue:
    for language in LANGUAGES:
        if language not in raw:
            raise InvalidTexts(f"texts: language {language!r} missing")
    unknown_languages = set(raw) - set(LANGUAGES)
    if unknown_languages:
        raise InvalidTexts(f"texts: unknown language(s) {sorted(unknown_languages)}")
    texts = {}
    for language in LANGUAGES:
        section = raw[language]
        extra = set(section) - set(TEMPLATES)
        if extra:
            raise InvalidTexts(f"texts.{language}: unknown template(s) {sorted(extra)}")
        for key, allowed in TEMPLATES.items():
            text = section.get(key)
            if not isinstance(text, str) or not text.strip():
                raise InvalidTexts(f"texts.{language}.{key}: missing")
            used = _placeholders(text)
            if used - allowed:
                raise InvalidTexts(f"texts.{language}.{key}: unknown placeholder(s) {sorted(used - allowed)}")
        texts[language] = dict(section)
    catalogue = Catalogue(texts)
    for language in LANGUAGES:
        for key in TEMPLATES:
            sample = catalogue.worst_case(key, language)
            size = size_of(sample)
            if size.units > size.limit:
                raise InvalidTexts(
                    f"texts.{language}.{key}: {size.units} {size.coding} characters with worst-case "
                    f"figures, more than the {size.limit} that fit 2 SMS parts"
                )
    return catalogue


def check_tariff_titles(tariffs) -> None:
    """The length guarantee assumes tariff titles of at most TARIFF_TITLE_MAX characters."""
    for tariff in tariffs.tariffs.values():
        for language, title in tariff.title.items():
            if len(title) > TARIFF_TITLE_MAX:
                raise InvalidTexts(
                    f"tariffs.{tariff.name}.title.{language}: {len(title)} characters, at most "
                    f"{TARIFF_TITLE_MAX} fit the SMS replies"
                )


def load_catalogue(path: str | os.PathLike | None = None) -> Catalogue:
    path = data_path(path, "SELFCARE_SMS_TEXTS", DEFAULT_PATH)
    return check_catalogue(read_toml(path, InvalidTexts))
