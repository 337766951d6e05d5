"""The prompt catalogue: prompt id -> what it says in az, en and ru.

The catalogue is checked whole when it loads, so a missing translation or a bad id stops start-up
with an error naming the entry instead of leaving a caller in silence mid-call.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from billing.datafile import read_toml

LANGUAGES = ("az", "en", "ru")
DEFAULT_PATH = Path(__file__).with_name("catalogue.toml")

# Asterisk resolves sounds/<lang>/<id>.wav; keep ids to plain ascii path segments.
_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*)*$")
_KNOWN_FIELDS = set(LANGUAGES) | {"multilingual"}


class CatalogueError(ValueError):
    """The catalogue file is unusable; the message names the bad entry."""


@dataclass(frozen=True)
class Prompt:
    id: str
    texts: dict[str, str]
    # Heard identically in every language, each sentence in its own voice (the language menu).
    multilingual: bool = False

    def text(self, lang: str) -> str:
        if self.multilingual:
            return " ".join(self.texts[each] for each in LANGUAGES)
        return self.texts[lang]

    def segments(self, lang: str) -> list[tuple[str, str]]:
        """(voice language, text) pieces to synthesise for the `lang` folder."""
        if self.multilingual:
            return [(each, self.texts[each]) for each in LANGUAGES]
        return [(lang, self.texts[lang])]


class Catalogue:
    def __init__(self, prompts: dict[str, Prompt], path: Path | None = None):
        self._prompts = prompts
        self.path = path

    def __contains__(self, prompt_id: str) -> bool:
        return prompt_id in self._prompts

    def __iter__(self):
        return iter(self._prompts.values())

    def __len__(self) -> int:
        return len(self._prompts)

    def ids(self) -> list[str]:
        return list(self._prompts)

    def prompt(self, prompt_id: str) -> Prompt:
        try:
            return self._prompts[prompt_id]
        except KeyError:
            raise KeyError(f"prompt {prompt_id!r} is not in the catalogue") from None

    def text(self, prompt_id: str, lang: str) -> str:
        _check_language(lang)
        return self.prompt(prompt_id).text(lang)


def _check_language(lang: str) -> None:
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}: use one of {', '.join(LANGUAGES)}")


def _parse_entry(prompt_id: str, entry: object, where: str) -> Prompt:
    if not _ID_PATTERN.match(prompt_id):
        raise CatalogueError(f"{where}: prompt id {prompt_id!r} is not a plain ascii file name")
    if not isinstance(entry, dict):
        raise CatalogueError(f"{where}: prompt {prompt_id!r} must be a table of az/en/ru texts")
    unknown = set(entry) - _KNOWN_FIELDS
    if unknown:
        raise CatalogueError(f"{where}: prompt {prompt_id!r} has unknown fields {sorted(unknown)}")
    texts = {}
    for lang in LANGUAGES:
        text = entry.get(lang)
        if not isinstance(text, str) or not text.strip():
            raise CatalogueError(f"{where}: prompt {prompt_id!r} has no {lang} text")
        texts[lang] = text.strip()
    multilingual = entry.get("multilingual", False)
    if not isinstance(multilingual, bool):
        raise CatalogueError(f"{where}: prompt {prompt_id!r}: multilingual must be true or false")
    return Prompt(prompt_id, texts, multilingual)


def parse(data: dict, where: str = "catalogue") -> Catalogue:
    if not data:
        raise CatalogueError(f"{where}: no prompts")
    return Catalogue({pid: _parse_entry(pid, entry, where) for pid, entry in data.items()})


def load(path: str | Path | None = None) -> Catalogue:
    """Read and check a catalogue file (default: prompts/catalogue.toml, cached)."""
    if path is None:
        return _default()
    return _load_file(Path(path))


def _load_file(path: Path) -> Catalogue:
    data = read_toml(path, CatalogueError)
    catalogue = parse(data, where=str(path))
    catalogue.path = path
    return catalogue


@lru_cache(maxsize=1)
def _default() -> Catalogue:
    return _load_file(DEFAULT_PATH)


def text(prompt_id: str, lang: str) -> str:
    """What prompt `prompt_id` says in `lang`, from the default catalogue."""
    return load().text(prompt_id, lang)
