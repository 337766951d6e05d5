"""Everything a subscriber reads (SMS replies, USSD screens, notifications, web pages), in az/en/ru.

Owned by no channel: each channel renders from its section of one catalogue, so the same figures
read the same everywhere. `check_startup(core)` loads and checks it when a process starts (serve,
worker, every CLI command); `current()` is that checked catalogue.
"""
from __future__ import annotations

from .catalogue import DEFAULT_LANGUAGE, LANGUAGES, USSD_MAX_CHARS, Catalogue, InvalidTexts, Section, load

_loaded: Catalogue | None = None


def check_startup(core) -> Catalogue:
    """Load the catalogue, check it against the core's tariff and pack titles, and keep it for the process."""
    global _loaded
    loaded = load()
    loaded.check_titles(core.tariffs, core.offers)
    _loaded = loaded
    return loaded


def current() -> Catalogue:
    """The process's checked catalogue (loaded now if start-up did not)."""
    global _loaded
    if _loaded is None:
        _loaded = load()
    return _loaded


__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "USSD_MAX_CHARS", "Catalogue", "InvalidTexts", "Section",
           "check_startup", "current", "load"]
