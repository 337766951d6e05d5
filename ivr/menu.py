"""IVR menus as data, a state machine with no I/O, the turns it asks for, and the one loop that
runs a turn (and a whole menu) on a Channel.

A menu says, out loud, everything that happens in it: the prompt for each attempt (the last one is
reused), the options keyed by DTMF digit, `tries = 3`, the first-digit timeout in ms, the prompt
played after an invalid digit and after silence, and the key returned when tries run out. The
controller (ivr.flows) maps every key, `EXHAUSTED` included, to the next step.

A `DigitEntry` is the same for several digits read in one go (a card PIN, by GET DATA): its digit
counts and timeout are data, and it answers `entered` (with the digits) or `exhausted`.

A `Turn` is what a flow asks of a voice adapter at once: prompts heard whole (`say`), then prompts
a digit may interrupt (`ask`: barge-in, the answer is taken as soon as it is pressed), then what to
wait for (`Wait`: one menu digit, or digits ended by `#`), or nothing and the call ends. The
Asterisk adapter runs a turn with `take_turn` (STREAM FILE with escape digits, WAIT FOR DIGIT,
GET DATA), the Twilio adapter renders it as TwiML (<Play>, <Gather> around the asking prompts).
Which prompts a menu or an entry asks again after an invalid answer or silence is decided here,
once (`Asking.after`), for both: the error prompt and the prompt again, a digit may interrupt
either. For an entry the digit that stops the error prompt is the entry's first digit (Twilio:
both <Play>s inside the <Gather>; Asterisk: `AgiChannel.read_digits`).
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
    digits: str | None = None  # what a DigitEntry read, for MATCHED


@dataclass(frozen=True)
class Wait:
    """What a turn waits for once its prompts are played: `max_digits` (1 for a menu), with
    `timeout_ms` of silence before the first digit (and, for an entry, between digits)."""

    max_digits: int
    timeout_ms: int
    finish_on_key: str = ""  # "#" ends an entry; "" for a menu, where '#' is an answer (an invalid one)


@dataclass(frozen=True)
class Turn:
    """Prompts to play and what to wait for then; `wait=None`: the call ends after the prompts.

    `language` is the language every prompt of the turn plays in; `set_language` says the flow
    changed it with this turn (Asterisk is told, SET VARIABLE CHANNEL(language))."""

    say: tuple[str, ...]  # heard whole
    ask: tuple[str, ...]  # then these: a digit pressed during them is the answer (barge-in)
    wait: Wait | None
    language: str | None = None
    set_language: bool = False

    def __post_init__(self) -> None:
        if self.wait is not None and self.wait.max_digits > 1 and not self.ask:
            # GET DATA plays the last asking prompt while it reads digits: there must be one
            raise ValueError("a turn reading several digits asks with at least one prompt")

    @property
    def prompt_ids(self) -> tuple[str, ...]:
        return (*self.say, *self.ask)


class Script:
    """Collects the prompts of one turn in order. `say` prompts are heard whole, `ask` prompts may
    be interrupted: a prompt to be heard whole after asking ones makes them all heard whole, since
    barge-in can only cover the end of a turn."""

    def __init__(self, language: str | None = None):
        self.language = language
        self.language_set = False
        self._say: list[str] = []
        self._ask: list[str] = []

    def set_language(self, language: str) -> None:
        if self._say or self._ask:
            raise AssertionError("the language changes before a turn's first prompt, never inside it")
        self.language, self.language_set = language, True

    def say(self, prompt_ids) -> None:
        self._say += self._ask
        self._ask = []
        self._say += list(prompt_ids)

    def ask(self, prompt_ids) -> None:
        self._ask += list(prompt_ids)

    def turn(self, wait: Wait | None) -> Turn:
        if wait is None:
            say, ask = (*self._say, *self._ask), ()
        else:
            say, ask = tuple(self._say), tuple(self._ask)
        return Turn(say, ask, wait, self.language, self.language_set)


def take_turn(channel: Channel, turn: Turn) -> str | None:
    """Run a turn on a channel: the digit(s) the caller answered, or None (silence, or no wait)."""
    if turn.set_language:
        channel.set_language(turn.language)
    if turn.say:
        channel.play(turn.say)
    wait = turn.wait
    if wait is None:
        return None
    if wait.max_digits == 1:
        return channel.read_digit(turn.ask, wait.timeout_ms)
    return channel.read_digits(turn.ask, wait.max_digits, wait.timeout_ms)


class Asking:
    """What a menu and a digit entry ask the same way (`prompts()` is each one's own)."""

    def ask(self, script: Script) -> None:
        script.ask(self.prompts())

    def after(self, outcome: Outcome, script: Script) -> None:
        """The prompts after a failure: the error prompt and the next attempt's prompt, both
        interruptible (the caller may answer, or start typing a PIN, during "no input"); when
        tries ran out, the error prompt alone, heard whole."""
        if outcome.kind is Kind.EXHAUSTED:
            script.say([outcome.error_prompt])
        elif outcome.kind in (Kind.INVALID, Kind.TIMEOUT):
            script.ask([outcome.error_prompt])
            self.ask(script)
        else:
            raise AssertionError(f"unhandled outcome {outcome!r}")


@dataclass
class MenuState(Asking):
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

    def wait(self) -> Wait:
        return Wait(max_digits=1, timeout_ms=self.menu.first_digit_timeout_ms)


def log_outcome(what, caller_label: str, outcome: Outcome, given: str | None) -> None:
    """One log line per decision; an entry's digits (maybe a PIN) are counted, never written."""
    if isinstance(what, DigitEntry):
        log.info("entry %s %s: %s (%d digits)", what.name, caller_label, outcome.kind.value, len(given or ""))
    else:
        log.info("menu %s %s: %s %s", what.name, caller_label, outcome.kind.value, outcome.key or given or "")


def run_menu(channel: Channel, menu: Menu, *, caller_label: str = "") -> str:
    """Play and read until the menu yields a key. A hangup raises out of here, never re-prompts."""
    return _run_state(channel, MenuState(menu), menu, caller_label).key


def _run_state(channel: Channel, state, what, caller_label: str) -> Outcome:
    """The synchronous loop of one menu or entry, turn after turn, on a channel."""
    script = Script()
    state.ask(script)
    while True:
        given = take_turn(channel, script.turn(state.wait()))
        outcome = state.feed(given)
        log_outcome(what, caller_label, outcome, given)
        if outcome.kind is Kind.MATCHED:
            return outcome
        script = Script()
        state.after(outcome, script)
        if outcome.kind is Kind.EXHAUSTED:
            take_turn(channel, script.turn(None))
            return outcome


# -- several digits in one go ------------------------------------------------------------------

ENTERED = "entered"


@dataclass(frozen=True)
class DigitEntry:
    """Digits read in one go, ended by `#`, by `max_digits`, or by `digit_timeout_ms` of silence
    (GET DATA uses one timeout for the first digit and between digits). Fewer than `min_digits`, or
    a `*` among them, is invalid. Tries count down as in a menu."""

    name: str
    prompts: tuple[str, ...]  # one per attempt; the last is reused for later attempts
    min_digits: int
    max_digits: int
    digit_timeout_ms: int = 6000
    tries: int = 3
    invalid_prompt: str = "invalid-choice"
    no_input_prompt: str = "no-input"
    entered_key: str = ENTERED
    exhausted_key: str = EXHAUSTED

    def __post_init__(self) -> None:
        check_entry(self)

    def prompts_for_attempt(self, attempt: int) -> tuple[str, ...]:
        return (self.prompts[min(attempt, len(self.prompts) - 1)],)

    def prompt_ids(self) -> set[str]:
        return {*self.prompts, self.invalid_prompt, self.no_input_prompt}


def check_entry(entry: DigitEntry) -> None:
    where = f"digit entry {entry.name!r}"
    if not entry.prompts:
        raise InvalidMenu(f"{where}: has no prompt")
    if not 1 <= entry.min_digits <= entry.max_digits <= 32:
        raise InvalidMenu(f"{where}: min_digits={entry.min_digits}, max_digits={entry.max_digits} "
                          "(must be 1 <= min <= max <= 32)")
    if not 1 <= entry.tries <= 10:
        raise InvalidMenu(f"{where}: tries={entry.tries} (must be 1..10)")
    if not 500 <= entry.digit_timeout_ms <= 60_000:
        raise InvalidMenu(f"{where}: digit_timeout_ms={entry.digit_timeout_ms} (500..60000)")
    if entry.entered_key == entry.exhausted_key:
        raise InvalidMenu(f"{where}: entered and exhausted keys are both {entry.entered_key!r}")


@dataclass
class EntryState(Asking):
    """Digits (or None for silence) in, Outcome out; no I/O, like MenuState."""

    entry: DigitEntry
    attempt: int = 0

    def prompts(self) -> tuple[str, ...]:
        return self.entry.prompts_for_attempt(self.attempt)

    def feed(self, digits: str | None) -> Outcome:
        entry = self.entry
        if digits and digits.isdigit() and entry.min_digits <= len(digits) <= entry.max_digits:
            return Outcome(Kind.MATCHED, key=entry.entered_key, digits=digits)
        failure, prompt = (Kind.TIMEOUT, entry.no_input_prompt) if not digits else (Kind.INVALID, entry.invalid_prompt)
        self.attempt += 1
        if self.attempt >= entry.tries:
            return Outcome(Kind.EXHAUSTED, key=entry.exhausted_key, error_prompt=prompt)
        return Outcome(failure, error_prompt=prompt)

    def wait(self) -> Wait:
        return Wait(max_digits=self.entry.max_digits, timeout_ms=self.entry.digit_timeout_ms, finish_on_key="#")



def run_entry(channel: Channel, entry: DigitEntry, *, caller_label: str = "") -> Outcome:
    """Read until the entry yields digits (MATCHED) or gives up (EXHAUSTED). The digits are never
    logged: they may be a PIN."""
    return _run_state(channel, EntryState(entry), entry, caller_label)
