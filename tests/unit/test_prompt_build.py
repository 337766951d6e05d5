"""The TTS build writes 8 kHz mono prompts in Asterisk's layout and renders only what changed."""
from __future__ import annotations

import shutil
import wave

import pytest

from prompts import build as prompt_build
from prompts.catalogue import load

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="needs the apt packages espeak-ng and sox")

SMALL = '''
"num/7" = { az = "yeddi", en = "seven", ru = "семь" }
["menu-language"]
multilingual = true
az = "Azərbaycan dili üçün 1 düyməsini sıxın."
en = "For English, press 2."
ru = "Для русского языка нажмите 3."
'''


@pytest.fixture
def small_catalogue(tmp_path):
    path = tmp_path / "catalogue.toml"
    path.write_text(SMALL, encoding="utf-8")
    return path


def test_every_prompt_is_written_per_language_as_8khz_mono_wav_and_ulaw(tmp_path, small_catalogue):
    sounds = tmp_path / "sounds"
    report = prompt_build.build(load(small_catalogue), sounds)
    assert sorted(report.rendered) == ["az/menu-language", "az/num/7", "en/menu-language",
                                       "en/num/7", "ru/menu-language", "ru/num/7"]
    for lang in ("az", "en", "ru"):
        with wave.open(str(sounds / lang / "num" / "7.wav")) as audio:
            assert (audio.getframerate(), audio.getnchannels(), audio.getsampwidth()) == (8000, 1, 2)
            frames = audio.getnframes()
        # raw mu-law: one byte per 8 kHz sample, same length as the wav
        assert (sounds / lang / "num" / "7.ulaw").stat().st_size == frames


def test_multilingual_prompt_is_longer_than_any_one_of_its_sentences(tmp_path, small_catalogue):
    sounds = tmp_path / "sounds"
    prompt_build.build(load(small_catalogue), sounds)
    with wave.open(str(sounds / "ru" / "menu-language.wav")) as audio:
        seconds = audio.getnframes() / audio.getframerate()
    assert seconds > 4  # three sentences in three voices


def test_second_build_renders_nothing_and_changes_no_bytes(tmp_path, small_catalogue):
    sounds = tmp_path / "sounds"
    prompt_build.build(load(small_catalogue), sounds)
    before = (sounds / "az" / "num" / "7.wav").read_bytes()
    report = prompt_build.build(load(small_catalogue), sounds)
    assert report.rendered == [] and len(report.unchanged) == 6
    forced = prompt_build.build(load(small_catalogue), sounds, force=True)
    assert len(forced.rendered) == 6
    assert (sounds / "az" / "num" / "7.wav").read_bytes() == before


def test_changed_text_renders_only_that_prompt(tmp_path, small_catalogue):
    sounds = tmp_path / "sounds"
    prompt_build.build(load(small_catalogue), sounds)
    small_catalogue.write_text(SMALL.replace('en = "seven"', 'en = "Seven."'), encoding="utf-8")
    report = prompt_build.build(load(small_catalogue), sounds)
    assert report.rendered == ["en/num/7"]


def test_only_missing_ignores_changed_text_but_fills_gaps(tmp_path, small_catalogue):
    sounds = tmp_path / "sounds"
    prompt_build.build(load(small_catalogue), sounds)
    small_catalogue.write_text(SMALL.replace('en = "seven"', 'en = "Seven."'), encoding="utf-8")
    (sounds / "ru" / "num" / "7.ulaw").unlink()
    report = prompt_build.build(load(small_catalogue), sounds, only_missing=True)
    assert report.rendered == ["ru/num/7"]


def test_prompt_removed_from_the_catalogue_loses_its_audio(tmp_path, small_catalogue):
    sounds = tmp_path / "sounds"
    prompt_build.build(load(small_catalogue), sounds)
    small_catalogue.write_text(SMALL.split('["menu-language"]')[0], encoding="utf-8")
    report = prompt_build.build(load(small_catalogue), sounds)
    assert sorted(report.removed) == ["az/menu-language", "en/menu-language", "ru/menu-language"]
    assert not (sounds / "en" / "menu-language.wav").exists()


def test_gtts_failure_mid_build_falls_back_to_espeak(tmp_path, small_catalogue, monkeypatch):
    def unreachable(text, lang, target):
        raise OSError("network is unreachable")
    monkeypatch.setattr(prompt_build, "gtts_reachable", lambda: True)
    monkeypatch.setattr(prompt_build, "_gtts", unreachable)
    sounds = tmp_path / "sounds"
    report = prompt_build.build(load(small_catalogue), sounds, engine="gtts")
    # az has no gTTS voice and was espeak from the start; en/ru fell back
    assert sorted(report.fell_back) == ["az/menu-language", "en/menu-language", "en/num/7",
                                        "ru/menu-language", "ru/num/7"]
    assert prompt_build.build(load(small_catalogue), sounds).rendered == []


def test_gtts_is_never_asked_for_azerbaijani():
    assert prompt_build.engine_for("az", "gtts", gtts_ok=True) == "espeak"
    assert prompt_build.engine_for("ru", "gtts", gtts_ok=True) == "gtts"
    assert prompt_build.engine_for("ru", "auto", gtts_ok=False) == "espeak"
    assert prompt_build.engine_for("ru", "espeak", gtts_ok=True) == "espeak"


def test_unknown_engine_is_refused(tmp_path, small_catalogue):
    with pytest.raises(prompt_build.BuildError, match="unknown engine"):
        prompt_build.build(load(small_catalogue), tmp_path, engine="festival")
