"""What a call flow can do with a call, and two ways to do it: over AGI, or simulated.

Flows speak only to `Channel`: play prompts (by prompt id), read one digit, set the language the
prompts are played in, hang up. A hangup at any point raises `Hangup` (from ivr.agi_shim) and the
flow never re-prompts after it.
"""
from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

from billing.msisdn import mask

from .agi_shim import AgiSession, Hangup, PlaybackFailed

log = logging.getLogger(__name__)

DTMF_DIGITS = "0123456789*#"
PROMPT_ID = re.compile(r"^[a-z0-9][a-z0-9_\-/]*$")


class Channel(Protocol):
    caller: str
    language: str
    uniqueid: str  # the call's id (AGI agi_uniqueid): with the step, a request's idempotency key

    def answer(self) -> None: ...

    def set_language(self, language: str) -> None: ...

    def play(self, prompt_ids: Sequence[str], escape_digits: str = "") -> str | None: ...

    def read_digit(self, prompt_ids: Sequence[str], timeout_ms: int) -> str | None: ...

    def read_digits(self, prompt_ids: Sequence[str], max_digits: int, timeout_ms: int) -> str | None: ...

    def hangup(self) -> None: ...

    # outgoing-call control (ivr.outgoing): the AGI's arguments and the channel's variables
    arguments: Sequence[str]

    def set_variable(self, name: str, value: str) -> None: ...

    def sound_name(self, prompt_id: str) -> str: ...


def _check_prompt_id(prompt_id: str) -> str:
    # A prompt id goes verbatim into an AGI command line: no spaces, quotes or newlines.
    if not PROMPT_ID.match(prompt_id):
        raise ValueError(f"not a prompt id: {prompt_id!r}")
    return prompt_id


class AgiChannel:
    """A Channel over an AgiSession: STREAM FILE, WAIT FOR DIGIT, SET VARIABLE CHANNEL(language).

    Prompts are relative sound names: Asterisk looks for `sounds/<CHANNEL(language)>/<prefix><id>`,
    so setting the language is what makes the prompts play in az, en or ru. `sound_prefix` is the
    sub-directory our prompts are installed in (e.g. "selfcare/"), "" when installed flat.
    """

    def __init__(self, session: AgiSession, *, sound_prefix: str = ""):
        self.session = session
        self.sound_prefix = sound_prefix
        self.caller = session.env.get("agi_callerid", "")
        self.language = session.env.get("agi_language", "")
        self.uniqueid = session.env.get("agi_uniqueid", "")
        self.arguments = [session.env[f"agi_arg_{n}"] for n in range(1, 10) if f"agi_arg_{n}" in session.env]

    def set_variable(self, name: str, value: str) -> None:
        self.session.set_variable(name, value)

    def sound_name(self, prompt_id: str) -> str:
        """What Asterisk plays for a prompt id (for LIMIT_WARNING_FILE, played by Dial itself)."""
        return self.sound_prefix + _check_prompt_id(prompt_id)

    def answer(self) -> None:
        self.session.answer()

    def set_language(self, language: str) -> None:
        self.session.set_variable("CHANNEL(language)", language)
        self.language = language

    def play(self, prompt_ids: Sequence[str], escape_digits: str = "") -> str | None:
        for prompt_id in prompt_ids:
            digit = self._stream(prompt_id, escape_digits)
            if digit:
                return digit
        return None

    def read_digit(self, prompt_ids: Sequence[str], timeout_ms: int) -> str | None:
        # STREAM FILE with every digit as escape lets the caller answer before the prompt ends;
        # WAIT FOR DIGIT then waits for the first digit (0 = timeout).
        digit = self.play(prompt_ids, escape_digits=DTMF_DIGITS)
        if digit:
            return digit
        return self.session.wait_for_digit(timeout_ms) or None

    def read_digits(self, prompt_ids: Sequence[str], max_digits: int, timeout_ms: int) -> str | None:
        # GET DATA plays the last prompt, takes digits during and after it until `#`, `max_digits`,
        # or `timeout_ms` of silence (before the first digit and between digits); None when nothing.
        # GET DATA plays one sound only, so the prompts before it (an error prompt) are streamed
        # with escape digits: a digit that stops one is the entry's first, not lost.
        *before, last = prompt_ids
        first = self.play(before, escape_digits=DTMF_DIGITS)
        if first is None:
            digits = self.session.get_data(self.sound_prefix + _check_prompt_id(last), timeout_ms, max_digits)
            return digits or None
        return self._rest_of_entry(first, max_digits, timeout_ms)

    def _rest_of_entry(self, digits: str, max_digits: int, timeout_ms: int) -> str | None:
        """The digits after the first, one WAIT FOR DIGIT each, ended as GET DATA ends them: by `#`
        (not kept), by `max_digits`, or by `timeout_ms` of silence (what was typed is kept)."""
        while not digits.endswith("#") and len(digits) < max_digits:
            digit = self.session.wait_for_digit(timeout_ms)
            if not digit:
                break
            digits += digit
        return digits.removesuffix("#") or None

    def hangup(self) -> None:
        if self.session.hung_up:
            return
        try:
            self.session.hangup()
        except Hangup:
            pass  # already gone: the goal is reached

    def _stream(self, prompt_id: str, escape_digits: str) -> str | None:
        name = self.sound_prefix + _check_prompt_id(prompt_id)
        try:
            return self.session.stream_file(name, escape_digits) or None
        except PlaybackFailed:
            # A missing sound is a deployment error (the prompts check should have caught it);
            # the caller still gets the rest of the call rather than silence and a hangup.
            log.error("prompt %s (%s) could not be played for %s", name, self.language, mask(self.caller))
            return None


@dataclass(frozen=True)
class Played:
    prompt_id: str
    language: str


class SimulatedChannel:
    """A scripted caller for tests and `selfcare call`.

    `press` is what the caller does at each digit read, in order: a digit answers, a space lets the
    read time out. A multi-digit read (a PIN) takes digits until `#` (taken too), a space (the read
    times out with what was typed) or its maximum. When the script runs out the caller hangs up.
    `hang_up_after_prompts=N` makes the caller hang up while the N+1th prompt would play. `played`
    records every prompt with the language it was played in.
    """

    def __init__(
        self,
        caller: str,
        press: str = "",
        *,
        language: str = "en",
        hang_up_after_prompts: int | None = None,
        uniqueid: str | None = None,
        arguments: Sequence[str] = (),
    ):
        bad = [c for c in press if c != " " and c not in DTMF_DIGITS]
        if bad:
            raise ValueError(f"not DTMF: {''.join(bad)!r} (use 0-9, * and #; a space is a timeout)")
        self.caller = caller
        self.language = language
        self.uniqueid = uniqueid or f"sim-{uuid.uuid4().hex}"
        self.arguments = list(arguments)
        self.variables: dict[str, str] = {}
        self._inputs = list(press)
        self._hang_up_after_prompts = hang_up_after_prompts
        self.played: list[Played] = []
        self.answered = False
        self.hung_up = False
        self.timeouts_ms: list[int] = []

    @property
    def prompt_ids(self) -> list[str]:
        return [p.prompt_id for p in self.played]

    def answer(self) -> None:
        self._check_alive()
        self.answered = True

    def set_language(self, language: str) -> None:
        self._check_alive()
        self.language = language

    def play(self, prompt_ids: Iterable[str], escape_digits: str = "") -> str | None:
        for prompt_id in prompt_ids:
            self._check_alive()
            if self._hang_up_after_prompts is not None and len(self.played) >= self._hang_up_after_prompts:
                self.hung_up = True
                raise Hangup("simulated caller hung up during playback")
            self.played.append(Played(_check_prompt_id(prompt_id), self.language))
        return None

    def read_digit(self, prompt_ids: Sequence[str], timeout_ms: int) -> str | None:
        self.play(prompt_ids)
        if not self._inputs:
            self.hung_up = True
            raise Hangup("simulated caller hung up (no more input)")
        self.timeouts_ms.append(timeout_ms)
        pressed = self._inputs.pop(0)
        return None if pressed == " " else pressed

    def read_digits(self, prompt_ids: Sequence[str], max_digits: int, timeout_ms: int) -> str | None:
        self.play(prompt_ids)
        if not self._inputs:
            self.hung_up = True
            raise Hangup("simulated caller hung up (no more input)")
        self.timeouts_ms.append(timeout_ms)
        digits = ""
        while self._inputs and len(digits) < max_digits:
            pressed = self._inputs.pop(0)
            if pressed in " #":
                break
            digits += pressed
        return digits or None

    def hangup(self) -> None:
        self.hung_up = True

    def set_variable(self, name: str, value: str) -> None:
        self.variables[name] = value

    def sound_name(self, prompt_id: str) -> str:
        return _check_prompt_id(prompt_id)

    def _check_alive(self) -> None:
        if self.hung_up:
            raise Hangup("simulated channel already hung up")
