"""The fraud guard of seed 001 (billing/fraud.py, docs/rules.md "Fraud"): wangiri rings and the
warning before a call back, unusual deductions (a cloned SIM) flagged with an alert SMS, the
top-up text's advice, `selfcare fraud`, and the thresholds checked as tariff data. The clock is
moved, never slept."""
from __future__ import annotations

import logging
import tomllib
from datetime import timedelta
from decimal import Decimal

import pytest
from click.testing import CliRunner
from sqlalchemy import func, inspect, select, text

import texts
from billing import calls, fraud, services
from billing.errors import InvalidTariffData, UnknownSubscriber
from billing.models import FraudFlag, OutboxMessage
from billing.outbox import Outgoing
from billing.tariffs import DEFAULT_PATH, parse_tariff_book
from ivr.channel import SimulatedChannel
from ivr.cdr import import_cdr
from ivr.flows import run_call
from ivr.simulate import simulate_outgoing_call
from selfcare.cli import cli
from sms.dispatch import Dispatcher, LogTransport
from texts.notifications import render

A, B, C, D4 = "+994501234567", "+994501112233", "+994552223344", "+994704445566"
WANGIRI = "+2367712345"  # Central African Republic: not one of our near prefixes, dear to call
D = Decimal


def add(core, msisdn, balance="5", language="az", **kw):
    with core.uow() as uow:
        services.add_subscriber(uow, msisdn, "prepaid", balance=D(balance), language=language, **kw)


def ring(core, caller, line, seconds=3, key=None):
    with core.uow() as uow:
        return fraud.record_inbound_ring(uow, caller, line, seconds, key=key)


def suspect(core, number=WANGIRI) -> bool:
    with core.reader() as uow:
        return fraud.is_suspect_number(uow, number)


@pytest.fixture
def lines(core):
    for number in (A, B, C):
        add(core, number)


# --- wangiri: recording and suspicion ---------------------------------------------------------

def test_a_number_that_rang_three_lines_within_an_hour_is_suspect(core, clock, lines):
    assert ring(core, WANGIRI, A)
    clock.advance(timedelta(minutes=25))
    assert ring(core, "00" + WANGIRI[1:], B)  # the same number as a CDR may write it
    assert not suspect(core)  # two lines so far
    clock.advance(timedelta(minutes=34))
    assert ring(core, WANGIRI, C)  # 59 minutes after the first
    assert suspect(core)
    assert not suspect(core, "+2367799999")


def test_rings_to_the_same_line_or_spread_over_more_than_the_window_do_not_make_a_suspect(core, clock, lines):
    for _ in range(3):
        ring(core, WANGIRI, A)
        clock.advance(timedelta(minutes=5))
    assert not suspect(core)  # one line, rung three times
    ring(core, WANGIRI, B)
    clock.advance(timedelta(minutes=61))
    ring(core, WANGIRI, C)  # A and B were more than 60 minutes before: never three within the hour
    assert not suspect(core)


def test_a_suspect_stays_suspect_for_72_hours_after_the_burst(core, clock, lines):
    for line in (A, B, C):
        ring(core, WANGIRI, line)
        clock.advance(timedelta(minutes=1))
    clock.advance(timedelta(hours=71, minutes=57))  # 71 h 58 min after the third ring
    assert suspect(core)
    clock.advance(timedelta(minutes=3))  # 72 h 01 min
    assert not suspect(core)


def test_only_short_unanswered_rings_from_abroad_are_recorded_once_per_key(core, lines):
    assert not ring(core, "+994552223344", A)  # from home
    assert not ring(core, WANGIRI, A, seconds=9)  # rang longer than max_ring_seconds = 8
    assert ring(core, WANGIRI, A, seconds=8, key="ring:1.1")
    assert not ring(core, WANGIRI, A, seconds=8, key="ring:1.1")  # the same report again
    with pytest.raises(UnknownSubscriber):
        ring(core, WANGIRI, "+994709998877")


def cdr_row(uniqueid, src, line, duration, disposition="NO ANSWER", billsec=0, start="2026-11-22 11:40:00"):
    return (f'"","{src}","{line}","from-trunk","""{src}"" <{src}>","PJSIP/trunk-00000001",'
            f'"PJSIP/{line}-00000002","Dial","PJSIP/{line},60","{start}","","{start}",{duration},{billsec},'
            f'"{disposition}","DOCUMENTATION","{uniqueid}","in:{line}"\n')


def test_the_cdr_import_records_unanswered_short_rings_from_abroad_once(core, lines):
    master = [cdr_row("9.1", WANGIRI, A, 3), cdr_row("9.2", WANGIRI, B, 4), cdr_row("9.3", WANGIRI, C, 2),
              cdr_row("9.4", WANGIRI, A, 30, disposition="ANSWERED", billsec=25),  # answered: a real call
              cdr_row("9.5", "+994552223344", A, 3),  # from home
              cdr_row("9.6", WANGIRI, A, 20)]  # rang 20 s: someone meant to talk
    first = import_cdr(core, master)
    assert (first.seen, first.rings_recorded, first.not_outgoing, first.charged_now) == (6, 3, 6, 0)
    assert "inbound rings from abroad recorded 3" in first.lines()
    assert suspect(core)  # rang 11:40, three lines: suspect at 12:00
    again = import_cdr(core, master)
    assert again.rings_recorded == 0


# --- wangiri: the warning before a call back ----------------------------------------------------

def make_suspect(core, clock):
    add(core, D4)
    for line in (B, C, D4):
        ring(core, WANGIRI, line)
        clock.advance(timedelta(minutes=2))


def before_dial(core, press):
    channel = SimulatedChannel(A, press, arguments=["00" + WANGIRI[1:]], uniqueid="1700000000.7")
    return run_call(core, channel, "outgoing"), channel


def test_calling_a_suspect_back_plays_the_warning_and_1_goes_on(core, clock, lines):
    make_suspect(core, clock)
    outcome, channel = before_dial(core, "1")
    assert outcome == "dial"
    assert channel.prompt_ids == ["call-wangiri-warning"]
    assert channel.variables["SELFCARE_DIAL"] == "yes"
    assert channel.variables["SELFCARE_LIMIT_MS"]  # the prepaid limit still applies


@pytest.mark.parametrize("press, heard", [
    ("  ", ["call-wangiri-warning", "no-input", "call-wangiri-warning", "no-input", "goodbye"]),
    ("29", ["call-wangiri-warning", "invalid-choice", "call-wangiri-warning", "invalid-choice", "goodbye"]),
])
def test_calling_a_suspect_back_without_pressing_1_is_not_dialled(core, clock, lines, press, heard):
    make_suspect(core, clock)
    outcome, channel = before_dial(core, press)
    assert outcome == "not-dialled"
    assert channel.prompt_ids == heard  # 2 tries ([fraud.wangiri] confirm_tries)
    assert channel.variables == {"SELFCARE_DIAL": "no"}


def test_a_number_that_is_not_suspect_is_dialled_without_a_warning(core, lines):
    ring(core, WANGIRI, B)
    outcome, channel = before_dial(core, "")
    assert (outcome, channel.prompt_ids) == ("dial", [])


def test_the_simulated_call_back_warns_then_charges_when_1_is_pressed(core, clock, lines):
    make_suspect(core, clock)
    heard, outcome, billsec, charged = simulate_outgoing_call(core, A, "+2367712345", 20, press="1", call_id="c1")
    assert [p for p, _ in heard] == ["call-wangiri-warning"]
    assert (outcome, billsec, charged) == ("dial", 20, D("0.60"))  # international, one 30-s interval
    heard, outcome, _, charged = simulate_outgoing_call(core, A, "+2367712345", 20, press="  ", call_id="c2")
    assert outcome == "not-dialled" and charged is None
    assert [p for p, _ in heard][-1] == "goodbye"


def test_the_warning_menu_takes_its_tries_and_timeout_from_the_tariff_data():
    from ivr.outgoing import wangiri_menu

    menu = wangiri_menu(fraud.WangiriRule(8, 3, 60, 72, confirm_tries=3, confirm_timeout_ms=4000))
    assert (menu.tries, menu.first_digit_timeout_ms, dict(menu.options)) == (3, 4000, {"1": "go-on"})


# --- unusual deductions (a cloned SIM) ----------------------------------------------------------

def call(core, seconds, call_id, number="+442071234567", msisdn=A):
    with core.uow() as uow:
        return calls.charge_finished_call(uow, msisdn, number, seconds, call_id)


def with_usual_days(core, clock, per_day_seconds, days=30, msisdn=A):
    """`days` days of one international call a day (0.60 AZN per 30 s on Klass), then the clock on
    the next day at 12:00."""
    for day in range(days):
        call(core, per_day_seconds, f"usual-{day}", msisdn=msisdn)
        clock.advance(timedelta(days=1))


def flags(core):
    with core.reader() as uow:
        return uow.session.scalars(select(FraudFlag).order_by(FraudFlag.id)).all()


def alerts(core):
    with core.reader() as uow:
        return uow.session.scalars(select(OutboxMessage).where(OutboxMessage.template == "unusual-deductions")).all()


@pytest.fixture
def rich_line(core):
    add(core, A, balance="0", language="en")
    with core.uow() as uow:
        services.topup(uow, A, "900", "pay-rich")  # 90 days of validity


def test_deductions_far_above_the_usual_day_flag_the_line_once_a_day(core, clock, rich_line):
    with_usual_days(core, clock, 30)  # 0.60 AZN a day: 5x the usual = 3.00
    call(core, 100, "today-1")  # 1.80 AZN (and below min_amount 3): nothing
    assert flags(core) == [] and alerts(core) == []
    call(core, 100, "today-2")  # 3.60 AZN today, more than 5 x 0.60
    [flag] = flags(core)
    assert (flag.day.isoformat(), flag.rule, flag.amount_units, flag.usual_units) == (
        "2026-12-22", "unusual-deductions", 36000, 6000)
    call(core, 100, "today-3")  # 5.40: already flagged today
    assert len(flags(core)) == 1 and len(alerts(core)) == 1
    call(core, 100, "today-2")  # a retried charge is not a new deduction
    clock.advance(timedelta(days=1))
    call(core, 300, "next-day")  # 6.00 AZN the next day: flagged again, a second alert
    assert [f.day.isoformat() for f in flags(core)] == ["2026-12-22", "2026-12-23"]
    assert len(alerts(core)) == 2


def test_a_heavy_user_is_flagged_only_above_the_daily_cap(core, clock, rich_line):
    with_usual_days(core, clock, 600)  # 12.00 AZN a day: 5x the usual is 60, the cap 25 comes first
    # the day it was activated it had no usual day yet: 12.00 >= min_amount flagged it then
    assert [f.day.isoformat() for f in flags(core)] == ["2026-11-22"]
    call(core, 600, "today-1")
    call(core, 390, "today-2")  # 12.00 + 7.80 = 19.80: heavy, but usual for this line
    assert len(flags(core)) == 1
    call(core, 300, "today-3")  # 25.80 > 25.00
    flag = flags(core)[-1]
    assert (flag.day.isoformat(), flag.amount_units, flag.usual_units) == ("2026-12-22", 258000, 120000)


def test_a_new_line_is_flagged_from_the_minimum_amount(core, clock, rich_line):
    call(core, 240, "first-ever")  # 4.80 AZN on a line with no usual yet (median 0)
    assert len(flags(core)) == 1


def test_data_deductions_count_and_flag_too(core, clock, rich_line):
    with core.uow() as uow:  # klass: 0.10 AZN a MB
        services.record_data_usage(uow, A, "48", "data-burst")
    [flag] = flags(core)
    assert (flag.rule, flag.amount_units) == ("unusual-deductions", 48000)  # 4.80 AZN on a line with no usual


def test_free_numbers_and_top_ups_are_not_deductions(core, clock, rich_line):
    call(core, 3000, "care", number="111")
    with core.uow() as uow:
        services.topup(uow, A, "50", "pay-2")
    assert flags(core) == []


ALERT_TEXTS = {
    "az": "Bu gün xəttinizdən adətdən çox 3.60 AZN çıxılıb. Siz deyilsinizsə, SIM kart kopyalana bilər: "
          "111 nömrəsinə zəng edin.",
    "en": "Today 3.60 AZN was charged to your line, far more than usual. If this was not you, your SIM may "
          "be cloned: call 111.",
    "ru": "Сегодня списано 3.60 AZN, намного больше обычного. Если это не вы, возможно, SIM-карта клонирована: "
          "звоните 111.",
}


def test_the_alert_sms_names_the_amount_and_the_care_number_in_each_language(core, clock, rich_line):
    with_usual_days(core, clock, 30)
    call(core, 100, "today-1")
    call(core, 100, "today-2")
    [alert] = alerts(core)
    assert alert.key == "fraud:unusual-deductions:1:2026-12-22"  # no number in the key
    transport = LogTransport()
    Dispatcher(transport).run(core)
    assert ALERT_TEXTS["en"] in [t for _, t in transport.sent]
    for language, expected in ALERT_TEXTS.items():
        message = Outgoing("k", A, language, "unusual-deductions", {"amount": "3.6000", "care": "111"})
        assert render(texts.load(), message, core.tariffs, core.offers) == expected


def test_the_flag_log_line_masks_the_number(core, clock, rich_line, caplog):
    caplog.set_level(logging.INFO)
    call(core, 240, "first-ever")
    ring(core, WANGIRI, A)
    joined = "\n".join(r.getMessage() for r in caplog.records)
    assert "flagged" in joined
    assert A not in joined and A[1:] not in joined and WANGIRI not in joined


# --- erroneous top-up: the genuine top-up SMS says what we never ask ------------------------------

def test_every_top_up_sms_says_the_operator_never_asks_for_money_back(core):
    add(core, A, balance="1.00", language="en")
    add(core, B, balance="1.00", language="ru")
    with core.uow() as uow:
        services.topup(uow, A, "5", "pay-en")
        services.topup(uow, B, "5", "pay-ru")
    sent = LogTransport()
    Dispatcher(sent).run(core)
    assert sorted(t for _, t in sent.sent) == sorted([
        "Balance topped up (top-up): +5.00 AZN. New balance: 6.00 AZN. We never ask you to send money back.",
        "Баланс пополнен (пополнение): +5.00 AZN. Баланс: 6.00 AZN. Мы никогда не просим вернуть деньги.",
    ])


def test_a_call_charge_sms_keeps_its_own_wording(core):
    add(core, A, balance="5.00", language="en")
    call(core, 20, "c1")
    sent = LogTransport()
    Dispatcher(sent).run(core)
    assert [t for _, t in sent.sent] == ["Your balance changed by -0.60 AZN (call). New balance: 4.40 AZN."]


# --- `selfcare fraud` --------------------------------------------------------------------------

def test_the_cli_lists_suspect_numbers_and_flagged_lines(core, tmp_path):
    url = str(core.engine.url)
    run = lambda now, *args: CliRunner().invoke(cli, ["--db", url, "--now", now, *args])  # noqa: E731
    with core.uow() as uow:
        for number in (A, B, C):
            services.add_subscriber(uow, number, "prepaid", balance=D("20"))
    for minute, line in (("10", A), ("20", B), ("30", C)):
        assert run(f"2026-11-22T11:{minute}", "fraud", "ring", "002367712345", line,
                   "--seconds", "3").output == "ring recorded\n"
    assert run("2026-11-22T12:00", "call", A, "+442071234567", "--seconds", "240").exit_code == 0
    listed = run("2026-11-22T12:05", "fraud")
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines() == [
        "suspect numbers 1",
        "  +2367712345\trang 3 lines\tlast burst 2026-11-22 11:30",
        "flagged lines 1 (last 7 days)",
        f"  {A}\t2026-11-22\tunusual-deductions\t4.80 AZN (usual day 0.00 AZN)",
    ]


# --- data checked at start-up, and the migration ---------------------------------------------------

def raw_book():
    with open(DEFAULT_PATH, "rb") as f:
        return tomllib.load(f)


@pytest.mark.parametrize("change, named", [
    (lambda r: r["fraud"].update(care_number="9999"), "fraud.care_number"),
    (lambda r: r["fraud"]["wangiri"].update(distinct_lines=1), "fraud.wangiri.distinct_lines"),
    (lambda r: r["fraud"]["wangiri"].update(confirm_tries=0), "fraud.wangiri.confirm_tries"),
    (lambda r: r["fraud"]["wangiri"].update(confirm_timeout_ms=100), "fraud.wangiri.confirm_timeout_ms"),
    (lambda r: r["fraud"]["deductions"].update(median_multiple="0"), "fraud.deductions.median_multiple"),
    (lambda r: r["fraud"]["deductions"].update(min_amount="30"), "fraud.deductions.min_amount"),
    (lambda r: r["fraud"]["deductions"].update(kinds=[]), "fraud.deductions.kinds"),
    (lambda r: r.pop("fraud"), "fraud.care_number"),
])
def test_bad_fraud_thresholds_stop_start_up_naming_the_entry(change, named):
    raw = raw_book()
    change(raw)
    with pytest.raises(InvalidTariffData, match=named.replace(".", r"\.")):
        parse_tariff_book(raw)


def test_migration_0005_goes_up_down_and_up_on_sqlite(tmp_path):
    from alembic import command

    from billing.core import make_engine
    from billing.migrate import alembic_config, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        upgrade(engine, "head")
        assert {"inbound_ring", "fraud_flag"} <= set(inspect(engine).get_table_names())
        command.downgrade(alembic_config(engine), "0004_card_redemption")
        assert not {"inbound_ring", "fraud_flag"} & set(inspect(engine).get_table_names())
        upgrade(engine, "0005_fraud")  # up to this migration: later ones (0006 call sessions) have their own test
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0005_fraud"
            assert conn.execute(select(func.count()).select_from(text("fraud_flag"))).scalar() == 0
    finally:
        engine.dispose()
