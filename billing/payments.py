"""Money coming in: top-ups (payments on postpaid), and what a scratch card lands (billing.cards)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select

from . import credit, ledger, lines, outbox, pack_renewal, validity
from .errors import InvalidInput
from .models import LedgerEntry, Operation, Subscriber
from .money import from_units, parse_payment, to_units
from .msisdn import mask

log = logging.getLogger("billing.payments")


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


def land_payment(uow, line: Subscriber, amount: Decimal, op, kind: str) -> None:
    """Money arriving on a line under operation `op`, a top-up and a scratch card alike: applied to
    the balance (prepaid) or the bill, then advance (postpaid), then what it triggers. The caller
    has checked the number is open (`validity.require_open`)."""
    _apply_payment(uow, line, amount, op, kind)
    _after_money_landed(uow, line, op, kind)


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
    land_payment(uow, line, value, op, kind)
    uow.commit()
    log.info("%s %s AZN for %s", kind, value, mask(line.msisdn))
    return TopUp(value)
