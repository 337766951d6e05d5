"""The only code that changes money: operations (idempotency) and ledger postings.

Every balance column moves only through `post`, in the same transaction as its ledger entry,
so `column == sum(entries)` holds by construction and `audit` can prove it.
"""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.orm.attributes import set_committed_value

from .errors import InsufficientBalance
from .models import LedgerEntry, Operation, Subscriber
from .money import from_units, to_units

_COLUMN = {
    "balance": "balance_units",
    "billed": "billed_units",
    "current": "current_units",
    "advance": "advance_units",
    "nar_debt": "nar_debt_units",  # credit debts (issue 5)
    "sos_debt": "sos_debt_units",
}


def find_operation(uow, key: str) -> Operation | None:
    return uow.session.scalar(select(Operation).where(Operation.key == key))


_LEDGER = LedgerEntry.__table__
_LINES = Subscriber.__table__

# Statements built once: the charge path runs thousands of times a second.
# Plain SQL that SQLite (>= 3.35) and PostgreSQL both speak; SQLAlchemy cannot cache the compiled
# form of its dialect-specific on_conflict_do_nothing(), which tripled the cost of a charge.
_CLAIM = text(
    "INSERT INTO operation (key, kind, subscriber_id, created_at) "
    "VALUES (:key, :kind, :subscriber_id, :created_at) ON CONFLICT (key) DO NOTHING RETURNING id"
)
_INCREMENT = {
    account: update(_LINES)
    .where(_LINES.c.id == bindparam("line_id"))
    .values({column: _LINES.c[column] + bindparam("delta")})
    .returning(_LINES.c[column])
    for account, column in _COLUMN.items()
}
_ENTRY = insert(_LEDGER)


def open_operation(uow, key: str, kind: str, line: Subscriber | None = None) -> Operation | None:
    """Claim `key` for this request; None when it was claimed before (a retry).

    One statement does the check and the claim, so twins racing on two connections cannot both
    win: the database's unique index decides (PostgreSQL makes the second wait for the first).
    """
    now = uow.clock.now()
    op_id = uow.connection().execute(
        _CLAIM, {"key": key, "kind": kind, "subscriber_id": line.id if line else None, "created_at": now}
    ).scalar()
    if op_id is None:
        return None
    return Operation(id=op_id, key=key, kind=kind, created_at=now)


def post(uow, line: Subscriber, account: str, delta: Decimal, op: Operation, kind: str) -> None:
    units = to_units(delta)
    if units == 0:
        return
    _posted(op)[(line.id, account, kind)] += units
    column = _COLUMN[account]
    uow.session.flush()  # pending ORM changes to the line go first, so ours applies on top
    # An atomic increment in SQL, never read-modify-write in Python: no update can be lost.
    new_value = uow.connection().execute(_INCREMENT[account], {"line_id": line.id, "delta": units}).scalar()
    if isinstance(line, Subscriber):
        set_committed_value(line, column, new_value)  # an ORM object: not dirty, just current
    else:
        setattr(line, column, new_value)
    uow.connection().execute(_ENTRY, {
        "operation_id": op.id, "subscriber_id": line.id, "account": account,
        "delta_units": units, "kind": kind, "created_at": uow.clock.now(),
    })


def _posted(op: Operation) -> defaultdict:
    # Kept on the operation while its transaction runs, so a notification can name the parts of a
    # change (a top-up and the debt it repaid) without reading the entries back.
    posted = getattr(op, "_posted_units", None)
    if posted is None:
        posted = op._posted_units = defaultdict(int)
    return posted


def posted_by(op: Operation, line: Subscriber, account: str, kinds: tuple[str, ...] | None = None) -> Decimal:
    """What `op` has posted to one account of `line` so far (only entries of `kinds`, if given)."""
    return from_units(sum(units for (line_id, acc, kind), units in _posted(op).items()
                          if line_id == line.id and acc == account and (kinds is None or kind in kinds)))


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
