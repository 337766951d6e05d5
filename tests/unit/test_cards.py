"""Topping up with a scratch card's PIN (billing.cards): what lands, what a wrong PIN does, the
throttle on wrong PINs per line, retries, cards imported before migration 0004."""
import logging
import threading
from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import func, select

from billing import services
from billing.core import Core
from billing.errors import (CardAlreadyUsed, InvalidInput, InvalidPin, InvalidTariffData, TooManyWrongPins,
                            UnknownCard, UnknownSubscriber, WrongPin)
from billing.models import CardPinFailure, ScratchCard
from tests.unit.cards_support import OTHER_PIN, PIN, WRONG_PIN, add_card, check_migration_0004, redeem, status
from tests.unit.packs_credit_scenarios import (POST, PRE, assert_audit_clean, call, credit_ready_line, debt,
                                               open_postpaid, open_prepaid, report, templates)


def failures(core):
    with core.reader() as uow:
        return uow.session.scalar(select(func.count(CardPinFailure.id)))


def test_a_card_tops_up_a_prepaid_line_by_its_pin_alone_like_a_top_up(core, clock):
    open_prepaid(core, balance="2.00", language="en")
    add_card(core, value="5.00")
    topped = redeem(core, PRE, PIN, "r1")
    assert (topped.serial, topped.amount, topped.duplicate) == ("1000000001", D("5"), False)
    assert topped.report.balance == D("7.00") and report(core).balance == D("7.00")
    assert report(core).balance_expires == date(2027, 1, 21)  # the 5 AZN tier: 60 days, as a top-up
    card = status(core)
    assert (card.used, card.used_by, card.used_at) == (True, PRE, clock.now())
    [(template, params)] = templates(core)
    assert template == "balance-changed" and params["reason"] == "card" and params["change"] == "5.0000"
    assert_audit_clean(core)


def test_a_card_recovers_credit_debt_first_as_a_top_up_does(core, clock):
    credit_ready_line(core, clock)
    call(core, services.take_nar_credit, PRE, "nar-1")  # 3 AZN, owing 3.60 with its fee
    owed = debt(core).nar
    add_card(core, value="10.00")
    before = report(core).balance
    topped = redeem(core, PRE, PIN, "r1")
    assert debt(core).nar == 0
    assert topped.report.balance == before + D("10.00") - owed
    assert [t for t, _ in templates(core)][-1] == "topped-up-debt-repaid"  # one SMS: the card and the debt it paid
    assert_audit_clean(core)


def test_a_card_on_a_postpaid_line_settles_the_bill_then_becomes_advance(core):
    open_postpaid(core, billed=D("3.00"), current=D("1.00"))
    add_card(core, value="5.00")
    topped = redeem(core, POST, PIN, "r1")
    assert (topped.report.billed, topped.report.advance, topped.report.current) == (D("0"), D("2.00"), D("1.00"))
    assert_audit_clean(core)


def test_a_retried_redemption_tops_up_once(core):
    open_prepaid(core, balance="1.00")
    add_card(core)
    first = redeem(core, PRE, PIN, "same")
    again = redeem(core, PRE, PIN, "same")
    assert again.duplicate and (again.serial, again.amount) == (first.serial, first.amount)
    assert report(core).balance == D("6.00")
    assert_audit_clean(core)


def test_a_wrong_pin_changes_nothing_and_counts_towards_the_throttle(core):
    open_prepaid(core, balance="1.00")
    add_card(core)
    with pytest.raises(WrongPin) as wrong:
        redeem(core, PRE, WRONG_PIN, "w1")
    assert wrong.value.tries_left == 4 and "nothing was topped up" in str(wrong.value)
    assert report(core).balance == D("1.00") and not status(core).used and templates(core) == []
    assert failures(core) == 1
    with pytest.raises(WrongPin) as again:  # the same request retried: refused again, counted once
        redeem(core, PRE, WRONG_PIN, "w1")
    assert again.value.tries_left == 4 and failures(core) == 1
    assert_audit_clean(core)


def test_five_wrong_pins_in_an_hour_refuse_the_line_unchecked_until_the_oldest_is_an_hour_old(core, clock):
    open_prepaid(core, balance="1.00")
    add_card(core)
    first_wrong = clock.now()
    left = []
    for n in range(5):
        with pytest.raises(WrongPin) as wrong:
            redeem(core, PRE, WRONG_PIN, f"w{n}")
        left.append(wrong.value.tries_left)
        clock.advance(timedelta(minutes=5))
    assert left == [4, 3, 2, 1, 0]
    with pytest.raises(TooManyWrongPins) as refused:  # the right PIN, not even looked at
        redeem(core, PRE, PIN, "right-too-early")
    assert refused.value.until == first_wrong + timedelta(minutes=60)
    assert "until 2026-11-22 13:00" in str(refused.value)
    assert not status(core).used and failures(core) == 5  # a refused try is not a wrong one
    clock.set(first_wrong + timedelta(minutes=60))
    assert redeem(core, PRE, PIN, "right-on-time").amount == D("5")
    assert_audit_clean(core)


def test_the_throttle_numbers_come_from_the_offers_data(core, clock):
    from dataclasses import replace

    strict = replace(core.offers, cards=replace(core.offers.cards, max_wrong_pins=1, wrong_pin_window_minutes=10))
    other = Core(core.db_url, clock=clock, offers=strict)
    try:
        open_prepaid(other, balance="1.00")
        add_card(other)
        with pytest.raises(WrongPin) as wrong:
            redeem(other, PRE, WRONG_PIN, "w1")
        assert wrong.value.tries_left == 0
        with pytest.raises(TooManyWrongPins) as refused:
            redeem(other, PRE, PIN, "r1")
        assert refused.value.until == clock.now() + timedelta(minutes=10)
    finally:
        other.dispose()


def test_wrong_pins_are_counted_in_the_database_across_serving_processes(core, clock):
    open_prepaid(core, balance="1.00")
    add_card(core)
    second = Core(core.db_url, clock=clock)  # another serving process on the same database
    try:
        for n in range(5):
            with pytest.raises(WrongPin):
                redeem(core if n % 2 else second, PRE, WRONG_PIN, f"w{n}")
        with pytest.raises(TooManyWrongPins):
            redeem(second, PRE, PIN, "r1")
    finally:
        second.dispose()


def test_the_throttle_is_per_line(core):
    open_prepaid(core, balance="1.00")
    open_prepaid(core, "+994502223344", balance="1.00")
    add_card(core)
    for n in range(5):
        with pytest.raises(WrongPin):
            redeem(core, PRE, WRONG_PIN, f"w{n}")
    assert redeem(core, "+994502223344", PIN, "other-line").amount == D("5")


def test_a_used_card_says_when_and_is_not_a_wrong_try(core, clock):
    open_prepaid(core, balance="1.00")
    open_prepaid(core, "+994502223344", balance="1.00")
    add_card(core)
    redeem(core, PRE, PIN, "r1")
    used_at = clock.now()
    clock.advance(timedelta(days=2))
    with pytest.raises(CardAlreadyUsed) as used:
        redeem(core, "+994502223344", PIN, "r2")
    assert used.value.used_at == used_at and "used on 2026-11-22 12:00" in str(used.value)
    assert report(core, "+994502223344").balance == D("1.00") and failures(core) == 0


@pytest.mark.parametrize("pin", ["", "123", "12345678901234567", "12ab5678", " "])
def test_a_malformed_pin_is_refused_uncounted(core, pin):
    open_prepaid(core, balance="1.00")
    with pytest.raises(InvalidPin):
        redeem(core, PRE, pin, "bad")
    assert failures(core) == 0


def test_an_unknown_line_is_refused_before_anything(core):
    add_card(core)
    with pytest.raises(UnknownSubscriber):
        redeem(core, "+994509999999", PIN, "r1")
    assert not status(core).used


def test_two_lines_racing_for_one_card_top_up_once(core):
    lines = [f"+99450100{n:04d}" for n in range(8)]
    for msisdn in lines:
        open_prepaid(core, msisdn, balance="0")
    add_card(core)
    results, start = [], threading.Barrier(len(lines), timeout=60)

    def take(msisdn):
        start.wait()
        try:
            results.append(redeem(core, msisdn, PIN, f"race-{msisdn}").amount)
        except CardAlreadyUsed:
            results.append("used")

    threads = [threading.Thread(target=take, args=(m,)) for m in lines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results.count("used") == 7 and D("5") in results
    assert sum(report(core, m).balance for m in lines) == D("5")
    assert_audit_clean(core)


# -- importing cards -------------------------------------------------------------------------

def test_pins_must_be_unique_since_a_card_is_found_by_its_pin(core):
    add_card(core, "1000000001", PIN)
    with pytest.raises(InvalidInput, match="another card has this PIN"):
        add_card(core, "1000000002", PIN)
    add_card(core, "1000000002", OTHER_PIN)


def test_the_database_keeps_no_pin_and_no_unkeyed_digest_of_it(core, monkeypatch):
    import hashlib

    add_card(core)
    with core.reader() as uow:
        row = uow.session.scalar(select(ScratchCard))
    assert row.pin_hash is None and PIN not in row.pin_lookup
    assert row.pin_lookup != hashlib.sha256(PIN.encode()).hexdigest()
    monkeypatch.setenv("SELFCARE_CARD_PIN_KEY", "the-operators-own-key")
    add_card(core, "1000000002", OTHER_PIN)
    open_prepaid(core, balance="0")
    assert redeem(core, PRE, OTHER_PIN, "r1").serial == "1000000002"  # found under the key it was imported with


# -- cards imported before 0004, redeemed with their serial ------------------------------------

def test_a_serial_and_pin_redeem_a_card_and_a_wrong_pair_is_a_wrong_try(core):
    open_prepaid(core, balance="0")
    add_card(core, "1000000001", PIN, "5.00")
    with pytest.raises(WrongPin):
        redeem(core, PRE, OTHER_PIN, "w1", serial="1000000001")
    with pytest.raises(UnknownCard):
        redeem(core, PRE, PIN, "w2", serial="1999999999")
    assert failures(core) == 2
    assert redeem(core, PRE, PIN, "r1", serial="1000000001").amount == D("5")


def test_migration_0004_runs_up_down_and_up_on_sqlite_keeping_old_cards_redeemable(tmp_path):
    check_migration_0004(f"sqlite:///{tmp_path / 'migrate.db'}")


# -- the data ----------------------------------------------------------------------------------

def test_the_shipped_throttle_is_five_wrong_pins_an_hour(core):
    assert (core.offers.cards.max_wrong_pins, core.offers.cards.wrong_pin_window_minutes) == (5, 60)


@pytest.mark.parametrize("breaks, named", [
    (lambda r: r.pop("cards"), "cards.max_wrong_pins"),
    (lambda r: r["cards"].update(max_wrong_pins=0), "cards.max_wrong_pins"),
    (lambda r: r["cards"].update(wrong_pin_window_minutes="60"), "cards.wrong_pin_window_minutes"),
    (lambda r: r["cards"].update(wrong_pin_window_minutes=20000), "cards.wrong_pin_window_minutes"),
])
def test_a_bad_throttle_entry_stops_start_up_naming_it(breaks, named):
    import tomllib

    from billing.offers import DEFAULT_PATH, parse_offers

    with open(DEFAULT_PATH, "rb") as fh:
        data = tomllib.load(fh)
    breaks(data)
    with pytest.raises(InvalidTariffData, match=named):
        parse_offers(data)


def test_no_pin_and_no_whole_number_reaches_the_log(core, caplog):
    open_prepaid(core, balance="1.00")
    add_card(core)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(WrongPin):
        redeem(core, PRE, WRONG_PIN, "w1")
    redeem(core, PRE, PIN, "r1")
    with pytest.raises(CardAlreadyUsed):
        redeem(core, PRE, PIN, "r2")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "redeemed" in logged and "wrong card PIN" in logged
    for secret in (PIN, WRONG_PIN, PRE, PRE[1:]):
        assert secret not in logged
