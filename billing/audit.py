"""Proof that nothing was lost or doubled: every account column equals the sum of its ledger."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select

from .ledger import columns
from .models import LedgerEntry, Subscriber
from .money import from_units


@dataclass(frozen=True)
class Mismatch:
    msisdn: str
    account: str
    stored: Decimal
    ledger: Decimal


def audit(uow) -> list[Mismatch]:
    sums = {
        (sid, account): total
        for sid, account, total in uow.session.execute(
            select(LedgerEntry.subscriber_id, LedgerEntry.account, func.sum(LedgerEntry.delta_units))
            .group_by(LedgerEntry.subscriber_id, LedgerEntry.account)
        )
    }
    problems = []
    for line in uow.session.scalars(select(Subscriber).order_by(Subscriber.msisdn)):
        for account, column in columns().items():
            stored = getattr(line, column)
            summed = sums.get((line.id, account), 0)
            if stored != summed:
                problems.append(Mismatch(line.msisdn, account, from_units(stored), from_units(summed)))
    return problems


def count_lines(uow) -> int:
    return uow.session.scalar(select(func.count(Subscriber.id)))
