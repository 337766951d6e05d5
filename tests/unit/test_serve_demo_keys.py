"""`selfcare serve` says at start-up which demo keys are in use, naming each variable left unset."""
from __future__ import annotations

import logging
import socket

import pytest

from selfcare.config import ConfigError, Settings
from selfcare.serve import serve_forever

KEYS = ("SELFCARE_SIGNIN_KEY", "SELFCARE_WEB_SECRET", "SELFCARE_CARD_PIN_KEY")


def start_up_warnings(core, caplog) -> list[str]:
    """Start `serve_forever` on an HTTP port held here: it stops at its port check, after the
    start-up warnings and before anything forks or listens."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        settings = Settings(agi=("127.0.0.1", 0), http=held.getsockname(), twilio_auth_token=None,
                            twilio_public_url=None, kannel_secret=None, kannel_allow=())
        with caplog.at_level(logging.WARNING, logger="selfcare.serve"), pytest.raises(ConfigError):
            serve_forever(core, settings, processes=1)
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "selfcare.serve"]


def test_serve_warns_for_each_key_left_to_its_demo_value(core, caplog, monkeypatch):
    for name in KEYS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SELFCARE_CARD_PIN_KEY", "an operator's own key")
    assert start_up_warnings(core, caplog) == [
        "SELFCARE_SIGNIN_KEY is not set: the built-in demo key is in use; set a secret of your own before "
        "serving subscribers (docs/operations.md)",
        "SELFCARE_WEB_SECRET is not set: the built-in demo key is in use; set a secret of your own before "
        "serving subscribers (docs/operations.md)",
    ]


def test_serve_warns_of_nothing_when_every_key_is_set(core, caplog, monkeypatch):
    for name in KEYS:
        monkeypatch.setenv(name, f"secret for {name}")
    assert start_up_warnings(core, caplog) == []
