"""One catalogue for every channel: schemas, budgets, one style per language, checked at start-up."""
import shutil
from datetime import date, datetime
from decimal import Decimal

import pytest

import texts
from billing.offers import load_offers
from billing.tariffs import load_tariffs
from texts import catalogue, style
from texts.encoding import is_gsm7, size_of

CATALOGUE = texts.load()
ENTRIES = [(section, key) for section, s in CATALOGUE.sections.items() for key in s.entries]


@pytest.mark.parametrize("language", texts.LANGUAGES)
@pytest.mark.parametrize("section,key", ENTRIES)
def test_every_entry_at_its_worst_case_fill_keeps_its_channels_budget(section, key, language):
    text = CATALOGUE[section].worst_case(key, language)
    if section in ("sms", "notifications"):
        size = size_of(text)
        assert size.parts <= 2 and size.units <= (134 if size.coding == "ucs2" else 306), (key, size)
    elif section == "ussd":
        assert len(text) <= 182, key


def test_sms_parts_are_counted_by_encoding():
    assert size_of("ə" * 134).parts == 2 and size_of("ə" * 135).parts == 3
    assert size_of("a" * 306).parts == 2 and size_of("a" * 307).parts == 3
    assert size_of("€" * 153).units == 306  # extension characters count twice
    assert not is_gsm7(CATALOGUE["sms"].render("use-650", "az")) and is_gsm7(CATALOGUE["sms"].render("use-650", "en"))


def test_one_style_per_language_for_dates_money_and_numbers():
    day = date(2026, 9, 28)
    assert [style.day(day, lang) for lang in texts.LANGUAGES] == [
        "28 sentyabr 2026", "September 28, 2026", "28 сентября 2026"]
    assert style.moment(datetime(2026, 9, 28, 7, 5), "en") == "September 28, 2026 07:05"
    assert style.amount(Decimal("1234.5"), "ru") == "1234.50"
    assert style.signed_amount(Decimal("-0.6"), "az") == "-0.60" and style.signed_amount(Decimal("5"), "az") == "+5.00"
    assert [style.fee(Decimal(v), "en") for v in ("0.0200", "0.0236", "0.1")] == ["0.02", "0.0236", "0.10"]
    assert style.number("+994503334455", "en") == "0503334455"


def test_sms_and_ussd_word_the_same_figures_the_same_way():
    figures = {"balance": Decimal("12.5"), "expires": date(2027, 1, 1), "ends": date(2027, 3, 1)}
    assert CATALOGUE["sms"].render("prepaid-balance", "en", **figures) == (
        "Balance: 12.50 AZN. Balance valid until January 1, 2027. Subscription ends on March 1, 2027.")
    assert CATALOGUE["ussd"].render("dates", "en", **figures) == (
        "Balance 12.50 AZN. Balance valid until January 1, 2027, subscription until March 1, 2027.")
    assert CATALOGUE["sms"].render("grant-made", "az", number="+994503334455") == (
        "0503334455 artıq balans məlumatınızı görə bilər. Ləğv: 650-yə -0503334455 göndərin.")
    assert CATALOGUE["ussd"].render("friend-asked", "ru", friend="+994503334455", minutes=30) == (
        "Запрос отправлен на 0503334455. У друга 30 минут на подтверждение.")


def test_an_entry_shown_inside_another_is_named_not_worded_by_the_channel():
    assert CATALOGUE["sms"].render("line-info", "ru", tariff="Класс", roaming="roaming-on") == (
        "Ваш тариф: Класс. Роуминг: включён.")
    with pytest.raises(ValueError):
        CATALOGUE["sms"].render("line-info", "ru", tariff="Класс", roaming="включён")


def test_rendering_with_other_fields_than_the_entry_declares_fails_loudly():
    with pytest.raises(TypeError, match="sms.grant-made takes"):
        CATALOGUE["sms"].render("grant-made", "en", number="+994503334455", balance=Decimal(1))


def test_the_shipped_titles_fit_the_texts():
    CATALOGUE.check_titles(load_tariffs(), load_offers())


@pytest.fixture
def texts_copy(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    for path in catalogue.DEFAULT_DIR.glob("*.toml"):
        shutil.copy(path, folder)
    return folder


def _replace(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_missing_language_stops_loading_and_names_the_entry(texts_copy):
    _replace(texts_copy / "sms.toml", 'ru = "Карта {serial} использована: {when}."\n', "")
    with pytest.raises(texts.InvalidTexts, match=r"sms.toml \[card-used\] ru: missing"):
        texts.load(texts_copy)


def test_an_overlong_entry_stops_loading_and_names_it(texts_copy):
    _replace(texts_copy / "ussd.toml", 'en = "Your Nar Credit debt: {debt} AZN."',
             'en = "Your Nar Credit debt: {debt} AZN.' + " Thank you for staying with us." * 6 + '"')
    with pytest.raises(texts.InvalidTexts, match=r"ussd.toml \[nar-debt\] en: \d+ characters, more than the 182"):
        texts.load(texts_copy)


def test_an_undeclared_placeholder_stops_loading(texts_copy):
    _replace(texts_copy / "sms.toml", 'en = "For your own balance send a blank SMS to 650. This SMS is free."',
             'en = "For your own balance {balance} send a blank SMS to 650."')
    with pytest.raises(texts.InvalidTexts, match=r"sms.toml \[grant-self\] en: placeholders \['balance'\] differ"):
        texts.load(texts_copy)


def test_an_unknown_kind_stops_loading(texts_copy):
    _replace(texts_copy / "notifications.toml", 'fields = { count = "count" }', 'fields = { count = "colour" }')
    with pytest.raises(texts.InvalidTexts, match="unknown kind 'colour'"):
        texts.load(texts_copy)


def test_a_missing_section_stops_loading(texts_copy):
    (texts_copy / "ussd.toml").unlink()
    with pytest.raises(texts.InvalidTexts, match="missing ussd.toml"):
        texts.load(texts_copy)
