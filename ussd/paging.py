"""An answer longer than one USSD screen, shown a screen at a time: "0 More" asks for the next.

Gateways carry 182 characters; cutting an answer would cut a figure or a word. Pages break at
line ends (one pack, one figure a line), and a line longer than a page at a space. The session
stays open (CON) until the last page, which ends it (END).
"""
from __future__ import annotations

from dataclasses import dataclass

import texts

MORE = "0"  # the input that asks for the next page


@dataclass(frozen=True)
class Screen:
    text: str
    last: bool


def _split_long(line: str, width: int) -> list[str]:
    pieces, current = [], ""
    for word in line.split(" "):
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= width:
            current = candidate
            continue
        if current:
            pieces.append(current)
        while len(word) > width:  # no space to break at: break the word itself
            pieces.append(word[:width])
            word = word[width:]
        current = word
    return pieces + ([current] if current else [])


def pages(text: str, lang: str) -> list[str]:
    if len(text) <= texts.USSD_MAX_CHARS:
        return [text]
    more = texts.current()["ussd"].render("more", lang)
    width = texts.USSD_MAX_CHARS - len(more) - 1
    result, current = [], ""
    for line in (piece for raw in text.split("\n") for piece in _split_long(raw, width)):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) <= width:
            current = candidate
            continue
        result.append(current)
        current = line
    result.append(current)
    # All but the last carry the "more" line; the last one may use the whole screen.
    return [f"{p}\n{more}" for p in result[:-1]] + [result[-1]]


def page(text: str, after: list[str], lang: str) -> Screen | None:
    """The screen the inputs `after` the answer ask for; None when one of them is not MORE."""
    if any(token.strip() != MORE for token in after):
        return None
    all_pages = pages(text, lang)
    index = min(len(after), len(all_pages) - 1)
    return Screen(all_pages[index], last=index == len(all_pages) - 1)
