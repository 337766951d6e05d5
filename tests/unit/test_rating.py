"""Rating calls from tariff data: destination classes, the 30-s rule of seed 000, short numbers and
roaming rated apart, the longest call a balance pays for, and the start-up checks."""
from __future__ import annotations

import copy
import tomllib
from decimal import Decimal

import pytest

from billing.errors import InvalidTariffData
from billing.rating import (INTERNATIONAL, OFF_NET, ON_NET, SHORT, InvalidDestination, classify,
                            longest_paid_seconds, rate_call)
from billing.tariffs import DEFAULT_PATH, load_tariffs, parse_tariff_book

BOOK = load_tariffs()
KLASS = BOOK.get("klass")
D = Decimal


def raw_book() -> dict:
    return tomllib.loads(DEFAULT_PATH.read_text(encoding="utf-8"))


@pytest.mark.parametrize("dialled, number, kind, rate_class", [
    ("+994501234567", "+994501234567", ON_NET, "standard"),
    ("0501234567", "+994501234567", ON_NET, "standard"),
    ("501234567", "+994501234567", ON_NET, "standard"),
    ("994101234567", "+994101234567", ON_NET, "standard"),
    ("+994551234567", "+994551234567", OFF_NET, "off_net"),
    ("0124930000", "+994124930000", OFF_NET, "off_net"),
    ("+74951234567", "+74951234567", INTERNATIONAL, "international_near"),
    ("0090212555000", "+90212555000", INTERNATIONAL, "international_near"),
    ("+995322000000", "+995322000000", INTERNATIONAL, "international_near"),
    ("+442071234567", "+442071234567", INTERNATIONAL, "international"),
    ("2112", "2112", SHORT, "free"),
    ("650", "650", SHORT, "free"),
    ("112", "112", SHORT, "free"),
    ("1654", "1654", SHORT, "free"),
    ("7777", "7777", SHORT, "short_number"),
])
def test_every_dialled_number_falls_in_its_destination_class(dialled, number, kind, rate_class):
    destination = classify(BOOK.destinations, dialled)
    assert (destination.number, destination.kind, destination.rate_class) == (number, kind, rate_class)


@pytest.mark.parametrize("dialled", ["", "abc", "+99", "1", "+994-50-12x", "0" * 20])
def test_a_number_that_cannot_be_called_is_refused(dialled):
    with pytest.raises(InvalidDestination):
        classify(BOOK.destinations, dialled)


# docs/rules.md: seed 000's 30-s interval, fractions below 0.5 down, 0.5 and more up.
@pytest.mark.parametrize("seconds, intervals", [(0, 0), (14, 0), (15, 1), (44, 1), (45, 2), (59, 2),
                                                (60, 2), (61, 2), (75, 3)])
def test_standard_calls_follow_the_30_second_rounding_table(seconds, intervals):
    rated = rate_call(BOOK.destinations, KLASS, False, "+994501234567")
    assert rated.rate.interval_seconds == 30
    assert rated.rate.intervals(seconds) == intervals
    assert rated.price(seconds) == D("0.04") * intervals


@pytest.mark.parametrize("dialled, seconds, price", [
    ("+994551234567", 44, "0.08"),  # off-net: the 30-s rule at its own price
    ("+442071234567", 45, "1.20"),  # international, 2 intervals of 0.60
    ("+74951234567", 15, "0.40"),   # the near zone by prefix
])
def test_off_net_and_international_use_the_30_second_rule_at_their_own_price(dialled, seconds, price):
    assert rate_call(BOOK.destinations, KLASS, False, dialled).price(seconds) == D(price)


def test_short_numbers_are_rated_apart_per_started_minute_and_self_care_is_free():
    other = rate_call(BOOK.destinations, KLASS, False, "7777")
    assert (other.rate_class, other.price(1), other.price(60), other.price(61)) == (
        "short_number", D("0.05"), D("0.05"), D("0.10"))
    balance_line = rate_call(BOOK.destinations, KLASS, False, "2112")
    assert balance_line.free and balance_line.price(600) == 0


def test_roaming_is_rated_apart_without_the_30_second_rule_but_self_care_stays_free():
    rated = rate_call(BOOK.destinations, KLASS, True, "+994501234567")
    assert rated.rate_class == "roaming"
    assert [rated.price(s) for s in (1, 14, 60, 61)] == [D("1.20"), D("1.20"), D("1.20"), D("2.40")]
    assert rate_call(BOOK.destinations, KLASS, True, "+442071234567").rate_class == "roaming"
    assert rate_call(BOOK.destinations, KLASS, True, "7777").rate_class == "roaming"
    assert rate_call(BOOK.destinations, KLASS, True, "2112").free


@pytest.mark.parametrize("balance, seconds", [("0.03", 0), ("0.04", 44), ("0.07", 44), ("0.08", 74),
                                              ("1.00", 25 * 30 + 14)])
def test_the_longest_call_a_balance_pays_for_on_the_nearest_rule(balance, seconds):
    rate = KLASS.calls["standard"]
    assert longest_paid_seconds(rate, D(balance)) == seconds
    if seconds:
        assert rate.price(seconds) <= D(balance) < rate.price(seconds + 1)


def test_the_longest_call_on_a_per_minute_rate_and_on_a_free_one():
    assert longest_paid_seconds(KLASS.calls["roaming"], D("2.50")) == 120
    assert longest_paid_seconds(KLASS.calls["free"], D("0")) is None


def test_a_sixty_second_interval_is_data_only():
    raw = raw_book()
    raw["tariffs"]["klass"]["calls"]["standard"]["interval_seconds"] = 60
    book = parse_tariff_book(raw)
    rated = rate_call(book.destinations, book.get("klass"), False, "0501234567")
    assert [rated.rate.intervals(s) for s in (29, 30, 89, 90)] == [0, 1, 1, 2]


@pytest.mark.parametrize("change, named", [
    (lambda r: r["tariffs"]["super"]["calls"].pop("off_net"), "tariffs.super.calls.off_net"),
    (lambda r: r["destinations"]["short_numbers"].update({"9": "free"}), "short_numbers.9"),
    (lambda r: r["destinations"]["international_prefixes"].update({"99": "international"}), "overlaps"),
    (lambda r: r["destinations"]["on_net_prefixes"].append("7701"), "on_net_prefixes"),
    (lambda r: r["destinations"].update({"on_net_class": "On Net"}), "on_net_class"),
    (lambda r: r["destinations"].update({"surprise": 1}), "surprise"),
    (lambda r: r.pop("destinations"), "destinations"),
    (lambda r: r["call_control"].update({"warning_before_seconds": -1}), "warning_before_seconds"),
])
def test_bad_destination_data_stops_start_up_naming_the_entry(change, named):
    raw = copy.deepcopy(raw_book())
    change(raw)
    with pytest.raises(InvalidTariffData, match=named):
        parse_tariff_book(raw)
