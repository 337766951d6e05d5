"""The only code that changes money: operations (idempotency) and ledger postings.

Every balance column moves only through `post` (or `claim_and_post`, which on PostgreSQL claims,
increments and writes the entry in one statement), in the same transaction as its ledger entry,
so `column == sum(entries)` holds by construction and `audit` can prove it.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm.attributes import set_committed_value

from .driver_sql import DriverStatement, RowsStatement
from .errors import InsufficientBalance
from .models import Operation, Subscriber
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


@dataclass(slots=True, eq=False)
class Claim:
    """An operation claimed by this request (its row is written; no ORM object is loaded for it)."""
    id: int
    key: str
    kind: str
    created_at: datetime
    # Kept while its transaction runs, so a notification can name the parts of a change (a top-up and
    # the debt it repaid) without reading the entries back.
    posted_units: defaultdict = field(default_factory=lambda: defaultdict(int))


_OPERATION = Operation.__table__
_STAMP = {"created_at": _OPERATION.c.created_at.type}

# Statements written once and run on the driver connection: the charge path runs thousands of times
# a second. Plain SQL that SQLite (>= 3.35) and PostgreSQL both speak.
_CLAIM = DriverStatement(
    "INSERT INTO operation (key, kind, subscriber_id, created_at) "
    "VALUES (:key, :kind, :line_id, :created_at) ON CONFLICT (key) DO NOTHING RETURNING id",
    binds=_STAMP)
_CLAIMED = DriverStatement("SELECT id FROM operation WHERE key = :key")
_INCREMENT = {
    account: DriverStatement(f"UPDATE subscriber SET {column} = {column} + :delta WHERE id = :line_id RETURNING {column}",
                             changes_line="line_id")
    for account, column in _COLUMN.items()
}
_ENTRY = DriverStatement(
    "INSERT INTO ledger_entry (operation_id, subscriber_id, account, delta_units, kind, created_at) "
    "VALUES (:operation_id, :line_id, :account, :delta, :entry_kind, :created_at)", binds=_STAMP)
# PostgreSQL: the claim, the increment and the entry in one statement (one round trip instead of
# three); when the key was claimed before, the claim returns no row and nothing else happens.
_CLAIM_AND_POST = {
    account: DriverStatement(
        "WITH claimed AS (INSERT INTO operation (key, kind, subscriber_id, created_at) "
        "VALUES (:key, :kind, :line_id, :created_at) ON CONFLICT (key) DO NOTHING RETURNING id), "
        f"moved AS (UPDATE subscriber SET {column} = {column} + :delta FROM claimed "
        f"WHERE subscriber.id = :line_id RETURNING subscriber.{column} AS value), "
        "entry AS (INSERT INTO ledger_entry (operation_id, subscriber_id, account, delta_units, kind, created_at) "
        "SELECT claimed.id, :line_id, :account, :delta, :entry_kind, :created_at FROM claimed) "
        "SELECT claimed.id, moved.value FROM claimed, moved", binds=_STAMP, changes_line="line_id")
    for account, column in _COLUMN.items()
}
# PostgreSQL: the claims held by the members of a batch (`claim_and_post(..., may_hold=True)`), all
# made in one statement: the server plans one statement a batch instead of one a charge
# (bench/README.md). The claims go as one JSON text (made in C) rather than six arrays, which the
# driver builds an element at a time in Python. Returns how many keys it claimed; fewer than it was
# given means one was taken meanwhile, and nothing of the batch may commit.
_CLAIMS_AND_POSTS = {
    account: DriverStatement(
        "WITH input AS (SELECT * FROM json_to_recordset(CAST(:claims AS json)) AS i (key text, kind text, "
        "line_id integer, delta bigint, entry_kind text, created_at timestamp)), "
        "claimed AS (INSERT INTO operation (key, kind, subscriber_id, created_at) "
        "SELECT key, kind, line_id, created_at FROM input ON CONFLICT (key) DO NOTHING RETURNING id, key), "
        f"moved AS (UPDATE subscriber SET {column} = {column} + sums.total FROM (SELECT input.line_id, "
        "SUM(input.delta) AS total FROM claimed JOIN input ON input.key = claimed.key GROUP BY input.line_id) sums "
        "WHERE subscriber.id = sums.line_id RETURNING subscriber.id), "
        "entry AS (INSERT INTO ledger_entry (operation_id, subscriber_id, account, delta_units, kind, created_at) "
        "SELECT claimed.id, input.line_id, :account, input.delta, input.entry_kind, input.created_at "
        "FROM claimed JOIN input ON input.key = claimed.key) "
        "SELECT count(*) FROM claimed", changes_line="line_ids")
    for account, column in _COLUMN.items()
}
# SQLite: the same as three statements, each over all the batch's claims (`RowsStatement`). The
# claims are counted before anything else is written: fewer than given means nothing may commit.
# (`WHERE true`: SQLite's parser would read the ON of ON CONFLICT as a join's.)
_CLAIM_ROWS = RowsStatement(
    "INSERT INTO operation (key, kind, subscriber_id, created_at) "
    "SELECT key, kind, line_id, created_at FROM {rows} WHERE true ON CONFLICT (key) DO NOTHING",
    ("key", "kind", "line_id", "created_at"), binds=_STAMP, changes_line="line_id")
_POST_ROWS = {
    account: RowsStatement(
        f"UPDATE subscriber SET {column} = {column} + sums.total FROM "
        "(SELECT line_id, SUM(delta) AS total FROM {rows} GROUP BY line_id) AS sums "
        "WHERE subscriber.id = sums.line_id", ("line_id", "delta"), changes_line="line_id")
    for account, column in _COLUMN.items()
}
_ENTRY_ROWS = RowsStatement(
    "INSERT INTO ledger_entry (operation_id, subscriber_id, account, delta_units, kind, created_at) "
    "SELECT operation.id, claims.line_id, claims.account, claims.delta, claims.entry_kind, claims.created_at "
    "FROM {rows} AS claims JOIN operation ON operation.key = claims.key",
    ("key", "line_id", "account", "delta", "entry_kind", "created_at"), binds=_STAMP, changes_line="line_id")
_CLAIMED_AMOUNT = DriverStatement(
    "SELECT COALESCE(SUM(e.delta_units), 0) FROM ledger_entry e JOIN operation o ON o.id = e.operation_id "
    "WHERE o.key = :key AND e.account IN ('balance', 'current')")


def open_operation(uow, key: str, kind: str, line: Subscriber | None = None) -> Claim | None:
    """Claim `key` for this request; None when it was claimed before (a retry).

    One statement does the check and the claim, so twins racing on two connections cannot both
    win: the database's unique index decides (PostgreSQL makes the second wait for the first).
    """
    now = uow.clock.now()
    uow.flush()  # an ORM-added line must exist before an operation names it
    op_id = _CLAIM.scalar(uow, {"key": key, "kind": kind, "line_id": line.id if line else None,
                                "created_at": now})
    if op_id is None:
        return None
    return Claim(op_id, key, kind, now)


def was_claimed(uow, key: str) -> bool:
    return _CLAIMED.scalar(uow, {"key": key}) is not None


def post(uow, line: Subscriber, account: str, delta: Decimal, op: Claim, kind: str) -> None:
    units = to_units(delta)
    if units == 0:
        return
    op.posted_units[(line.id, account, kind)] += units
    uow.flush()  # pending ORM changes to the line go first, so ours applies on top
    # An atomic increment in SQL, never read-modify-write in Python: no update can be lost.
    new_value = _INCREMENT[account].scalar(uow, {"line_id": line.id, "delta": units})
    _keep_current(line, account, new_value)
    _ENTRY.run(uow, {"operation_id": op.id, "line_id": line.id, "account": account, "delta": units,
                     "entry_kind": kind, "created_at": uow.clock.now()})


def claim_and_post(uow, key: str, kind: str, line, account: str, delta: Decimal, entry_kind: str, *,
                   may_hold: bool = False) -> Claim | None:
    """`open_operation` then `post`, in one statement where the database allows: None, with nothing
    posted, when the key was claimed before. `may_hold`: the caller needs no `Claim.id`, so in a
    transaction that allows it (`uow.may_hold_writes`: a batch of group commit) the claim is held
    and made with the others of the batch (`_write_claims`); the claim's id is None then."""
    units = to_units(delta)
    if units != 0 and may_hold and uow.may_hold_writes:
        uow.flush()
        return _hold_claim(uow, key, kind, line, account, units, entry_kind, uow.clock.now())
    if uow.driver().dialect.name != "postgresql" or units == 0:
        op = open_operation(uow, key, kind, line)
        if op is not None:
            post(uow, line, account, delta, op, entry_kind)
        return op
    now = uow.clock.now()
    uow.flush()
    row = _CLAIM_AND_POST[account].row(uow, {"key": key, "kind": kind, "line_id": line.id, "delta": units,
                                             "account": account, "entry_kind": entry_kind, "created_at": now})
    if row is None:
        return None
    op = Claim(row[0], key, kind, now)
    op.posted_units[(line.id, account, entry_kind)] += units
    _keep_current(line, account, row[1])
    return op


def _hold_claim(uow, key: str, kind: str, line, account: str, units: int, entry_kind: str, now) -> Claim | None:
    # The line's row is locked by this transaction, so its figure after the claim is known here;
    # what was read of the line is forgotten, so a later read of it is a statement, and every
    # statement is sent after the held claims (UnitOfWork.hold).
    if any(held["key"] == key for held in uow.held(_write_claims)):
        return None  # a twin earlier in the batch holds it
    uow.hold(_write_claims, {"key": key, "kind": kind, "line_id": line.id, "account": account, "delta": units,
                             "entry_kind": entry_kind, "created_at": now}, seen_by_statements=True)
    uow.driver().forget_lines([line.id])
    op = Claim(None, key, kind, now)
    op.posted_units[(line.id, account, entry_kind)] += units
    _keep_current(line, account, getattr(line, _COLUMN[account]) + units)
    return op


def _write_claims(uow, claims: list[dict]) -> None:
    by_account: dict[str, list[dict]] = {}
    for claim in claims:
        by_account.setdefault(claim["account"], []).append(claim)
    if uow.driver().dialect.name != "postgresql":
        _write_claims_sqlite(uow, by_account)
        return
    for account, held in by_account.items():
        made = _CLAIMS_AND_POSTS[account].scalar(uow, {
            "claims": json.dumps(held, default=datetime.isoformat), "account": account,
            # not in the SQL: names the lines it changes (`changes_line`), so reads of others stay
            "line_ids": [c["line_id"] for c in held]})
        if made != len(held):
            uow.refuse_held(f"{len(held) - made} of {len(held)} held claims found their key taken")


def _write_claims_sqlite(uow, by_account: dict[str, list[dict]]) -> None:
    for account, held in by_account.items():
        made = _CLAIM_ROWS.run(uow, held)
        if made != len(held):
            uow.refuse_held(f"{len(held) - made} of {len(held)} held claims found their key taken")
        _POST_ROWS[account].run(uow, held)
        _ENTRY_ROWS.run(uow, held)


def _keep_current(line, account: str, new_value: int) -> None:
    column = _COLUMN[account]
    if isinstance(line, Subscriber):
        set_committed_value(line, column, new_value)  # an ORM object: not dirty, just current
    else:
        setattr(line, column, new_value)


def posted_by(op: Claim, line: Subscriber, account: str, kinds: tuple[str, ...] | None = None) -> Decimal:
    """What `op` has posted to one account of `line` so far (only entries of `kinds`, if given)."""
    return from_units(sum(units for (line_id, acc, kind), units in op.posted_units.items()
                          if line_id == line.id and acc == account and (kinds is None or kind in kinds)))


def charge(uow, line: Subscriber, amount: Decimal, op: Claim, kind: str) -> None:
    """A fee: taken from a prepaid balance (which may not go below zero) or added to postpaid usage."""
    account, delta = _fee_posting(line, amount)
    post(uow, line, account, delta, op, kind)


def claim_and_charge(uow, key: str, kind: str, line, amount: Decimal, entry_kind: str, *,
                     may_hold: bool = False) -> Claim | None:
    """Claim `key` and take the fee `amount` (the rule of `charge`); None when the key was claimed
    before. A fee the balance cannot pay is refused before anything is written, unless it is the
    retry of a request that paid it (then None, like any retry). `may_hold`: `claim_and_post`'s."""
    try:
        account, delta = _fee_posting(line, amount)
    except InsufficientBalance:
        if was_claimed(uow, key):
            return None
        raise
    return claim_and_post(uow, key, kind, line, account, delta, entry_kind, may_hold=may_hold)


def _fee_posting(line, amount: Decimal) -> tuple[str, Decimal]:
    if line.plan != "prepaid":
        return "current", amount
    if line.balance_units < to_units(amount):
        raise InsufficientBalance(f"balance {from_units(line.balance_units)} AZN is less than the {amount} AZN fee")
    return "balance", -amount


def amount_of(uow, op_key: str) -> Decimal:
    """What an earlier operation charged, for the answer to its retry."""
    return abs(from_units(int(_CLAIMED_AMOUNT.scalar(uow, {"key": op_key}))))


def account_value(line: Subscriber, account: str) -> Decimal:
    return from_units(getattr(line, _COLUMN[account]))


def columns() -> dict[str, str]:
    return dict(_COLUMN)
