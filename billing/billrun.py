"""The postpaid bill run: on a line's bill day (4th–24th) at 23:00, usage becomes the bill.

Seed 000: "Requests sent during this period will be carried out in the following bill cycle."
Our reading: the cycle closes at the cut-off (bill day, 23:00). Usage stamped at or after the
cut-off belongs to the next cycle even when the run itself executes later, and a charge that
arrives while a line's run holds its row lock waits and then lands in the next cycle.
"""
from __future__ import annotations

import logging
from datetime import datetime, time

from sqlalchemy import func, select

from . import ledger, outbox
from .locks import locked
from .models import LedgerEntry, Subscriber
from .money import from_units, whole_qepik_down
from .msisdn import mask

log = logging.getLogger("billing.billrun")

BILL_RUN_AT = time(23, 0)


def last_cutoff(bill_day: int, now: datetime) -> datetime:
    year, month = now.year, now.month
    cutoff = datetime.combine(datetime(year, month, bill_day).date(), BILL_RUN_AT)
    if cutoff > now:
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        cutoff = datetime.combine(datetime(year, month, bill_day).date(), BILL_RUN_AT)
    return cutoff


def _late_usage_units(uow, line: Subscriber, cutoff: datetime) -> int:
    return uow.session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.delta_units), 0)).where(
            LedgerEntry.subscriber_id == line.id,
            LedgerEntry.account == "current",
            LedgerEntry.created_at >= cutoff,
        )
    )


def _close_cycle(uow, line: Subscriber, cutoff: datetime) -> None:
    # Keys travel to logs and SMS transports (as outbox keys): the line's id, never its number.
    op = ledger.open_operation(uow, f"billrun:{line.id}:{cutoff:%Y-%m-%d}", "billrun", line)
    if op is None:
        return
    # A bill asks for whole qəpik: what is below a qəpik stays in `current`, carried to the next
    # cycle, so nothing owed is dropped and no bill can be left unpayable by 0.0036 AZN.
    usage = whole_qepik_down(from_units(line.current_units - _late_usage_units(uow, line, cutoff)))
    ledger.post(uow, line, "current", -usage, op, "billrun")
    ledger.post(uow, line, "billed", usage, op, "billrun")
    covered = min(line.advance_units, line.billed_units)
    ledger.post(uow, line, "advance", -from_units(covered), op, "billrun:advance")
    ledger.post(uow, line, "billed", -from_units(covered), op, "billrun:advance")
    line.last_bill_run = cutoff
    outbox.enqueue(uow, line, "bill-issued",
                   {"usage": f"{usage:.4f}", "billed": f"{from_units(line.billed_units):.4f}",
                    "advance": f"{from_units(line.advance_units):.4f}"}, key=f"{op.key}:notify")
    log.info("bill run %s for %s: usage %s", cutoff.date(), mask(line.msisdn), usage)


def run_due_bill_cycles(uow) -> int:
    """Close every postpaid cycle whose cut-off has passed; safe to run at any time, any number of times."""
    now = uow.clock.now()
    ids = uow.session.scalars(select(Subscriber.id).where(Subscriber.plan == "postpaid")).all()
    closed = 0
    for line_id in ids:
        line = locked(uow, Subscriber, line_id)
        cutoff = last_cutoff(line.bill_day, now)
        since = line.last_bill_run or datetime.combine(line.activated_on, time.min)
        if cutoff > since:
            _close_cycle(uow, line, cutoff)
            closed += 1
        uow.commit()
    return closed
