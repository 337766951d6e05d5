import copy
import tomllib
from decimal import Decimal

import pytest

from billing.errors import InvalidTariffData, UnknownTariff
from billing.tariffs import DEFAULT_PATH, load_tariffs, parse_tariff_book


@pytest.fixture
def raw():
    with open(DEFAULT_PATH, "rb") as fh:
        return tomllib.load(fh)


# seed 000: 30-second interval; a fraction below 0.5 rounds down, 0.5 or above rounds up
@pytest.mark.parametrize("seconds, intervals", [
    (0, 0), (14, 0), (15, 1), (44, 1), (45, 2), (59, 2), (60, 2), (61, 2), (75, 3),
])
def test_standard_calls_are_rated_in_30_second_intervals_rounded_to_nearest(seconds, intervals):
    rate = load_tariffs().get("klass").calls["standard"]
    assert rate.interval_seconds == 30
    assert rate.intervals(seconds) == intervals
    assert rate.price(seconds) == rate.price_per_interval * intervals


@pytest.mark.parametrize("seconds, intervals", [(0, 0), (1, 1), (60, 1), (61, 2)])
def test_short_number_and_roaming_calls_are_rated_apart_per_started_minute(seconds, intervals):
    book = load_tariffs()
    for kind in ("short_number", "roaming"):
        assert book.get("klass").calls[kind].intervals(seconds) == intervals


def test_the_seeds_sms_fees_are_data(raw):
    book = parse_tariff_book(raw)
    assert book.info_sms_fee("2112") == Decimal("0.02")
    assert book.info_sms_fee("650") == Decimal("0.0236")
    assert book.info_sms_fee("1005") == book.info_sms_fee("1003") == Decimal("0.02")


def test_the_operators_later_fee_and_interval_need_no_code(raw):
    later = copy.deepcopy(raw)
    later["info_sms_fees"]["2112"] = "0.10"
    later["tariffs"]["klass"]["calls"]["standard"]["interval_seconds"] = 60
    book = parse_tariff_book(later)
    assert book.info_sms_fee("2112") == Decimal("0.10")
    assert book.get("klass").calls["standard"].intervals(89) == 1
    assert book.get("klass").calls["standard"].intervals(90) == 2


@pytest.mark.parametrize("mutate, named", [
    (lambda r: r["tariffs"]["klass"]["calls"]["standard"].update(interval_seconds=0), "tariffs.klass.calls.standard.interval_seconds"),
    (lambda r: r["tariffs"]["klass"]["calls"]["standard"].update(price_per_interval="-1"), "price_per_interval"),
    (lambda r: r["tariffs"]["klass"]["title"].pop("ru"), "tariffs.klass.title.ru"),
    (lambda r: r["tariffs"]["klass"].update(plan="gold"), "tariffs.klass.plan"),
    (lambda r: r["info_sms_fees"].pop("650"), "info_sms_fees.650"),
    (lambda r: r["tariffs"]["super"]["calls"].pop("roaming"), "tariffs.super.calls.roaming"),
])
def test_bad_tariff_data_stops_loading_naming_the_entry(raw, mutate, named):
    bad = copy.deepcopy(raw)
    mutate(bad)
    with pytest.raises(InvalidTariffData, match=named.replace(".", r"\.")):
        parse_tariff_book(bad)


def test_unknown_tariff_names_the_known_ones():
    with pytest.raises(UnknownTariff, match="klass"):
        load_tariffs().get("gold")


def test_top_up_validity_takes_the_highest_tier_reached():
    book = load_tariffs()
    assert [book.validity_days(Decimal(a)) for a in ("0.50", "1", "4.99", "5", "10", "100")] == [7, 30, 30, 60, 90, 90]


def test_the_expiry_reminder_figures_are_data(raw):
    book = parse_tariff_book(raw)
    assert (book.expiry_reminder_days, book.closure_reminder_days, book.reminder_hour) == (3, 7, 10)


@pytest.mark.parametrize("mutate, named", [
    (lambda r: r["validity"].pop("expiry_reminder_days"), "validity.expiry_reminder_days"),
    (lambda r: r["validity"].update(expiry_reminder_days=7), "validity.expiry_reminder_days: 7 must be less than the shortest tier"),
    (lambda r: r["validity"].update(closure_reminder_days=180), "validity.closure_reminder_days: 180 must be less than"),
    (lambda r: r["validity"].update(closure_reminder_days=0), "validity.closure_reminder_days"),
    (lambda r: r["validity"].update(reminder_hour=24), "validity.reminder_hour"),
    (lambda r: r["validity"].pop("reminder_hour"), "validity.reminder_hour"),
])
def test_bad_expiry_reminder_data_stops_loading_naming_the_entry(raw, mutate, named):
    bad = copy.deepcopy(raw)
    mutate(bad)
    with pytest.raises(InvalidTariffData, match=named.replace(".", r"\.")):
        parse_tariff_book(bad)
