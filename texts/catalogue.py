"""The catalogue of everything a subscriber reads, one TOML file per section, checked as it loads.

Each entry declares its placeholders and their kinds; a channel passes plain values (a Decimal, a
date, an E.164 number) and the catalogue words them in the style of `texts.style`. At load every
entry must have az, en and ru, use exactly its declared placeholders, and fit its section's budget
when filled with the longest values its kinds can take. A bad file stops the process at start-up
with the file, the entry and the language named — never a 500 or a cut text in front of a subscriber.
"""
from __future__ import annotations

import os
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from billing.datafile import read_toml

from . import style
from .encoding import size_of

LANGUAGES = ("az", "en", "ru")
DEFAULT_LANGUAGE = "az"  # the operator's language, for subscribers we cannot look up
DEFAULT_DIR = Path(__file__).parent
USSD_MAX_CHARS = 182  # what a USSD gateway carries in one screen
TITLE_MAX = 24  # tariff and pack titles: longer ones would break the budgets, refused at start-up


class InvalidTexts(ValueError):
    """The catalogue (or a title it shows) is unusable; the message names the entry."""


def _sms_budget(text: str) -> str | None:
    size = size_of(text)
    if size.units > size.limit:
        return f"{size.units} {size.coding} characters, more than the {size.limit} that fit 2 SMS parts"
    return None


def _ussd_budget(text: str) -> str | None:
    if len(text) > USSD_MAX_CHARS:
        return f"{len(text)} characters, more than the {USSD_MAX_CHARS} of a USSD screen"
    return None


# section -> the budget a filled entry must keep (None: no limit, e.g. web pages). A section's
# file is <section>.toml; the ones listed here must exist.
BUDGETS: dict[str, Callable[[str], str | None] | None] = {
    "sms": _sms_budget,
    "notifications": _sms_budget,
    "ussd": _ussd_budget,
    "web": None,  # pages wrap; listed so that a missing web.toml stops start-up too
}


@dataclass(frozen=True)
class Kind:
    show: Callable[[object, str], str]
    worst: Callable[[str], str]  # the longest text it can give, per language


_LONGEST_AMOUNT = "-9999999.99"
KINDS = {
    "amount": Kind(style.amount, lambda _l: _LONGEST_AMOUNT),
    "signed-amount": Kind(style.signed_amount, lambda _l: _LONGEST_AMOUNT),
    "fee": Kind(style.fee, lambda _l: "9999.9999"),
    "signed-fee": Kind(style.signed_fee, lambda _l: "-9999999.9999"),
    "date": Kind(style.day, style.longest_day),
    "when": Kind(style.moment, lambda l: style.longest_day(l) + " 23:59"),
    "time": Kind(style.plain, lambda _l: "23:59"),  # a time of day, HH:MM as the sender formats it
    "number": Kind(style.number, lambda _l: "+994501234567"),
    "serial": Kind(style.plain, lambda _l: "9999999999"),
    "count": Kind(style.plain, lambda _l: "99999"),
    "code": Kind(style.plain, lambda _l: "99"),  # a part of a USSD code, e.g. 05 in *700#05#
    "otp": Kind(style.plain, lambda _l: "999999"),  # a one-time sign-in code (billing/signin.py)
    "title": Kind(style.plain, lambda _l: "Ж" * TITLE_MAX),  # not GSM-7: the tighter UCS-2 limit
}


@dataclass(frozen=True)
class Entry:
    key: str
    fields: dict  # placeholder -> kind name, or a tuple of entry keys ("" for nothing) shown in its place
    texts: dict[str, str]


@dataclass(frozen=True)
class Section:
    name: str
    entries: dict[str, Entry]

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def render(self, key: str, language: str, **values) -> str:
        entry = self.entries[key]
        language = language if language in LANGUAGES else DEFAULT_LANGUAGE
        if set(values) != set(entry.fields):
            raise TypeError(f"{self.name}.{key} takes {sorted(entry.fields)}, not {sorted(values)}")
        shown = {}
        for name, value in values.items():
            kind = entry.fields[name]
            if isinstance(kind, tuple):
                if value not in kind:
                    raise ValueError(f"{self.name}.{key}: {name} must be one of {kind}, not {value!r}")
                shown[name] = self.render(value, language) if value else ""
            else:
                shown[name] = KINDS[kind].show(value, language)
        return entry.texts[language].format(**shown)

    def render_from(self, key: str, language: str, values: dict) -> str:
        """The entry filled from `values`, taking only the fields it declares (a result object's
        figures, an outbox message's parameters)."""
        return self.render(key, language, **{name: values[name] for name in self.entries[key].fields})

    def worst_case(self, key: str, language: str) -> str:
        entry = self.entries[key]
        values = {}
        for name, kind in entry.fields.items():
            if isinstance(kind, tuple):
                values[name] = max((self.entries[k].texts[language] if k else "" for k in kind), key=len)
            else:
                values[name] = KINDS[kind].worst(language)
        return entry.texts[language].format(**values)


@dataclass(frozen=True)
class Catalogue:
    sections: dict[str, Section]

    def __getitem__(self, section: str) -> Section:
        return self.sections[section]

    def check_titles(self, tariffs, offers) -> None:
        """The budgets assume titles of at most TITLE_MAX characters: refuse longer ones at start-up."""
        named = [(f"tariffs [{t.name}]", t.title) for t in tariffs.tariffs.values()]
        named += [(f"offers packs [{p.code}]", p.title) for p in offers.packs.catalogue]
        for where, title in named:
            for language in LANGUAGES:
                text = title.get(language, "")
                if not text or len(text) > TITLE_MAX:
                    raise InvalidTexts(f"{where} title.{language}: {len(text)} characters, "
                                       f"1 to {TITLE_MAX} fit the texts that show it")


def _placeholders(where: str, text: str) -> set[str]:
    names = set()
    for _, name, spec, conversion in string.Formatter().parse(text):
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise InvalidTexts(f"{where}: placeholder {{{name}}} must be a plain name")
        names.add(name)
    return names


def _fields(where: str, raw, keys: set[str]) -> dict:
    if not isinstance(raw, dict):
        raise InvalidTexts(f"{where}: fields must be a table of placeholder = kind")
    fields = {}
    for name, kind in raw.items():
        if isinstance(kind, list):
            unknown = [k for k in kind if k and k not in keys]
            if unknown or not kind:
                raise InvalidTexts(f"{where}: field {name} lists unknown entries {unknown}")
            fields[name] = tuple(kind)
        elif kind in KINDS:
            fields[name] = kind
        else:
            raise InvalidTexts(f"{where}: field {name} has unknown kind {kind!r} (known: {', '.join(KINDS)})")
    return fields


def _entry(where: str, key: str, raw, keys: set[str]) -> Entry:
    if not isinstance(raw, dict):
        raise InvalidTexts(f"{where}: must be a table with az, en and ru")
    unknown = set(raw) - {"fields", *LANGUAGES}
    if unknown:
        raise InvalidTexts(f"{where}: unknown key(s) {sorted(unknown)}")
    fields = _fields(where, raw.get("fields", {}), keys)
    texts = {}
    for language in LANGUAGES:
        text = raw.get(language)
        if not isinstance(text, str) or not text.strip():
            raise InvalidTexts(f"{where} {language}: missing")
        used = _placeholders(f"{where} {language}", text)
        if used != set(fields):
            raise InvalidTexts(f"{where} {language}: placeholders {sorted(used)} differ from the declared "
                               f"fields {sorted(fields)}")
        texts[language] = text
    return Entry(key, fields, texts)


def _section(name: str, path: Path) -> Section:
    raw = read_toml(path, InvalidTexts)
    where = f"{path.name}"
    entries = {key: _entry(f"{where} [{key}]", key, value, set(raw)) for key, value in raw.items()}
    section = Section(name, entries)
    for key, entry in entries.items():
        for kind in entry.fields.values():
            if isinstance(kind, tuple) and any(k and entries[k].fields for k in kind):
                raise InvalidTexts(f"{where} [{key}]: an entry shown inside another has no fields itself")
    budget = BUDGETS.get(name)
    if budget is not None:
        for key in entries:
            for language in LANGUAGES:
                over = budget(section.worst_case(key, language))
                if over:
                    raise InvalidTexts(f"{where} [{key}] {language}: {over} with worst-case values")
    return section


def load(directory: str | os.PathLike | None = None) -> Catalogue:
    """The catalogue from `directory` (else $SELFCARE_TEXTS, else the files beside this module)."""
    folder = Path(directory or os.environ.get("SELFCARE_TEXTS") or DEFAULT_DIR)
    sections = {}
    for path in sorted(folder.glob("*.toml")):
        sections[path.stem] = _section(path.stem, path)
    missing = [name for name in BUDGETS if name not in sections]
    if missing:
        raise InvalidTexts(f"{folder}: missing {', '.join(f'{m}.toml' for m in missing)}")
    return Catalogue(sections)
