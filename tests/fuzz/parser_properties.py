"""What must hold of the parsers for any input: one statement of each property, checked by the
hypothesis tests (tests/fuzz/test_parsers.py) and by the coverage-guided atheris runs
(tests/fuzz/atheris_parsers.py). Each raises AssertionError when its property fails."""
from __future__ import annotations

import io
import re

from ivr.agi_shim import AGIError, AgiSession
from sms.commands import Command, Kind, parse as parse_sms, short_number_of
from ussd.codes import Request, parse as parse_ussd

ASCII_NUMBER = re.compile(r"\+?[0-9]+", re.ASCII)
KNOWN_USSD_ACTIONS = {
    "dates", "postpaid-balance", "pack-menu", "pack-deactivate", "pack-stop-renewal", "pack-order", "nar-max",
    "nar-debt", "nar", "sos", "sos-debt", "credit-for-friend", "ask-friend", "friend-requests", "card-redeem",
    "card-help", "help",
}


def sms_command_holds(to: str, text: str | None) -> None:
    """Every text is a command, and any argument it carries is ASCII digits of the right shape."""
    command = parse_sms(to, text)
    assert isinstance(command, Command) and command.kind in Kind
    assert command.short_number == short_number_of(to)
    if command.kind in (Kind.GRANT, Kind.REVOKE, Kind.SHARED_BALANCE):
        assert ASCII_NUMBER.fullmatch(command.argument), command
    elif command.kind is Kind.CARD_CHECK:
        assert re.fullmatch(r"[0-9]{10}", command.argument, re.ASCII)
    elif command.kind is Kind.FRIEND_CREDIT_REPLY:
        assert command.argument in ("yes", "no")
    else:
        assert command.argument is None


def ussd_request_holds(code: str) -> None:
    """Every code is a known action, and any argument it carries is ASCII digits."""
    request = parse_ussd(code)
    assert isinstance(request, Request) and request.action in KNOWN_USSD_ACTIONS
    if request.arg is not None:
        assert ASCII_NUMBER.fullmatch(request.arg), request


def agi_environment_holds(stdin_text: str) -> None:
    """Any lines are read as an environment of stripped, non-empty keys, or refused as an AGIError."""
    try:
        session = AgiSession(io.StringIO(stdin_text), io.StringIO())
    except AGIError:
        return  # EOF before the blank line (a hangup), too long: refused, never anything else
    assert all(key == key.strip() and key and value == value.strip() for key, value in session.env.items())


def agi_reply_holds(replies: list[str]) -> None:
    """A reply is a result or an AGIError, and the parser reads exactly its own lines: what the next
    command reads is the lines after it."""
    stdin = io.StringIO("agi_network: yes\n\n" + "".join(f"{line}\n" for line in replies))
    session = AgiSession(stdin, io.StringIO())
    try:
        result = session.execute("STREAM FILE", "welcome-2112", '""')
    except AGIError:
        result = None
    assert stdin.read() == "".join(f"{line}\n" for line in replies[reply_length(replies):])
    assert result is None or "result" in result


def reply_length(replies: list[str]) -> int:
    """How many lines one reply is, as the AGI protocol says (not as the parser reads it): bare
    HANGUP lines Asterisk sends at any time, the reply's line, and for `520-` the usage block up to
    its `520 ` line (or the end of the input)."""
    taken = 0
    while taken < len(replies) and replies[taken].strip() == "HANGUP":
        taken += 1
    if taken == len(replies):
        return taken
    first = replies[taken]
    taken += 1
    code = re.match(r"\d*", first).group()  # the leading digits, read as a number (`0520` is 520)
    if code and int(code) == 520 and not first.startswith("520 "):
        while taken < len(replies) and not replies[taken].startswith("520 "):
            taken += 1
        taken = min(taken + 1, len(replies))
    return taken
