"""Prepaid expiry scenarios (docs/rules.md, "Prepaid validity"), each a function of (core, clock).

tests/unit/test_expiry.py runs them on SQLite, tests/integration/test_packs_credit_pg.py on a real
PostgreSQL. The clock is moved, never slept; every scenario ends with the ledger audit clean.

The line of most scenarios opens on 2026-11-22 with 7.00 AZN: valid 60 days, so its balance is
usable through 2027-01-21 and expired from 2027-01-22; its subscription ends on 2027-07-20 and the
number is closed from 2027-07-21.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from billing import lines, services
from billing.credit import CreditRefused
from billing.errors import BalanceExpired, LineClosed, LineNotActive
from billing.expiry import run_expiry_reminders, run_line_expiries
from billing.models import CreditGrant, LedgerEntry, Subscriber
from billing.pack_renewal import run_pack_renewals

from tests.unit.packs_credit_scenarios import (FRIEND, PRE, assert_audit_clean, call, credit_ready_line, debt, key,
                                               open_prepaid, packs, report, template_names, templates, top_up)

EXPIRES = date(2027, 1, 21)  # 2026-11-22 + 60 days (7.00 AZN reaches the 5 AZN tier)
ENDS = date(2027, 7, 20)  # EXPIRES + 180 days


def at(clock, day: date, hour: int = 12, minute: int = 0) -> None:
    clock.set(datetime.combine(day, time(hour, minute)))


def open_line(core, msisdn=PRE, balance="7.00"):
    open_prepaid(core, msisdn, balance=balance, language="en")
    r = report(core, msisdn)
    assert (r.balance_expires, r.subscription_ends) == (EXPIRES, ENDS)


def ledger_kinds(core, msisdn=PRE) -> list[tuple[str, str, D]]:
    with core.uow() as uow:
        line_id = uow.session.scalar(select(Subscriber.id).where(Subscriber.msisdn == msisdn))
        rows = uow.session.execute(select(LedgerEntry.kind, LedgerEntry.account, LedgerEntry.delta_units)
                                   .where(LedgerEntry.subscriber_id == line_id).order_by(LedgerEntry.id)).all()
    return [(kind, account, D(units) / 10000) for kind, account, units in rows]


# -- the balance expiry date -------------------------------------------------------------------

def the_balance_is_usable_through_its_expiry_date_and_not_after(core, clock):
    open_line(core)
    at(clock, EXPIRES, 23, 59)
    assert call(core, services.charge_call, PRE, 30, "standard", key()).fee == D("0.04")
    assert report(core).status == "active" and not report(core).balance_expired
    at(clock, EXPIRES + timedelta(days=1), 0, 0)  # the worker has not run: the date decides
    with pytest.raises(BalanceExpired):
        call(core, services.charge_call, PRE, 30, "standard", key())
    r = report(core)
    assert (r.status, r.balance_expired, r.balance) == ("expired", True, D("6.96"))
    assert_audit_clean(core)


def an_expired_line_spends_nothing_from_its_balance(core, clock):
    credit_ready_line(core, clock)  # 5.00 topped up on 2026-11-22: valid through 2027-01-21
    at(clock, EXPIRES + timedelta(days=1))
    with pytest.raises(BalanceExpired):
        call(core, services.charge_call, PRE, 60, "standard", key())
    with pytest.raises(BalanceExpired):
        call(core, services.order_pack, PRE, 1, key())
    usage = call(core, services.record_data_usage, PRE, "10", key())
    assert (usage.charged, usage.cut_off, usage.barred) == (0, True, "balance-expired")
    with pytest.raises(CreditRefused) as refused:
        call(core, services.take_nar_credit, PRE, key())
    assert refused.value.reason == "balance-expired"
    with pytest.raises(CreditRefused) as refused:
        call(core, services.take_sos_credit, PRE, key())
    assert refused.value.reason == "balance-expired"
    open_prepaid(core, FRIEND, balance="7.00")
    with pytest.raises(CreditRefused) as refused:  # a friend's credit would land on a frozen balance
        call(core, services.ask_friend_for_credit, PRE, FRIEND, key())
    assert refused.value.reason == "balance-expired"
    with pytest.raises(BalanceExpired):  # the fee of a balance-information SMS: the channel answers free
        call(core, services.charge_sms, PRE, "2112", key())
    assert report(core).balance == D("5.00") and debt(core) == services.CreditDebt(0, 0)
    assert template_names(core).count("balance-changed") == 1  # the top-up's: nothing was taken since
    assert_audit_clean(core)


def a_credit_for_a_friend_whose_balance_expired_is_refused(core, clock):
    open_line(core, FRIEND)
    at(clock, EXPIRES + timedelta(days=1))
    credit_ready_line(core, clock)  # the giver is fine; the friend's balance expired yesterday
    with pytest.raises(CreditRefused) as refused:
        call(core, services.credit_for_friend, PRE, FRIEND, key())
    assert refused.value.reason == "friend-not-active"
    assert report(core, FRIEND).balance == D("7.00") and debt(core).nar == 0
    assert_audit_clean(core)


def a_suspended_prepaid_line_takes_nothing_from_its_balance_for_data_either(core, clock):
    open_line(core)
    call(core, services.set_status, PRE, "suspended-one-way")
    usage = call(core, services.record_data_usage, PRE, "10", key())
    assert (usage.charged, usage.barred) == (0, "line-not-active")
    assert report(core).balance == D("7.00")
    assert_audit_clean(core)


def the_worker_suspends_an_expired_line_once_and_tells_it_when(core, clock):
    open_line(core)
    at(clock, EXPIRES, 23, 59)
    assert run_line_expiries(core) == 0
    at(clock, EXPIRES + timedelta(days=1), 0, 0)
    assert run_line_expiries(core) == 1
    assert run_line_expiries(core) == 0  # idempotent
    with core.uow() as uow:
        assert lines.find(uow, PRE).status == "expired"
    expired = [params for name, params in templates(core) if name == "balance-expired"]
    assert expired == [{"expires": "2027-01-21", "ends": "2027-07-20"}]
    assert report(core).balance == D("7.00")  # kept: nothing moves at expiry
    assert [k for k, *_ in ledger_kinds(core)] == ["opening"]
    assert_audit_clean(core)


def a_line_set_active_by_hand_with_its_dates_past_is_suspended_again_without_a_second_notice(core, clock):
    open_line(core)
    at(clock, EXPIRES + timedelta(days=2))
    run_line_expiries(core)
    call(core, services.set_status, PRE, "active")
    assert report(core).status == "expired"  # only a top-up reactivates
    assert run_line_expiries(core) == 1
    assert template_names(core).count("balance-expired") == 1
    assert_audit_clean(core)


def a_top_up_reactivates_an_expired_line_and_extends_its_dates(core, clock):
    open_line(core)
    at(clock, EXPIRES + timedelta(days=10))
    run_line_expiries(core)
    top_up(core, PRE, "1.00")  # 30 days from today
    r = report(core)
    today = clock.now().date()
    assert (r.status, r.balance_expired, r.balance) == ("active", False, D("8.00"))
    assert (r.balance_expires, r.subscription_ends) == (today + timedelta(days=30), today + timedelta(days=210))
    reactivated = [params for name, params in templates(core) if name == "line-reactivated"]
    assert reactivated == [{"expires": f"{today + timedelta(days=30):%Y-%m-%d}"}]
    assert call(core, services.charge_call, PRE, 30, "standard", key()).fee == D("0.04")  # the frozen money works
    with core.uow() as uow:
        assert lines.find(uow, PRE).status == "active"
    assert run_line_expiries(core) == 0
    assert_audit_clean(core)


def a_pack_waits_while_the_balance_is_expired_and_renews_at_the_reactivating_top_up(core, clock):
    open_line(core)
    at(clock, date(2027, 1, 1))
    call(core, services.order_pack, PRE, 1, key())  # 3.00 AZN, period to 2027-01-31, balance 4.00
    at(clock, date(2027, 1, 31))  # period end: the balance covers the pack but has expired
    run_line_expiries(core)
    assert run_pack_renewals(core) == 1
    [state] = packs(core)
    assert state.status == "awaiting-renewal" and report(core).balance == D("4.00")
    held = [params for name, params in templates(core) if name == "pack-renewal-held"]
    assert held[-1]["reason"] == "suspended"  # told it waits for the line, not for money
    at(clock, date(2027, 2, 5))
    run_pack_renewals(core)
    assert packs(core)[0].status == "awaiting-renewal"  # held, not cancelled, while suspended
    top_up(core, PRE, "0.01")  # seed 002: reactivated within 90 days, the balance suffices -> renewed
    [state] = packs(core)
    assert state.status == "active" and report(core).balance == D("1.01")
    assert_audit_clean(core)


def a_pack_held_by_an_expired_balance_is_cancelled_when_the_top_up_leaves_too_little(core, clock):
    open_line(core, balance="5.00")  # also 60 days
    at(clock, date(2027, 1, 1))
    call(core, services.order_pack, PRE, 1, key())  # balance 2.00
    at(clock, date(2027, 1, 31))
    run_pack_renewals(core)
    top_up(core, PRE, "0.50")  # reactivates; 2.50 does not pay 3.00
    assert packs(core)[0].status == "awaiting-renewal"
    run_pack_renewals(core)
    assert packs(core) == [] and "pack-cancelled" in template_names(core)
    assert report(core).balance == D("2.50")
    assert_audit_clean(core)


# -- reminders ---------------------------------------------------------------------------------

def the_balance_expiry_is_announced_days_ahead_once_and_not_at_night(core, clock):
    open_line(core)
    at(clock, EXPIRES - timedelta(days=4))
    assert run_expiry_reminders(core) == 0  # 4 days ahead: not yet
    at(clock, EXPIRES - timedelta(days=3), 9, 59)
    assert run_expiry_reminders(core) == 0  # before the reminder hour
    at(clock, EXPIRES - timedelta(days=3), 10, 0)
    assert run_expiry_reminders(core) == 1
    assert run_expiry_reminders(core) == 0
    at(clock, EXPIRES, 18)
    assert run_expiry_reminders(core) == 0  # once per date
    reminders = [params for name, params in templates(core) if name == "balance-expiring"]
    assert reminders == [{"expires": "2027-01-21"}]
    assert_audit_clean(core)


def a_top_up_that_moves_the_date_earns_a_new_reminder_when_that_comes_near(core, clock):
    open_line(core)
    at(clock, EXPIRES - timedelta(days=2))
    run_expiry_reminders(core)
    top_up(core, PRE, "1.00")  # 30 days from today
    new_date = clock.now().date() + timedelta(days=30)
    assert run_expiry_reminders(core) == 0
    at(clock, new_date - timedelta(days=3))
    assert run_expiry_reminders(core) == 1
    reminders = [params["expires"] for name, params in templates(core) if name == "balance-expiring"]
    assert reminders == ["2027-01-21", f"{new_date:%Y-%m-%d}"]
    assert_audit_clean(core)


def the_closure_is_announced_days_ahead_with_the_balance_at_stake(core, clock):
    open_line(core)
    at(clock, ENDS - timedelta(days=8))
    run_line_expiries(core)
    assert run_expiry_reminders(core) == 0
    at(clock, ENDS - timedelta(days=7))
    assert run_expiry_reminders(core) == 1
    assert run_expiry_reminders(core) == 0
    closing = [params for name, params in templates(core) if name == "subscription-ending"]
    assert closing == [{"ends": "2027-07-20", "balance": "7.0000"}]
    assert "balance-expiring" not in template_names(core)  # the worker never saw it ahead of time
    assert_audit_clean(core)


# -- the subscription end ----------------------------------------------------------------------

def closing_forfeits_the_balance_by_a_ledger_entry_of_its_own_after_the_credit_debt(core, clock):
    credit_ready_line(core, clock)  # 5.00 topped up 2026-11-22: subscription to 2027-07-20
    call(core, services.take_nar_credit, PRE, key())  # +3.00, fee 0.08 now, debt 3.60
    call(core, services.order_pack, PRE, 1, key())  # 3.00
    assert report(core).balance == D("4.92")
    at(clock, ENDS)
    run_line_expiries(core)
    assert report(core).status == "expired"  # the last day of the subscription: suspended, not closed
    at(clock, ENDS + timedelta(days=1), 0, 0)
    assert report(core).status == "deactivated"  # the date decides before the worker runs
    assert run_line_expiries(core) == 1
    assert run_line_expiries(core) == 0
    r = report(core)
    assert (r.status, r.balance, r.nar_debt, r.sos_debt) == ("deactivated", 0, 0, 0)
    closing = [(k, a, d) for k, a, d in ledger_kinds(core) if k in ("credit:repay", "closure:forfeit")]
    assert closing == [("credit:repay", "nar_debt", D("-3.60")), ("credit:repay", "balance", D("-3.60")),
                       ("closure:forfeit", "balance", D("-1.32"))]
    assert packs(core) == []
    closed = [params for name, params in templates(core) if name == "line-closed"]
    assert closed == [{"ends": "2027-07-20", "forfeited": "1.3200"}]
    assert_audit_clean(core)


def credit_debt_the_balance_cannot_cover_is_written_off_at_closing(core, clock):
    credit_ready_line(core, clock, topup="1.00")  # valid through 2026-12-22; ends 2027-06-20
    call(core, services.take_nar_credit, PRE, key(), "01")  # balance 1.92, debt 1.20
    call(core, services.charge_call, PRE, 43 * 30, "standard", key())  # 43 x 0.04 = 1.72 -> balance 0.20
    ends = report(core).subscription_ends
    at(clock, ends + timedelta(days=1))
    assert run_line_expiries(core) == 1
    closing = [(k, a, d) for k, a, d in ledger_kinds(core) if k in ("credit:repay", "credit:write-off",
                                                                     "closure:forfeit")]
    assert closing == [("credit:repay", "nar_debt", D("-0.20")), ("credit:repay", "balance", D("-0.20")),
                       ("credit:write-off", "nar_debt", D("-1.00"))]
    with core.uow() as uow:
        grant = uow.session.scalar(select(CreditGrant))
        assert (grant.outstanding_units, grant.repaid_at is not None) == (0, True)
    r = report(core)
    assert (r.balance, r.nar_debt) == (0, 0)
    assert [p["forfeited"] for n, p in templates(core) if n == "line-closed"] == ["0.0000"]
    assert_audit_clean(core)


def a_closed_number_takes_no_money_and_no_changes(core, clock):
    open_line(core)
    with core.uow() as uow:
        services.add_card(uow, "1000000009", "1234", "5.00")
    at(clock, ENDS + timedelta(days=1))
    with pytest.raises(LineClosed):  # before the worker too
        top_up(core, PRE, "10.00")
    run_line_expiries(core)
    with pytest.raises(LineClosed):
        top_up(core, PRE, "10.00")
    with pytest.raises(LineClosed):
        call(core, services.redeem_card, PRE, "1234", key())  # by its PIN, as *104*PIN# and 2112 do
    assert call(core, services.card_status, "1000000009").used is False
    with pytest.raises(LineClosed):
        call(core, services.set_status, PRE, "active")
    with pytest.raises(LineClosed):
        call(core, services.change_plan, PRE, "postpaid", key())
    with pytest.raises(LineNotActive):
        call(core, services.charge_call, PRE, 30, "standard", key())
    assert report(core).balance == 0 and report(core).status == "deactivated"
    assert_audit_clean(core)


SCENARIOS = [value for name, value in list(globals().items())
             if callable(value) and getattr(value, "__module__", None) == __name__
             and not name.startswith("_") and value.__code__.co_varnames[:2] == ("core", "clock")]
