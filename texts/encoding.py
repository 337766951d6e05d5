"""How many SMS parts a text takes: GSM-7 when every character is in GSM 03.38, else UCS-2.

ə, ı, ş, ğ, Cyrillic and ₼ are not GSM-7, so Azerbaijani and Russian replies go as UCS-2.
"""
from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")  # each takes an escape septet too

SINGLE = {"gsm7": 160, "ucs2": 70}
PER_PART = {"gsm7": 153, "ucs2": 67}  # a concatenated part loses room to its UDH
MAX_PARTS = 2


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


@dataclass(frozen=True)
class Size:
    coding: str  # "gsm7" | "ucs2"
    units: int   # septets (GSM-7) or UTF-16 code units (UCS-2)

    @property
    def parts(self) -> int:
        if self.units <= SINGLE[self.coding]:
            return 1
        return -(-self.units // PER_PART[self.coding])

    @property
    def limit(self) -> int:
        """Most units that fit MAX_PARTS parts in this coding: 306 GSM-7, 134 UCS-2."""
        return PER_PART[self.coding] * MAX_PARTS


def size_of(text: str) -> Size:
    if is_gsm7(text):
        return Size("gsm7", sum(2 if ch in GSM7_EXTENSION else 1 for ch in text))
    return Size("ucs2", len(text.encode("utf-16-be")) // 2)


def fits(text: str, parts: int = MAX_PARTS) -> bool:
    return size_of(text).parts <= parts
