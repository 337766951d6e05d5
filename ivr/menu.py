"""IVR menus as data, a state machine with no I/O, and the one loop that runs a menu on a Channel.

A menu says, out loud, everything that happens in it: the prompt for each attempt (the last one is
reused), the options keyed by DTMF digit, `tries = 3`, the first-digit timeout in ms, the prompt
played after an invalid digit and after silence, and the key returned when tries run out. The
controller (ivr.flows) maps every key, `EXHAUSTED` included, to the next step.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable, Mapping

from .channel import DTMF_DIGITS, Channel

log = logging.getLogger(__name__)

EXHAUSTED = "exhausted"


class InvalidMenu(ValueError):
    """A menu definition that must not reach a caller; the message names the menu and the entry."""


@dataclass(frozen=True)
class Menu:
    name: str
    prompts: tuple[str, ...]  # one per attempt; the last is reused for later attempts
    options: Mapping[str, str]  # DTMF digit -> key returned to the controller
    tries: int = 3
    first_digit_timeout_ms: int = 5000
    invalid_prompt: str = "invalid-choice"
    no_input_prompt: str = "no-input"
    exhausted_key: str = EXHAUSTED

    def __post_init__(self) -> None:
        check_structure(self)

    def prompts_for_attempt(self, attempt: int) -> tuple[str, ...]:
        """Attempt 0 hears prompts[0], attempt 1 prompts[1], ... and the last prompt after that."""
        return (self.prompts[min(attempt, len(self.prompts) - 1)],)

    def prompt_ids(self) -> set[str]:
        return {*self.prompts, self.invalid_prompt, self.no_input_prompt}


def check_structure(menu: Menu) -> None:
    where = f"menu {menu.name!r}"
    if not menu.prompts:
        raise InvalidMenu(f"{where}: has no prompt")
    if not menu.options:
        raise InvalidMenu(f"{where}: has no option")
    for digit, key in menu.options.items():
        if len(digit) != 1 or digit not in DTMF_DIGITS:
            raise InvalidMenu(f"{where}: option {digit!r} is not one DTMF digit")
        if not key:
            raise InvalidMenu(f"{where}: option {digit!r} has no key")
        if key == menu.exhausted_key:
            raise InvalidMenu(f"{where}: option {digit!r} uses the reserved key {key!r}")
    if not 1 <= menu.tries <= 10:
        raise InvalidMenu(f"{where}: tries={menu.tries} (must be 1..10)")
    if not 500 <= menu.first_digit_timeout_ms <= 60_000:
        raise InvalidMenu(f"{where}: first_digit_timeout_ms={menu.first_digit_timeout_ms} (500..60000)")


def check_prompts(menus: Iterable[Menu], known_prompt_ids: set[str]) -> None:
    """Every prompt a menu can play must exist in the catalogue; checked at start-up, not mid-call."""
    for menu in menus:
        for prompt_id in sorted(menu.prompt_ids()):
            if prompt_id not in known_prompt_ids:
                raise InvalidMenu(f"menu {menu.name!r}: prompt {prompt_id!r} is not in the prompt catalogue")


class Kind(Enum):
    MATCHED = "matched"
    INVALID = "invalid"
    TIMEOUT = "timeout"
    EXHAUSTED = "exhausted"


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    key: str | None = None  # set for MATCHED and EXHAUSTED
    error_prompt: str | None = None  # what to play before the next attempt (or before giving up)


@dataclass
class MenuState:
    """Digit (or None for a timeout) in, Outcome out. Counts attempts down; does no I/O."""

    menu: Menu
    attempt: int = 0
    history: list[Kind] = field(default_factory=list)

    def prompts(self) -> tuple[str, ...]:
        return self.menu.prompts_for_attempt(self.attempt)

    def feed(self, digit: str | None) -> Outcome:
        if digit is not None and digit in self.menu.options:
            self.history.append(Kind.MATCHED)
            return Outcome(Kind.MATCHED, key=self.menu.options[digit])
        failure, prompt = (
            (Kind.TIMEOUT, self.menu.no_input_prompt) if digit is None else (Kind.INVALID, self.menu.invalid_prompt)
        )
        self.history.append(failure)
        self.attempt += 1
        if self.attempt >= self.menu.tries:
            return Outcome(Kind.EXHAUSTED, key=self.menu.exhausted_key, error_prompt=prompt)
        return Outcome(failure, error_prompt=prompt)


def run_menu(channel: Channel, menu: Menu, *, caller_label: str = "") -> str:
    """Play and read until the menu yields a key. A hangup raises out of here, never re-prompts."""
    state = MenuState(menu)
    while True:
        digit = channel.read_digit(state.prompts(), menu.first_digit_timeout_ms)
        outcome = state.feed(digit)
        log.info("menu %s %s: %s %s", menu.name, caller_label, outcome.kind.value, outcome.key or digit or "")
        if outcome.kind is Kind.MATCHED:
            return outcome.key
        if outcome.kind in (Kind.INVALID, Kind.TIMEOUT):
            channel.play([outcome.error_prompt])
            continue
        if outcome.kind is Kind.EXHAUSTED:
            channel.play([outcome.error_prompt])
            return outcome.key
        raise AssertionError(f"unhandled menu outcome {outcome!r}")
