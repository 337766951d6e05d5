"""Subscriber lines: finding them, opening them, and the settings a subscriber may change."""
from __future__ import annotations

import json
import logging
from types import SimpleNamespace
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import bindparam, select

from . import ledger, validity
from .driver_sql import DriverStatement
from .billrun import last_cutoff
from .errors import InvalidInput, InvalidLanguage, InvalidMsisdn, SubscriberExists, UnknownSubscriber, WrongPlan
from .models import Operation, Subscriber
from .msisdn import mask, normalize
from .tariffs import LANGUAGES, PLANS

log = logging.getLogger("billing.lines")

# Set by hand (care, the operator, tests). `expired` and `deactivated` are set by the dates only
# (billing/validity.py).
STATUSES = ("active", "suspended-one-way", "suspended-two-way")
BILL_DAYS = range(4, 25)  # seed 000: billing runs between the 4th and the 24th


_BY_NUMBER = select(Subscriber).where(Subscriber.msisdn == bindparam("msisdn"))
_BY_NUMBER_LOCKED = _BY_NUMBER.with_for_update()


def find(uow, msisdn: str, *, lock: bool = False) -> Subscriber:
    number = normalize(msisdn)
    line = uow.session.execute(_BY_NUMBER_LOCKED if lock else _BY_NUMBER, {"msisdn": number}).scalar()
    if line is None:
        raise _unknown(number)
    return line


class LineSnapshot(SimpleNamespace):
    """A line's columns as plain attributes, for the paths that run thousands of times a second
    (a charge, a balance question): loading an ORM object costs more than the whole SQL of a charge.
    Money still moves only through `ledger.post`, which keeps the snapshot's figures current."""


_TABLE = Subscriber.__table__
_COLUMNS = ", ".join(c.name for c in _TABLE.columns)  # a line's columns, as every read of a line selects them
_ROW_BY_NUMBER_SQL = f"SELECT {_COLUMNS} FROM subscriber WHERE msisdn = :msisdn"
_ROW_BY_NUMBER = DriverStatement(_ROW_BY_NUMBER_SQL, columns=_TABLE.columns)
_ROW_BY_NUMBER_LOCKED = DriverStatement(_ROW_BY_NUMBER_SQL, columns=_TABLE.columns, for_update=True)


def snapshot(uow, msisdn: str, *, lock: bool = False) -> LineSnapshot:
    number = normalize(msisdn)
    uow.flush()  # a line changed through the ORM in this transaction is read as changed
    row = (_ROW_BY_NUMBER_LOCKED if lock else _ROW_BY_NUMBER).mapping(uow, {"msisdn": number})
    if row is None:
        raise _unknown(number)
    return LineSnapshot(**row)


# A request's first statement (billing.memo): its line locked and the answer kept for its key, if any.
_ROW_AND_REPLY_LOCKED = DriverStatement(
    f"{_ROW_BY_NUMBER_SQL.replace(' FROM subscriber', ', (SELECT reply FROM operation WHERE key = :op_key) FROM subscriber')}",
    columns=(*_TABLE.columns, Operation.__table__.c.reply), for_update=True)


def lock_with_reply(uow, msisdn: str, key: str) -> tuple[bool, str | None]:
    """(whether the line exists, the answer kept for `key` as stored), in one statement that also
    locks the line; the request's own locked read of the line next (`snapshot(lock=True)`) is
    answered from this one (billing.driver_sql)."""
    try:
        number = normalize(msisdn)
    except InvalidMsisdn:
        return False, None
    uow.flush()
    row = _ROW_AND_REPLY_LOCKED.row(uow, {"msisdn": number, "op_key": key})
    if row is None:
        return False, None
    uow.driver().answer_locked(_ROW_BY_NUMBER_LOCKED, {"msisdn": number}, [row[:-1]])
    return True, row[-1]


# PostgreSQL: the lines of a batch of group commit locked and read at its start, skipping those
# another transaction holds (their columns come back empty), with the answers kept for the batch's
# keys (as one JSON object, on every row). Both reads of the lines go by the number's index: a
# semi-join on the ids let the planner scan the whole table once a batch (bench/README.md).
_TAKE_FREE = DriverStatement(
    f"WITH taken AS MATERIALIZED (SELECT {_COLUMNS} FROM subscriber "
    "WHERE msisdn = ANY(CAST(:msisdns AS text[])) ORDER BY id FOR UPDATE SKIP LOCKED) "
    f"SELECT wanted.msisdn, {', '.join('taken.' + c.name for c in _TABLE.columns)}, "
    "(SELECT json_object_agg(key, reply) FROM operation "
    "WHERE key = ANY(CAST(:op_keys AS text[])) AND reply IS NOT NULL)::text "
    "FROM subscriber wanted LEFT JOIN taken ON taken.id = wanted.id "
    "WHERE wanted.msisdn = ANY(CAST(:msisdns AS text[]))",
    columns=(_TABLE.c.msisdn, *_TABLE.columns))
# SQLite: the same read, in the same shape; the batch's BEGIN IMMEDIATE took the one write lock, so
# every line is free. The lists go as JSON (SQLite has no arrays).
_READ_AHEAD = DriverStatement(
    f"SELECT msisdn, {_COLUMNS}, "
    "(SELECT json_group_object(key, reply) FROM operation "
    "WHERE key IN (SELECT value FROM json_each(:op_keys)) AND reply IS NOT NULL) "
    "FROM subscriber WHERE msisdn IN (SELECT value FROM json_each(:msisdns))",
    columns=(_TABLE.c.msisdn, *_TABLE.columns))


def take_free(uow, wanted: list[tuple[str, str | None]]) -> set[str]:
    """Lock the rows of those of these lines (E.164, each with the key of a request that will
    recall its kept answer first, or None) that no other transaction holds, without waiting for
    any; the ones held elsewhere (numbers no line has are neither). The rows and answers read are
    the answers of the requests' own locked reads to come (`lock_with_reply`, `snapshot`). Run
    before any savepoint is opened: no undo can reach back past what it read. On SQLite the batch
    holds the one write lock, so every line is free and this only reads."""
    msisdns = sorted({line for line, _ in wanted})
    op_keys = sorted({key for _, key in wanted if key})
    if uow.driver().dialect.name == "postgresql":
        rows = _TAKE_FREE.rows(uow, {"msisdns": msisdns, "op_keys": op_keys})
    else:
        rows = _READ_AHEAD.rows(uow, {"msisdns": json.dumps(msisdns), "op_keys": json.dumps(op_keys)})
    kept = json.loads(rows[0][-1]) if rows and rows[0][-1] else {}
    busy, taken = set(), {}
    for row in rows:
        if row[1] is None:
            busy.add(row[0])
        else:
            taken[row[0]] = row[1:-1]
    driver = uow.driver()
    for line, key in wanted:
        row = taken.get(line)
        if row is None:
            continue
        driver.answer_locked(_ROW_BY_NUMBER_LOCKED, {"msisdn": line}, [row], kept=True)
        if key is not None:
            driver.answer_locked(_ROW_AND_REPLY_LOCKED, {"msisdn": line, "op_key": key},
                                 [(*row, kept.get(key))], kept=True)
    return busy


def _unknown(number: str) -> UnknownSubscriber:
    return UnknownSubscriber(f"{number} is not a subscriber of this network")


def require_plan(line: Subscriber, plan: str) -> None:
    if line.plan != plan:
        raise WrongPlan(f"{line.msisdn} is a {line.plan} line, this service is for {plan} lines", plan=line.plan)


def add_subscriber(
    uow,
    msisdn: str,
    plan: str,
    *,
    tariff: str | None = None,
    balance: Decimal = Decimal(0),
    language: str = "az",
    activated: date | None = None,
    billed: Decimal = Decimal(0),
    current: Decimal = Decimal(0),
    advance: Decimal = Decimal(0),
    bill_day: int | None = None,
    status: str = "active",
    roaming: bool = False,
) -> Subscriber:
    number = normalize(msisdn)
    if plan not in PLANS:
        raise InvalidInput(f"plan must be one of {', '.join(PLANS)}, not {plan!r}")
    check_language(language)
    check_status(status)
    book_tariff = uow.tariffs.get(tariff) if tariff else uow.tariffs.default_for(plan)
    if book_tariff.plan != plan:
        raise InvalidInput(f"tariff {book_tariff.name!r} is a {book_tariff.plan} tariff, not {plan}")
    if plan == "postpaid":
        bill_day = 10 if bill_day is None else bill_day
        if bill_day not in BILL_DAYS:
            raise InvalidInput(f"bill day must be between 4 and 24, not {bill_day}")
    elif any((billed, current, advance, bill_day)):
        raise InvalidInput("billed/current/advance/bill day are postpaid figures")
    if plan == "postpaid" and balance:
        raise InvalidInput("a postpaid line has no prepaid balance: use --advance")
    if uow.session.scalar(select(Subscriber.id).where(Subscriber.msisdn == number)) is not None:
        raise SubscriberExists(f"{number} already exists")
    now = uow.clock.now()
    if activated is not None and activated > now.date():
        raise InvalidInput(f"activation date {activated} is after today ({now.date()})")
    line = Subscriber(
        msisdn=number,
        plan=plan,
        status=status,
        language=language,
        tariff=book_tariff.name,
        roaming=roaming,
        notify_balance=True,
        activated_on=activated or now.date(),
        balance_units=0,
        billed_units=0,
        current_units=0,
        advance_units=0,
        bill_day=bill_day,
    )
    uow.session.add(line)
    uow.session.flush()
    op = ledger.open_operation(uow, f"open:{line.id}", "open", line)
    for account, amount in (("balance", balance), ("billed", billed), ("current", current), ("advance", advance)):
        ledger.post(uow, line, account, amount, op, "opening")
    if plan == "prepaid":
        line.balance_expires = line.activated_on
        validity.extend_validity(uow, line, balance, line.activated_on)
        if line.subscription_ends is None:
            line.subscription_ends = line.activated_on + timedelta(days=uow.tariffs.subscription_grace_days)
    else:
        # The figures given at opening are the current cycle's: it began at the last cut-off.
        line.last_bill_run = last_cutoff(bill_day, now)
    uow.commit()
    log.info("line opened %s plan=%s tariff=%s", mask(number), plan, book_tariff.name)
    return line


def check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise InvalidLanguage(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}")


def check_status(status: str) -> None:
    if status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not {status!r}")


def set_language(uow, msisdn: str, language: str) -> None:
    check_language(language)
    line = find(uow, msisdn, lock=True)
    line.language = language
    uow.commit()
    log.info("language %s for %s", language, mask(line.msisdn))


def set_balance_notifications(uow, msisdn: str, on: bool) -> None:
    line = find(uow, msisdn, lock=True)
    line.notify_balance = bool(on)
    uow.commit()
    log.info("balance-change SMS %s for %s", "on" if on else "off", mask(line.msisdn))


def set_status(uow, msisdn: str, status: str) -> None:
    check_status(status)
    line = find(uow, msisdn, lock=True)
    validity.require_open(line, uow.clock.now().date())
    line.status = status
    uow.commit()


def set_roaming(uow, msisdn: str, roaming: bool) -> None:
    line = find(uow, msisdn, lock=True)
    line.roaming = bool(roaming)
    uow.commit()
