"""A thin shim over pyst2 0.5.1's `asterisk.agi.AGI` that makes it safe for a threaded FastAGI server.

pyst2 still speaks the protocol for us: its command methods (`answer`, `stream_file`,
`wait_for_digit`, `get_data`, `set_variable`, `get_variable`, `hangup`, `verbose`, ...), its
`send_command` and its reply regexes (`re_code`, `re_kv`) are used as they are. What we replace, and why
(each point is a defect seen against a real Asterisk 22: the tests in tests/unit/test_ivr_agi_shim.py replay
the real transcript in tests/unit/fixtures/asterisk-22-fastagi-transcript.txt):

- `__init__` installs a SIGHUP handler, which raises ValueError outside the main thread (every
  FastAGI call runs in a worker thread) and prints its debug to stderr. We set the same attributes
  without touching signals; the classic AGI entry installs the handler itself (ivr.agi_script).
- `_get_agi_env` treats EOF as the end of the environment and carries on with half an environment.
  We raise `Hangup` on EOF and bound the size of what Asterisk may send.
- `get_result` is rewritten, reusing pyst2's regexes:
  * a bare `HANGUP` line (Asterisk writes it asynchronously after the channel dies) made pyst2 fail
    with ValueError; we note it, still read the reply of the command in flight so that replies never
    get out of step, then raise `Hangup`;
  * EOF gave ValueError (or, inside a 520 block, an endless loop); we raise `Hangup`;
  * 511 ("Command Not Permitted on a dead channel") became AGIUnknownError; we raise `DeadChannel`;
  * `200 result=-1` became AGIAppError for every command; it means the caller hung up during GET DATA,
    WAIT FOR DIGIT, STREAM FILE..., so we raise `ResultHangup` -- except `result=-1 endpos=0` from
    STREAM FILE, which is Asterisk's answer for a sound file that does not exist (transcript section 6):
    that is `PlaybackFailed`, the channel is still up, and if it is not, the next command says so;
  * 510 stays pyst2's `AGIInvalidCommand` and 520 its `AGIUsageError` (both `AGIError`), with the
    whole multi-line usage read before raising.
- `execute`: a broken pipe, a reset connection or a read timeout from the socket become `Hangup`.

The session works over any pair of text-mode files: `sys.stdin`/`sys.stdout` for classic AGI, or
`socket.makefile("r"/"w")` for FastAGI (pyst2 writes `str`, so the files must be text-mode).
"""
from __future__ import annotations

import logging
import sys
from typing import TextIO

from asterisk import agi as pyst

log = logging.getLogger(__name__)

AGIError = pyst.AGIError
AGIInvalidCommand = pyst.AGIInvalidCommand
AGIUsageError = pyst.AGIUsageError

MAX_ENV_LINES = 200  # Asterisk 22 sends 22 agi_* lines plus agi_arg_N; more is not Asterisk
MAX_LINE_CHARS = 8192  # a 520 usage line is ~600 chars; a variable value can be long, not unbounded
MAX_USAGE_LINES = 200


class Hangup(pyst.AGIHangup):
    """The caller is gone: a bare HANGUP line, EOF, a broken socket, 511 or `result=-1`.

    Subclasses pyst2's AGIHangup so code written against pyst2 still recognises it."""


class DeadChannel(Hangup):
    """511: Asterisk refused a media command because the channel is already dead."""


class ResultHangup(Hangup):
    """`200 result=-1`: the caller hung up while the command (GET DATA, STREAM FILE...) ran."""


class PlaybackFailed(pyst.AGIAppError):
    """`200 result=-1 endpos=0` from STREAM FILE: Asterisk found no such sound file."""


class _DebugLog:
    """pyst2 writes its trace to `self.stderr`; send it to logging at DEBUG instead."""

    def write(self, text: str) -> None:
        text = text.rstrip("\n")
        if text.strip():
            log.debug("agi %s", text.strip())

    def flush(self) -> None:
        pass


class AgiSession(pyst.AGI):
    """One AGI conversation. `env` holds the agi_* variables; `hung_up` is True once Asterisk said so."""

    def __init__(self, reader: TextIO, writer: TextIO):
        # Deliberately not calling pyst.AGI.__init__ (SIGHUP handler + stderr spam, see module doc).
        self.stdin = reader
        self.stdout = writer
        self.stderr = _DebugLog()
        self._got_sighup = False
        self.hung_up = False
        self._hangup_line_seen = False
        self.env: dict[str, str] = {}
        self._get_agi_env()

    # -- reading -----------------------------------------------------------------------------

    def _read_line(self) -> str:
        """One line without its newline; EOF (the peer closed) is a hangup, never ValueError."""
        try:
            line = self.stdin.readline(MAX_LINE_CHARS + 1)
        except OSError as error:  # timeout, reset
            self.hung_up = True
            raise Hangup(f"connection lost while reading: {error}") from error
        if line == "":
            self.hung_up = True
            raise Hangup("EOF from Asterisk")
        if len(line) > MAX_LINE_CHARS:
            raise AGIError(f"line longer than {MAX_LINE_CHARS} characters from Asterisk")
        return line.rstrip("\r\n")

    def _get_agi_env(self) -> None:
        for _ in range(MAX_ENV_LINES):
            line = self._read_line().strip()
            if line == "":
                return
            key, sep, value = line.partition(":")
            if not sep or not key.strip():
                log.warning("agi env: ignoring malformed line %r", line[:80])
                continue
            # interned: every call sends the same keys, and each held call kept its own copy of each
            self.env[sys.intern(key.strip())] = value.strip()
        raise AGIError(f"AGI environment longer than {MAX_ENV_LINES} lines")

    def _read_reply_line(self) -> str:
        """The next reply line, skipping (and remembering) asynchronous bare HANGUP lines."""
        while True:
            line = self._read_line()
            if line.strip() == "HANGUP":
                log.debug("agi: HANGUP line from Asterisk")
                self._hangup_line_seen = True
                self.hung_up = True
                continue
            return line

    def get_result(self, stdin=None):  # noqa: ARG002 - pyst2's signature
        line = self._read_reply_line()
        match = pyst.re_code.search(line)
        code_text, response = match.groups() if match else ("", line)
        code = int(code_text) if code_text else 0

        if code == 520:
            usage = self._read_usage(line)
            self._raise_if_hangup_seen()
            raise AGIUsageError(usage)
        if code == 510:
            self._raise_if_hangup_seen()
            raise AGIInvalidCommand(response)
        if code == 511:
            self.hung_up = True
            raise DeadChannel(response or "511 dead channel")
        if code != 200:
            self._raise_if_hangup_seen()
            raise pyst.AGIUnknownError(code, f"unexpected reply from Asterisk: {line[:120]!r}")

        result = {"result": ("", "")}
        for key, value, data in pyst.re_kv.findall(response):
            result[key] = (value, data)
        if "(timeout)" in response:
            result["timeout"] = ("1", "")
        self._raise_if_hangup_seen()
        if result["result"][1] == "hangup":
            self.hung_up = True
            raise ResultHangup("caller hung up during the command")
        if result["result"][0] == "-1":
            if result.get("endpos", ("", ""))[0] == "0":
                raise PlaybackFailed("Asterisk could not play the file (missing?)")
            self.hung_up = True
            raise ResultHangup("result=-1: caller hung up during the command")
        return result

    def _read_usage(self, first_line: str) -> str:
        """A 520 reply is `520-...`, free text lines, then `520 End of proper usage.`: read it all."""
        lines = [first_line]
        if first_line.startswith("520 "):  # a one-line 520 has no continuation
            return first_line
        for _ in range(MAX_USAGE_LINES):
            line = self._read_reply_line()
            lines.append(line)
            if line.startswith("520 "):
                return "\n".join(lines)
        raise AGIError(f"520 usage longer than {MAX_USAGE_LINES} lines")

    def _raise_if_hangup_seen(self) -> None:
        if self._hangup_line_seen:
            raise Hangup("Asterisk reported HANGUP")

    # -- writing -----------------------------------------------------------------------------

    def test_hangup(self) -> None:
        if self._got_sighup:
            self.hung_up = True
            raise Hangup("SIGHUP from Asterisk")

    def execute(self, command, *args):
        self.test_hangup()
        try:
            self.send_command(command, *args)
            return self.get_result()
        except OSError as error:  # BrokenPipe, ConnectionReset, socket timeout
            self.hung_up = True
            raise Hangup(f"connection lost during {command}: {error}") from error

    def note_sighup(self, *_signal_args) -> None:
        """Signal handler for classic AGI (main thread only): the next command raises Hangup."""
        self._got_sighup = True
