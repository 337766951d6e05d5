"""Moving a line between prepaid and postpaid. Seed 002: the move annuls every internet pack.

Money moves with the line (our rule, docs/rules.md): prepaid -> postpaid turns the
balance into advance payment; postpaid -> prepaid needs the bill and current usage settled and
turns the advance into balance. A line with Nar/SOS debt must repay it before leaving prepaid.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from . import ledger, lines, outbox, validity
from .billrun import last_cutoff
from .errors import InvalidInput
from .money import from_units, owed
from .msisdn import mask
from .packs import end, live_packs
from .tariffs import PLANS

log = logging.getLogger("billing.plan_change")


def _move_money(uow, line, plan: str, op) -> None:
    if plan == "postpaid":
        if line.nar_debt_units or line.sos_debt_units:
            raise InvalidInput("repay the Nar/SOS Credit debt before moving to postpaid")
        moved = from_units(line.balance_units)
        ledger.post(uow, line, "balance", -moved, op, "plan-change")
        ledger.post(uow, line, "advance", moved, op, "plan-change")
        line.balance_expires = line.subscription_ends = None
        if line.status == validity.EXPIRED:
            line.status = validity.ACTIVE  # a postpaid line has no balance expiry to be suspended for
        line.bill_day = line.bill_day or 10
        line.last_bill_run = last_cutoff(line.bill_day, uow.clock.now())
        return
    # What is owed (the bill and this cycle's usage, to the 0.0001) is settled from the advance
    # first; short of it, the subscriber is told the amount to pay, rounded up as owed money is.
    owed_units = line.billed_units + line.current_units
    if line.advance_units < owed_units:
        short = owed(from_units(owed_units - line.advance_units))
        raise InvalidInput(f"pay {short:.2f} AZN first: the bill and current usage are settled before a move "
                           f"to prepaid")
    for account in ("billed", "current"):
        settled = ledger.account_value(line, account)
        ledger.post(uow, line, account, -settled, op, "plan-change:settle")
        ledger.post(uow, line, "advance", -settled, op, "plan-change:settle")
    moved = from_units(line.advance_units)
    ledger.post(uow, line, "advance", -moved, op, "plan-change")
    ledger.post(uow, line, "balance", moved, op, "plan-change")
    today = uow.clock.now().date()
    line.balance_expires = today
    validity.extend_validity(uow, line, moved, today)
    line.subscription_ends = line.subscription_ends or today + timedelta(days=uow.tariffs.subscription_grace_days)
    line.bill_day = None


def change_plan(uow, msisdn: str, plan: str, key: str, tariff: str | None = None) -> int:
    """Move the line to `plan` (and `tariff`, default: the plan's first); returns packs annulled."""
    if plan not in PLANS:
        raise InvalidInput(f"plan must be one of {', '.join(PLANS)}, not {plan!r}")
    line = lines.find(uow, msisdn, lock=True)
    validity.require_open(line, uow.clock.now().date())
    if line.plan == plan:
        raise InvalidInput(f"{line.msisdn} is already {plan}")
    new_tariff = uow.tariffs.get(tariff) if tariff else uow.tariffs.default_for(plan)
    if new_tariff.plan != plan:
        raise InvalidInput(f"tariff {new_tariff.name!r} is a {new_tariff.plan} tariff, not {plan}")
    op = ledger.open_operation(uow, key, "plan-change", line)
    if op is None:
        return 0
    _move_money(uow, line, plan, op)
    now = uow.clock.now()
    subs = live_packs(uow, line, lock=True)
    for sub in subs:
        end(sub, "annulled", now)
    line.plan, line.tariff = plan, new_tariff.name
    outbox.enqueue(uow, line, "plan-changed", {"plan": plan, "tariff": new_tariff.name, "packs_annulled": len(subs)},
                   key=f"{key}:plan-changed")
    uow.commit()
    log.info("%s moved to %s (%d packs annulled)", mask(line.msisdn), plan, len(subs))
    return len(subs)
