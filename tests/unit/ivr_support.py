"""Test support for the IVR: the real Asterisk 22 transcript, a mocked Asterisk peer, a billing core.

The mocked peer speaks FastAGI the way the transcript shows Asterisk does: it sends the 22-line
environment, then answers each command with reply lines taken from the transcript (or built in the
same forms), including the asynchronous bare `HANGUP` line.
"""
from __future__ import annotations

import ast
import datetime as dt
import re
import shlex
import socket
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Callable

from billing import services
from billing.clock import FixedClock
from billing.core import Core

TRANSCRIPT = Path(__file__).with_name("fixtures") / "asterisk-22-fastagi-transcript.txt"
_LINE = re.compile(r"^\S+ \[[^\]]+\] (<<|>>|--) (.*)$")
_SECTION = re.compile(r"^### (\w+)\.")

TODAY = dt.datetime(2026, 11, 22, 12, 0)
PREPAID_AZ = "+994501234567"
PREPAID_EN = "+994502223344"
POSTPAID_RU = "+994552223344"
POSTPAID_AZ = "+994551234567"


# -- the transcript ------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def transcript_sections() -> dict[str, list[tuple[str, str]]]:
    """Parsed once (ast.literal_eval is not safe to run from many threads at once on 3.11).

    Section id ('1', '3', '5', ...) -> [(direction, line)], direction '<<' (Asterisk) or '>>' (us)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in TRANSCRIPT.read_text(encoding="utf-8").splitlines():
        heading = _SECTION.match(raw)
        if heading:
            current = sections.setdefault(heading.group(1), [])
            continue
        match = _LINE.match(raw)
        if match and current is not None and match.group(1) != "--":
            current.append((match.group(1), ast.literal_eval(match.group(2))))
    return sections


def transcript_env(section: str = "1") -> list[str]:
    """The environment lines Asterisk sent in a section, up to (not including) the blank line."""
    env = []
    for direction, line in transcript_sections()[section]:
        if direction != "<<" or line == "":
            break
        env.append(line)
    return env


def transcript_replies(section: str, command: str, occurrence: int = 0) -> list[str]:
    """The lines Asterisk sent after our `command` (its reply, plus any HANGUP line) in a section."""
    lines = transcript_sections()[section]
    seen = -1
    for index, (direction, line) in enumerate(lines):
        if direction == ">>" and line == command:
            seen += 1
            if seen == occurrence:
                replies = []
                for later_direction, later in lines[index + 1:]:
                    if later_direction == ">>":
                        break
                    replies.append(later)
                return replies
    raise KeyError(f"command {command!r} (#{occurrence}) not in transcript section {section}")


def env_for(script: str, caller: str, section: str = "1") -> list[str]:
    """The transcript's real environment with our script path and caller id in it."""
    replaced = {"agi_network_script": script, "agi_request": f"agi://127.0.0.1:4573/{script}",
                "agi_callerid": caller, "agi_calleridname": caller}
    env = []
    for line in transcript_env(section):
        key = line.split(":", 1)[0]
        env.append(f"{key}: {replaced[key]}" if key in replaced else line)
    return env


# -- a billing core ------------------------------------------------------------------------------

def make_core(tmp_path: Path) -> Core:
    core = Core(f"sqlite:///{tmp_path / 'ivr.db'}", clock=FixedClock(TODAY))
    core.upgrade_schema()
    with core.uow() as uow:
        services.add_subscriber(uow, PREPAID_AZ, "prepaid", tariff="klass", balance=Decimal("12.48"), language="az")
        services.add_subscriber(uow, PREPAID_EN, "prepaid", tariff="super", balance=Decimal("3.05"), language="en")
        services.add_subscriber(uow, POSTPAID_AZ, "postpaid", tariff="biznes", language="az",
                                billed=Decimal("25.30"), current=Decimal("7.15"), advance=Decimal("5.00"), bill_day=10)
        services.add_subscriber(uow, POSTPAID_RU, "postpaid", tariff="biznes", language="ru",
                                billed=Decimal("1.00"), current=Decimal("2.00"), advance=Decimal("0.00"))
    return core


def report(core: Core, msisdn: str):
    with core.uow() as uow:
        return services.balance_report(uow, msisdn)


# -- the mocked Asterisk -------------------------------------------------------------------------

Responder = Callable[[str], list[str]]


@dataclass
class MockAsterisk:
    """A FastAGI client that plays Asterisk's part against our server over a real TCP socket.

    `responder(command)` returns the lines to send back (a reply, maybe followed or preceded by a
    bare HANGUP). The conversation ends when our server closes the socket; `commands` records what
    it sent, `closed_by_server` says whether it closed the socket (Asterisk never does).
    """

    responder: Responder
    commands: list[str] = field(default_factory=list)
    closed_by_server: bool = False

    def call(self, address, env: list[str], *, max_commands: int = 500, timeout_s: float = 10.0,
             hang_up_after: int | None = None) -> "MockAsterisk":
        with socket.create_connection(address, timeout=timeout_s) as sock:
            reader = sock.makefile("r", encoding="utf-8", newline="\n")
            sock.sendall(("\n".join(env) + "\n\n").encode())
            for _ in range(max_commands):
                line = reader.readline()
                if line == "":
                    self.closed_by_server = True
                    return self
                command = line.rstrip("\n")
                self.commands.append(command)
                if hang_up_after is not None and len(self.commands) >= hang_up_after:
                    sock.shutdown(socket.SHUT_WR)  # EOF mid-call: the caller's side is gone
                    self.closed_by_server = reader.readline() == ""
                    return self
                reply = self.responder(command)
                sock.sendall("".join(f"{r}\n" for r in reply).encode())
            raise AssertionError(f"server sent more than {max_commands} commands: {self.commands[-5:]}")

    def streamed(self) -> list[str]:
        """The prompt names our server asked Asterisk to play, in order."""
        return [c.split()[2] for c in self.commands if c.startswith("STREAM FILE ")]


class ScriptedCaller:
    """Replies like Asterisk 22 to a caller who presses `keys` (a space = silence) at each digit read.

    Keys are consumed by WAIT FOR DIGIT, and by GET DATA up to a `#` (taken too) or a space. `overrides` maps a command prefix to the reply lines to use
    for its first occurrence (e.g. to inject 510, 520, HANGUP or 511 at a chosen point).
    `during` names a prompt the caller presses the next key during, the first time it plays: a
    STREAM FILE whose escape digits hold the key stops there and returns it (barge-in); one without
    escape digits plays on and the key is lost, as on a real Asterisk.
    """

    def __init__(self, keys: str = "", overrides: dict[str, list[str]] | None = None, *, during: str | None = None):
        self.keys = deque(keys)
        self.overrides = dict(overrides or {})
        self.during = during
        self.hung_up = False

    def __call__(self, command: str) -> list[str]:
        for prefix in list(self.overrides):
            if command.startswith(prefix):
                return self.overrides.pop(prefix)
        if self.hung_up:
            return ["511 Command Not Permitted on a dead channel or intercept routine"]
        verb = command.split(" ")[0]
        if command.startswith("STREAM FILE"):
            return self._stream(*shlex.split(command)[2:4])
        if command.startswith("WAIT FOR DIGIT"):
            if not self.keys:
                self.hung_up = True
                return ["200 result=-1"]
            key = self.keys.popleft()
            return ["200 result=0"] if key == " " else [f"200 result={ord(key)}"]
        if command.startswith("GET DATA"):  # digits until '#', a space (timeout) or the maximum
            if not self.keys:
                self.hung_up = True
                return ["200 result=-1"]
            most, digits = int(command.split()[-1]), ""
            while self.keys and len(digits) < most:
                key = self.keys.popleft()
                if key in " #":
                    break
                digits += key
            return [f"200 result={digits}"] if digits else ["200 result= (timeout)"]
        if command.startswith("SET VARIABLE"):
            return ["200 result=1"]
        if verb == "ANSWER":
            return ["200 result=0"]
        if verb == "HANGUP":
            self.hung_up = True
            return ["200 result=1", "HANGUP"]
        return ["510 Invalid or unknown command"]

    def _stream(self, name: str, escape_digits: str) -> list[str]:
        if name == self.during and self.keys and self.keys[0] != " ":  # silence presses nothing
            self.during = None
            key = self.keys.popleft()
            if key in escape_digits:
                return [f"200 result={ord(key)} endpos=4000"]
        return ["200 result=0 endpos=8000"]
