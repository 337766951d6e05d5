"""Scratch cards: importing them, what 1003 says about one, and topping up with one's PIN.

A subscriber types what the scratch panel hid: the PIN. A card is found by its PIN alone through
`pin_lookup`, HMAC-SHA256 of the PIN under the operator's key ($SELFCARE_CARD_PIN_KEY), unique per
card; the database keeps no PIN, and a stolen copy of it cannot be searched for PINs without the
key. Cards imported before migration 0004 have only SHA-256(serial:PIN) and are redeemed with their
serial (`selfcare card redeem MSISDN PIN --serial S`).

Redemption lands the money exactly like a top-up (`payments.land_payment`: prepaid balance, or bill
then advance; credit debt first, then packs waiting; the balance-change SMS). Wrong PINs are counted
per line in the database, so the throttle (offers `[cards]`) holds across serving processes; the
count is written in the request's own transaction although the redemption itself is refused.
Nothing here logs a PIN or a whole number.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from . import ledger, lines, payments, validity
from .errors import (CardAlreadyUsed, InvalidInput, InvalidPin, InvalidSerial, TooManyWrongPins, UnknownCard,
                     WrongPin)
from .models import CardPinFailure, ScratchCard, Subscriber
from .money import from_units, parse_amount, to_units
from .msisdn import mask
from .reports import BalanceReport, report_for

log = logging.getLogger("billing.cards")

SERIAL = re.compile(r"^[0-9]{10}$")  # ASCII digits only (\d would take other scripts' digits too)
PIN = re.compile(r"^[0-9]{4,16}$")
PIN_KEY_ENV = "SELFCARE_CARD_PIN_KEY"
# Good for demos and tests only: an operator sets its own key before importing cards
# (docs/operations.md); a card imported under one key is found by its PIN only under that key.
DEFAULT_PIN_KEY = "selfcare-demo-card-pin-key"


def check_serial(serial: str) -> str:
    serial = (serial or "").strip()
    if not SERIAL.match(serial):
        raise InvalidSerial("a scratch card serial is exactly 10 digits")
    return serial


def check_pin(pin: str) -> str:
    pin = (pin or "").strip()
    if not PIN.match(pin):
        raise InvalidPin("a card PIN is 4 to 16 digits")
    return pin


def pin_lookup(pin: str) -> str:
    key = os.environ.get(PIN_KEY_ENV) or DEFAULT_PIN_KEY
    return hmac.new(key.encode(), pin.encode(), hashlib.sha256).hexdigest()


def _legacy_pin_hash(serial: str, pin: str) -> str:
    """What cards imported before migration 0004 carry."""
    return hashlib.sha256(f"{serial}:{pin}".encode()).hexdigest()


def add_card(uow, serial: str, pin: str, value) -> ScratchCard:
    serial = check_serial(serial)
    try:
        pin = check_pin(pin)
    except InvalidPin as exc:
        raise InvalidInput(str(exc)) from None
    face = parse_amount(value, allow_zero=False)
    if uow.session.scalar(select(ScratchCard.id).where(ScratchCard.serial == serial)) is not None:
        raise InvalidInput(f"card {serial} already exists")
    lookup = pin_lookup(pin)
    if uow.session.scalar(select(ScratchCard.id).where(ScratchCard.pin_lookup == lookup)) is not None:
        raise InvalidInput(f"card {serial}: another card has this PIN (a card is found by its PIN alone)")
    card = ScratchCard(serial=serial, pin_lookup=lookup, value_units=to_units(face))
    uow.session.add(card)
    uow.commit()
    return card


@dataclass(frozen=True)
class CardStatus:
    serial: str
    value: Decimal
    used: bool
    used_at: datetime | None
    used_by: str | None


def card_status(uow, serial: str) -> CardStatus:
    serial = check_serial(serial)
    card = uow.session.scalar(select(ScratchCard).where(ScratchCard.serial == serial))
    if card is None:
        raise UnknownCard(f"no scratch card with serial {serial}")
    return CardStatus(serial, from_units(card.value_units), card.used_at is not None, card.used_at, card.used_by)


# -- topping up with a card ------------------------------------------------------------------

@dataclass(frozen=True)
class CardTopUp:
    serial: str
    amount: Decimal
    report: BalanceReport  # the line's figures right after the card landed
    duplicate: bool = False  # a retried request: nothing applied this time


def redeem_card(uow, msisdn: str, pin: str, key: str, *, serial: str | None = None) -> CardTopUp:
    """Top the line up with the card whose PIN this is (and whose serial, when given).

    Refusals: InvalidPin (not 4-16 digits; not counted), LineClosed (the number's subscription
    ended: nothing is looked at), TooManyWrongPins (the line is throttled;
    the PIN is not even looked at), WrongPin / UnknownCard (counted: raised after the wrong try is
    committed, or flushed into the caller's transaction when composed inside `uow.atomic()` — the
    caller must then answer it inside its block, not let it roll the block back), CardAlreadyUsed
    (`used_at`). Idempotent on `key`: a retry of a top-up gets it back with duplicate=True, a retry
    of a wrong try is refused again without being counted twice.
    """
    pin = check_pin(pin)
    serial = check_serial(serial) if serial is not None else None
    line = lines.find(uow, msisdn, lock=True)  # one line's tries are counted one at a time
    earlier = _earlier_answer(uow, line, key)
    if earlier is not None:
        return earlier
    validity.require_open(line, uow.clock.now().date())  # a closed number takes no money: no card is spent
    _refuse_if_throttled(uow, line)
    with uow.atomic():
        try:
            with uow.atomic():  # a savepoint: a refused redemption is undone ...
                return _redeem(uow, line, pin, serial, key)
        except (WrongPin, UnknownCard) as wrong:
            refusal = _record_wrong_pin(uow, line, key, wrong)  # ... and its wrong PIN still counted
    raise refusal


def _redeem(uow, line: Subscriber, pin: str, serial: str | None, key: str) -> CardTopUp:
    card = _card_opened_by(uow, pin, serial)
    if card.used_at is not None:
        log.info("card %s: already used, asked by %s", card.serial, mask(line.msisdn))
        raise CardAlreadyUsed(f"card {card.serial} was used on {card.used_at:%Y-%m-%d %H:%M}", card.used_at)
    op = ledger.open_operation(uow, key, "card", line)
    if op is None:  # claimed between our look and now: nothing to apply
        raise InvalidInput(f"request {key} was already handled")
    card.used_at = uow.clock.now()
    card.used_by = line.msisdn
    card.operation_id = op.id
    value = from_units(card.value_units)
    payments.land_payment(uow, line, value, op, "card")
    uow.commit()
    log.info("card %s (%s AZN) redeemed by %s", card.serial, value, mask(line.msisdn))
    return CardTopUp(card.serial, value, report_for(uow, line))


def _card_opened_by(uow, pin: str, serial: str | None) -> ScratchCard:
    """The card this PIN opens, locked; WrongPin (or UnknownCard for a serial we never issued)."""
    lookup = pin_lookup(pin)
    if serial is None:
        card = uow.session.scalar(select(ScratchCard).where(ScratchCard.pin_lookup == lookup).with_for_update())
        if card is None:
            raise WrongPin("no card has this PIN")
        return card
    card = uow.session.scalar(select(ScratchCard).where(ScratchCard.serial == serial).with_for_update())
    if card is None:
        raise UnknownCard(f"no scratch card with serial {serial}")
    opened = (hmac.compare_digest(card.pin_lookup, lookup) if card.pin_lookup is not None
              else hmac.compare_digest(card.pin_hash or "", _legacy_pin_hash(serial, pin)))
    if not opened:
        raise WrongPin(f"the PIN does not open card {serial}")
    return card


def _earlier_answer(uow, line: Subscriber, key: str) -> CardTopUp | None:
    """A retried request: the top-up it made, or its wrong PIN refused again (not counted again)."""
    op = ledger.find_operation(uow, key)
    if op is not None:
        card = uow.session.scalar(select(ScratchCard).where(ScratchCard.operation_id == op.id))
        if card is None:
            raise InvalidInput(f"request {key} was already used for something else ({op.kind})")
        return CardTopUp(card.serial, from_units(card.value_units), report_for(uow, line), duplicate=True)
    if uow.session.scalar(select(CardPinFailure.id).where(CardPinFailure.key == key)) is not None:
        raise WrongPin("no card has this PIN", _tries_left(uow, line))
    return None


def _window_start(uow) -> datetime:
    return uow.clock.now() - timedelta(minutes=uow.offers.cards.wrong_pin_window_minutes)


def _recent_failures(uow, line: Subscriber) -> list[datetime]:
    return list(uow.session.scalars(
        select(CardPinFailure.created_at)
        .where(CardPinFailure.subscriber_id == line.id, CardPinFailure.created_at > _window_start(uow))
        .order_by(CardPinFailure.created_at)))


def _tries_left(uow, line: Subscriber) -> int:
    return max(0, uow.offers.cards.max_wrong_pins - len(_recent_failures(uow, line)))


def _refuse_if_throttled(uow, line: Subscriber) -> None:
    rules = uow.offers.cards
    failures = _recent_failures(uow, line)
    if len(failures) < rules.max_wrong_pins:
        return
    # Free again when enough of them have left the window for one more try.
    until = failures[len(failures) - rules.max_wrong_pins] + timedelta(minutes=rules.wrong_pin_window_minutes)
    log.info("card top-up from %s refused unchecked: %d wrong PINs in %d min, until %s", mask(line.msisdn),
             len(failures), rules.wrong_pin_window_minutes, f"{until:%Y-%m-%d %H:%M}")
    raise TooManyWrongPins(f"too many wrong PINs from this line: card top-ups refused until {until:%Y-%m-%d %H:%M}",
                           until)


def _record_wrong_pin(uow, line: Subscriber, key: str, wrong: Exception) -> Exception:
    """Count the try; the refusal to raise (a WrongPin says how many tries are left)."""
    uow.session.add(CardPinFailure(subscriber_id=line.id, key=key, created_at=uow.clock.now()))
    uow.session.flush()
    left = _tries_left(uow, line)
    log.info("wrong card PIN from %s: %d tries left", mask(line.msisdn), left)
    if isinstance(wrong, UnknownCard):
        return wrong  # a serial we never issued: said so (1003 says it to anyone)
    return WrongPin(f"wrong PIN: nothing was topped up ({left} tries left)", left)


def wrong_pins(uow, msisdn: str) -> int:
    """Wrong PINs the line sent within the current window (for care and tests)."""
    line = lines.find(uow, msisdn)
    return uow.session.scalar(select(func.count(CardPinFailure.id)).where(
        CardPinFailure.subscriber_id == line.id, CardPinFailure.created_at > _window_start(uow)))
