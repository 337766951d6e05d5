"""What a subscriber's SMS to a self-care short number asks for.

One parser for every way an SMS arrives (Twilio, Kannel, `selfcare sms`): it looks only at the
short number and the text, and returns a command. It does no I/O and knows no subscriber; whether
the sender may do it, and what it costs, is the service's business.

Accepted (docs/rules.md):
  2112  blank                    -> prepaid balance
  650   blank                    -> postpaid balance
  650   +<number>                -> grant <number> access to my balance figures
  650   -<number>                -> revoke that grant
  650   -                        -> revoke every grant (the seed's text lost the `-`)
  650   <number>                 -> the figures of <number>, who granted me access
  1005  blank                    -> tariff plan and roaming status
  1003  <10-digit serial>        -> was this scratch card used, and when
  700   YES / NO (az, en, ru)    -> the answer to a friend's Nar Credit request
  anything else                  -> a usage hint for that number, free
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import Enum


class Kind(str, Enum):
    PREPAID_BALANCE = "prepaid-balance"
    POSTPAID_BALANCE = "postpaid-balance"
    GRANT = "grant"
    REVOKE = "revoke"
    REVOKE_ALL = "revoke-all"
    SHARED_BALANCE = "shared-balance"
    LINE_INFO = "line-info"
    CARD_CHECK = "card-check"
    FRIEND_CREDIT_REPLY = "friend-credit-reply"  # YES/NO to 700, answering a friend's credit request
    USAGE = "usage"
    NOT_SERVED = "not-served"  # a short number this bot does not answer


SHORT_NUMBERS = ("2112", "650", "1005", "1003", "700")


@dataclass(frozen=True)
class Command:
    kind: Kind
    short_number: str
    argument: str | None = None  # the other subscriber's number, the card serial, or "yes"/"no"

    @property
    def free(self) -> bool:
        """Commands that never cost anything, whoever sends them."""
        return self.kind in (Kind.USAGE, Kind.NOT_SERVED)


# How subscribers answer yes or no by SMS, in az, en and ru (with and without their letters).
YES_WORDS = {"1", "yes", "y", "ok", "bəli", "beli", "hə", "he", "ha", "да", "da"}
NO_WORDS = {"2", "0", "no", "n", "yox", "нет", "net"}

# A number as people type it: digits with optional spaces, dashes or brackets, optionally +994.
_NUMBER = r"\+?[0-9][0-9\s\-()]{6,18}[0-9]"
_SIGNED = re.compile(rf"^([+-])\s*({_NUMBER})$")
_PLAIN_NUMBER = re.compile(rf"^{_NUMBER}$")
_SERIAL = re.compile(r"^[0-9]{10}$")
# Handsets and gateways pad texts with all kinds of blanks; a "blank" SMS may be any of them.
_BLANKS = re.compile(r"[\s\u00a0\u200b\u200c\u200d\u2060\ufeff]+")


def short_number_of(to: str) -> str:
    """'2112', '+2112', ' 2112 ' and 'tel:2112' are all 2112."""
    cleaned = re.sub(r"^(tel:|sms:)", "", (to or "").strip(), flags=re.IGNORECASE)
    return cleaned.lstrip("+").strip()


def _tidy(text: str | None) -> str:
    # NFKC: the full-width digits and plus some handsets send (１２３, ＋) become 123 and +; other
    # scripts' digits stay what they are and match no command (ours are ASCII digits only).
    return _BLANKS.sub(" ", unicodedata.normalize("NFKC", text or "")).strip()


def _digits_only(number: str) -> str:
    return re.sub(r"[\s\-()]", "", number)


def _parse_650(text: str) -> Command:
    if not text:
        return Command(Kind.POSTPAID_BALANCE, "650")
    if text == "-":
        return Command(Kind.REVOKE_ALL, "650")
    signed = _SIGNED.match(text)
    if signed:
        kind = Kind.GRANT if signed.group(1) == "+" else Kind.REVOKE
        return Command(kind, "650", _digits_only(signed.group(2)))
    if _PLAIN_NUMBER.match(text):
        return Command(Kind.SHARED_BALANCE, "650", _digits_only(text))
    return Command(Kind.USAGE, "650")


def parse(to: str, text: str | None) -> Command:
    number = short_number_of(to)
    body = _tidy(text)
    if number == "2112":
        return Command(Kind.PREPAID_BALANCE if not body else Kind.USAGE, number)
    if number == "1005":
        return Command(Kind.LINE_INFO if not body else Kind.USAGE, number)
    if number == "1003":
        serial = body.replace(" ", "").replace("-", "")
        if _SERIAL.match(serial):
            return Command(Kind.CARD_CHECK, number, serial)
        return Command(Kind.USAGE, number)
    if number == "650":
        return _parse_650(body)
    if number == "700":
        word = body.lower()
        if word in YES_WORDS or word in NO_WORDS:
            return Command(Kind.FRIEND_CREDIT_REPLY, number, "yes" if word in YES_WORDS else "no")
        return Command(Kind.USAGE, number)
    return Command(Kind.NOT_SERVED, number)
