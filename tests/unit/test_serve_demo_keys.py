"""`selfcare serve` says at start-up which demo keys are in use, naming each variable left unset,
in one line and only once its start-up checks have passed (an error that stops it stays the only
line it prints: tests/unit/test_operator_errors.py)."""
from __future__ import annotations

import logging

from selfcare.serve import warn_about_demo_keys

KEYS = ("SELFCARE_SIGNIN_KEY", "SELFCARE_WEB_SECRET", "SELFCARE_CARD_PIN_KEY")


def start_up_warnings(caplog) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="selfcare.serve"):
        warn_about_demo_keys()
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "selfcare.serve"]


def test_serve_warns_in_one_line_naming_each_key_left_to_its_demo_value(caplog, monkeypatch):
    for name in KEYS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SELFCARE_CARD_PIN_KEY", "an operator's own key")
    assert start_up_warnings(caplog) == [
        "SELFCARE_SIGNIN_KEY and SELFCARE_WEB_SECRET are not set: the built-in demo keys are in use; set "
        "secrets of your own before serving subscribers (docs/operations.md)",
    ]
    monkeypatch.setenv("SELFCARE_WEB_SECRET", "an operator's own secret")
    assert start_up_warnings(caplog) == [
        "SELFCARE_SIGNIN_KEY is not set: the built-in demo key is in use; set secrets of your own before "
        "serving subscribers (docs/operations.md)",
    ]


def test_three_keys_left_are_named_as_a_list(caplog, monkeypatch):
    for name in KEYS:
        monkeypatch.delenv(name, raising=False)
    assert start_up_warnings(caplog) == [
        "SELFCARE_SIGNIN_KEY, SELFCARE_WEB_SECRET and SELFCARE_CARD_PIN_KEY are not set: the built-in demo keys "
        "are in use; set secrets of your own before serving subscribers (docs/operations.md)",
    ]


def test_serve_warns_of_nothing_when_every_key_is_set(caplog, monkeypatch):
    for name in KEYS:
        monkeypatch.setenv(name, f"secret for {name}")
    assert start_up_warnings(caplog) == []
