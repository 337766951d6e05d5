"""The billing service layer on a real SQLite unit of work."""
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from billing import services
from billing.errors import (
    AccessDenied,
    CardAlreadyUsed,
    InsufficientBalance,
    InvalidAmount,
    InvalidInput,
    InvalidMsisdn,
    InvalidSerial,
    LineNotActive,
    SubscriberExists,
    UnknownCard,
    UnknownSubscriber,
    WrongPin,
    WrongPlan,
)
from billing.outbox import pending

PRE = "+994501234567"
POST = "+994551234567"


def add_prepaid(core, msisdn=PRE, balance="10.00", **kw):
    with core.uow() as uow:
        return services.add_subscriber(uow, msisdn, "prepaid", balance=Decimal(balance), **kw)


def add_postpaid(core, msisdn=POST, **kw):
    kw.setdefault("bill_day", 10)
    with core.uow() as uow:
        return services.add_subscriber(uow, msisdn, "postpaid", **kw)


def report(core, msisdn):
    with core.uow() as uow:
        return services.balance_report(uow, msisdn)


def assert_audit_clean(core):
    with core.uow() as uow:
        assert services.audit(uow) == []


# -- lines -------------------------------------------------------------------------------------

def test_a_new_prepaid_line_reports_its_opening_figures(core):
    add_prepaid(core, "0501234567", balance="12.48", language="ru", tariff="super")
    r = report(core, "501234567")
    assert (r.msisdn, r.plan, r.language, r.tariff.name, r.balance) == (PRE, "prepaid", "ru", "super", Decimal("12.48"))
    assert r.balance_expires == date(2026, 11, 22) + timedelta(days=90)
    assert r.subscription_ends == r.balance_expires + timedelta(days=180)
    assert_audit_clean(core)


def test_a_line_cannot_be_opened_twice(core):
    add_prepaid(core)
    with pytest.raises(SubscriberExists):
        add_prepaid(core, "0501234567")


@pytest.mark.parametrize("kwargs, error", [
    (dict(plan="prepaid", tariff="biznes"), InvalidInput),
    (dict(plan="postpaid", bill_day=25), InvalidInput),
    (dict(plan="postpaid", bill_day=3), InvalidInput),
    (dict(plan="prepaid", language="de"), Exception),
    (dict(plan="gold"), InvalidInput),
])
def test_lines_outside_the_rules_are_refused(core, kwargs, error):
    with core.uow() as uow, pytest.raises(error):
        services.add_subscriber(uow, PRE, **kwargs)
    with core.uow() as uow:
        assert services.count_lines(uow) == 0


def test_unknown_and_malformed_numbers_get_clear_errors(core):
    with core.uow() as uow:
        with pytest.raises(UnknownSubscriber, match=r"\+994509999999"):
            services.balance_report(uow, "0509999999")
        with pytest.raises(InvalidMsisdn):
            services.balance_report(uow, "hello")


# -- SMS fees and idempotency ------------------------------------------------------------------

def test_a_blank_sms_to_2112_costs_two_qepik(core):
    add_prepaid(core, balance="1.00")
    with core.uow() as uow:
        charge = services.charge_sms(uow, PRE, "2112", key="twilio:SM1")
    assert (charge.fee, charge.duplicate) == (Decimal("0.02"), False)
    assert charge.report.balance == report(core, PRE).balance == Decimal("0.98")


def test_postpaid_sms_to_650_adds_00236_to_current_usage(core):
    add_postpaid(core, current=Decimal("7.15"))
    with core.uow() as uow:
        services.charge_sms(uow, POST, "650", key="kannel:1")
    assert report(core, POST).current == Decimal("7.1736")


def test_a_repeated_idempotency_key_charges_once(core):
    add_prepaid(core, balance="1.00")
    results = []
    for _ in range(3):
        with core.uow() as uow:
            results.append(services.charge_sms(uow, PRE, "2112", key="twilio:SMdup"))
    assert [r.duplicate for r in results] == [False, True, True]
    assert {r.fee for r in results} == {Decimal("0.02")}
    assert report(core, PRE).balance == Decimal("0.98")
    assert_audit_clean(core)


def test_a_fee_above_the_balance_is_refused_and_changes_nothing(core):
    add_prepaid(core, balance="0.01")
    with core.uow() as uow, pytest.raises(InsufficientBalance):
        services.charge_sms(uow, PRE, "2112", key="k1")
    assert report(core, PRE).balance == Decimal("0.01")
    # the key was not used up by the failed attempt: nothing is kept under it
    assert services.answer_once(core, "k1", lambda uow: {"text": "fresh"}) == ({"text": "fresh"}, False)


def test_an_answer_is_kept_with_the_work_it_reports_and_given_back_to_a_retry(core):
    add_prepaid(core)
    runs = []

    def compute(uow):
        runs.append(1)
        fee = services.charge_sms(uow, PRE, "2112", key="k2").fee
        return {"text": f"fee {fee}", "flash": True}

    assert services.answer_once(core, "k2", compute) == ({"text": "fee 0.0200", "flash": True}, False)
    assert services.answer_once(core, "k2", compute) == ({"text": "fee 0.0200", "flash": True}, True)
    assert runs == [1]
    assert report(core, PRE).balance == Decimal("9.98")
    assert services.answer_once(core, "free", lambda uow: {"text": "usage hint"}) == ({"text": "usage hint"}, False)
    assert services.answer_once(core, "free", lambda uow: {"text": "other"}) == ({"text": "usage hint"}, True)


def test_an_answer_whose_work_failed_is_not_kept_and_nothing_is_charged(core):
    add_prepaid(core)

    def compute(uow):
        services.charge_sms(uow, PRE, "2112", key="k3")
        raise RuntimeError("the reply could not be built")

    with pytest.raises(RuntimeError):
        services.answer_once(core, "k3", compute)
    assert report(core, PRE).balance == Decimal("10.00")
    assert services.answer_once(core, "k3", lambda uow: {"text": "second try"}) == ({"text": "second try"}, False)


def test_a_fee_and_the_grant_it_pays_for_are_one_transaction(core):
    add_postpaid(core)
    with core.uow() as uow:
        paid = services.grant_for_fee(uow, POST, "0501234567", "650", "g1")
    assert (paid.result, paid.fee) == (True, Decimal("0.0236"))
    with core.uow() as uow:  # the same request again: no second fee, the grant is already there
        again = services.grant_for_fee(uow, POST, "0501234567", "650", "g1")
    assert (again.result, again.fee) == (False, Decimal("0"))
    with core.reader() as uow:
        assert services.grantees(uow, POST) == ["+994501234567"]
        assert services.balance_report(uow, POST).current == Decimal("0.0236")


def test_a_grant_that_fails_takes_no_fee(core):
    add_postpaid(core)
    with core.uow() as uow, pytest.raises(InvalidInput):
        services.grant_for_fee(uow, POST, POST, "650", "g2")  # granting yourself is refused
    with core.reader() as uow:
        assert services.balance_report(uow, POST).current == Decimal("0")


# -- calls -------------------------------------------------------------------------------------

@pytest.mark.parametrize("seconds, price", [(0, "0"), (14, "0"), (15, "0.04"), (44, "0.04"), (45, "0.08"),
                                            (59, "0.08"), (60, "0.08"), (61, "0.08"), (75, "0.12")])
def test_standard_call_charges_follow_the_rating_table(core, seconds, price):
    add_prepaid(core, balance="5.00")
    with core.uow() as uow:
        charge = services.charge_call(uow, PRE, seconds, "standard", key=f"agi:1.{seconds}")
    assert charge.fee == Decimal(price)
    assert report(core, PRE).balance == Decimal("5.00") - Decimal(price)


def test_roaming_lines_pay_roaming_rates_and_barred_lines_cannot_call(core):
    add_prepaid(core, balance="5.00", roaming=True)
    with core.uow() as uow:
        assert services.charge_call(uow, PRE, 61, "standard", key="r1").fee == Decimal("2.40")
    with core.uow() as uow:
        services.set_status(uow, PRE, "suspended-one-way")
    with core.uow() as uow, pytest.raises(LineNotActive):
        services.charge_call(uow, PRE, 30, "standard", key="r2")


def test_a_call_queues_the_automatic_balance_change_sms_unless_switched_off(core):
    add_prepaid(core, balance="5.00")
    with core.uow() as uow:
        services.charge_call(uow, PRE, 30, "standard", key="c1")
    with core.uow() as uow:
        services.set_balance_notifications(uow, PRE, False)
    with core.uow() as uow:
        services.charge_call(uow, PRE, 30, "standard", key="c2")
    with core.uow() as uow:
        notes = [m for m in pending(uow) if m.template == "balance-changed"]
    assert [m.key for m in notes if m.key.startswith("c")] == ["c1:notify"]


# -- top-ups and cards -------------------------------------------------------------------------

def test_a_top_up_extends_validity_by_its_tier_and_never_shortens_it(core, clock):
    add_prepaid(core, balance="0")
    with core.uow() as uow:
        services.topup(uow, PRE, "10", key="t1")
    far = report(core, PRE).balance_expires
    assert far == date(2026, 11, 22) + timedelta(days=90)
    clock.advance(timedelta(days=1))
    with core.uow() as uow:
        services.topup(uow, PRE, "1", key="t2")
    r = report(core, PRE)
    assert r.balance == Decimal("11") and r.balance_expires == far
    assert r.subscription_ends == far + timedelta(days=180)


@pytest.mark.parametrize("amount", ["-5", "0", "abc"])
def test_bad_top_up_amounts_change_nothing(core, amount):
    add_prepaid(core, balance="1")
    with core.uow() as uow, pytest.raises(InvalidAmount):
        services.topup(uow, PRE, amount, key="bad")
    assert report(core, PRE).balance == Decimal("1")


def test_a_postpaid_payment_settles_the_bill_first_then_becomes_advance(core):
    add_postpaid(core, billed=Decimal("25.30"), advance=Decimal("5"))
    with core.uow() as uow:
        services.topup(uow, POST, "30", key="p1")
    r = report(core, POST)
    assert (r.billed, r.advance) == (Decimal("0"), Decimal("9.70"))
    assert_audit_clean(core)


def test_a_scratch_card_is_used_once_with_its_pin(core, clock):
    add_prepaid(core, balance="0")
    with core.uow() as uow:
        services.add_card(uow, "1000000001", "12345678", "5")
    with core.uow() as uow:
        assert services.card_status(uow, "1000000001").used is False
    with core.uow() as uow, pytest.raises(WrongPin):
        services.redeem_card(uow, PRE, "0000", key="card1", serial="1000000001")
    with core.uow() as uow:
        assert services.redeem_card(uow, PRE, "12345678", key="card2", serial="1000000001").amount == Decimal("5")
    with core.uow() as uow:  # the same request retried: no second top-up
        assert services.redeem_card(uow, PRE, "12345678", key="card2", serial="1000000001").duplicate
    with core.uow() as uow, pytest.raises(CardAlreadyUsed):
        services.redeem_card(uow, PRE, "12345678", key="card3", serial="1000000001")
    with core.uow() as uow:
        status = services.card_status(uow, "1000000001")
    assert (status.used, status.used_by, status.used_at) == (True, PRE, datetime(2026, 11, 22, 12, 0))
    assert report(core, PRE).balance == Decimal("5")


@pytest.mark.parametrize("serial, error", [("123", InvalidSerial), ("12345678901", InvalidSerial), ("9999999999", UnknownCard)])
def test_card_lookups_refuse_bad_serials(core, serial, error):
    with core.uow() as uow, pytest.raises(error):
        services.card_status(uow, serial)


# -- balance-access sharing --------------------------------------------------------------------

def test_a_grant_lets_the_grantee_read_the_owners_figures_until_revoked(core):
    add_postpaid(core, current=Decimal("7.15"))
    with core.uow() as uow:
        assert services.grant_access(uow, POST, "0501234567") is True
    with core.uow() as uow:
        assert services.grant_access(uow, POST, "+994501234567") is False  # already there
    with core.uow() as uow:
        assert services.shared_report(uow, PRE, "0551234567").current == Decimal("7.15")
    with core.uow() as uow:
        assert services.revoke_access(uow, POST, "501234567") is True
    with core.uow() as uow, pytest.raises(AccessDenied):
        services.shared_report(uow, PRE, POST)


def test_a_refusal_looks_the_same_for_unknown_and_ungranted_owners(core):
    add_postpaid(core)
    messages = []
    for owner in (POST, "+994559999999", "garbage"):
        with core.uow() as uow, pytest.raises(AccessDenied) as exc:
            services.shared_report(uow, PRE, owner)
        messages.append(str(exc.value))
    assert len(set(messages)) == 1


def test_revoke_all_and_prepaid_owners(core):
    add_postpaid(core)
    add_prepaid(core)
    for grantee in ("0502223344", "0503334455"):
        with core.uow() as uow:
            services.grant_access(uow, POST, grantee)
    with core.uow() as uow:
        assert services.revoke_all(uow, POST) == 2
    with core.uow() as uow:
        assert services.grantees(uow, POST) == []
    with core.uow() as uow, pytest.raises(WrongPlan):
        services.grant_access(uow, PRE, "0502223344")


# -- bill run ----------------------------------------------------------------------------------

def test_the_bill_run_at_23h_on_the_bill_day_turns_usage_into_the_bill(core, clock):
    clock.set(datetime(2026, 11, 22, 12, 0))
    add_postpaid(core, bill_day=24, current=Decimal("7.15"), advance=Decimal("2"))
    with core.uow() as uow:
        assert services.run_due_bill_cycles(uow) == 0
    clock.set(datetime(2026, 11, 24, 22, 59))
    with core.uow() as uow:
        services.charge_sms(uow, POST, "650", key="before")
        assert services.run_due_bill_cycles(uow) == 0
    clock.set(datetime(2026, 11, 24, 23, 30))
    with core.uow() as uow:  # arrives after the cut-off, before the run: next cycle
        services.charge_sms(uow, POST, "650", key="after")
    with core.uow() as uow:
        assert services.run_due_bill_cycles(uow) == 1
    with core.uow() as uow:
        assert services.run_due_bill_cycles(uow) == 0  # once per cycle
    r = report(core, POST)
    # 7.1736 used in the cycle: the bill asks for the whole qəpik (7.17, of which the 2.00 advance
    # pays 2.00); 0.0036 is carried with the 0.0236 that came after the cut-off.
    assert (r.billed, r.current, r.advance) == (Decimal("5.1700"), Decimal("0.0272"), Decimal("0"))
    with core.uow() as uow:
        assert any(m.template == "bill-issued" for m in pending(uow))
    assert_audit_clean(core)


def test_a_late_worker_bills_the_cycle_it_missed_once(core, clock):
    clock.set(datetime(2026, 11, 1, 9, 0))
    add_postpaid(core, bill_day=4, current=Decimal("3"))
    clock.set(datetime(2026, 12, 20, 9, 0))  # two cut-offs passed (Nov 4, Dec 4): one bill for both
    with core.uow() as uow:
        assert services.run_due_bill_cycles(uow) == 1
    assert report(core, POST).billed == Decimal("3")


# -- audit -------------------------------------------------------------------------------------

def test_audit_finds_a_balance_changed_behind_the_ledgers_back(core):
    add_prepaid(core, balance="5")
    with core.uow() as uow:
        uow.session.execute(__import__("sqlalchemy").text("UPDATE subscriber SET balance_units = balance_units + 1"))
        uow.commit()
    with core.uow() as uow:
        problems = services.audit(uow)
    assert [(p.msisdn, p.account, p.stored, p.ledger) for p in problems] == [(PRE, "balance", Decimal("5.0001"), Decimal("5"))]
