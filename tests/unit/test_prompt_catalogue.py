"""The prompt catalogue refuses a bad entry at load, and covers everything the IVR can say."""
from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal

import pytest

from ivr.say import say_amount, say_date
from prompts import catalogue
from prompts.catalogue import CatalogueError
from prompts.check import missing_prompts, unplayable_prompts

FLOW_PROMPTS = [
    "welcome-2112", "welcome-650", "unknown-caller", "use-650", "use-2112", "line-suspended", "line-closed",
    "your-balance-is", "balance-expires-on", "balance-expired-on", "topup-to-reactivate", "subscription-ends-on",
    "your-tariff-is",
    "tariff-klass", "tariff-super", "tariff-biznes", "billed-amount-is", "current-amount-is",
    "advance-payment-is", "menu-main", "menu-language", "language-saved", "notifications-off",
    "notifications-on", "fraud-advice", "invalid-choice", "no-input", "goodbye",
    "service-unavailable",
]


def _write(tmp_path, body: str):
    path = tmp_path / "catalogue.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_every_flow_prompt_the_ivr_uses_is_in_the_catalogue():
    book = catalogue.load()
    assert [pid for pid in FLOW_PROMPTS if pid not in book] == []


def test_text_gives_the_words_in_the_asked_language():
    assert catalogue.text("cur/manat-5", "ru") == "манатов"
    assert catalogue.text("num/thousand-1", "az") == "min"
    assert catalogue.text("goodbye", "en") == "Thank you for calling. Goodbye."


def test_language_menu_says_each_option_in_its_own_language_in_every_folder():
    for lang in ("az", "en", "ru"):
        text = catalogue.text("menu-language", lang)
        assert "Azərbaycan dili üçün 1" in text
        assert "For English, press 2" in text
        assert "Для русского языка нажмите 3" in text


def test_unknown_prompt_or_language_is_refused():
    with pytest.raises(KeyError, match="no-such-prompt"):
        catalogue.text("no-such-prompt", "az")
    with pytest.raises(ValueError, match="unknown language"):
        catalogue.text("goodbye", "de")


def test_missing_translation_is_refused_naming_the_entry(tmp_path):
    path = _write(tmp_path, '"num/1" = { az = "bir", en = "one" }\n')
    with pytest.raises(CatalogueError, match=r"'num/1' has no ru text"):
        catalogue.load(path)


def test_blank_translation_is_refused_naming_the_entry(tmp_path):
    path = _write(tmp_path, '[goodbye]\naz = "Sağ olun."\nen = "  "\nru = "До свидания."\n')
    with pytest.raises(CatalogueError, match=r"'goodbye' has no en text"):
        catalogue.load(path)


def test_id_that_is_not_a_plain_file_name_is_refused(tmp_path):
    path = _write(tmp_path, '"../etc/passwd" = { az = "a", en = "b", ru = "c" }\n')
    with pytest.raises(CatalogueError, match="not a plain ascii file name"):
        catalogue.load(path)


def test_misspelt_field_is_refused(tmp_path):
    path = _write(tmp_path, '[goodbye]\naz = "a"\nen = "b"\nru = "c"\nrus = "d"\n')
    with pytest.raises(CatalogueError, match=r"'goodbye' has unknown fields \['rus'\]"):
        catalogue.load(path)


def test_broken_toml_is_refused_naming_the_file(tmp_path):
    path = _write(tmp_path, '[goodbye\naz = "a"\n')
    with pytest.raises(CatalogueError, match="not valid TOML"):
        catalogue.load(path)


def _sweep_amounts():
    for manat in list(range(0, 1200)) + [1999, 2000, 2001, 5000, 11000, 21000, 22000, 100000,
                                         101000, 121000, 999999, 1000000]:
        for qepik in (0, 1, 2, 5, 11, 21, 22, 99):
            if manat == 1000000 and qepik:
                continue
            yield Decimal(manat) + Decimal(qepik) / 100


def test_every_id_the_say_grammar_emits_over_a_sweep_is_in_the_catalogue():
    book = catalogue.load()
    emitted = set()
    for lang in ("az", "en", "ru"):
        for amount in _sweep_amounts():
            emitted.update(say_amount(amount, lang))
        day = dt.date(2000, 1, 1)
        while day.year < 2100:
            emitted.update(say_date(day, lang))
            day += dt.timedelta(days=1)
    assert sorted(pid for pid in emitted if pid not in book) == []
    # and the sweep really exercised the grammar's corners
    assert {"num/1-f", "num/2-f", "num/thousand-5", "num/million-1", "ordgen/2000",
            "word/and", "word/year", "day/31", "month/12"} <= emitted


def test_committed_sounds_have_every_prompt_in_every_language():
    assert missing_prompts() == []


def test_committed_sounds_are_8khz_16bit_mono():
    assert unplayable_prompts() == []


def test_a_deleted_sound_is_reported_missing(tmp_path):
    from prompts.build import SOUNDS_DIR
    copy = tmp_path / "sounds"
    shutil.copytree(SOUNDS_DIR, copy)
    (copy / "ru" / "num" / "7.wav").unlink()
    (copy / "az" / "goodbye.ulaw").unlink()
    assert missing_prompts(copy) == ["az/goodbye", "ru/num/7"]


def test_a_48khz_sound_is_reported_unplayable(tmp_path):
    import wave
    from prompts.build import SOUNDS_DIR
    copy = tmp_path / "sounds"
    shutil.copytree(SOUNDS_DIR, copy)
    with wave.open(str(copy / "en" / "goodbye.wav"), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(48000)
        audio.writeframes(b"\x00\x00" * 480)
    assert unplayable_prompts(copy) == ["en/goodbye"]
