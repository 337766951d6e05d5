"""The only code that changes money: operations (idempotency) and ledger postings.

Every balance column moves only through `post`, in the same transaction as its ledger entry,
so `column == sum(entries)` holds by construction and `audit` can prove it.
"""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .errors import InsufficientBalance
from .models import LedgerEntry, Operation, Subscriber
from .money import from_units, to_units

_COLUMN = {
    "balance": "balance_units",
    "billed": "billed_units",
    "current": "current_units",
    "advance": "advance_units",
}


def find_operation(uow, key: str) -> Operation | None:
    return uow.session.scalar(select(Operation).where(Operation.key == key))


def open_operation(uow, key: str, kind: str, line: Subscriber | None = None) -> Operation | None:
    """Claim `key` for this request; None when it was claimed before (a retry)."""
    if find_operation(uow, key) is not None:
        return None
    op = Operation(key=key, kind=kind, subscriber_id=line.id if line else None, created_at=uow.clock.now())
    try:
        with uow.session.begin_nested():
            uow.session.add(op)
    except IntegrityError:
        return None  # a concurrent twin committed first
    return op


def post(uow, line: Subscriber, account: str, delta: Decimal, op: Operation, kind: str) -> None:
    units = to_units(delta)
    if units == 0:
        return
    column = _COLUMN[account]
    setattr(line, column, getattr(line, column) + units)
    uow.session.add(
        LedgerEntry(
            operation_id=op.id,
            subscriber_id=line.id,
            account=account,
            delta_units=units,
            kind=kind,
            created_at=uow.clock.now(),
        )
    )


def charge(uow, line: Subscriber, amount: Decimal, op: Operation, kind: str) -> None:
    """A fee: taken from a prepaid balance (which may not go below zero) or added to postpaid usage."""
    if line.plan == "prepaid":
        if line.balance_units < to_units(amount):
            raise InsufficientBalance(
                f"balance {from_units(line.balance_units)} AZN is less than the {amount} AZN fee"
            )
        post(uow, line, "balance", -amount, op, kind)
    else:
        post(uow, line, "current", amount, op, kind)


def amount_of(uow, op_key: str) -> Decimal:
    """What an earlier operation charged, for the answer to its retry."""
    total = uow.session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.delta_units), 0))
        .join(Operation, Operation.id == LedgerEntry.operation_id)
        .where(Operation.key == op_key, LedgerEntry.account.in_(("balance", "current")))
    )
    return abs(from_units(total))


def account_value(line: Subscriber, account: str) -> Decimal:
    return from_units(getattr(line, _COLUMN[account]))


def columns() -> dict[str, str]:
    return dict(_COLUMN)
