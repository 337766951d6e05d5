"""Money coming in: top-ups (payments on postpaid), and what a scratch card lands (billing.cards)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from . import credit, ledger, lines, outbox, pack_renewal
from .models import Subscriber
from .money import from_units, parse_amount, to_units
from .msisdn import mask

log = logging.getLogger("billing.payments")


@dataclass(frozen=True)
class TopUp:
    amount: Decimal
    duplicate: bool = False


def _apply_payment(uow, line: Subscriber, amount: Decimal, op, kind: str) -> None:
    if line.plan == "prepaid":
        ledger.post(uow, line, "balance", amount, op, kind)
        lines.extend_validity(uow, line, amount, uow.clock.now().date())
        return
    # Postpaid: a payment settles the bill first; what is left is kept as advance payment.
    to_bill = min(line.billed_units, to_units(amount))
    ledger.post(uow, line, "billed", -from_units(to_bill), op, kind)
    ledger.post(uow, line, "advance", amount - from_units(to_bill), op, kind)


def _after_money_landed(uow, line: Subscriber, op) -> None:
    """What a top-up or a card triggers, in its transaction (seeds 003 and 002): Nar/SOS credit debt
    is recovered first, so a pack waiting for money is renewed only from what is left."""
    credit.recover_credit_debt(uow, line, op)
    pack_renewal.renew_after_topup(uow, line, op)


def land_payment(uow, line: Subscriber, amount: Decimal, op, kind: str, key: str) -> None:
    """Money arriving on a line under operation `op`: a top-up and a scratch card alike. Applied to
    the balance (prepaid) or the bill, then advance (postpaid); what it triggers; the balance SMS."""
    _apply_payment(uow, line, amount, op, kind)
    _after_money_landed(uow, line, op)
    outbox.notify_balance_change(uow, line, amount, kind, key)


def topup(uow, msisdn: str, amount, key: str, *, kind: str = "topup") -> TopUp:
    value = parse_amount(amount, allow_zero=False)
    line = lines.find(uow, msisdn, lock=True)
    op = ledger.open_operation(uow, key, kind, line)
    if op is None:
        return TopUp(value, duplicate=True)
    land_payment(uow, line, value, op, kind, key)
    uow.commit()
    log.info("%s %s AZN for %s", kind, value, mask(line.msisdn))
    return TopUp(value)
