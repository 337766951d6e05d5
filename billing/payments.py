"""Money coming in: top-ups (payments on postpaid) and scratch cards."""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select

from . import credit, ledger, lines, outbox, pack_renewal, validity
from .errors import CardAlreadyUsed, InvalidInput, InvalidSerial, UnknownCard, WrongPin
from .models import LedgerEntry, Operation, ScratchCard, Subscriber
from .money import from_units, parse_amount, parse_payment, to_units
from .msisdn import mask

log = logging.getLogger("billing.payments")

SERIAL = re.compile(r"^[0-9]{10}$")
PIN = re.compile(r"^[0-9]{4,16}$")

@dataclass(frozen=True)
class TopUp:
    amount: Decimal
    duplicate: bool = False


def _apply_payment(uow, line: Subscriber, amount: Decimal, op, kind: str) -> None:
    if line.plan == "prepaid":
        ledger.post(uow, line, "balance", amount, op, kind)
        validity.apply_topup(uow, line, amount, op)  # extends the dates; an expired line is active again
        return
    # Postpaid: a payment settles the bill first; what is left is kept as advance payment.
    to_bill = min(line.billed_units, to_units(amount))
    ledger.post(uow, line, "billed", -from_units(to_bill), op, kind)
    ledger.post(uow, line, "advance", amount - from_units(to_bill), op, kind)


def _after_money_landed(uow, line: Subscriber, op, kind: str) -> None:
    """What a top-up or a card triggers, in its transaction, in this order (seeds 003, 000, 002):
    Nar/SOS credit debt is recovered first; the subscriber is told the payment and the debt it
    repaid, in one message; then a pack waiting for money is renewed from what is left (and says so
    in its own message, after this one). A line the payment reactivated (its balance had expired)
    is active again by now (`_apply_payment`)."""
    credit.recover_credit_debt(uow, line, op)
    outbox.notify_balance_change(uow, line, op, kind)
    pack_renewal.renew_after_topup(uow, line, op)


def _paid_by(uow, key: str) -> Decimal:
    """What an earlier payment under `key` brought in (to the balance, or to the bill and advance)."""
    entries = uow.session.execute(
        select(LedgerEntry.account, func.sum(LedgerEntry.delta_units))
        .join(Operation, Operation.id == LedgerEntry.operation_id)
        .where(Operation.key == key, LedgerEntry.kind == Operation.kind)
        .group_by(LedgerEntry.account)).all()
    units = {account: total for account, total in entries}
    return from_units(units.get("balance", 0) + units.get("advance", 0) - units.get("billed", 0))


def topup(uow, msisdn: str, amount, key: str, *, kind: str = "topup") -> TopUp:
    value = parse_payment(amount)
    line = lines.find(uow, msisdn, lock=True)
    op = ledger.open_operation(uow, key, kind, line)
    if op is None:
        applied = _paid_by(uow, key)
        if applied != value:  # a retry carries the same amount; anything else is a mistake to refuse
            raise InvalidInput(f"key {key} was already used for a payment of {applied:.2f} AZN, not {value:.2f}")
        return TopUp(applied, duplicate=True)
    validity.require_open(line, uow.clock.now().date())  # a closed number takes no money
    _apply_payment(uow, line, value, op, kind)
    _after_money_landed(uow, line, op, kind)
    uow.commit()
    log.info("%s %s AZN for %s", kind, value, mask(line.msisdn))
    return TopUp(value)


def check_serial(serial: str) -> str:
    serial = (serial or "").strip()
    if not SERIAL.match(serial):
        raise InvalidSerial("a scratch card serial is exactly 10 digits")
    return serial


def _pin_hash(serial: str, pin: str) -> str:
    return hashlib.sha256(f"{serial}:{pin}".encode()).hexdigest()


def add_card(uow, serial: str, pin: str, value) -> ScratchCard:
    serial = check_serial(serial)
    if not PIN.match(pin or ""):
        raise InvalidInput("a PIN is 4 to 16 digits")
    face = parse_amount(value, allow_zero=False)
    if uow.session.scalar(select(ScratchCard.id).where(ScratchCard.serial == serial)) is not None:
        raise InvalidInput(f"card {serial} already exists")
    card = ScratchCard(serial=serial, pin_hash=_pin_hash(serial, pin), value_units=to_units(face))
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


def redeem_card(uow, msisdn: str, serial: str, pin: str, key: str) -> TopUp:
    serial = check_serial(serial)
    card = uow.session.scalar(select(ScratchCard).where(ScratchCard.serial == serial).with_for_update())
    if card is None:
        raise UnknownCard(f"no scratch card with serial {serial}")
    if ledger.find_operation(uow, key) is not None:
        return TopUp(from_units(card.value_units), duplicate=True)
    if card.used_at is not None:
        raise CardAlreadyUsed(f"card {serial} was used on {card.used_at:%Y-%m-%d %H:%M}")
    if not hmac.compare_digest(card.pin_hash, _pin_hash(serial, pin or "")):
        raise WrongPin("the PIN does not match this card")
    line = lines.find(uow, msisdn, lock=True)
    validity.require_open(line, uow.clock.now().date())  # refused before the card is spent
    card.used_at = uow.clock.now()
    card.used_by = line.msisdn
    value = from_units(card.value_units)
    op = ledger.open_operation(uow, key, "card", line)
    _apply_payment(uow, line, value, op, "card")
    _after_money_landed(uow, line, op, "card")
    uow.commit()
    log.info("card %s redeemed by %s", serial, mask(line.msisdn))
    return TopUp(value)
