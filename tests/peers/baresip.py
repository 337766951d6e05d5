"""Calls over SIP: baresip inside the chroot as the caller, driven through ctrl_tcp, writing what
it hears to an 8 kHz WAV with aufile. The one path that exercises PJSIP, RTP and RFC 4733 DTMF."""
from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.peers.agi_trace import AgiTrace, agi_environment
from tests.peers.asterisk import AsteriskPeer
from tests.peers.audio import write_silence_wav
from tests.peers.errors import AsteriskError
from tests.peers.ports import free_port, free_udp_range


class BaresipPhone:
    """baresip in the chroot as a SIP caller: `with BaresipPhone(pbx, "+994501234567") as phone:`."""

    def __init__(self, pbx: AsteriskPeer, callerid: str):
        self.pbx = pbx
        self.callerid = callerid
        self.inside = pbx.inside / "phone" / uuid.uuid4().hex[:8]
        self.root = pbx.host_path(self.inside)
        self.heard_inside = self.inside / "heard.wav"
        self.sip_port = free_port(socket.SOCK_DGRAM)
        self.ctrl_port = free_port()
        self.rtp_start = free_udp_range(20)
        self.process: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self._buffer = b""
        self.events: list[dict] = []

    @property
    def heard_wav(self) -> Path:
        return self.pbx.host_path(self.heard_inside)

    def write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_silence_wav(self.root / "silence.wav", 600)
        (self.root / "config").write_text(f"""poll_method epoll
sip_listen 127.0.0.1:{self.sip_port}
sip_trans_def udp
audio_player aufile,{self.heard_inside}
audio_source aufile,{self.inside}/silence.wav
audio_alert aufile,/dev/null
ausrc_srate 8000
auplay_srate 8000
ausrc_channels 1
auplay_channels 1
audio_buffer 20-160
rtp_ports {self.rtp_start}-{self.rtp_start + 19}
rtp_timeout 0
net_interface 127.0.0.1
module_path /usr/lib/baresip/modules
module g711.so
module aufile.so
module_app account.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}
""")
        number = self.callerid
        (self.root / "accounts").write_text(
            f'"{number}" <sip:{number}@127.0.0.1>;regint=0;audio_codecs=PCMU;dtmfmode=rtpevent\n'
        )
        (self.root / "contacts").write_text("")

    def start(self) -> "BaresipPhone":
        self.write_config()
        log = open(self.root / "baresip.out", "wb")
        self.process = subprocess.Popen(
            ["chroot", str(self.pbx.chroot), "/usr/bin/baresip", "-f", str(self.inside)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(self.inside)},
        )
        log.close()
        deadline = time.monotonic() + 15
        while True:
            if self.process.poll() is not None:
                raise AsteriskError(f"baresip exited ({self.process.returncode}):\n{self.output()}")
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AsteriskError("baresip ctrl_tcp did not come up:\n" + self.output())
                time.sleep(0.1)
        self.sock.settimeout(0.2)
        return self

    def output(self) -> str:
        try:
            return (self.root / "baresip.out").read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def command(self, command: str, params: str = "") -> None:
        body = json.dumps({"command": command, "params": params, "token": command}).encode()
        assert self.sock is not None
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")

    def _read_messages(self) -> None:
        assert self.sock is not None
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return
        if not chunk:
            return
        self._buffer += chunk
        while True:
            head, colon, rest = self._buffer.partition(b":")
            if not colon or not head.isdigit() or len(rest) < int(head) + 1:
                return
            size = int(head)
            self.events.append(json.loads(rest[:size]))
            self._buffer = rest[size + 1:]

    def wait_event(self, event_type: str, timeout_s: float = 30) -> dict:
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            self._read_messages()
            for event in self.events[seen:]:
                if event.get("type") == event_type:
                    return event
            seen = len(self.events)
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise AsteriskError(f"baresip: no {event_type} within {timeout_s}s; events {self.events}\n{self.output()}")

    def has_event(self, event_type: str) -> bool:
        self._read_messages()
        return any(event.get("type") == event_type for event in self.events)

    def dial(self, exten: str) -> None:
        self.command("dial", f"sip:{exten}@127.0.0.1:{self.pbx.sip_port}")
        self.wait_event("CALL_ESTABLISHED")

    def send_digit(self, digit: str) -> None:
        self.command("sndcode", digit)

    def hangup(self) -> None:
        self.command("hangup")

    def stop(self) -> None:
        if self.sock is not None:
            try:
                self.command("quit")
            except OSError:
                pass
            self.sock.close()
            self.sock = None
        if self.process is not None:
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(5)
            self.process = None

    def __enter__(self) -> "BaresipPhone":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class SipCallResult:
    heard_wav: Path  # what the caller heard, 8 kHz 16-bit mono
    commands: list[str]  # the AGI commands our server sent
    environment: dict[str, str]  # the agi_* environment Asterisk sent


def sip_call(pbx: AsteriskPeer, callerid: str, exten: str, dtmf: str = "",
             max_seconds: float = 120, press_delay_s: float = 0.4) -> SipCallResult:
    """Call `exten` over SIP from baresip as `callerid`; at each digit prompt take the next step of
    `dtmf` (a key to press, or `h` to hang up). Without `h`, waits for the flow to hang up."""
    trace = AgiTrace(pbx, "PJSIP/caller-")
    with BaresipPhone(pbx, callerid) as phone:
        phone.dial(exten)
        closed = lambda: phone.has_event("CALL_CLOSED")  # noqa: E731
        for step in dtmf:
            trace.wait_for_digit_prompt(max_seconds, closed)
            time.sleep(press_delay_s)
            if step == "h":
                phone.hangup()
                break
            phone.send_digit(step)
            trace.wait_digit_taken(step, 30, closed)
        try:
            phone.wait_event("CALL_CLOSED", max_seconds)
        except AsteriskError:
            phone.hangup()
            raise
    return SipCallResult(phone.heard_wav, trace.commands(), agi_environment(trace.lines()))

