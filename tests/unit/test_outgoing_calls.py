"""Outgoing-call control on the simulated channel: what the caller hears (literal prompt ids), what
the dialplan gets back (SELFCARE_DIAL, the L() limit), and the hangup charging keyed by the call."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from billing import calls, services
from billing.models import LedgerEntry, Operation, OutboxMessage
from ivr.channel import SimulatedChannel
from ivr.flows import check_startup, run_call
from ivr.simulate import simulate_outgoing_call

PRE, POST = "+994501234567", "+994551234567"
D = Decimal


def add(core, msisdn=PRE, plan="prepaid", **kw):
    with core.uow() as uow:
        services.add_subscriber(uow, msisdn, plan, **kw)


def before_dial(core, caller, number, press=""):
    channel = SimulatedChannel(caller, press, arguments=[number], uniqueid="1700000000.42")
    return run_call(core, channel, "outgoing"), channel


def hang_up(core, caller, number, billsec, status="ANSWER", uniqueid="1700000000.42"):
    channel = SimulatedChannel(caller, arguments=[number, str(billsec), status], uniqueid=uniqueid)
    return run_call(core, channel, "outgoing-hangup"), channel


def balance(core, msisdn=PRE):
    with core.reader() as uow:
        return services.balance_report(uow, msisdn).balance


def test_a_prepaid_call_is_let_through_with_the_longest_duration_its_balance_pays_for(core):
    add(core, balance=D("0.10"), language="en")
    outcome, channel = before_dial(core, PRE, "0502223344")
    assert outcome == "dial"
    assert channel.prompt_ids == []  # nothing played, the channel not answered: the dial goes on
    assert not channel.answered
    # 0.10 AZN at 0.04 per 30 s = 2 intervals = up to 74 s by seed 000's rounding, 1 s margin
    assert channel.variables == {"SELFCARE_DIAL": "yes", "SELFCARE_LIMIT_MS": "73000",
                                 "SELFCARE_WARNING_MS": "10000", "LIMIT_WARNING_FILE": "call-limit-warning"}
    assert channel.language == "en"


def test_a_postpaid_call_and_a_free_number_are_not_cut(core):
    add(core, POST, "postpaid")
    add(core, balance=D("0"))
    assert before_dial(core, POST, "+442071234567")[1].variables == {"SELFCARE_DIAL": "yes"}
    assert before_dial(core, PRE, "112")[1].variables == {"SELFCARE_DIAL": "yes"}


@pytest.mark.parametrize("setup, caller, number, heard", [
    (dict(balance=D("0.03")), PRE, "0502223344", ["call-balance-too-low"]),
    (dict(balance=D("5"), status="suspended-one-way"), PRE, "0502223344", ["line-suspended"]),
    (dict(balance=D("5")), "+994709998877", "0502223344", ["unknown-caller"]),
    (dict(balance=D("5")), "anonymous", "0502223344", ["unknown-caller"]),
    (dict(balance=D("5")), PRE, "12x", ["call-invalid-number"]),
])
def test_a_refused_call_hears_why_and_is_not_dialled(core, setup, caller, number, heard):
    add(core, **setup)
    outcome, channel = before_dial(core, caller, number)
    assert outcome == "refused"
    assert channel.prompt_ids == heard
    assert channel.variables == {"SELFCARE_DIAL": "no"}


def test_a_line_whose_balance_expired_is_told_to_top_up(core, clock):
    import datetime as dt

    add(core, balance=D("0"))
    with core.uow() as uow:
        services.topup(uow, PRE, "1", "t1")  # usable 30 days from 2026-11-22
    clock.set(dt.datetime(2026, 12, 23, 12, 0))
    outcome, channel = before_dial(core, PRE, "0502223344")
    assert (outcome, channel.prompt_ids) == ("refused", ["line-suspended", "topup-to-reactivate"])


@pytest.mark.parametrize("billsec, price", [(0, "0"), (14, "0"), (15, "0.04"), (16, "0.04"), (44, "0.04"),
                                            (45, "0.08"), (46, "0.08"), (59, "0.08"), (60, "0.08"),
                                            (61, "0.08"), (75, "0.12")])
def test_the_hangup_charges_billsec_by_the_30_second_table(core, billsec, price):
    add(core, balance=D("5.00"))
    hang_up(core, PRE, "0502223344", billsec)
    assert balance(core) == D("5.00") - D(price)


def test_a_charged_call_is_keyed_by_its_uniqueid_and_sends_the_balance_change_sms(core):
    add(core, balance=D("5.00"))
    assert hang_up(core, PRE, "0502223344", 16)[0] == "charged"
    assert hang_up(core, PRE, "0502223344", 16)[0] == "charged"  # the same report again
    assert balance(core) == D("4.96")
    with core.reader() as uow:
        [op] = uow.session.scalars(select(Operation).where(Operation.key == "call:1700000000.42")).all()
        [entry] = uow.session.scalars(select(LedgerEntry).where(LedgerEntry.operation_id == op.id)).all()
        [sms] = uow.session.scalars(select(OutboxMessage).where(OutboxMessage.template == "balance-changed")).all()
    assert (entry.account, entry.delta_units, entry.kind) == ("balance", -400, "call:standard")
    assert sms.key == "call:1700000000.42:notify"
    with core.reader() as uow:
        assert services.audit(uow) == []


def test_a_postpaid_call_grows_current_instead(core):
    add(core, POST, "postpaid")
    hang_up(core, POST, "+442071234567", 61)  # biznes international: 2 x 0.45 (61 s rounds to 2)
    with core.reader() as uow:
        assert services.balance_report(uow, POST).current == D("0.90")


def test_the_balance_change_sms_is_not_sent_when_switched_off(core):
    add(core, balance=D("5.00"))
    with core.uow() as uow:
        services.set_balance_notifications(uow, PRE, False)
    hang_up(core, PRE, "0502223344", 30)
    with core.reader() as uow:
        assert uow.session.scalars(select(OutboxMessage).where(OutboxMessage.template == "balance-changed")).all() == []


@pytest.mark.parametrize("args, outcome", [(["0502223344", "", ""], "not-charged"),
                                           (["0502223344", "0", "NOANSWER"], "not-answered"),
                                           (["0502223344", "12", "BUSY"], "not-answered")])
def test_a_hangup_report_without_an_answered_billsec_charges_nothing(core, args, outcome):
    add(core, balance=D("5.00"))
    channel = SimulatedChannel(PRE, arguments=args, uniqueid="u1")
    assert run_call(core, channel, "outgoing-hangup") == outcome
    assert balance(core) == D("5.00")
    assert channel.played == []  # a dead AGI plays nothing


def test_a_call_that_outlasts_the_balance_takes_what_is_left_and_never_goes_below_zero(core):
    add(core, balance=D("0.05"))
    hang_up(core, PRE, "0502223344", 50)  # 2 intervals = 0.08 > 0.05
    assert balance(core) == D("0")


def test_selfcare_call_runs_the_flow_cuts_at_the_limit_and_charges_one_interval(core):
    add(core, balance=D("0.04"), language="en")
    check_startup(core)
    heard, outcome, billsec, charged = simulate_outgoing_call(core, PRE, "0502223344", 100, call_id="sim-1")
    assert [h[0] for h in heard] == ["call-limit-warning"]
    assert (outcome, billsec, charged) == ("dial", 43, D("0.04"))
    assert balance(core) == D("0")
    with core.reader() as uow:
        assert calls.call_key("sim-1") in uow.session.scalars(select(Operation.key)).all()
