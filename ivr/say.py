"""The say grammar: an amount or a date -> the prompt ids the IVR plays, in az, en or ru.

Asterisk has no Azerbaijani SayNumber and its Russian one does not decline currency nouns, so we
compose speech from recorded atoms ourselves (as Asterisk's main/say.c does): `num/20` + `num/1`
for 21, `cur/manat-2` for "маната". Every id exists in every language folder; the languages differ
only in which ids the grammar picks (plural form, feminine thousands, no `bir` before min) and in
the catalogue's words. The choices are written down in docs/say-grammar.md.

Pure functions: no I/O beyond reading the catalogue for `words`.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from billing.money import manat_qepik, to_qepik

from prompts import catalogue

LANGUAGES = catalogue.LANGUAGES
MAX_AMOUNT = Decimal("1000000.00")
FIRST_YEAR, LAST_YEAR = 2000, 2099  # the Russian ordinal year prompts cover this century


# --- numbers ---------------------------------------------------------------------------------

def plural_form(n: int, lang: str) -> str:
    """Which noun form follows the number n: '1', '2' or '5' (the ids' suffixes).

    Russian: 1, 21, 101 -> '1'; 2-4, 22-24 -> '2'; 0, 5-20, 11-14, 25-30 -> '5'.
    English: 1 -> '1', everything else (zero included) -> '5' ("zero manats").
    Azerbaijani: a noun after a numeral stays singular, always '1'.
    """
    if lang == "az":
        return "1"
    if lang == "en":
        return "1" if n == 1 else "5"
    if 11 <= n % 100 <= 14:
        return "5"
    last = n % 10
    if last == 1:
        return "1"
    if 2 <= last <= 4:
        return "2"
    return "5"


def _unit(n: int, feminine: bool) -> str:
    if feminine and n in (1, 2):
        return f"num/{n}-f"
    return f"num/{n}"


def _below_thousand(n: int, feminine: bool = False) -> list[str]:
    """1..999 in atoms; the atoms are the same in every language (num/200 = 'iki yüz')."""
    ids = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        ids.append(f"num/{hundreds * 100}")
    if rest >= 20:
        tens, rest = divmod(rest, 10)
        ids.append(f"num/{tens * 10}")
    if rest:
        ids.append(_unit(rest, feminine))
    return ids


def _scaled(count: int, scale: str, lang: str) -> list[str]:
    """`count` thousands or millions (count 1..999)."""
    if lang == "az" and scale == "thousand" and count == 1:
        return [f"num/{scale}-1"]  # "min", never "bir min"
    # Russian тысяча is feminine: одна тысяча, две тысячи; миллион is masculine.
    feminine = lang == "ru" and scale == "thousand"
    return _below_thousand(count, feminine) + [f"num/{scale}-{plural_form(count, lang)}"]


def say_number(n: int, lang: str, feminine: bool = False) -> list[str]:
    """A cardinal 0..999,999,999 as prompt ids (feminine: Russian одна/две in the last group)."""
    _check_language(lang)
    if not 0 <= n < 1_000_000_000:
        raise ValueError(f"cannot say {n}: numbers 0..999999999 only")
    if n == 0:
        return ["num/0"]
    millions, rest = divmod(n, 1_000_000)
    thousands, rest = divmod(rest, 1000)
    ids = []
    if millions:
        ids += _scaled(millions, "million", lang)
    if thousands:
        ids += _scaled(thousands, "thousand", lang)
    if rest:
        ids += _below_thousand(rest, feminine and lang == "ru")
    return ids


# --- amounts ---------------------------------------------------------------------------------

def _as_amount(amount: Decimal | int | str) -> Decimal:
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount).strip())
    except InvalidOperation:
        raise ValueError(f"not an amount: {amount!r}") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"cannot say {amount!r}: amounts 0.00..1000000.00 only")
    if to_qepik(value) > MAX_AMOUNT:
        raise ValueError(f"cannot say {amount!r}: amounts 0.00..1000000.00 only")
    return value


def say_amount(amount: Decimal | int | str, lang: str) -> list[str]:
    """AZN amount -> prompt ids, rounded half up to qəpik.

    12.50 -> twelve manats (and) fifty qəpik; 12.00 -> twelve manats; 0.50 -> fifty qəpik;
    0.00 -> zero manats. A zero part is left out unless the whole amount is zero.
    """
    _check_language(lang)
    manat, qepik = manat_qepik(_as_amount(amount))
    if manat == 0 and qepik == 0:
        return ["num/0", f"cur/manat-{plural_form(0, lang)}"]
    ids = []
    if manat:
        ids += say_number(manat, lang) + [f"cur/manat-{plural_form(manat, lang)}"]
    if qepik:
        if ids and lang == "en":
            ids.append("word/and")
        ids += say_number(qepik, lang) + [f"cur/qepik-{plural_form(qepik, lang)}"]
    return ids


# --- durations -------------------------------------------------------------------------------

MAX_MINUTES = 7 * 24 * 60  # the longest wait a flow speaks (billing's card throttle window at most)


def say_minutes(n: int, lang: str) -> list[str]:
    """A duration in minutes as a noun phrase in the nominative: twenty one minutes, ru двадцать
    одна минута (минута is feminine). Flows introduce it with a label ("До следующей попытки
    осталось:"), so the Russian accusative (через одну минуту) is never needed."""
    _check_language(lang)
    if not 1 <= n <= MAX_MINUTES:
        raise ValueError(f"cannot say {n} minutes: 1..{MAX_MINUTES} only")
    return say_number(n, lang, feminine=True) + [f"time/minute-{plural_form(n, lang)}"]


# --- dates -----------------------------------------------------------------------------------

def _russian_year(year: int) -> list[str]:
    """2026 -> две тысячи двадцать шестого года (the last word is an ordinal, genitive)."""
    if year == 2000:
        return ["ordgen/2000", "word/year"]
    rest = year - 2000
    ids = ["num/2-f", "num/thousand-2"]
    if rest < 20 or rest % 10 == 0:
        ids.append(f"ordgen/{rest}")
    else:
        ids += [f"num/{rest // 10 * 10}", f"ordgen/{rest % 10}"]
    return ids + ["word/year"]


def say_year(year: int, lang: str) -> list[str]:
    _check_language(lang)
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(f"cannot say the year {year}: {FIRST_YEAR}..{LAST_YEAR} only")
    if lang == "ru":
        return _russian_year(year)
    return say_number(year, lang)  # two thousand twenty six / iki min iyirmi altı


def _as_date(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"not a date: {value!r} (use YYYY-MM-DD)") from None


def say_date(date: dt.date | str, lang: str, with_year: bool = True) -> list[str]:
    """15 Dec 2026 -> ru пятнадцатое декабря две тысячи двадцать шестого года,
    en the fifteenth of December two thousand twenty six, az on beş dekabr iki min iyirmi altı."""
    _check_language(lang)
    day = _as_date(date)
    ids = [f"day/{day.day}", f"month/{day.month}"]
    if with_year:
        ids += say_year(day.year, lang)
    return ids


# --- words -----------------------------------------------------------------------------------

def words(prompt_ids: list[str], lang: str) -> str:
    """The text the prompts speak, from the catalogue: what a caller hears, as one line."""
    book = catalogue.load()
    return " ".join(book.text(prompt_id, lang) for prompt_id in prompt_ids)


_SAYERS = {"amount": say_amount, "date": say_date}


def say_words(kind: str, value, lang: str) -> str:
    """`selfcare say amount|date VALUE --lang L`: the words the IVR speaks for it."""
    try:
        sayer = _SAYERS[kind]
    except KeyError:
        raise ValueError(f"cannot say a {kind!r}: use one of {', '.join(_SAYERS)}") from None
    return words(sayer(value, lang), lang)


def _check_language(lang: str) -> None:
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}: use one of {', '.join(LANGUAGES)}")
