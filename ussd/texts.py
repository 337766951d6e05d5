"""USSD reply texts and the packs/credit SMS texts (data in TOML), checked when they load.

Every entry must exist in az, en and ru with the same placeholders; a bad file stops start-up
naming the bad entry.
"""
from __future__ import annotations

import string
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

from billing.datafile import read_toml
from billing.money import fmt_azn
from billing.offers import offers

LANGUAGES = ("az", "en", "ru")
REPLIES_PATH = Path(__file__).with_name("texts.toml")
NOTIFICATIONS_PATH = Path(__file__).with_name("notifications.toml")
MONEY_PARAMS = {"amount", "fee", "price", "debt", "repaid", "request_fee", "balance", "billed", "current", "advance"}
DATE_PARAMS = {"expires", "ends", "retry_until"}
TIME_PARAMS = {"leftover_until"}  # hours count here: shown with the time of day


class InvalidTexts(ValueError):
    pass


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def load_texts(path: Path) -> dict[str, dict[str, str]]:
    raw = read_toml(path, InvalidTexts)
    for key, entry in raw.items():
        missing = [lang for lang in LANGUAGES if not str(entry.get(lang, "")).strip()]
        if missing:
            raise InvalidTexts(f"{path.name} [{key}]: missing {', '.join(missing)}")
        fields = {lang: _fields(entry[lang]) for lang in LANGUAGES}
        if len({frozenset(f) for f in fields.values()}) != 1:
            raise InvalidTexts(f"{path.name} [{key}]: placeholders differ between languages: {fields}")
    return raw


@lru_cache(maxsize=None)
def replies() -> dict[str, dict[str, str]]:
    return load_texts(REPLIES_PATH)


@lru_cache(maxsize=None)
def notifications() -> dict[str, dict[str, str]]:
    return load_texts(NOTIFICATIONS_PATH)


def _language(lang: str) -> str:
    return lang if lang in LANGUAGES else "az"


def reply(key: str, lang: str, **params) -> str:
    return replies()[key][_language(lang)].format(**params)


def show_date(value) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if "T" in value or " " in value else date.fromisoformat(value)
        except ValueError:
            return value
    return f"{value:%d.%m.%Y}" if isinstance(value, (date, datetime)) else str(value)


def show_time(value) -> str:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return f"{moment:%d.%m.%Y %H:%M}"


def show_money(value) -> str:
    try:
        return fmt_azn(Decimal(str(value)))
    except InvalidOperation:
        return str(value)


def _shown(name: str, value, lang: str) -> str:
    if name in MONEY_PARAMS:
        return show_money(value)
    if name in DATE_PARAMS:
        return show_date(value)
    if name in TIME_PARAMS:
        return show_time(value)
    if name == "pack":
        pack = offers().packs.by_code(str(value))
        return pack.title[lang] if pack else str(value)
    return str(value)


def render_notification(template: str, lang: str, params: dict) -> str:
    """The SMS text for an outbox message of a packs/credit template."""
    lang = _language(lang)
    text = notifications()[template][lang]
    return text.format(**{name: _shown(name, value, lang) for name, value in params.items()})


def templates() -> tuple[str, ...]:
    return tuple(notifications())
