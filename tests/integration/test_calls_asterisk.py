"""Outgoing calls that cost money, through a real Asterisk 22 running dialplan/ as shipped: the
FastAGI server lets the call through with Dial's L() limit, the test destination answers, and the
hangup handler reports billsec, charged by seed 000's 30-s table and keyed by the call's uniqueid."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from billing import services
from billing.models import LedgerEntry, Operation, OutboxMessage

pytestmark = pytest.mark.asterisk
D = Decimal


def add_line(world, msisdn, balance, status="active"):
    with world.core.uow() as uow:
        services.add_subscriber(uow, msisdn, "prepaid", tariff="klass", balance=D(balance), language="en",
                                status=status)


def balance_of(world, msisdn):
    with world.core.reader() as uow:
        return services.balance_report(uow, msisdn).balance


def call_charge(world, uniqueid):
    with world.core.reader() as uow:
        op = uow.session.scalar(select(Operation).where(Operation.key == f"call:{uniqueid}"))
        entries = uow.session.scalars(select(LedgerEntry).where(LedgerEntry.operation_id == op.id)).all() if op else []
        sms = uow.session.scalars(select(OutboxMessage.key).where(OutboxMessage.key == f"call:{uniqueid}:notify")).all()
    return op, entries, sms


def place(world, caller, number, hold_s=None):
    if hold_s is not None:
        world.pbx.set_global(f"HOLD_{number}", str(hold_s))
    call = world.pbx.originate(caller, number)
    call.wait_ended(180)
    return call


def billsec_in_cdr(world, uniqueid) -> int:
    import csv

    master = world.pbx.root / "log" / "cdr-csv" / "Master.csv"
    rows = [row for row in csv.reader(master.read_text().splitlines()) if row and row[16] == uniqueid]
    assert rows, f"no CDR row for {uniqueid} in {master}"
    return int(rows[-1][13])


@pytest.mark.parametrize("caller, hold_s, price", [("+994501110016", 16, "0.04"), ("+994501110046", 46, "0.08")])
def test_an_answered_call_is_charged_by_the_30_second_table_keyed_by_the_call(asterisk, caller, hold_s, price):
    add_line(asterisk, caller, "5.00")
    call = place(asterisk, caller, f"05022200{hold_s}", hold_s)

    uniqueid = call.environment()["agi_uniqueid"]

    op, entries, sms = call_charge(asterisk, uniqueid)
    assert op is not None, asterisk.pbx.log_tail()
    assert [(e.account, e.delta_units, e.kind) for e in entries] == [("balance", -int(D(price) * 10000), "call:standard")]
    assert sms == [f"call:{uniqueid}:notify"]
    assert balance_of(asterisk, caller) == D("5.00") - D(price)
    assert abs(billsec_in_cdr(asterisk, uniqueid) - hold_s) <= 1
    # the second report of the same call: Asterisk's own Master.csv, imported (twice) -> charged once
    from ivr.cdr import import_cdr

    master = (asterisk.pbx.root / "log" / "cdr-csv" / "Master.csv").read_text().splitlines()
    for _ in range(2):
        result = import_cdr(asterisk.core, master)
        assert result.malformed == [] and result.charged_now == 0 and result.already_charged >= 1, result.lines()
    assert balance_of(asterisk, caller) == D("5.00") - D(price)


@pytest.mark.parametrize("caller, hold_s, price_units", [("+994501110116", 16, 400), ("+994501110146", 46, 800)])
def test_a_sip_call_from_a_prepaid_phone_is_charged_by_the_30_second_table(asterisk, caller, hold_s, price_units):
    """The same path from a real SIP phone (baresip, PCMU over loopback) instead of a Local channel."""
    from tests.peers.baresip import sip_call

    add_line(asterisk, caller, "5.00")
    number = f"0502220{caller[-3:]}"
    asterisk.pbx.set_global(f"HOLD_{number}", str(hold_s))
    result = sip_call(asterisk.pbx, caller, number, max_seconds=120)

    uniqueid = result.environment["agi_uniqueid"]
    assert result.environment["agi_type"] == "PJSIP" and result.environment["agi_callerid"] == caller
    op, entries, sms = call_charge(asterisk, uniqueid)
    assert op is not None, asterisk.pbx.log_tail()
    assert [(e.account, e.delta_units, e.kind) for e in entries] == [("balance", -price_units, "call:standard")]
    assert sms == [f"call:{uniqueid}:notify"]
    assert abs(billsec_in_cdr(asterisk, uniqueid) - hold_s) <= 2


def test_a_balance_for_one_interval_is_cut_by_asterisk_at_that_limit(asterisk):
    caller = "+994501110043"
    add_line(asterisk, caller, "0.04")  # one 30-s interval: up to 44 s by seed 000, L() at 43 s
    call = place(asterisk, caller, "0502229999")  # the destination would hold an hour

    uniqueid = call.environment()["agi_uniqueid"]
    billsec = billsec_in_cdr(asterisk, uniqueid)
    assert abs(billsec - 43) <= 2
    assert balance_of(asterisk, caller) == D("0")
    assert "call-limit-warning" in asterisk.pbx.log_text()


def test_a_suspended_line_is_refused_with_its_prompt_and_not_dialled(asterisk):
    caller = "+994501110099"
    add_line(asterisk, caller, "5.00", status="suspended-one-way")
    call = place(asterisk, caller, "0502220001")

    assert [c.split()[2] for c in call.commands() if c.startswith("STREAM FILE")] == ["line-suspended"]
    assert "Dial(\"" + call.agi_channel_prefix not in asterisk.pbx.log_text()  # never dialled
    assert balance_of(asterisk, caller) == D("5.00")


WANGIRI = "+2367712345"  # rang three of our lines and dropped: suspect (billing/fraud.py)


def make_wangiri_suspect(world, lines):
    from billing import fraud

    for line in lines:
        add_line(world, line, "1.00")
        with world.core.uow() as uow:
            fraud.record_inbound_ring(uow, WANGIRI, line, 3, key=f"ring:asterisk-{line}")


def test_calling_a_suspected_wangiri_number_back_plays_the_warning_and_1_dials(asterisk):
    make_wangiri_suspect(asterisk, ("+994501110071", "+994501110072", "+994501110073"))
    caller = "+994501110070"
    add_line(asterisk, caller, "5.00")
    asterisk.pbx.set_global("HOLD_002367712345", "20")  # one 30-s interval (under 15 s rounds to 0)
    call = asterisk.pbx.originate(caller, "002367712345", dtmf="1")
    call.wait_ended(180)

    assert call.played() == ["call-wangiri-warning"], asterisk.pbx.log_tail()
    uniqueid = call.environment()["agi_uniqueid"]
    op, entries, _ = call_charge(asterisk, uniqueid)
    assert op is not None, asterisk.pbx.log_tail()  # dialled, answered, charged
    assert [(e.kind, e.delta_units) for e in entries] == [("call:international", -6000)]  # 0.60 AZN


def test_a_call_back_to_a_wangiri_number_without_1_is_not_dialled(asterisk):
    make_wangiri_suspect(asterisk, ("+994501110075", "+994501110076", "+994501110077"))
    caller = "+994501110074"
    add_line(asterisk, caller, "5.00")
    call = asterisk.pbx.originate(caller, "002367712345")  # never presses: both tries time out
    call.wait_ended(180)

    assert call.played() == ["call-wangiri-warning", "no-input", "call-wangiri-warning", "no-input", "goodbye"]
    assert "Dial(\"" + call.agi_channel_prefix not in asterisk.pbx.log_text()  # never dialled
    assert balance_of(asterisk, caller) == D("5.00")
