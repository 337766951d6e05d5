"""The AGI conversation of a call as Asterisk logged it (`agi set debug on`).

Reading the PBX's own log, not our server's, is what lets the tests see the wire: every command
our FastAGI server sent (Rx) and every reply and environment line Asterisk sent back (Tx).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tests.peers.errors import AsteriskError

if TYPE_CHECKING:
    from tests.peers.asterisk import AsteriskPeer

AGI_LOG_LINE = re.compile(r"<(?P<channel>[^>]+)>AGI (?P<dir>Rx|Tx) (?:<<|>>) (?P<text>.*)$")
REPLY_RESULT = re.compile(r"^200 result=(-?\d*)")
SCRIPT_COMPLETED = re.compile(r"AGI Script agi://\S+ completed")
# AGI commands that wait for the caller's digits: the moment a scripted caller presses one. A
# prompt played with escape digits takes a digit too, but the flows stream the figures and the
# error prompts that way as well (barge-in): a scripted caller answers during the prompt that asks
# the question (a menu's, the wangiri warning) or once the server waits for a digit, as before.
DIGIT_READING_COMMAND = re.compile(
    r"^(GET DATA|WAIT FOR DIGIT|GET OPTION|STREAM FILE (menu-\S+|call-wangiri-warning) \"?[0-9*#]+)", re.I)


@dataclass
class AgiLine:
    channel: str
    direction: str  # "Rx" = a command from our server, "Tx" = Asterisk's reply or environment
    text: str


def parse_agi_lines(log_text: str, channel_prefix: str) -> list[AgiLine]:
    found = []
    for line in log_text.splitlines():
        match = AGI_LOG_LINE.search(line)
        if match and match["channel"].startswith(channel_prefix):
            found.append(AgiLine(match["channel"], match["dir"], match["text"]))
    return found


def count_script_completions(log_text: str) -> int:
    return sum(1 for line in log_text.splitlines() if SCRIPT_COMPLETED.search(line))


class AgiTrace:
    """The AGI conversation of one call as Asterisk logged it (`agi set debug on`), read with a cursor.

    The cursor is how a scripted caller knows where the call is: it waits for the server's next
    digit-reading command, presses, then waits for the reply that shows the digit was taken, so the
    next press is never matched against the prompt that has already been answered."""

    def __init__(self, pbx: "AsteriskPeer", channel_prefix: str):
        self.pbx = pbx
        self.channel_prefix = channel_prefix
        # a channel prefix may be shared by successive calls (PJSIP/caller-): start after theirs
        self.start = self.cursor = len(pbx.agi_lines(channel_prefix))

    def lines(self) -> list[AgiLine]:
        return self.pbx.agi_lines(self.channel_prefix)[self.start:]

    def commands(self) -> list[str]:
        return [line.text for line in self.lines() if line.direction == "Rx"]

    def wait_for(self, predicate, what: str, timeout_s: float, is_over=None) -> AgiLine:
        deadline = time.monotonic() + timeout_s
        while True:
            lines = self.pbx.agi_lines(self.channel_prefix)
            for index in range(self.cursor, len(lines)):
                if predicate(lines[index]):
                    self.cursor = index + 1
                    return lines[index]
            if time.monotonic() > deadline or (is_over is not None and is_over()):
                raise AsteriskError(f"{self.channel_prefix}: no {what} within {timeout_s}s; AGI so far: "
                                    f"{[line.text for line in lines if line.direction == 'Rx']}" + self.pbx.log_tail())
            time.sleep(0.05)

    def wait_for_command(self, pattern: str, timeout_s: float = 120, is_over=None) -> str:
        regex = re.compile(pattern, re.I)
        return self.wait_for(lambda line: line.direction == "Rx" and regex.search(line.text),
                             f"command /{pattern}/", timeout_s, is_over).text

    def wait_for_digit_prompt(self, timeout_s: float = 120, is_over=None) -> str:
        return self.wait_for(lambda line: line.direction == "Rx" and DIGIT_READING_COMMAND.match(line.text),
                             "digit prompt", timeout_s, is_over).text

    def wait_digit_taken(self, digit: str, timeout_s: float = 30, is_over=None) -> None:
        """The reply that carries `digit`: ASCII code for STREAM FILE/WAIT FOR DIGIT, the digit for GET DATA."""
        def carries_digit(line: AgiLine) -> bool:
            match = line.direction == "Tx" and REPLY_RESULT.match(line.text)
            return bool(match) and match.group(1) in (str(ord(digit)), digit)
        self.wait_for(carries_digit, f"reply carrying digit {digit!r}", timeout_s, is_over)


    def wait_digits_taken(self, digits: str, timeout_s: float = 60, is_over=None) -> None:
        """The GET DATA reply that carries every one of `digits` (`200 result=<digits>`)."""
        def carries_digits(line: AgiLine) -> bool:
            match = line.direction == "Tx" and REPLY_RESULT.match(line.text)
            return bool(match) and match.group(1) == digits
        self.wait_for(carries_digits, f"reply carrying {len(digits)} digits", timeout_s, is_over)


def agi_environment(lines: list[AgiLine]) -> dict[str, str]:
    """The agi_* variables as logged (Asterisk does not log agi_network/agi_network_script:
    agi_request carries the same path)."""
    env = {}
    for line in lines:
        if line.direction == "Tx" and line.text.startswith("agi_"):
            key, _, value = line.text.partition(": ")
            env[key] = value
    return env


def played_sounds(commands: list[str]) -> list[str]:
    """The sound names the server asked Asterisk to play (STREAM FILE / GET DATA / EXEC Playback)."""
    names = []
    for command in commands:
        parts = command.split()
        upper = command.upper()
        if upper.startswith(("STREAM FILE", "CONTROL STREAM FILE")) and len(parts) >= 3:
            names.append(parts[3] if upper.startswith("CONTROL") else parts[2])
        elif upper.startswith("GET DATA") and len(parts) >= 3:
            names.append(parts[2])
        elif upper.startswith("EXEC PLAYBACK") and len(parts) >= 3:
            names.extend(parts[2].split("&"))
    return names
