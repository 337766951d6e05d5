"""Reply texts: every template in every language fits 2 SMS parts with worst-case figures."""
import tomllib
from datetime import date

import pytest

from billing.tariffs import LANGUAGES, load_tariffs
from sms.encoding import is_gsm7, size_of
from sms.replies import (
    DEFAULT_PATH,
    TEMPLATES,
    InvalidTexts,
    check_catalogue,
    check_tariff_titles,
    fmt_date,
    fmt_fee,
    load_catalogue,
)

CATALOGUE = load_catalogue()


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("key", sorted(TEMPLATES))
def test_every_template_fits_two_parts_with_worst_case_figures(key, language):
    text = CATALOGUE.worst_case(key, language)
    size = size_of(text)
    assert size.parts <= 2, f"{language}.{key}: {size}"
    assert size.units <= (134 if size.coding == "ucs2" else 306)


def test_azerbaijani_and_russian_need_ucs2_and_english_does_not():
    assert not is_gsm7(CATALOGUE.render("use_650", "az"))
    assert not is_gsm7(CATALOGUE.render("use_650", "ru"))
    assert is_gsm7(CATALOGUE.render("use_650", "en"))


def test_ucs2_limits_are_134_and_gsm7_limits_306():
    assert size_of("ə" * 134).parts == 2 and size_of("ə" * 135).parts == 3
    assert size_of("a" * 306).parts == 2 and size_of("a" * 307).parts == 3
    assert size_of("€" * 153).units == 306  # extension characters count twice


def _raw():
    with open(DEFAULT_PATH, "rb") as fh:
        return tomllib.load(fh)


def test_a_missing_template_stops_loading_and_names_it():
    raw = _raw()
    del raw["ru"]["card_used"]
    with pytest.raises(InvalidTexts, match=r"texts\.ru\.card_used: missing"):
        check_catalogue(raw)


def test_an_overlong_template_stops_loading_and_names_it():
    raw = _raw()
    raw["az"]["use_650"] = "ə" * 135
    with pytest.raises(InvalidTexts, match=r"texts\.az\.use_650: 135 ucs2"):
        check_catalogue(raw)


def test_an_unknown_placeholder_stops_loading():
    raw = _raw()
    raw["en"]["grant_self"] = "hello {balance}"
    with pytest.raises(InvalidTexts, match="unknown placeholder"):
        check_catalogue(raw)


def test_tariff_titles_from_the_tariff_book_fit_the_replies():
    check_tariff_titles(load_tariffs())


def test_dates_are_written_in_each_language():
    day = date(2026, 9, 28)
    assert fmt_date(day, "az") == "28 sentyabr 2026"
    assert fmt_date(day, "en") == "September 28, 2026"
    assert fmt_date(day, "ru") == "28 сентября 2026"


def test_fees_show_as_listed():
    from decimal import Decimal
    assert fmt_fee(Decimal("0.0200")) == "0.02"
    assert fmt_fee(Decimal("0.0236")) == "0.0236"
    assert fmt_fee(Decimal("0.1")) == "0.10"
