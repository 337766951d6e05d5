"""What the prepaid dates do over time (docs/rules.md, "Prepaid validity"). Worker jobs take the core.

- `run_line_expiries`: a line past its balance expiry date becomes `expired` (one-way suspended:
  its balance is kept but may not be spent) and is told so; a line past its subscription end is
  closed (`deactivated`): its balance repays any Nar/SOS debt first, the rest is forfeited, the
  debt it did not cover is written off (each a ledger entry of its own kind), its packs end, and
  it is told.
- `run_expiry_reminders`: from `reminder_hour`, an SMS `expiry_reminder_days` before the balance
  expires and `closure_reminder_days` before the number closes.

The dates already bar spending the moment they pass (billing.validity), so a late worker only
writes the status and the notices late, never lets money be spent. Both jobs are idempotent by
operation key (the line's id and the date concerned), one transaction per line, its row locked.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, or_, select

from . import credit, ledger, outbox, validity
from .locks import locked
from .models import Operation, Subscriber
from .money import fmt_exact
from .msisdn import mask
from .packs import end, live_packs
from .validity import ACTIVE, CLOSED

log = logging.getLogger("billing.expiry")

_KEYS_PER_QUERY = 500


def _day(value: date) -> str:
    return f"{value:%Y-%m-%d}"


def _locked(uow, line_id: int) -> Subscriber:
    return locked(uow, Subscriber, line_id)


# -- when a date passes ------------------------------------------------------------------------

def _expire(uow, line: Subscriber) -> None:
    """One-way suspension: nothing moves, the balance stays on its account (frozen, not forfeited)."""
    line.status = validity.EXPIRED
    op = ledger.open_operation(uow, f"expiry:{line.id}:{line.balance_expires:%Y%m%d}", "expiry", line)
    if op is None:  # told before (the operator set the line active again with the dates still past)
        return
    outbox.enqueue(uow, line, "balance-expired",
                   {"expires": _day(line.balance_expires), "ends": _day(line.subscription_ends)},
                   key=f"{op.key}:balance-expired")
    log.info("%s: balance expired on %s, line one-way suspended until a top-up", mask(line.msisdn),
             line.balance_expires)


def _close(uow, line: Subscriber, now: datetime) -> None:
    op = ledger.open_operation(uow, f"closure:{line.id}:{line.subscription_ends:%Y%m%d}", "closure", line)
    line.status = CLOSED
    if op is None:
        return
    repaid, written_off = credit.settle_at_closure(uow, line, op)
    forfeited = ledger.account_value(line, "balance")
    ledger.post(uow, line, "balance", -forfeited, op, "closure:forfeit")
    for sub in live_packs(uow, line, lock=True):
        end(sub, "annulled", now)
    outbox.enqueue(uow, line, "line-closed",
                   {"ends": _day(line.subscription_ends), "forfeited": fmt_exact(forfeited)},
                   key=f"{op.key}:line-closed")
    log.info("%s closed: subscription ended on %s; %s AZN forfeited, credit debt %s AZN repaid, %s AZN written off",
             mask(line.msisdn), line.subscription_ends, forfeited, repaid, written_off)


def _step(uow, line: Subscriber, now: datetime) -> bool:
    today = now.date()
    if line.status != CLOSED and validity.subscription_over(line, today):
        _close(uow, line, now)
        return True
    if line.status == ACTIVE and validity.balance_expired(line, today):
        _expire(uow, line)
        return True
    return False  # a top-up moved the dates since the lines were picked


def run_line_expiries(core) -> int:
    """Worker job: suspend lines past their balance expiry, close lines past their subscription end."""
    done = 0
    with core.uow() as uow:
        now = uow.clock.now()
        today = now.date()
        ids = uow.session.scalars(
            select(Subscriber.id).where(
                Subscriber.plan == "prepaid", Subscriber.status != CLOSED,
                or_(Subscriber.subscription_ends < today,
                    and_(Subscriber.status == ACTIVE, Subscriber.balance_expires < today)))
            .order_by(Subscriber.id)).all()
        for line_id in ids:
            if _step(uow, _locked(uow, line_id), now):
                done += 1
            uow.commit()
    return done


# -- ahead of time -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Reminder:
    template: str
    date_field: str  # the line's date it warns of
    lead_field: str  # the tariff book's days ahead
    only_active: bool  # True: only lines still active (an expired balance needs no expiry reminder)

    def column(self):
        return getattr(Subscriber, self.date_field)

    def status_filter(self):
        return Subscriber.status == ACTIVE if self.only_active else Subscriber.status != CLOSED

    def applies(self, line: Subscriber) -> bool:
        return line.status == ACTIVE if self.only_active else line.status != CLOSED

    def key(self, line_id: int, day: date) -> str:
        return f"{self.template}:{line_id}:{day:%Y%m%d}"

    def params(self, line: Subscriber) -> dict:
        if self.template == "balance-expiring":
            return {"expires": _day(line.balance_expires)}
        return {"ends": _day(line.subscription_ends), "balance": fmt_exact(ledger.account_value(line, "balance"))}


REMINDERS = (
    Reminder("balance-expiring", "balance_expires", "expiry_reminder_days", only_active=True),
    Reminder("subscription-ending", "subscription_ends", "closure_reminder_days", only_active=False),
)


def _already_reminded(uow, keys: list[str]) -> set[str]:
    known = set()
    for start in range(0, len(keys), _KEYS_PER_QUERY):
        chunk = keys[start:start + _KEYS_PER_QUERY]
        known.update(uow.session.scalars(select(Operation.key).where(Operation.key.in_(chunk))))
    return known


def _remind(uow, line: Subscriber, reminder: Reminder, key: str) -> bool:
    """Queue the reminder unless the line changed since it was picked (a top-up moved the date)."""
    if not reminder.applies(line) or reminder.key(line.id, getattr(line, reminder.date_field)) != key:
        return False
    op = ledger.open_operation(uow, key, "reminder", line)
    if op is None:
        return False
    outbox.enqueue(uow, line, reminder.template, reminder.params(line), key=f"{key}:notify")
    log.info("%s: %s reminder queued", mask(line.msisdn), reminder.template)
    return True


def run_expiry_reminders(core) -> int:
    """Worker job: remind lines whose balance expires, or whose number closes, within the lead days.
    Once per line and date: a top-up that moves the date earns a new reminder when that comes near."""
    done = 0
    with core.uow() as uow:
        now = uow.clock.now()
        if now.hour < uow.tariffs.reminder_hour:
            return 0
        today = now.date()
        for reminder in REMINDERS:
            last_day = today + timedelta(days=getattr(uow.tariffs, reminder.lead_field))
            rows = uow.session.execute(
                select(Subscriber.id, reminder.column()).where(
                    Subscriber.plan == "prepaid", reminder.status_filter(),
                    reminder.column() >= today, reminder.column() <= last_day)
                .order_by(Subscriber.id)).all()
            keys = {reminder.key(line_id, day): line_id for line_id, day in rows}
            for key in sorted(set(keys) - _already_reminded(uow, list(keys)), key=keys.get):
                if _remind(uow, _locked(uow, keys[key]), reminder, key):
                    done += 1
                uow.commit()
    return done
