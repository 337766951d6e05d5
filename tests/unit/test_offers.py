"""The pack catalogue and credit rules load from data and a bad entry is named at start-up."""
import tomllib
from decimal import Decimal as D

import pytest

from billing.errors import InvalidTariffData
from billing.offers import DEFAULT_PATH, load_offers, parse_offers
from billing.usage import usage_command
from tests.unit.packs_credit_scenarios import PRE, open_prepaid


def raw():
    with open(DEFAULT_PATH, "rb") as fh:
        return tomllib.load(fh)


def test_the_shipped_offers_hold_the_seeds_figures():
    offers = load_offers()
    assert [(o.code, o.amount, o.fee) for o in offers.credit.nar] == [
        ("05", D("0.5"), D("0.10")), ("01", D("1"), D("0.20")), ("02", D("2"), D("0.40")), ("03", D("3"), D("0.60"))]
    assert (offers.credit.sos_amount, offers.credit.sos_fee, offers.credit.sos_max_outstanding) == (D(1), D("0.40"), D(2))
    assert (offers.credit.request_fee, offers.credit.ussd_max, offers.credit.nar_maximum) == (D("0.08"), D(3), D(10))
    assert (offers.packs.validity_days, offers.packs.renewal_window_days, offers.packs.leftover_hours) == (30, 90, 24)
    assert offers.packs.by_code("50gb").throttle_kbps == 128


@pytest.mark.parametrize("breaks, named", [
    (lambda r: r["packs"]["catalogue"][0].pop("price"), "packs.catalogue[0].price"),
    (lambda r: r["packs"]["catalogue"][1]["title"].pop("ru"), "packs.catalogue[1].title.ru"),
    (lambda r: r["packs"]["catalogue"][1].update(number=1), "duplicate number"),
    (lambda r: r["credit"].update(request_fee="-1"), "credit.request_fee"),
    (lambda r: r["credit"].update(friend_confirm_minutes=0), "credit.friend_confirm_minutes"),
    (lambda r: r["credit"]["limits"].pop(0), "topped_up = 0"),
])
def test_a_bad_offers_file_stops_start_up_naming_the_entry(breaks, named):
    data = raw()
    breaks(data)
    with pytest.raises(InvalidTariffData, match=named.replace("[", r"\[").replace("]", r"\]")):
        parse_offers(data)


def test_the_usage_feed_command_says_how_usage_was_rated(core):
    open_prepaid(core, balance="1.00", tariff="super")
    line = usage_command(core, PRE, "2.5", key="feed-1")
    assert line == "2.5 MB: 0 MB from packs, 0 MB throttled, 2.5 MB charged 0.2000 AZN"
    assert usage_command(core, PRE, "2.5", key="feed-1").endswith("(already recorded)")
