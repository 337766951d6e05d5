"""One real Asterisk 22 running in the sid chroot, for the IVR tests: boot, CLI, logs, calls.

Its tree is written by asterisk_config.py; calls come in as Local channels (local_call.py) or over
SIP from baresip (baresip.py); what our FastAGI server sent is read back from the AGI debug log
(agi_trace.py).
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

from tests.peers.agi_trace import AgiLine, count_script_completions, parse_agi_lines
from tests.peers.asterisk_config import PROMPTS_DIR, RTP_PORTS, write_tree
from tests.peers.errors import AsteriskError
from tests.peers.local_call import LocalCall
from tests.peers.ports import free_port, free_udp_range

BOOT_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
MISSING_SOUND_PATTERNS = (
    re.compile(r"does not exist in any format"),
    re.compile(r"Unable to open .* \(format"),
    re.compile(r"File .* not found"),
)
CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}


def process_state(pid: int) -> str | None:
    """The one-letter state in /proc/PID/stat ('Z' for a zombie), None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


class AsteriskPeer:
    """One running Asterisk in the chroot. `with AsteriskPeer(chroot, fastagi_port) as pbx: ...`"""

    def __init__(self, chroot: Path, fastagi_port: int, fastagi_host: str = "127.0.0.1",
                 prompts_dir: Path | None = PROMPTS_DIR):
        self.chroot = Path(chroot)
        self.fastagi_host = fastagi_host
        self.fastagi_port = fastagi_port
        self.prompts_dir = prompts_dir
        self.inside = Path("/srv") / f"selfcare-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.root = self.host_path(self.inside)
        self.sip_port = free_port(socket.SOCK_DGRAM)
        self.rtp_start = free_udp_range(RTP_PORTS)
        self.process: subprocess.Popen | None = None
        self.installed_prompts: list[Path] = []
        self._call_ids = itertools.count(1)

    # paths: `inside` paths are as Asterisk sees them, host paths are under the chroot
    def host_path(self, inside: Path | str) -> Path:
        return self.chroot / str(inside).lstrip("/")

    @property
    def conf_inside(self) -> Path:
        return self.inside / "etc" / "asterisk.conf"

    @property
    def full_log(self) -> Path:
        return self.root / "log" / "full"

    @property
    def sounds_dir(self) -> Path:
        return self.root / "data" / "sounds"

    def write_config(self) -> None:
        self.installed_prompts = write_tree(
            self.chroot, self.inside, fastagi_host=self.fastagi_host, fastagi_port=self.fastagi_port,
            sip_port=self.sip_port, rtp_start=self.rtp_start, prompts_dir=self.prompts_dir,
        )

    # ------------------------------------------------------------------ life cycle
    def start(self) -> "AsteriskPeer":
        self.write_config()
        console = open(self.root / "log" / "console.out", "wb")
        self.process = subprocess.Popen(
            ["chroot", str(self.chroot), "/usr/sbin/asterisk", "-f", "-n", "-C", str(self.conf_inside)],
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, env=CHROOT_ENV,
        )
        console.close()
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise AsteriskError(f"Asterisk exited during boot ({self.process.returncode}):\n"
                                    + self.console_tail())
            done = self._rx("core waitfullybooted", timeout=5, check=False)
            if done.returncode == 0 and "fully booted" in done.stdout.lower():
                break
            if time.monotonic() > deadline:
                raise AsteriskError("Asterisk did not boot in time:\n" + self.console_tail())
            time.sleep(0.1)
        self.cli("agi set debug on")
        self._check_boot()
        return self

    REQUIRED_APPLICATIONS = ("AGI", "SendDTMF", "MixMonitor", "WaitForCondition", "Playback", "ExecIf")

    def _check_boot(self) -> None:
        """Fail now, naming what is missing, rather than with a call that silently goes nowhere."""
        for application in self.REQUIRED_APPLICATIONS:
            if f"Application '{application}'" not in self.cli(f"core show application {application}"):
                raise AsteriskError(f"application {application} is not loaded (dialplan/modules.conf?)"
                                    + self.log_tail())
        dialplan = self.cli("dialplan show 2112@subscribers")
        if "AGI(agi://" not in dialplan:
            raise AsteriskError("extension 2112@subscribers was not loaded:\n" + dialplan + self.log_tail())
        errors = [line for line in self.log_text().splitlines() if "ERROR[" in line and "loader.c" in line]
        if errors:
            raise AsteriskError("modules failed to load:\n" + "\n".join(errors))
        endpoints = self.cli("pjsip show endpoints")
        if "caller" not in endpoints:
            raise AsteriskError("the pjsip endpoint 'caller' was not loaded:\n" + endpoints + self.log_tail())

    def stop(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            self._rx("core stop now", timeout=10, check=False)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        state = process_state(process.pid)
        if state not in (None, "X"):
            raise AsteriskError(f"Asterisk pid {process.pid} still there after stop (state {state})")

    def remove_tree(self) -> None:
        if self.root.is_dir() and self.root.parent == self.chroot / "srv":
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "AsteriskPeer":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ CLI
    def _rx(self, command: str, timeout: float = 15, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            ["chroot", str(self.chroot), "/usr/sbin/asterisk", "-C", str(self.conf_inside), "-rx", command],
            capture_output=True, text=True, timeout=timeout, env=CHROOT_ENV,
        )
        if check and done.returncode != 0:
            raise AsteriskError(f"asterisk -rx {command!r} failed ({done.returncode}): {done.stderr}{done.stdout}")
        return done

    def cli(self, command: str) -> str:
        return self._rx(command).stdout

    def set_global(self, name: str, value: str) -> None:
        self.cli(f"dialplan set global {name} {value}")

    def get_global(self, name: str) -> str:
        for line in self.cli("dialplan show globals").splitlines():
            key, _, value = line.strip().partition("=")
            if key == name:
                return value
        return ""

    def channels(self) -> list[str]:
        return [line.split("!", 1)[0] for line in self.cli("core show channels concise").splitlines() if "!" in line]

    # ------------------------------------------------------------------ logs
    def log_text(self) -> str:
        try:
            return self.full_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n" + "\n".join(self.log_text().splitlines()[-lines:])

    def console_tail(self, lines: int = 40) -> str:
        try:
            text = (self.root / "log" / "console.out").read_text(errors="replace")
        except FileNotFoundError:
            text = ""
        return "\n".join(text.splitlines()[-lines:]) + self.log_tail()

    def missing_sound_lines(self) -> list[str]:
        """Log lines saying a file Asterisk was asked to play does not exist."""
        return [line for line in self.log_text().splitlines()
                if any(pattern.search(line) for pattern in MISSING_SOUND_PATTERNS)]

    def agi_lines(self, channel_prefix: str) -> list[AgiLine]:
        return parse_agi_lines(self.log_text(), channel_prefix)

    def agi_script_completions(self) -> int:
        """How many AGI sessions ended, i.e. our server closed the socket (Asterisk never does)."""
        return count_script_completions(self.log_text())

    # ------------------------------------------------------------------ calls
    def originate(self, callerid: str | None, exten: str, dtmf="",
                  press_delay_s: float = 0.4, timeout_s: float = 120) -> LocalCall:
        """Place a call from `callerid` (None: no caller id) to `exten` of [subscribers].

        `dtmf`: what the caller does each time the server asks for digits, one step per read: a
        digit (or * #) is pressed, `h` hangs up there. A string is one character a step; a list may
        also hold several keys for one GET DATA (a PIN and its `#`). With dtmf, this returns once
        every step was taken; the call may still be running (call.wait_ended())."""
        call = LocalCall(self, f"call{next(self._call_ids)}", callerid, exten)
        call.place()
        for step in dtmf:
            call.wait_for_digit_prompt(timeout_s)
            time.sleep(press_delay_s)  # a human reacts; also lets Asterisk enter the read
            if step == "h":
                call.hangup()
            elif len(step) == 1:
                call.press(step)
            else:
                call.press_digits(step)
        return call
