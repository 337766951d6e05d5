"""The say grammar speaks amounts and dates as a native speaker would, from catalogue prompts only.

The tables are written by hand (the words a caller should hear), never generated from the code.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.say import say_amount, say_date, say_number, say_words, words
from prompts import catalogue

RU_AMOUNTS = [
    ("0", "ноль манатов"),
    ("0.00", "ноль манатов"),
    ("0.0049", "ноль манатов"),
    ("0.005", "один гяпик"),
    ("0.0236", "два гяпика"),
    ("0.01", "один гяпик"),
    ("0.02", "два гяпика"),
    ("0.05", "пять гяпиков"),
    ("0.11", "одиннадцать гяпиков"),
    ("0.21", "двадцать один гяпик"),
    ("0.50", "пятьдесят гяпиков"),
    ("0.99", "девяносто девять гяпиков"),
    ("1", "один манат"),
    ("1.01", "один манат один гяпик"),
    ("2.00", "два маната"),
    ("3.03", "три маната три гяпика"),
    ("4", "четыре маната"),
    ("5", "пять манатов"),
    ("5.21", "пять манатов двадцать один гяпик"),
    ("10", "десять манатов"),
    ("11", "одиннадцать манатов"),
    ("12.50", "двенадцать манатов пятьдесят гяпиков"),
    ("12.48", "двенадцать манатов сорок восемь гяпиков"),
    ("14", "четырнадцать манатов"),
    ("15.75", "пятнадцать манатов семьдесят пять гяпиков"),
    ("20", "двадцать манатов"),
    ("21", "двадцать один манат"),
    ("22.22", "двадцать два маната двадцать два гяпика"),
    ("25.30", "двадцать пять манатов тридцать гяпиков"),
    ("40", "сорок манатов"),
    ("99.99", "девяносто девять манатов девяносто девять гяпиков"),
    ("100", "сто манатов"),
    ("101", "сто один манат"),
    ("111", "сто одиннадцать манатов"),
    ("112", "сто двенадцать манатов"),
    ("200", "двести манатов"),
    ("342.04", "триста сорок два маната четыре гяпика"),
    ("999", "девятьсот девяносто девять манатов"),
    ("1000", "одна тысяча манатов"),
    ("1001", "одна тысяча один манат"),
    ("1234.50", "одна тысяча двести тридцать четыре маната пятьдесят гяпиков"),
    ("2000", "две тысячи манатов"),
    ("2002.02", "две тысячи два маната два гяпика"),
    ("5000", "пять тысяч манатов"),
    ("11000", "одиннадцать тысяч манатов"),
    ("12345.67", "двенадцать тысяч триста сорок пять манатов шестьдесят семь гяпиков"),
    ("21000", "двадцать одна тысяча манатов"),
    ("22000", "двадцать две тысячи манатов"),
    ("100000", "сто тысяч манатов"),
    ("101000", "сто одна тысяча манатов"),
    ("999999.99", "девятьсот девяносто девять тысяч девятьсот девяносто девять манатов "
                  "девяносто девять гяпиков"),
    ("999999.995", "один миллион манатов"),
    ("1000000.00", "один миллион манатов"),
]

AZ_AMOUNTS = [
    ("0", "sıfır manat"),
    ("0.00", "sıfır manat"),
    ("0.0049", "sıfır manat"),
    ("0.005", "bir qəpik"),
    ("0.0236", "iki qəpik"),
    ("0.01", "bir qəpik"),
    ("0.02", "iki qəpik"),
    ("0.05", "beş qəpik"),
    ("0.11", "on bir qəpik"),
    ("0.21", "iyirmi bir qəpik"),
    ("0.50", "əlli qəpik"),
    ("0.99", "doxsan doqquz qəpik"),
    ("1", "bir manat"),
    ("1.01", "bir manat bir qəpik"),
    ("2.00", "iki manat"),
    ("3.03", "üç manat üç qəpik"),
    ("4", "dörd manat"),
    ("5", "beş manat"),
    ("5.21", "beş manat iyirmi bir qəpik"),
    ("10", "on manat"),
    ("11", "on bir manat"),
    ("12.50", "on iki manat əlli qəpik"),
    ("12.48", "on iki manat qırx səkkiz qəpik"),
    ("14", "on dörd manat"),
    ("15.75", "on beş manat yetmiş beş qəpik"),
    ("20", "iyirmi manat"),
    ("21", "iyirmi bir manat"),
    ("22.22", "iyirmi iki manat iyirmi iki qəpik"),
    ("25.30", "iyirmi beş manat otuz qəpik"),
    ("40", "qırx manat"),
    ("99.99", "doxsan doqquz manat doxsan doqquz qəpik"),
    ("100", "yüz manat"),
    ("101", "yüz bir manat"),
    ("111", "yüz on bir manat"),
    ("112", "yüz on iki manat"),
    ("200", "iki yüz manat"),
    ("342.04", "üç yüz qırx iki manat dörd qəpik"),
    ("999", "doqquz yüz doxsan doqquz manat"),
    ("1000", "min manat"),
    ("1001", "min bir manat"),
    ("1234.50", "min iki yüz otuz dörd manat əlli qəpik"),
    ("2000", "iki min manat"),
    ("2002.02", "iki min iki manat iki qəpik"),
    ("5000", "beş min manat"),
    ("11000", "on bir min manat"),
    ("12345.67", "on iki min üç yüz qırx beş manat altmış yeddi qəpik"),
    ("21000", "iyirmi bir min manat"),
    ("22000", "iyirmi iki min manat"),
    ("100000", "yüz min manat"),
    ("101000", "yüz bir min manat"),
    ("999999.99", "doqquz yüz doxsan doqquz min doqquz yüz doxsan doqquz manat "
                  "doxsan doqquz qəpik"),
    ("999999.995", "bir milyon manat"),
    ("1000000.00", "bir milyon manat"),
]

EN_AMOUNTS = [
    ("0", "zero manats"),
    ("0.00", "zero manats"),
    ("0.0049", "zero manats"),
    ("0.005", "one qepik"),
    ("0.0236", "two qepiks"),
    ("0.01", "one qepik"),
    ("0.02", "two qepiks"),
    ("0.05", "five qepiks"),
    ("0.11", "eleven qepiks"),
    ("0.21", "twenty one qepiks"),
    ("0.50", "fifty qepiks"),
    ("0.99", "ninety nine qepiks"),
    ("1", "one manat"),
    ("1.01", "one manat and one qepik"),
    ("2.00", "two manats"),
    ("3.03", "three manats and three qepiks"),
    ("4", "four manats"),
    ("5", "five manats"),
    ("5.21", "five manats and twenty one qepiks"),
    ("10", "ten manats"),
    ("11", "eleven manats"),
    ("12.50", "twelve manats and fifty qepiks"),
    ("12.48", "twelve manats and forty eight qepiks"),
    ("14", "fourteen manats"),
    ("15.75", "fifteen manats and seventy five qepiks"),
    ("20", "twenty manats"),
    ("21", "twenty one manats"),
    ("22.22", "twenty two manats and twenty two qepiks"),
    ("25.30", "twenty five manats and thirty qepiks"),
    ("40", "forty manats"),
    ("99.99", "ninety nine manats and ninety nine qepiks"),
    ("100", "one hundred manats"),
    ("101", "one hundred one manats"),
    ("111", "one hundred eleven manats"),
    ("112", "one hundred twelve manats"),
    ("200", "two hundred manats"),
    ("342.04", "three hundred forty two manats and four qepiks"),
    ("999", "nine hundred ninety nine manats"),
    ("1000", "one thousand manats"),
    ("1001", "one thousand one manats"),
    ("1234.50", "one thousand two hundred thirty four manats and fifty qepiks"),
    ("2000", "two thousand manats"),
    ("2002.02", "two thousand two manats and two qepiks"),
    ("5000", "five thousand manats"),
    ("11000", "eleven thousand manats"),
    ("12345.67", "twelve thousand three hundred forty five manats and sixty seven qepiks"),
    ("21000", "twenty one thousand manats"),
    ("22000", "twenty two thousand manats"),
    ("100000", "one hundred thousand manats"),
    ("101000", "one hundred one thousand manats"),
    ("999999.99", "nine hundred ninety nine thousand nine hundred ninety nine manats "
                  "and ninety nine qepiks"),
    ("999999.995", "one million manats"),
    ("1000000.00", "one million manats"),
]

RU_DATES = [
    ("2026-12-15", "пятнадцатое декабря две тысячи двадцать шестого года"),
    ("2026-01-01", "первое января две тысячи двадцать шестого года"),
    ("2025-02-02", "второе февраля две тысячи двадцать пятого года"),
    ("2024-03-03", "третье марта две тысячи двадцать четвёртого года"),
    ("2000-06-30", "тридцатое июня двухтысячного года"),
    ("2001-07-04", "четвёртое июля две тысячи первого года"),
    ("2010-08-21", "двадцать первое августа две тысячи десятого года"),
    ("2011-09-22", "двадцать второе сентября две тысячи одиннадцатого года"),
    ("2019-10-12", "двенадцатое октября две тысячи девятнадцатого года"),
    ("2020-11-11", "одиннадцатое ноября две тысячи двадцатого года"),
    ("2031-05-31", "тридцать первое мая две тысячи тридцать первого года"),
    ("2099-04-20", "двадцатое апреля две тысячи девяносто девятого года"),
    ("2042-03-08", "восьмое марта две тысячи сорок второго года"),
]

AZ_DATES = [
    ("2026-12-15", "on beş dekabr iki min iyirmi altı"),
    ("2026-01-01", "bir yanvar iki min iyirmi altı"),
    ("2025-02-02", "iki fevral iki min iyirmi beş"),
    ("2024-03-03", "üç mart iki min iyirmi dörd"),
    ("2000-06-30", "otuz iyun iki min"),
    ("2001-07-04", "dörd iyul iki min bir"),
    ("2010-08-21", "iyirmi bir avqust iki min on"),
    ("2011-09-22", "iyirmi iki sentyabr iki min on bir"),
    ("2019-10-12", "on iki oktyabr iki min on doqquz"),
    ("2020-11-11", "on bir noyabr iki min iyirmi"),
    ("2031-05-31", "otuz bir may iki min otuz bir"),
    ("2099-04-20", "iyirmi aprel iki min doxsan doqquz"),
    ("2042-03-08", "səkkiz mart iki min qırx iki"),
]

EN_DATES = [
    ("2026-12-15", "the fifteenth of December two thousand twenty six"),
    ("2026-01-01", "the first of January two thousand twenty six"),
    ("2025-02-02", "the second of February two thousand twenty five"),
    ("2024-03-03", "the third of March two thousand twenty four"),
    ("2000-06-30", "the thirtieth of June two thousand"),
    ("2001-07-04", "the fourth of July two thousand one"),
    ("2010-08-21", "the twenty first of August two thousand ten"),
    ("2011-09-22", "the twenty second of September two thousand eleven"),
    ("2019-10-12", "the twelfth of October two thousand nineteen"),
    ("2020-11-11", "the eleventh of November two thousand twenty"),
    ("2031-05-31", "the thirty first of May two thousand thirty one"),
    ("2099-04-20", "the twentieth of April two thousand ninety nine"),
    ("2042-03-08", "the eighth of March two thousand forty two"),
]

AMOUNTS = {"ru": RU_AMOUNTS, "az": AZ_AMOUNTS, "en": EN_AMOUNTS}
DATES = {"ru": RU_DATES, "az": AZ_DATES, "en": EN_DATES}


def _cases(table):
    return [pytest.param(lang, value, expected, id=f"{lang}-{value}")
            for lang, rows in table.items() for value, expected in rows]


def test_each_language_table_has_at_least_sixty_values():
    for lang in ("az", "en", "ru"):
        assert len(AMOUNTS[lang]) + len(DATES[lang]) >= 60, lang


@pytest.mark.parametrize("lang, amount, expected", _cases(AMOUNTS))
def test_amount_is_spoken_as_a_native_speaker_would(lang, amount, expected):
    assert say_words("amount", amount, lang) == expected


@pytest.mark.parametrize("lang, date, expected", _cases(DATES))
def test_date_is_spoken_as_a_native_speaker_would(lang, date, expected):
    assert say_words("date", date, lang) == expected


@pytest.mark.parametrize("lang", ["az", "en", "ru"])
def test_decimal_string_and_int_amounts_say_the_same(lang):
    assert say_amount(Decimal("12.5000"), lang) == say_amount("12.50", lang)
    assert say_amount(7, lang) == say_amount(Decimal("7.00"), lang)


@pytest.mark.parametrize("lang", ["az", "en", "ru"])
def test_date_objects_and_iso_strings_say_the_same(lang):
    assert say_date(dt.date(2026, 12, 15), lang) == say_date("2026-12-15", lang)
    assert say_date(dt.datetime(2026, 12, 15, 23, 0), lang) == say_date("2026-12-15", lang)


def test_date_without_year_stops_after_the_month():
    assert words(say_date("2026-12-15", "ru", with_year=False), "ru") == "пятнадцатое декабря"
    assert words(say_date("2026-12-15", "en", with_year=False), "en") == "the fifteenth of December"


def test_russian_thousands_are_feminine_but_units_are_masculine():
    assert words(say_number(2002, "ru"), "ru") == "две тысячи два"
    assert words(say_number(1001, "ru"), "ru") == "одна тысяча один"


def test_azerbaijani_keeps_bir_before_milyon_but_not_before_min_or_yuz():
    assert words(say_number(1_100_100, "az"), "az") == "bir milyon yüz min yüz"


def test_amount_prompts_are_ids_in_the_asterisk_layout():
    assert say_amount("21.02", "ru") == ["num/20", "num/1", "cur/manat-1", "num/2", "cur/qepik-2"]
    assert say_amount("1000", "ru") == ["num/1-f", "num/thousand-1", "cur/manat-5"]


@pytest.mark.parametrize("bad", ["-0.01", "1000000.01", "1000000.005", "NaN", "Infinity", "abc"])
def test_amount_outside_the_range_is_refused(bad):
    with pytest.raises(ValueError):
        say_amount(bad, "ru")


@pytest.mark.parametrize("bad", ["1999-12-31", "2100-01-01", "15.12.2026", "tomorrow"])
def test_date_outside_the_century_or_malformed_is_refused(bad):
    with pytest.raises(ValueError):
        say_date(bad, "az")


def test_unknown_language_or_kind_is_refused():
    with pytest.raises(ValueError, match="unknown language"):
        say_amount("1", "de")
    with pytest.raises(ValueError, match="cannot say"):
        say_words("time", "12:00", "en")


amounts = st.decimals(min_value=Decimal("0"), max_value=Decimal("1000000"), places=4)


@settings(max_examples=500, deadline=None)
@given(amount=amounts, lang=st.sampled_from(["az", "en", "ru"]))
def test_every_amount_in_range_yields_only_catalogue_ids(amount, lang):
    ids = say_amount(amount, lang)
    book = catalogue.load()
    assert ids and all(prompt_id in book for prompt_id in ids)
    assert ids[-1].startswith("cur/")


@settings(max_examples=300, deadline=None)
@given(amount=amounts, lang=st.sampled_from(["az", "en", "ru"]))
def test_speech_depends_only_on_the_amount_rounded_to_qepik(amount, lang):
    from billing.money import to_qepik
    assert say_amount(amount, lang) == say_amount(to_qepik(amount), lang)


@settings(max_examples=300, deadline=None)
@given(day=st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31)),
       lang=st.sampled_from(["az", "en", "ru"]))
def test_every_date_in_range_yields_only_catalogue_ids(day, lang):
    book = catalogue.load()
    assert all(prompt_id in book for prompt_id in say_date(day, lang))


# --- minutes (the card throttle's "time left") ---------------------------------------------------

MINUTES = {
    "ru": [(1, "одна минута"), (2, "две минуты"), (4, "четыре минуты"), (5, "пять минут"), (11, "одиннадцать минут"),
           (21, "двадцать одна минута"), (22, "двадцать две минуты"), (23, "двадцать три минуты"),
           (60, "шестьдесят минут"), (1001, "одна тысяча одна минута")],
    "en": [(1, "one minute"), (2, "two minutes"), (21, "twenty one minutes"), (60, "sixty minutes")],
    "az": [(1, "bir dəqiqə"), (23, "iyirmi üç dəqiqə"), (60, "altmış dəqiqə")],
}


@pytest.mark.parametrize("lang, minutes, expected", _cases(MINUTES))
def test_minutes_are_spoken_in_the_nominative_as_a_native_speaker_would(lang, minutes, expected):
    from ivr.say import say_minutes

    assert words(say_minutes(minutes, lang), lang) == expected


def test_minutes_are_catalogue_ids_and_out_of_range_is_refused():
    from ivr.say import MAX_MINUTES, say_minutes

    book = catalogue.load()
    for lang in ("az", "en", "ru"):
        assert all(pid in book for n in range(1, MAX_MINUTES + 1, 7) for pid in say_minutes(n, lang))
    assert say_minutes(21, "ru") == ["num/20", "num/1-f", "time/minute-1"]
    for bad in (0, -1, MAX_MINUTES + 1):
        with pytest.raises(ValueError):
            say_minutes(bad, "ru")
