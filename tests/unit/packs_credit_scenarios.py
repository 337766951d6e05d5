"""Pack and credit scenarios (seeds 002 and 003), each a function of (core, clock).

tests/unit/test_packs_credit.py runs them on SQLite, tests/integration/test_packs_credit_pg.py
on a real PostgreSQL. Every scenario ends with the ledger audit clean.
"""
from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal as D

import pytest

from billing import services
from billing.credit import CreditRefused
from billing.errors import InsufficientBalance, LineNotActive
from billing.friend_credit import FriendRequestExpired, run_friend_request_lapses
from billing.models import OutboxMessage
from billing.pack_renewal import run_pack_expiries, run_pack_renewals
from sqlalchemy import select

PRE = "+994501234567"
FRIEND = "+994502223344"
POST = "+994551234567"

_keys = iter(range(1, 10**9))


def key(prefix="k"):
    return f"{prefix}-{next(_keys)}"


def open_prepaid(core, msisdn=PRE, balance="0", topup=None, **kw):
    with core.uow() as uow:
        services.add_subscriber(uow, msisdn, "prepaid", balance=D(balance), **kw)
    if topup:
        top_up(core, msisdn, topup)


def open_postpaid(core, msisdn=POST, **kw):
    kw.setdefault("bill_day", 10)
    with core.uow() as uow:
        services.add_subscriber(uow, msisdn, "postpaid", **kw)


def top_up(core, msisdn, amount):
    with core.uow() as uow:
        return services.topup(uow, msisdn, amount, key("topup"))


def call(core, fn, *args, **kw):
    with core.uow() as uow:
        return fn(uow, *args, **kw)


def report(core, msisdn=PRE):
    return call(core, services.balance_report, msisdn)


def packs(core, msisdn=PRE):
    return call(core, services.pack_status, msisdn)


def debt(core, msisdn=PRE):
    return call(core, services.credit_debt, msisdn)


def templates(core, msisdn=PRE):
    with core.uow() as uow:
        rows = uow.session.scalars(select(OutboxMessage).where(OutboxMessage.msisdn == msisdn)
                                   .order_by(OutboxMessage.id)).all()
        return [(r.template, json.loads(r.params)) for r in rows]


def template_names(core, msisdn=PRE):
    return [t for t, _ in templates(core, msisdn)]


def assert_audit_clean(core):
    assert call(core, services.audit) == []


def credit_ready_line(core, clock, msisdn=PRE, topup="5.00", lang="en"):
    """Activated now, topped up in its first week, then 30 days in network."""
    open_prepaid(core, msisdn, language=lang)
    top_up(core, msisdn, topup)
    clock.advance(timedelta(days=30))


# -- packs (seed 002) --------------------------------------------------------------------------

def order_charges_at_once_for_thirty_days(core, clock):
    open_prepaid(core, balance="10.00")
    order = call(core, services.order_pack, PRE, 2, "order-1")
    assert order.expires == clock.now() + timedelta(days=30)
    assert report(core).balance == D("4.00")
    [state] = packs(core)
    assert (state.pack.code, state.remaining_mb, state.auto_renew, state.usable) == ("3gb", 3072, True, True)
    assert "pack-ordered" in template_names(core)
    assert_audit_clean(core)


def order_retried_with_the_same_key_charges_once(core, clock):
    open_prepaid(core, balance="10.00")
    call(core, services.order_pack, PRE, 1, "same")
    again = call(core, services.order_pack, PRE, 1, "same")
    assert again.duplicate and report(core).balance == D("7.00") and len(packs(core)) == 1
    assert_audit_clean(core)


def order_without_enough_balance_changes_nothing(core, clock):
    open_prepaid(core, balance="2.00")
    with pytest.raises(InsufficientBalance):
        call(core, services.order_pack, PRE, 1, key())
    assert report(core).balance == D("2.00") and packs(core) == []
    assert_audit_clean(core)


def renews_after_thirty_days_and_annuls_the_unused_volume(core, clock):
    open_prepaid(core, balance="10.00")
    call(core, services.order_pack, PRE, 1, key())
    call(core, services.record_data_usage, PRE, "100", key())
    clock.advance(timedelta(days=30))
    assert run_pack_renewals(core) == 1
    [state] = packs(core)
    assert state.status == "active" and state.remaining_mb == 1024  # the 924 MB left were not carried over
    assert state.expires == clock.now() + timedelta(days=30)
    assert report(core).balance == D("4.00")
    assert "pack-renewed" in template_names(core)
    assert run_pack_renewals(core) == 0  # nothing due twice
    assert_audit_clean(core)


def failed_renewal_leaves_the_rest_for_24_hours_then_retries_and_renews_at_top_up(core, clock):
    open_prepaid(core, balance="3.00")
    call(core, services.order_pack, PRE, 1, key())
    call(core, services.record_data_usage, PRE, "24", key())
    clock.advance(timedelta(days=30))
    run_pack_renewals(core)
    [state] = packs(core)
    assert state.status == "awaiting-renewal" and state.usable and state.remaining_mb == 1000
    clock.advance(timedelta(hours=23))
    usage = call(core, services.record_data_usage, PRE, "10", key())
    assert usage.from_packs_mb == 10 and usage.charged == 0
    clock.advance(timedelta(hours=1))
    run_pack_expiries(core)
    [state] = packs(core)
    assert not state.usable and state.remaining_mb == 0  # the 24 hours are over: the rest is annulled
    assert run_pack_renewals(core) == 0  # retried, still no money
    assert packs(core)[0].status == "awaiting-renewal"
    top_up(core, PRE, "5.00")  # the top-up renews at once
    [state] = packs(core)
    assert state.status == "active" and state.remaining_mb == 1024
    assert report(core).balance == D("2.00")
    assert_audit_clean(core)


def lapses_after_ninety_days_and_data_is_then_charged_by_the_tariff(core, clock):
    open_prepaid(core, balance="3.00")  # klass: 0.10 AZN per MB
    call(core, services.order_pack, PRE, 1, key())
    clock.advance(timedelta(days=30))
    run_pack_renewals(core)
    clock.advance(timedelta(days=89))
    run_pack_renewals(core)
    run_pack_expiries(core)
    assert packs(core)[0].status == "awaiting-renewal"
    clock.advance(timedelta(days=1))
    assert run_pack_expiries(core) == 1
    assert packs(core) == []
    assert "pack-lapsed" in template_names(core)
    top_up(core, PRE, "5.00")
    assert packs(core) == []  # a top-up after the window no longer renews
    usage = call(core, services.record_data_usage, PRE, "10", key())
    assert (usage.from_packs_mb, usage.charged) == (0, D("1.00"))
    assert report(core).balance == D("4.00")
    assert_audit_clean(core)


def the_50_gb_pack_is_throttled_not_charged_after_its_volume(core, clock):
    open_prepaid(core, balance="40.00")
    call(core, services.order_pack, PRE, 4, key())
    usage = call(core, services.record_data_usage, PRE, 51200 + 300, key())
    assert (usage.from_packs_mb, usage.throttled_mb, usage.charged) == (51200, 300, 0)
    [state] = packs(core)
    assert state.throttled and state.speed_kbps == 128
    assert report(core).balance == D("10.00")
    assert_audit_clean(core)


def the_smaller_pack_of_a_group_is_used_first(core, clock):
    open_prepaid(core, balance="20.00")
    call(core, services.order_pack, PRE, 2, key())  # 3 GB ordered first
    call(core, services.order_pack, PRE, 1, key())  # 1 GB
    call(core, services.record_data_usage, PRE, "1500", key())
    small, big = packs(core)
    assert (small.pack.code, small.remaining_mb) == ("1gb", 0)
    assert (big.pack.code, big.remaining_mb) == ("3gb", 3072 - 476)
    assert_audit_clean(core)


def data_without_a_pack_is_charged_by_the_tariff_and_cut_off_at_zero(core, clock):
    open_prepaid(core, balance="1.00", tariff="super")  # 0.08 AZN per MB
    usage = call(core, services.record_data_usage, PRE, "0.5", key())
    assert usage.charged == D("0.04")
    usage = call(core, services.record_data_usage, PRE, "100", key())
    assert usage.cut_off and usage.charged == D("0.96") and report(core).balance == 0
    assert_audit_clean(core)


def deactivation_annuls_the_remaining_volume(core, clock):
    open_prepaid(core, balance="10.00")
    call(core, services.order_pack, PRE, 1, key())
    assert call(core, services.deactivate_packs, PRE, key()) == 1
    assert packs(core) == []
    usage = call(core, services.record_data_usage, PRE, "1", key())
    assert usage.charged == D("0.10")
    assert "pack-deactivated" in template_names(core)
    assert_audit_clean(core)


def stopping_renewal_lets_the_pack_run_out_at_period_end(core, clock):
    open_prepaid(core, balance="10.00")
    call(core, services.order_pack, PRE, 1, key())
    assert call(core, services.stop_pack_renewal, PRE, key()) == 1
    [state] = packs(core)
    assert state.usable and not state.auto_renew
    clock.advance(timedelta(days=30))
    assert run_pack_renewals(core) == 0
    assert run_pack_expiries(core) == 1
    assert packs(core) == [] and report(core).balance == D("7.00")
    assert_audit_clean(core)


def a_plan_change_annuls_packs(core, clock):
    open_prepaid(core, balance="10.00")
    call(core, services.order_pack, PRE, 1, key())
    assert call(core, services.change_plan, PRE, "postpaid", key()) == 1
    r = report(core)
    assert (r.plan, r.advance, packs(core)) == ("postpaid", D("7.00"), [])
    call(core, services.order_pack, PRE, 1, key())  # postpaid: added to current usage
    assert len(packs(core)) == 1
    # back to prepaid: the advance settles the 3.00 of usage first, the rest becomes the balance
    assert call(core, services.change_plan, PRE, "prepaid", key()) == 1
    r = report(core)
    assert (r.plan, r.balance, packs(core)) == ("prepaid", D("4.00"), [])
    assert_audit_clean(core)


def a_suspended_line_is_not_renewed_and_reactivation_renews_when_paid(core, clock):
    open_prepaid(core, balance="10.00")
    call(core, services.order_pack, PRE, 1, key())
    call(core, services.set_status, PRE, "suspended-one-way")
    with pytest.raises(LineNotActive):
        call(core, services.order_pack, PRE, 1, key())
    clock.advance(timedelta(days=30))
    run_pack_renewals(core)
    assert packs(core)[0].status == "awaiting-renewal" and report(core).balance == D("7.00")
    clock.advance(timedelta(days=10))
    run_pack_renewals(core)
    assert packs(core)[0].status == "awaiting-renewal"
    call(core, services.set_status, PRE, "active")
    assert run_pack_renewals(core) == 1
    assert packs(core)[0].status == "active" and report(core).balance == D("4.00")
    assert_audit_clean(core)


def a_reactivated_line_without_balance_has_its_pack_cancelled(core, clock):
    open_prepaid(core, balance="3.00")
    call(core, services.order_pack, PRE, 1, key())
    call(core, services.set_status, PRE, "suspended-two-way")
    clock.advance(timedelta(days=30))
    run_pack_renewals(core)
    call(core, services.set_status, PRE, "active")
    run_pack_renewals(core)
    assert packs(core) == []
    assert "pack-cancelled" in template_names(core)
    assert call(core, services.record_data_usage, PRE, "1", key()).charged == 0  # balance 0: cut off
    assert_audit_clean(core)


def a_one_way_suspended_postpaid_line_cannot_use_its_packs(core, clock):
    open_postpaid(core)  # biznes: 0.06 AZN per MB
    call(core, services.order_pack, POST, 1, key())
    call(core, services.set_status, POST, "suspended-one-way")
    usage = call(core, services.record_data_usage, POST, "10", key())
    assert (usage.from_packs_mb, usage.charged) == (0, D("0.60"))
    assert not packs(core, POST)[0].usable
    assert report(core, POST).current == D("3.60")
    assert_audit_clean(core)


def a_postpaid_line_suspended_at_will_renews_only_after_a_payment(core, clock):
    open_postpaid(core)
    call(core, services.order_pack, POST, 1, key())
    call(core, services.suspend_at_will, POST)
    clock.advance(timedelta(days=10))
    call(core, services.set_status, POST, "active")
    clock.advance(timedelta(days=20))
    run_pack_renewals(core)
    run_pack_renewals(core)
    assert packs(core, POST)[0].status == "awaiting-renewal"
    assert report(core, POST).current == D("3.00")
    top_up(core, POST, "1.00")
    [state] = packs(core, POST)
    assert state.status == "active" and report(core, POST).current == D("6.00")
    assert_audit_clean(core)


def a_payment_made_after_reactivation_lets_the_next_renewal_go_ahead(core, clock):
    open_postpaid(core)
    call(core, services.order_pack, POST, 1, key())
    call(core, services.suspend_at_will, POST)
    call(core, services.set_status, POST, "active")
    top_up(core, POST, "1.00")  # paid while the pack still runs
    clock.advance(timedelta(days=30))
    assert run_pack_renewals(core) == 1
    assert packs(core, POST)[0].status == "active" and report(core, POST).current == D("6.00")
    assert_audit_clean(core)


# -- credit (seed 003) -------------------------------------------------------------------------

def credit_is_for_active_prepaid_lines_only(core, clock):
    open_postpaid(core)
    credit_ready_line(core, clock)
    with pytest.raises(CreditRefused) as refused:
        call(core, services.take_nar_credit, POST, key())
    assert refused.value.reason == "not-prepaid"
    call(core, services.set_status, PRE, "suspended-one-way")
    with pytest.raises(CreditRefused) as refused:
        call(core, services.take_nar_credit, PRE, key())
    assert refused.value.reason == "not-active"
    assert debt(core) == services.CreditDebt(0, 0)
    assert_audit_clean(core)


def credit_needs_thirty_days_in_network_and_a_top_up(core, clock):
    open_prepaid(core, balance="5.00")
    clock.advance(timedelta(days=30))
    with pytest.raises(CreditRefused) as refused:
        call(core, services.take_nar_credit, PRE, key())
    assert refused.value.reason == "no-topup"  # an opening balance is not a top-up
    open_prepaid(core, FRIEND, topup="2.00")
    clock.advance(timedelta(days=29))
    with pytest.raises(CreditRefused) as refused:
        call(core, services.take_nar_credit, FRIEND, key())
    assert refused.value.reason == "too-new"
    clock.advance(timedelta(days=1))
    assert call(core, services.take_nar_credit, FRIEND, key()).amount == D("3.00")
    assert_audit_clean(core)


def credit_needs_one_azn_topped_up_within_seven_days_of_activation(core, clock):
    open_prepaid(core)
    top_up(core, PRE, "0.50")
    clock.advance(timedelta(days=8))
    top_up(core, PRE, "5.00")  # day 8: too late for the first-week rule
    open_prepaid(core, FRIEND)
    clock.advance(timedelta(days=7))
    top_up(core, FRIEND, "1.00")  # day 7 after its activation: still within
    clock.advance(timedelta(days=30))
    with pytest.raises(CreditRefused) as refused:
        call(core, services.take_nar_credit, PRE, key())
    assert refused.value.reason == "first-week"
    assert call(core, services.take_nar_credit, FRIEND, key()).amount == D("3.00")
    assert_audit_clean(core)


def the_fee_table_and_request_fee_apply_per_code(core, clock):
    credit_ready_line(core, clock, topup="30.00")  # limit 7 AZN
    expected = {"05": ("0.50", "0.10"), "01": ("1.00", "0.20"), "02": ("2.00", "0.40"), "03": ("3.00", "0.60")}
    for code, (amount, fee) in expected.items():
        before = report(core).balance
        result = call(core, services.take_nar_credit, PRE, key(), code)
        assert (result.amount, result.fee, result.request_fee_deferred) == (D(amount), D(fee), False)
        assert report(core).balance == before + D(amount) - D("0.08")
    assert debt(core).nar == D("6.50") + D("1.30")
    assert_audit_clean(core)


def star_700_gives_the_most_available_up_to_3_azn_within_the_history_limit(core, clock):
    credit_ready_line(core, clock, topup="12.00")  # 12 AZN topped up in 90 days -> limit 5 AZN
    assert call(core, services.take_nar_credit, PRE, key()).amount == D("3.00")
    assert call(core, services.take_nar_credit, PRE, key()).amount == D("2.00")
    with pytest.raises(CreditRefused) as refused:
        call(core, services.take_nar_credit, PRE, key())
    assert refused.value.reason == "limit"
    with pytest.raises(CreditRefused):
        call(core, services.take_nar_credit, PRE, key(), "05")
    assert debt(core).nar == D("5.00") + D("1.00")
    assert_audit_clean(core)


def the_request_fee_is_deferred_when_the_balance_is_short(core, clock):
    credit_ready_line(core, clock, topup="1.00")
    call(core, services.charge_call, PRE, 25 * 30, "standard", key())  # 25 intervals x 0.04 = 1.00
    assert report(core).balance == 0
    result = call(core, services.take_nar_credit, PRE, key(), "01")
    assert result.request_fee_deferred and report(core).balance == D("1.00")
    assert debt(core).nar == D("1.28")
    assert_audit_clean(core)


def the_whole_debt_is_recovered_at_the_next_top_up(core, clock):
    credit_ready_line(core, clock, topup="1.00")
    call(core, services.take_nar_credit, PRE, key(), "01")  # balance 1.92, debt 1.20
    call(core, services.charge_call, PRE, 48 * 30, "standard", key())  # 48 x 0.04 = 1.92
    assert report(core).balance == 0 and debt(core).nar == D("1.20")
    top_up(core, PRE, "0.50")  # smaller than the debt: all of it goes, the rest waits
    assert report(core).balance == 0 and debt(core).nar == D("0.70")
    top_up(core, PRE, "10.00")
    assert debt(core).nar == 0 and report(core).balance == D("9.30")
    assert template_names(core).count("topped-up-debt-repaid") == 2  # each top-up names what it repaid
    assert_audit_clean(core)


def a_credit_does_not_extend_the_line_validity_and_works_in_roaming(core, clock):
    credit_ready_line(core, clock)
    call(core, services.set_roaming, PRE, True)
    before = report(core)
    call(core, services.take_nar_credit, PRE, key())
    after = report(core)
    assert after.balance == before.balance + D("3.00") - D("0.08")
    assert (after.balance_expires, after.subscription_ends) == (before.balance_expires, before.subscription_ends)
    assert_audit_clean(core)


def sos_credit_only_after_the_nar_limit_and_at_most_two_azn(core, clock):
    credit_ready_line(core, clock)  # limit 3 AZN
    with pytest.raises(CreditRefused) as refused:
        call(core, services.take_sos_credit, PRE, key())
    assert refused.value.reason == "nar-not-maxed"
    call(core, services.take_nar_credit, PRE, key())
    sos = call(core, services.take_sos_credit, PRE, key())
    assert (sos.amount, sos.fee) == (D("1.00"), D("0.40"))
    call(core, services.take_sos_credit, PRE, key())
    with pytest.raises(CreditRefused) as refused:
        call(core, services.take_sos_credit, PRE, key())
    assert refused.value.reason == "sos-limit"
    assert debt(core) == services.CreditDebt(D("3.60"), D("2.80"))
    assert_audit_clean(core)


def debt_checks_are_free(core, clock):
    credit_ready_line(core, clock)
    call(core, services.take_nar_credit, PRE, key())
    balance = report(core).balance
    for _ in range(3):
        assert debt(core).nar == D("3.60")
    assert report(core).balance == balance
    assert_audit_clean(core)


def credit_for_a_friend_lands_on_the_friend_and_the_debt_stays_with_the_giver(core, clock):
    credit_ready_line(core, clock)
    open_prepaid(core, FRIEND, balance="0.10")
    result = call(core, services.credit_for_friend, PRE, FRIEND, key())
    assert result.amount == D("3.00")
    assert report(core, FRIEND).balance == D("3.10") and debt(core, FRIEND).nar == 0
    assert debt(core).nar == D("3.60")
    assert "credit-from-friend" in template_names(core, FRIEND)
    with pytest.raises(CreditRefused):
        call(core, services.credit_for_friend, PRE, PRE, key())
    assert_audit_clean(core)


def a_friend_confirms_within_thirty_minutes_or_the_request_lapses(core, clock):
    credit_ready_line(core, clock, FRIEND)  # the friend has the credit history
    open_prepaid(core, PRE)
    asked = call(core, services.ask_friend_for_credit, PRE, FRIEND, key())
    assert "friend-credit-request" in template_names(core, FRIEND)
    clock.advance(timedelta(minutes=29))
    result = call(core, services.answer_friend_request, FRIEND, True, key(), asked.id)
    assert result.amount == D("3.00") and report(core).balance == D("3.00") and debt(core, FRIEND).nar == D("3.60")
    call(core, services.ask_friend_for_credit, PRE, FRIEND, key())
    clock.advance(timedelta(minutes=30))
    with pytest.raises(FriendRequestExpired):
        call(core, services.answer_friend_request, FRIEND, True, key())
    call(core, services.ask_friend_for_credit, PRE, FRIEND, key())
    clock.advance(timedelta(minutes=31))
    assert run_friend_request_lapses(core) == 1
    assert call(core, services.pending_requests, FRIEND) == []
    assert "friend-credit-lapsed" in template_names(core, PRE)
    assert report(core).balance == D("3.00")
    assert_audit_clean(core)


def a_friend_may_confirm_or_decline_by_sms_reply(core, clock):
    credit_ready_line(core, clock, FRIEND)
    open_prepaid(core, PRE)
    call(core, services.ask_friend_for_credit, PRE, FRIEND, key())
    assert call(core, services.answer_oldest_friend_request, FRIEND, False, key()).credit is None
    assert "friend-credit-declined" in template_names(core, PRE)
    call(core, services.ask_friend_for_credit, PRE, FRIEND, key())
    assert call(core, services.answer_oldest_friend_request, FRIEND, True, key()).credit.amount == D("3.00")
    assert_audit_clean(core)


SCENARIOS = [value for name, value in list(globals().items())
             if callable(value) and getattr(value, "__module__", None) == __name__
             and not name.startswith("_") and value.__code__.co_varnames[:2] == ("core", "clock")
             and name not in {"credit_ready_line"}]
