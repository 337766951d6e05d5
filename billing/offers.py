"""Pack catalogue, credit rules and the scratch-card PIN throttle (billing/offers.toml), loaded
and checked once.

A bad file stops start-up with an error naming the bad entry, like the tariff book.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from .datafile import data_path, read_toml
from .errors import InvalidAmount, InvalidTariffData
from .money import parse_amount
from .tariffs import LANGUAGES

DEFAULT_PATH = Path(__file__).with_name("offers.toml")


@dataclass(frozen=True)
class Pack:
    number: int           # N in *100*N#
    code: str
    group: str
    volume_mb: int
    price: Decimal
    title: dict[str, str]
    throttle_kbps: int | None = None


@dataclass(frozen=True)
class PackRules:
    validity_days: int
    renewal_window_days: int
    leftover_hours: int
    retry_every_hours: int
    catalogue: tuple[Pack, ...]

    def by_number(self, number: int) -> Pack | None:
        return next((p for p in self.catalogue if p.number == number), None)

    def by_code(self, code: str) -> Pack | None:
        return next((p for p in self.catalogue if p.code == code), None)


@dataclass(frozen=True)
class NarOption:
    code: str             # NN in *700#NN#
    amount: Decimal
    fee: Decimal


@dataclass(frozen=True)
class LimitTier:
    topped_up: Decimal
    limit: Decimal


@dataclass(frozen=True)
class CreditRules:
    min_days_in_network: int
    min_topups: int
    first_week_days: int
    first_week_min_topup: Decimal
    request_fee: Decimal
    ussd_max: Decimal
    friend_confirm_minutes: int
    history_days: int
    nar: tuple[NarOption, ...]
    sos_amount: Decimal
    sos_fee: Decimal
    sos_max_outstanding: Decimal
    limits: tuple[LimitTier, ...]

    def nar_by_code(self, code: str) -> NarOption | None:
        return next((o for o in self.nar if o.code == code), None)

    def nar_for_amount(self, amount: Decimal) -> NarOption | None:
        return next((o for o in self.nar if o.amount == amount), None)

    def nar_limit(self, topped_up: Decimal) -> Decimal:
        return max((t.limit for t in self.limits if topped_up >= t.topped_up), default=Decimal(0))

    @property
    def nar_maximum(self) -> Decimal:
        return max(t.limit for t in self.limits)


@dataclass(frozen=True)
class CardRules:
    """Scratch-card top-ups: how many wrong PINs a line may send within the window before it is
    refused (without the PIN being checked) until the oldest of them leaves the window."""

    max_wrong_pins: int
    wrong_pin_window_minutes: int


@dataclass(frozen=True)
class Offers:
    packs: PackRules
    credit: CreditRules
    cards: CardRules


def _amount(where: str, value) -> Decimal:
    try:
        return parse_amount(str(value))
    except InvalidAmount as exc:
        raise InvalidTariffData(f"offers {where}: {exc}") from None


def _count(where: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidTariffData(f"offers {where}: must be a positive whole number, got {value!r}")
    return value


def _pack(i: int, raw: dict) -> Pack:
    where = f"packs.catalogue[{i}]"
    title = raw.get("title", {})
    for lang in LANGUAGES:
        if not str(title.get(lang, "")).strip():
            raise InvalidTariffData(f"offers {where}.title.{lang}: missing")
    number = _count(f"{where}.number", raw.get("number"))
    if number > 99:
        raise InvalidTariffData(f"offers {where}.number: {number} does not fit *100*N#")
    throttle = raw.get("throttle_kbps")
    return Pack(
        number=number,
        code=str(raw.get("code") or "").strip() or _missing(f"{where}.code"),
        group=str(raw.get("group") or "").strip() or _missing(f"{where}.group"),
        volume_mb=_count(f"{where}.volume_mb", raw.get("volume_mb")),
        price=_amount(f"{where}.price", raw.get("price")),
        title=dict(title),
        throttle_kbps=None if throttle is None else _count(f"{where}.throttle_kbps", throttle),
    )


def _missing(where: str):
    raise InvalidTariffData(f"offers {where}: missing")


def _pack_rules(raw: dict) -> PackRules:
    catalogue = tuple(_pack(i, p) for i, p in enumerate(raw.get("catalogue", [])))
    if not catalogue:
        raise InvalidTariffData("offers packs.catalogue: at least one pack is needed")
    for attr in ("number", "code"):
        values = [getattr(p, attr) for p in catalogue]
        if len(set(values)) != len(values):
            raise InvalidTariffData(f"offers packs.catalogue: duplicate {attr}")
    return PackRules(
        validity_days=_count("packs.validity_days", raw.get("validity_days")),
        renewal_window_days=_count("packs.renewal_window_days", raw.get("renewal_window_days")),
        leftover_hours=_count("packs.leftover_hours", raw.get("leftover_hours")),
        retry_every_hours=_count("packs.retry_every_hours", raw.get("retry_every_hours")),
        catalogue=catalogue,
    )


def _credit_rules(raw: dict) -> CreditRules:
    nar = tuple(
        NarOption(str(o.get("code", "")), _amount(f"credit.nar[{i}].amount", o.get("amount")),
                  _amount(f"credit.nar[{i}].fee", o.get("fee")))
        for i, o in enumerate(raw.get("nar", []))
    )
    if not nar or any(not o.code.isdigit() or o.amount <= 0 for o in nar):
        raise InvalidTariffData("offers credit.nar: each option needs a digit code and an amount above 0")
    limits = tuple(
        LimitTier(_amount(f"credit.limits[{i}].topped_up", t.get("topped_up")),
                  _amount(f"credit.limits[{i}].limit", t.get("limit")))
        for i, t in enumerate(raw.get("limits", []))
    )
    if not any(t.topped_up == 0 for t in limits):
        raise InvalidTariffData("offers credit.limits: a row with topped_up = 0 is needed")
    sos = raw.get("sos", {})
    return CreditRules(
        min_days_in_network=_count("credit.min_days_in_network", raw.get("min_days_in_network")),
        min_topups=_count("credit.min_topups", raw.get("min_topups")),
        first_week_days=_count("credit.first_week_days", raw.get("first_week_days")),
        first_week_min_topup=_amount("credit.first_week_min_topup", raw.get("first_week_min_topup")),
        request_fee=_amount("credit.request_fee", raw.get("request_fee")),
        ussd_max=_amount("credit.ussd_max", raw.get("ussd_max")),
        friend_confirm_minutes=_count("credit.friend_confirm_minutes", raw.get("friend_confirm_minutes")),
        history_days=_count("credit.history_days", raw.get("history_days")),
        nar=tuple(sorted(nar, key=lambda o: o.amount)),
        sos_amount=_amount("credit.sos.amount", sos.get("amount")),
        sos_fee=_amount("credit.sos.fee", sos.get("fee")),
        sos_max_outstanding=_amount("credit.sos.max_outstanding", sos.get("max_outstanding")),
        limits=limits,
    )


def _card_rules(raw: dict) -> CardRules:
    rules = CardRules(
        max_wrong_pins=_count("cards.max_wrong_pins", raw.get("max_wrong_pins")),
        wrong_pin_window_minutes=_count("cards.wrong_pin_window_minutes", raw.get("wrong_pin_window_minutes")),
    )
    if rules.wrong_pin_window_minutes > 7 * 24 * 60:
        raise InvalidTariffData("offers cards.wrong_pin_window_minutes: more than a week would lock a line "
                                "out of its own top-ups for days")
    return rules


def parse_offers(raw: dict) -> Offers:
    return Offers(packs=_pack_rules(raw.get("packs", {})), credit=_credit_rules(raw.get("credit", {})),
                  cards=_card_rules(raw.get("cards", {})))


def load_offers(path: str | os.PathLike | None = None) -> Offers:
    path = data_path(path, "SELFCARE_OFFERS", DEFAULT_PATH)
    return parse_offers(read_toml(path, InvalidTariffData))

