"""The USSD codes of seeds 000, 002 and 003 and ours, parsed into a request (no I/O, nothing changed).

The trailing `YES` the seeds print is the handset's call key: accepted with or without it.
Anything else is `help` (a short list of codes), so a typo never changes anything.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from billing.cards import pin_lookup

# Menu codes open a session (CON ...); the others answer at once (END ...).
MENU_ACTIONS = ("pack-menu", "friend-requests")


@dataclass(frozen=True)
class Request:
    action: str
    arg: str | None = None

    @property
    def is_menu(self) -> bool:
        return self.action in MENU_ACTIONS


_FRIEND = r"(\+?\d{9,12})"
# ASCII digits only: \d alone also takes other scripts' digits (found by tests/fuzz), which int()
# reads as numbers: a code of them is `help`, like any other code we do not serve.
_ASCII = re.ASCII
_CODES = (
    (re.compile(r"^\*111\*1\*7#$", _ASCII), "dates"),               # seed 000, free
    (re.compile(r"^\*650#$", _ASCII), "postpaid-balance"),           # seed 000
    (re.compile(r"^\*100#$", _ASCII), "pack-menu"),                  # seed 002: menu / status
    (re.compile(r"^\*100\*0#$", _ASCII), "pack-deactivate"),         # seed 002
    (re.compile(r"^\*100\*00#$", _ASCII), "pack-stop-renewal"),      # seed 002
    (re.compile(r"^\*100\*([1-9]\d?)#$", _ASCII), "pack-order"),     # *100*N#
    (re.compile(r"^\*700#$", _ASCII), "nar-max"),                    # seed 003: the most available, <= 3 AZN
    (re.compile(r"^\*700#150#$", _ASCII), "nar-debt"),               # seed 003, free
    (re.compile(r"^\*700#(\d\d)#$", _ASCII), "nar"),                 # *700#05#, #01#, #02#, #03#
    (re.compile(r"^\*711#$", _ASCII), "sos"),
    (re.compile(r"^\*711#150#$", _ASCII), "sos-debt"),
    (re.compile(rf"^\*700\*01\*{_FRIEND}#$", _ASCII), "credit-for-friend"),
    (re.compile(rf"^\*700\*1\*{_FRIEND}#$", _ASCII), "ask-friend"),
    (re.compile(r"^\*700\*1#$", _ASCII), "friend-requests"),         # ours: the friend's confirmation menu
    # ours: top up with a scratch card's PIN. Off the *100* prefix on purpose: a mistyped PIN can
    # never become a pack order (*100*N#) or a deactivation (*100*0#, *100*00#). docs/rules.md.
    (re.compile(r"^\*104\*(\d+)#$", _ASCII), "card-redeem"),
    (re.compile(r"^\*104#$", _ASCII), "card-help"),
)


def clean(code: str) -> str:
    compact = re.sub(r"\s+", "", code or "")
    if compact.upper().endswith("YES"):
        compact = compact[:-3]
    return compact


_CARD_CODE = re.compile(r"^(\*104\*)(\d+)(#)$", _ASCII)


def key_form(code: str) -> str:
    """The code as a request's key may carry it (hashed by the USSD service): a card PIN is replaced
    by its keyed digest, so no key holds a plain digest of a PIN, which a stolen database could be
    searched with. A retry of the same PIN still gets the same key."""
    compact = clean(code)
    return _CARD_CODE.sub(lambda m: m.group(1) + pin_lookup(m.group(2)) + m.group(3), compact)


def parse(code: str) -> Request:
    compact = clean(code)
    for pattern, action in _CODES:
        match = pattern.match(compact)
        if match:
            return Request(action, match.group(1) if match.groups() else None)
    return Request("help")
