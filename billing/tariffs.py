"""Tariff data, loaded and checked once at start-up.

A bad file stops start-up with an error naming the bad entry, never a surprise mid-call.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from .datafile import data_path, read_toml
from .errors import InvalidAmount, InvalidTariffData, UnknownTariff
from .money import parse_amount
from .fraud import FraudRules, parse_fraud_rules
from .rating import CallControl, Destinations, check_tariff_classes, parse_call_control, parse_destinations

DEFAULT_PATH = Path(__file__).with_name("tariffs.toml")
LANGUAGES = ("az", "en", "ru")
PLANS = ("prepaid", "postpaid")
CALL_KINDS = ("standard", "short_number", "roaming")  # every tariff has these; [destinations] may name more
ROUNDINGS = ("nearest", "up")


@dataclass(frozen=True)
class CallRate:
    interval_seconds: int
    price_per_interval: Decimal
    rounding: str

    def intervals(self, seconds: int) -> int:
        """How many intervals a call of `seconds` is billed for.

        "nearest" is seed 000's rule: a fraction below 0.5 rounds down, 0.5 or more rounds up
        (computed in integers: 2*seconds vs interval, so 15 s of 30 is exactly half).
        """
        whole, rest = divmod(seconds, self.interval_seconds)
        if rest == 0:
            return whole
        if self.rounding == "up":
            return whole + 1
        return whole + (1 if 2 * rest >= self.interval_seconds else 0)

    def price(self, seconds: int) -> Decimal:
        return self.price_per_interval * self.intervals(seconds)


@dataclass(frozen=True)
class Tariff:
    name: str
    plan: str
    title: dict[str, str]
    calls: dict[str, CallRate]
    data_price_per_mb: Decimal


@dataclass(frozen=True)
class ValidityTier:
    min_amount: Decimal
    days: int


@dataclass(frozen=True)
class TariffBook:
    tariffs: dict[str, Tariff]
    info_sms_fees: dict[str, Decimal]
    validity_tiers: tuple[ValidityTier, ...]
    subscription_grace_days: int
    expiry_reminder_days: int  # the "balance expires on ..." SMS, this many days ahead
    closure_reminder_days: int  # the "your number closes on ..." SMS, this many days ahead
    reminder_hour: int  # reminders are queued from this hour (local time), not at night
    destinations: Destinations | None = None  # how a dialled number is rated (billing/rating.py)
    call_control: CallControl | None = None
    fraud: "FraudRules | None" = None  # the fraud guard's thresholds (billing/fraud.py)

    def get(self, name: str) -> Tariff:
        try:
            return self.tariffs[name]
        except KeyError:
            raise UnknownTariff(f"unknown tariff {name!r} (known: {', '.join(sorted(self.tariffs))})") from None

    def default_for(self, plan: str) -> Tariff:
        return next(t for t in self.tariffs.values() if t.plan == plan)

    def info_sms_fee(self, short_number: str) -> Decimal:
        return self.info_sms_fees[short_number]

    def validity_days(self, amount: Decimal) -> int:
        """Days of validity a top-up of `amount` buys: the highest tier it reaches; 0 below all."""
        days = 0
        for tier in self.validity_tiers:
            if amount >= tier.min_amount:
                days = max(days, tier.days)
        return days


def _amount(where: str, value) -> Decimal:
    try:
        return parse_amount(str(value))
    except InvalidAmount as exc:
        raise InvalidTariffData(f"{where}: {exc}") from None


def _positive_int(where: str, value) -> int:
    if not isinstance(value, int) or value <= 0:
        raise InvalidTariffData(f"{where}: must be a positive whole number, got {value!r}")
    return value


def _call_rate(where: str, raw: dict) -> CallRate:
    rounding = raw.get("rounding", "nearest")
    if rounding not in ROUNDINGS:
        raise InvalidTariffData(f"{where}.rounding: {rounding!r} is not one of {ROUNDINGS}")
    return CallRate(
        interval_seconds=_positive_int(f"{where}.interval_seconds", raw.get("interval_seconds")),
        price_per_interval=_amount(f"{where}.price_per_interval", raw.get("price_per_interval")),
        rounding=rounding,
    )


def _tariff(name: str, raw: dict) -> Tariff:
    where = f"tariffs.{name}"
    plan = raw.get("plan")
    if plan not in PLANS:
        raise InvalidTariffData(f"{where}.plan: {plan!r} is not one of {PLANS}")
    title = raw.get("title", {})
    for lang in LANGUAGES:
        if not str(title.get(lang, "")).strip():
            raise InvalidTariffData(f"{where}.title.{lang}: missing")
    calls = raw.get("calls", {})
    for kind in CALL_KINDS:
        if kind not in calls:
            raise InvalidTariffData(f"{where}.calls.{kind}: missing")
    return Tariff(
        name=name,
        plan=plan,
        title=dict(title),
        calls={kind: _call_rate(f"{where}.calls.{kind}", body) for kind, body in calls.items()},
        data_price_per_mb=_amount(f"{where}.data_price_per_mb", raw.get("data_price_per_mb")),
    )


def _reminders(validity: dict, grace_days: int, shortest_tier_days: int) -> dict:
    """The reminder figures: a balance reminder within the shortest tier (so it never follows
    straight on the top-up that set the date), a closure reminder within the grace period."""
    expiry = _positive_int("validity.expiry_reminder_days", validity.get("expiry_reminder_days"))
    if expiry >= shortest_tier_days:
        raise InvalidTariffData(f"validity.expiry_reminder_days: {expiry} must be less than the shortest tier "
                                f"({shortest_tier_days} days)")
    closure = _positive_int("validity.closure_reminder_days", validity.get("closure_reminder_days"))
    if closure >= grace_days:
        raise InvalidTariffData(f"validity.closure_reminder_days: {closure} must be less than "
                                f"subscription_grace_days ({grace_days})")
    hour = validity.get("reminder_hour")
    if not isinstance(hour, int) or isinstance(hour, bool) or not 0 <= hour <= 23:
        raise InvalidTariffData(f"validity.reminder_hour: must be an hour of the day, 0 to 23, got {hour!r}")
    return {"expiry_reminder_days": expiry, "closure_reminder_days": closure, "reminder_hour": hour}


def parse_tariff_book(raw: dict) -> TariffBook:
    tariffs = {name: _tariff(name, body) for name, body in raw.get("tariffs", {}).items()}
    for plan in PLANS:
        if not any(t.plan == plan for t in tariffs.values()):
            raise InvalidTariffData(f"tariffs: no {plan} tariff defined")
    fees = {str(k): _amount(f"info_sms_fees.{k}", v) for k, v in raw.get("info_sms_fees", {}).items()}
    for number in ("2112", "650", "1005", "1003"):
        if number not in fees:
            raise InvalidTariffData(f"info_sms_fees.{number}: missing")
    validity = raw.get("validity", {})
    tiers = tuple(
        ValidityTier(_amount(f"validity.tiers[{i}].min", t.get("min")), _positive_int(f"validity.tiers[{i}].days", t.get("days")))
        for i, t in enumerate(validity.get("tiers", []))
    )
    if not tiers:
        raise InvalidTariffData("validity.tiers: at least one tier is needed")
    grace = _positive_int("validity.subscription_grace_days", validity.get("subscription_grace_days"))
    reminders = _reminders(validity, grace, min(t.days for t in tiers))
    destinations = parse_destinations(raw.get("destinations", {}))
    check_tariff_classes(destinations, tariffs)
    call_control = parse_call_control(raw.get("call_control", {}))
    fraud = parse_fraud_rules(raw.get("fraud", {}), destinations)
    unknown = set(raw) - {"tariffs", "info_sms_fees", "validity", "destinations", "call_control", "fraud"}
    if unknown:
        raise InvalidTariffData(f"unknown section(s): {', '.join(sorted(unknown))}")
    return TariffBook(
        tariffs=tariffs,
        info_sms_fees=fees,
        validity_tiers=tiers,
        subscription_grace_days=grace,
        destinations=destinations,
        call_control=call_control,
        fraud=fraud,
        **reminders,
    )


def load_tariffs(path: str | os.PathLike | None = None) -> TariffBook:
    path = data_path(path, "SELFCARE_TARIFFS", DEFAULT_PATH)
    return parse_tariff_book(read_toml(path, InvalidTariffData))
