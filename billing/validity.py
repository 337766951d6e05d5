"""Prepaid validity: what a top-up buys, and what the two dates do to a line (docs/rules.md).

- A top-up keeps the balance usable for its tier's days (never shortening a later expiry), and
  the subscription (the number) lives `subscription_grace_days` after the balance expiry.
- The balance is usable through its expiry date. From the day after, the line is one-way
  suspended (`expired`): incoming only, nothing may be spent from the balance, which is kept
  (frozen, not moved) until a top-up reactivates the line.
- From the day after the subscription end the line is closed (`deactivated`): the number is no
  longer served; the worker settles its money (billing/expiry.py).

The dates decide at once, whether or not the worker has written the status yet, so every spend
asks `spend_refusal` (one rule, one place); the worker job writes the status and tells the
subscriber. Postpaid lines have no such dates: only their status counts.
"""
from __future__ import annotations

import logging
from datetime import date, timedelta
from decimal import Decimal

from . import outbox
from .errors import BalanceExpired, LineClosed, LineNotActive
from .models import Subscriber
from .msisdn import mask

log = logging.getLogger("billing.validity")

ACTIVE = "active"
EXPIRED = "expired"  # one-way suspended because the balance expired; a top-up lifts it
CLOSED = "deactivated"  # the subscription ended; nothing lifts it
TIME_STATUSES = (EXPIRED, CLOSED)  # set by the dates, never by hand


def balance_expired(line: Subscriber, today: date) -> bool:
    return line.plan == "prepaid" and line.balance_expires is not None and today > line.balance_expires


def subscription_over(line: Subscriber, today: date) -> bool:
    return line.plan == "prepaid" and line.subscription_ends is not None and today > line.subscription_ends


def status_now(line: Subscriber, today: date) -> str:
    """The line's status as the dates make it today (the stored one may lag until the worker runs).

    An operator's suspension stays what it is when the balance expires behind it; only the
    subscription end overrides every status."""
    if line.status == CLOSED or subscription_over(line, today):
        return CLOSED
    if line.status == ACTIVE and balance_expired(line, today):
        return EXPIRED
    return line.status


def spend_refusal(line: Subscriber, today: date) -> LineNotActive | None:
    """Why the line may not spend now (a call, data, a pack, a renewal, a credit, a paid SMS), or
    None when it may. The one rule every spending path asks."""
    status = status_now(line, today)
    if status == CLOSED:
        return LineClosed(f"{line.msisdn}: the subscription ended on {line.subscription_ends}, the number is closed")
    if status == EXPIRED:
        return BalanceExpired(f"{line.msisdn}: the balance expired on {line.balance_expires}; a top-up reactivates it")
    if status != ACTIVE:
        return LineNotActive(f"{line.msisdn} is {status}: outgoing services are barred")
    return None


def may_spend(line: Subscriber, today: date) -> bool:
    return spend_refusal(line, today) is None


def require_may_spend(line: Subscriber, today: date) -> None:
    refusal = spend_refusal(line, today)
    if refusal is not None:
        raise refusal


def require_open(line: Subscriber, today: date) -> None:
    """A closed number takes no money and no changes (a top-up, a card, a plan or status change)."""
    if status_now(line, today) == CLOSED:
        raise LineClosed(f"{line.msisdn}: the subscription ended on {line.subscription_ends}, the number is closed")


def extend_validity(uow, line: Subscriber, amount: Decimal, today: date) -> None:
    """A prepaid top-up keeps the balance usable for the tier's days; never shortens it."""
    days = uow.tariffs.validity_days(amount)
    if days == 0:
        return
    new_expiry = today + timedelta(days=days)
    if line.balance_expires is None or new_expiry > line.balance_expires:
        line.balance_expires = new_expiry
    line.subscription_ends = line.balance_expires + timedelta(days=uow.tariffs.subscription_grace_days)


def apply_topup(uow, line: Subscriber, amount: Decimal, op) -> None:
    """What a top-up (or a card) does to the dates: extends them, and reactivates a line that was
    suspended because its balance expired once they are valid again (the subscriber is told)."""
    today = uow.clock.now().date()
    extend_validity(uow, line, amount, today)
    if line.status == EXPIRED and not balance_expired(line, today):
        line.status = ACTIVE
        outbox.enqueue(uow, line, "line-reactivated", {"expires": f"{line.balance_expires:%Y-%m-%d}"},
                       key=f"{op.key}:line-reactivated")
        log.info("%s reactivated by a top-up, balance valid until %s", mask(line.msisdn), line.balance_expires)
