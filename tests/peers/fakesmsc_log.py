"""What fakesmsc prints for each MT message it receives, decoded and joined back into messages.

fakesmsc logs `Got message N: <...>` in debug; UCS-2 messages show as `ucs2` + URL-encoded
UTF-16BE (or `data` + URL-encoded bytes), multipart ones as `udh` + the concatenation header.
"""
from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass


@dataclass(frozen=True)
class MT:
    sender: str
    receiver: str
    text: str
    coding: str  # text | ucs2 | data
    parts: int = 1


GOT = re.compile(r"Got message (\d+): <(.*)>\s*$")
SENT = re.compile(r"fakesmsc: sent message (\d+)")


def _payload(kind: str, body: str) -> str:
    if kind == "text":
        return body
    raw = urllib.parse.unquote_to_bytes(body.replace("+", " "))
    # fakesmsc shows UCS-2 (coding 2) messages as URL-encoded UTF-16BE bytes: our non-GSM-7 replies
    # always carry a zero high byte somewhere (Latin letters, digits, spaces).
    if kind in ("ucs2", "ucs-2") or (len(raw) % 2 == 0 and b"\x00" in raw[0::2]):
        return raw.decode("utf-16-be")
    return raw.decode("utf-8", "replace")


@dataclass(frozen=True)
class Part:
    """One line as fakesmsc prints it; multipart messages carry a concatenation UDH."""

    sender: str
    receiver: str
    text: str
    coding: str
    ref: int | None = None
    total: int = 1
    seq: int = 1


def parse_mt(line: str) -> Part:
    sender, receiver, kind, body = (line.split(" ", 3) + [""])[:4]
    if kind != "udh":
        return Part(sender, receiver, _payload(kind, body), kind)
    udh_text, _, rest = body.partition(" ")
    udh = urllib.parse.unquote_to_bytes(udh_text.replace("+", " "))
    inner, _, payload = rest.partition(" ")
    if len(udh) >= 6 and udh[1] == 0x00:  # IEI 00: 8-bit reference, total, sequence
        ref, total, seq = udh[3], udh[4], udh[5]
    elif len(udh) >= 7 and udh[1] == 0x08:  # IEI 08: 16-bit reference
        ref, total, seq = udh[3] << 8 | udh[4], udh[5], udh[6]
    else:
        ref, total, seq = None, 1, 1
    return Part(sender, receiver, _payload(inner, payload), inner, ref, total, seq)


class Reassembly:
    """Joins the parts of concatenated messages; whole messages come out as MT."""

    def __init__(self):
        self._parts: dict[tuple, dict[int, Part]] = {}

    def add(self, part: Part) -> MT | None:
        if part.ref is None or part.total <= 1:
            return MT(part.sender, part.receiver, part.text, part.coding)
        group = self._parts.setdefault((part.sender, part.receiver, part.ref, part.total), {})
        group[part.seq] = part
        if len(group) < part.total:
            return None
        del self._parts[(part.sender, part.receiver, part.ref, part.total)]
        text = "".join(group[i].text for i in sorted(group))
        return MT(part.sender, part.receiver, text, part.coding, part.total)
