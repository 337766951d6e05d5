"""Subscriber numbers: accepted in the four forms people type, stored in E.164."""
from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

from .errors import InvalidMsisdn

_FORMS = (
    (re.compile(r"^\+994\d{9}$"), lambda s: s),
    (re.compile(r"^994\d{9}$"), lambda s: "+" + s),
    (re.compile(r"^0\d{9}$"), lambda s: "+994" + s[1:]),
    (re.compile(r"^\d{9}$"), lambda s: "+994" + s),
)


@lru_cache(maxsize=65536)  # phonenumbers costs ~0.1 ms a call; numbers repeat all day
def normalize(text: str) -> str:
    """'+994501234567', '994501234567', '0501234567' or '501234567' -> '+994501234567'."""
    compact = re.sub(r"[\s\-()]", "", str(text or ""))
    for pattern, to_e164 in _FORMS:
        if pattern.match(compact):
            candidate = to_e164(compact)
            break
    else:
        raise InvalidMsisdn(
            f"not a mobile number: {text!r} (use +994501234567, 994501234567, 0501234567 or 501234567)"
        )
    parsed = phonenumbers.parse(candidate, None)
    if phonenumbers.number_type(parsed) not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise InvalidMsisdn(f"not an Azerbaijani mobile number: {text!r}")
    return candidate


def mask(msisdn: str) -> str:
    """For logs: enough to correlate, not enough to identify."""
    if not msisdn or len(msisdn) < 8:
        return "***"
    return msisdn[:6] + "***" + msisdn[-4:]


_DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z])\+?\d{7,}(?![0-9A-Za-z])")


def mask_numbers(text: str) -> str:
    """For logs of free text (a gateway's error, a rendered message): every number of seven or more
    digits keeps only its last four (digits inside a word, such as a hex reference, stay)."""
    return _DIGIT_RUN.sub(lambda found: "***" + found.group()[-4:], str(text))
