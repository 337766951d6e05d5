"""Calls without SIP: a Local channel whose one leg runs our dialplan and whose other leg is "the caller".

`channel originate Local/callN@selfcare-test-caller extension callN@selfcare-test-listener`. The ;2
leg sets the caller id and enters [subscribers] (our dialplan, so AGI to the server); the ;1 leg is
the caller: it records what it hears with MixMonitor r() and, when the test posts an action into
the global ACT_callN, sends those DTMF digits or hangs up. The test knows when the caller is being
asked for a digit because `agi set debug on` logs every AGI command the server sends.
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tests.peers.agi_trace import AgiTrace, agi_environment, played_sounds
from tests.peers.errors import AsteriskError

if TYPE_CHECKING:
    from tests.peers.asterisk import AsteriskPeer

CALLER_CONTEXTS = r"""
; ---- test-only contexts from tests/peers/local_call.py (not for production) ----
[selfcare-test-caller]
; The ;2 leg of Local/callN@selfcare-test-caller: caller id from the global CID_callN (none when
; empty, as for a withheld number), then the real dialplan.
exten => _call.,1,ExecIf($["${GLOBAL(CID_${EXTEN})}" != ""]?Set(CALLERID(num)=${GLOBAL(CID_${EXTEN})}))
 same => n,ExecIf($["${GLOBAL(CID_${EXTEN})}" != ""]?Set(CALLERID(name)=${GLOBAL(CID_${EXTEN})}))
 same => n,Goto(subscribers,${GLOBAL(DEST_${EXTEN})},1)

[selfcare-test-listener]
; The caller's side: answer, record what is heard, then carry out the actions the test posts in
; ACT_callN one at a time (DTMF digits, or "hangup"), until the call ends.
exten => _call.,1,Answer()
 same => n,MixMonitor(${GLOBAL(REC_${EXTEN})},r(${GLOBAL(HEARD_${EXTEN})}))
 same => n(wait),WaitForCondition(#,#["#{GLOBAL(ACT_${EXTEN})}" != ""],900,0.02)
 same => n,GotoIf($["${WAITFORCONDITIONSTATUS}" != "TRUE"]?done)
 same => n,Set(ACTION=${GLOBAL(ACT_${EXTEN})})
 same => n,Set(GLOBAL(ACT_${EXTEN})=)
 same => n,GotoIf($["${ACTION}" = "hangup"]?done)
 same => n,SendDTMF(${ACTION},250,200)
 same => n,Goto(wait)
 same => n(done),Hangup()

[selfcare-test-destination]
; Where outgoing calls go in the tests (dialplan OUTBOUND_PREFIX/SUFFIX): answers, echoes, and hangs
; up after GLOBAL(HOLD_<number>) seconds (an hour when unset: only Dial's L() limit ends it).
exten => _[+0-9]X.,1,Answer()
 same => n,Set(HOLD=${GLOBAL(HOLD_${FILTER(0-9,${EXTEN})})})
 same => n,Wait(${IF($["${HOLD}" = ""]?3600:${HOLD})})
 same => n,Hangup()
"""


class LocalCall:
    """One call placed with `channel originate Local/...`, seen from the caller's side."""

    def __init__(self, pbx: "AsteriskPeer", call_id: str, callerid: str | None, exten: str):
        self.pbx = pbx
        self.id = call_id
        self.callerid = callerid
        self.exten = exten
        self.agi_channel_prefix = f"Local/{call_id}@selfcare-test-caller-"
        self.heard_inside = pbx.inside / "spool" / f"{call_id}-heard.wav"
        self.mixed_inside = pbx.inside / "spool" / f"{call_id}-both.wav"
        self.trace = AgiTrace(pbx, self.agi_channel_prefix)
        self.placed_at = 0.0

    @property
    def heard_wav(self) -> Path:
        return self.pbx.host_path(self.heard_inside)

    def place(self) -> None:
        pbx = self.pbx
        pbx.set_global(f"CID_{self.id}", self.callerid or "")
        pbx.set_global(f"DEST_{self.id}", self.exten)
        pbx.set_global(f"REC_{self.id}", str(self.mixed_inside))
        pbx.set_global(f"HEARD_{self.id}", str(self.heard_inside))
        pbx.set_global(f"ACT_{self.id}", "")
        self.placed_at = time.monotonic()
        pbx.cli(f"channel originate Local/{self.id}@selfcare-test-caller extension {self.id}@selfcare-test-listener")

    def commands(self) -> list[str]:
        """The AGI commands our server sent on this call, in order."""
        return self.trace.commands()

    def environment(self) -> dict[str, str]:
        return agi_environment(self.trace.lines())

    def played(self) -> list[str]:
        return played_sounds(self.commands())

    def _is_over(self) -> bool:
        return time.monotonic() - self.placed_at > 3 and not self.is_up()

    def wait_for_command(self, pattern: str, timeout_s: float = 120) -> str:
        return self.trace.wait_for_command(pattern, timeout_s, self._is_over)

    def wait_for_digit_prompt(self, timeout_s: float = 120) -> str:
        return self.trace.wait_for_digit_prompt(timeout_s, self._is_over)

    def _post(self, action: str, timeout_s: float = 10) -> None:
        self.pbx.set_global(f"ACT_{self.id}", action)
        deadline = time.monotonic() + timeout_s
        while self.pbx.get_global(f"ACT_{self.id}"):
            if action == "hangup" and self._is_over():
                return  # the call ended on its own first: the goal is reached
            if time.monotonic() > deadline:
                raise AsteriskError(f"{self.id}: the caller did not take action {action!r}" + self.pbx.log_tail())
            time.sleep(0.05)

    def press(self, digit: str) -> None:
        """Press one key and wait until the server's command has taken it."""
        if not re.fullmatch(r"[0-9*#]", digit):
            raise ValueError(f"not a DTMF digit: {digit!r}")
        self._post(digit)
        self.trace.wait_digit_taken(digit, is_over=self._is_over)

    def press_digits(self, keys: str) -> None:
        """Key several digits in one go (a PIN, `#` to end it) and wait until the server's GET DATA
        has returned them."""
        if not re.fullmatch(r"[0-9*#]+", keys):
            raise ValueError(f"not DTMF digits: {keys!r}")
        self._post(keys)
        self.trace.wait_digits_taken(keys.rstrip("#"), is_over=self._is_over)

    def hangup(self) -> None:
        self._post("hangup")

    def is_up(self) -> bool:
        return any(name.startswith(f"Local/{self.id}@") for name in self.pbx.channels())

    def wait_ended(self, timeout_s: float = 120) -> None:
        """Both legs gone: the flow hung up, or the caller did and our server closed the socket."""
        deadline = time.monotonic() + timeout_s
        while self.is_up():
            if time.monotonic() > deadline:
                raise AsteriskError(f"{self.id} still up after {timeout_s}s; commands: {self.commands()}"
                                    + self.pbx.log_tail())
            time.sleep(0.1)
