"""Rating a call: which class a dialled number falls in, which rate of the line's tariff it pays,
and how long a prepaid balance can talk on it (docs/rules.md, "Calls").

Everything here is tariff data (`[destinations]`, `[call_control]` and each tariff's
`calls.<class>` in billing/tariffs.toml), checked when the book loads: a class a destination names
that some tariff lacks stops start-up with the tariff and the class named.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from .errors import InvalidInput, InvalidTariffData

if TYPE_CHECKING:
    from .tariffs import CallRate, Tariff

ON_NET, OFF_NET, INTERNATIONAL, SHORT = "on-net", "off-net", "international", "short"
SHORT_NUMBER = re.compile(r"^[1-9]\d{1,5}$")  # 2-6 digits, dialled as is
_DIGITS = re.compile(r"^\d{4,15}$")


class InvalidDestination(InvalidInput):
    code = "invalid-destination"


@dataclass(frozen=True)
class Destinations:
    country_code: str
    on_net_prefixes: tuple[str, ...]
    on_net_class: str
    national_class: str
    international_class: str
    short_number_class: str
    roaming_class: str
    roaming_keeps: frozenset[str]
    international_prefixes: dict[str, str]  # digits after "+" -> class; the longest match wins
    short_numbers: dict[str, str]

    def classes(self) -> set[str]:
        """Every rate class a destination can name: each tariff must define them all."""
        return {self.on_net_class, self.national_class, self.international_class, self.short_number_class,
                self.roaming_class, *self.roaming_keeps, *self.international_prefixes.values(),
                *self.short_numbers.values()}


@dataclass(frozen=True)
class Destination:
    number: str  # E.164 ("+994501234567", "+74951234567") or the short number as dialled ("2112")
    kind: str  # on-net | off-net | international | short
    rate_class: str  # the class of the tariff's calls it pays (before roaming)


@dataclass(frozen=True)
class CallControl:
    limit_margin_seconds: int  # Dial L() ends the call this much before the last second paid for
    warning_before_seconds: int  # the warning prompt plays this long before the limit


def e164(dialled: str, country_code: str) -> str | None:
    """A dialled long number in E.164, or None when it is a short number.

    '+74951234567', '0074951234567' (international prefix), '994501234567', '0501234567' (national
    prefix), '501234567' (national significant number, 9 digits)."""
    compact = re.sub(r"[\s\-()]", "", str(dialled or ""))
    if SHORT_NUMBER.match(compact):
        return None
    if compact.startswith("+"):
        digits = compact[1:]
    elif compact.startswith("00"):
        digits = compact[2:]
    elif compact.startswith("0") and len(compact) == 10:
        digits = country_code + compact[1:]
    elif len(compact) == 9:
        digits = country_code + compact
    else:
        digits = compact
    if not _DIGITS.match(digits):
        raise InvalidDestination(f"not a number that can be called: {dialled!r}")
    return "+" + digits


def classify(destinations: Destinations, dialled: str) -> Destination:
    number = e164(dialled, destinations.country_code)
    if number is None:
        short = re.sub(r"\s", "", dialled)
        return Destination(short, SHORT, destinations.short_numbers.get(short, destinations.short_number_class))
    digits = number[1:]
    if digits.startswith(destinations.country_code):
        if any(digits.startswith(p) for p in destinations.on_net_prefixes):
            return Destination(number, ON_NET, destinations.on_net_class)
        return Destination(number, OFF_NET, destinations.national_class)
    matches = [p for p in destinations.international_prefixes if digits.startswith(p)]
    rate_class = destinations.international_prefixes[max(matches, key=len)] if matches else destinations.international_class
    return Destination(number, INTERNATIONAL, rate_class)


def is_international(destinations: Destinations, number: str) -> bool:
    """For the fraud rules: a caller's number from abroad (a withheld or short one is not)."""
    try:
        return classify(destinations, number).kind == INTERNATIONAL
    except InvalidDestination:
        return False


def rate_class_for(destinations: Destinations, destination: Destination, roaming: bool) -> str:
    """Seed 000: calls during roaming are rated apart. A line in roaming pays the roaming rate for
    every call, except the classes kept (free self-care, care and emergency numbers)."""
    if roaming and destination.rate_class not in destinations.roaming_keeps:
        return destinations.roaming_class
    return destination.rate_class


@dataclass(frozen=True)
class RatedCall:
    destination: Destination
    rate_class: str
    rate: "CallRate"

    def price(self, seconds: int) -> Decimal:
        return self.rate.price(seconds)

    @property
    def free(self) -> bool:
        return self.rate.price_per_interval == 0


def rate_call(destinations: Destinations, tariff: "Tariff", roaming: bool, dialled: str) -> RatedCall:
    destination = classify(destinations, dialled)
    rate_class = rate_class_for(destinations, destination, roaming)
    return RatedCall(destination, rate_class, tariff.calls[rate_class])


def longest_paid_seconds(rate: "CallRate", amount: Decimal) -> int | None:
    """The longest call `amount` pays for at `rate` (billed as the rate rounds), None when the rate
    is free; 0 when it does not pay for one whole interval.

    With "nearest" (seed 000), n intervals cover up to n*I + (I-1)//2 seconds (44 s for one 30-s
    interval: 45 s would be two); with "up", exactly n*I."""
    if rate.price_per_interval == 0:
        return None
    intervals = int(amount // rate.price_per_interval)
    if intervals <= 0:
        return 0
    extra = (rate.interval_seconds - 1) // 2 if rate.rounding == "nearest" else 0
    return intervals * rate.interval_seconds + extra


# -- loading and checking --------------------------------------------------------------------

def _class_name(where: str, value) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", value):
        raise InvalidTariffData(f"{where}: {value!r} is not a rate class name")
    return value


def _prefix(where: str, value) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"\d{1,8}", value):
        raise InvalidTariffData(f"{where}: {value!r} is not a prefix of digits")
    return value


def parse_destinations(raw: dict) -> Destinations:
    where = "destinations"
    if not raw:
        raise InvalidTariffData(f"{where}: missing")
    country = _prefix(f"{where}.country_code", raw.get("country_code"))
    on_net = tuple(_prefix(f"{where}.on_net_prefixes[{i}]", p) for i, p in enumerate(raw.get("on_net_prefixes", [])))
    for p in on_net:
        if not p.startswith(country):
            raise InvalidTariffData(f"{where}.on_net_prefixes: {p} does not start with the country code {country}")
    intl = {}
    for prefix, cls in raw.get("international_prefixes", {}).items():
        _prefix(f"{where}.international_prefixes.{prefix}", prefix)
        if prefix.startswith(country) or country.startswith(prefix):
            raise InvalidTariffData(f"{where}.international_prefixes.{prefix}: overlaps the country code {country}")
        intl[prefix] = _class_name(f"{where}.international_prefixes.{prefix}", cls)
    short = {}
    for number, cls in raw.get("short_numbers", {}).items():
        if not SHORT_NUMBER.match(str(number)):
            raise InvalidTariffData(f"{where}.short_numbers.{number}: a short number has 2 to 6 digits")
        short[str(number)] = _class_name(f"{where}.short_numbers.{number}", cls)
    known = {"country_code", "on_net_prefixes", "on_net_class", "national_class", "international_class",
             "short_number_class", "roaming_class", "roaming_keeps", "international_prefixes", "short_numbers"}
    unknown = set(raw) - known
    if unknown:
        raise InvalidTariffData(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    return Destinations(
        country_code=country,
        on_net_prefixes=on_net,
        on_net_class=_class_name(f"{where}.on_net_class", raw.get("on_net_class")),
        national_class=_class_name(f"{where}.national_class", raw.get("national_class")),
        international_class=_class_name(f"{where}.international_class", raw.get("international_class")),
        short_number_class=_class_name(f"{where}.short_number_class", raw.get("short_number_class")),
        roaming_class=_class_name(f"{where}.roaming_class", raw.get("roaming_class")),
        roaming_keeps=frozenset(_class_name(f"{where}.roaming_keeps", c) for c in raw.get("roaming_keeps", [])),
        international_prefixes=intl,
        short_numbers=short,
    )


def check_tariff_classes(destinations: Destinations, tariffs: dict) -> None:
    for name, tariff in tariffs.items():
        missing = sorted(destinations.classes() - set(tariff.calls))
        if missing:
            raise InvalidTariffData(f"tariffs.{name}.calls.{missing[0]}: missing (named in [destinations])")


def parse_call_control(raw: dict) -> CallControl:
    values = {}
    for name in ("limit_margin_seconds", "warning_before_seconds"):
        value = raw.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 300:
            raise InvalidTariffData(f"call_control.{name}: must be 0 to 300 seconds, got {value!r}")
        values[name] = value
    return CallControl(**values)
