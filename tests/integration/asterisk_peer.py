"""A real Asterisk 22 (Debian sid, in the chroot built by scripts/asterisk-chroot) for the IVR tests.

Each AsteriskPeer gets its own tree inside the chroot (/srv/selfcare-test-<id>: etc, log, run,
spool, a sounds dir holding the stock English sounds plus our prompts) and its own asterisk.conf
pointing there, so the cached chroot is never modified and two runs cannot see each other's files.
The configuration is our dialplan/ files, with the test's FastAGI port and a free SIP port filled
in, plus two test-only contexts (below) that stand in for a caller.

Calls without SIP (`originate`): `channel originate Local/callN@selfcare-test-caller extension
callN@selfcare-test-listener`. The ;2 leg sets the caller id and enters [subscribers] (our
dialplan, so AGI to the server); the ;1 leg is "the caller": it records what it hears with
MixMonitor r() and, when the test posts an action into the global ACT_callN, sends those DTMF
digits or hangs up. The test knows when the caller is being asked for a digit because
`agi set debug on` logs every AGI command the server sends.

Calls over SIP (`BaresipPhone`): baresip inside the chroot, driven through ctrl_tcp, writing what it
hears to an 8 kHz WAV with aufile.
"""
from __future__ import annotations

import array
import importlib.util
import itertools
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
import wave
from dataclasses import dataclass
from importlib.machinery import SourceFileLoader
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROOT_SCRIPT = REPO / "scripts" / "asterisk-chroot"
DIALPLAN_DIR = REPO / "dialplan"
PROMPTS_DIR = REPO / "prompts" / "sounds"

BOOT_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
MISSING_SOUND_PATTERNS = (
    re.compile(r"does not exist in any format"),
    re.compile(r"Unable to open .* \(format"),
    re.compile(r"File .* not found"),
)
# AGI commands that wait for the caller's digits: the moment a scripted caller presses one.
DIGIT_READING_COMMAND = re.compile(r"^(GET DATA|WAIT FOR DIGIT|GET OPTION|STREAM FILE \S+ \"?[0-9*#]+)", re.I)

TEST_CONTEXTS = r"""
; ---- test-only contexts, appended by tests/integration/asterisk_peer.py (not for production) ----
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
"""

STUB_CONFIGS = {
    # Modules we do not load still look for these; empty files keep the boot log readable.
    "acl.conf": "",
    "ccss.conf": "",
    "udptl.conf": "",
    "features.conf": "",
    "pjproject.conf": "",
    "sorcery.conf": "",
    "cdr.conf": "[general]\nenable=no\n",
    "cel.conf": "[general]\nenable=no\n",
    "manager.conf": "[general]\nenabled=no\n",
    "http.conf": "[general]\nenabled=no\n",
    "musiconhold.conf": "",
    "res_stun_monitor.conf": "",
}


class ChrootUnavailable(Exception):
    """The sid chroot could not be built: the real-Asterisk tests are skipped, loudly."""

    def __init__(self, message: str, mirror: bool = False):
        super().__init__(message)
        self.mirror = mirror  # the package mirror could not provide Asterisk (exit 3)


class AsteriskError(Exception):
    """Something failed once the PBX was up: a test failure, never a skip."""


def loud(message: str) -> None:
    """Print past pytest's capture (the controlling terminal, else the original stderr fd) so
    that a skipped real-PBX suite is seen while it happens; conftest repeats it in the summary."""
    banner = "!" * 78
    text = f"\n{banner}\n!!! {message}\n{banner}\n"
    try:
        with open("/dev/tty", "w") as tty:
            tty.write(text)
            return
    except OSError:
        pass
    sys.__stderr__.write(text)
    sys.__stderr__.flush()


def ensure_chroot() -> Path:
    """Build the chroot once (cached) and return its path; ChrootUnavailable when it cannot be."""
    if os.geteuid() != 0:
        raise ChrootUnavailable("the real-Asterisk tests need root (chroot)")
    if not CHROOT_SCRIPT.exists():
        raise ChrootUnavailable(f"{CHROOT_SCRIPT} is missing")
    done = subprocess.run([str(CHROOT_SCRIPT)], capture_output=True, text=True, timeout=900)
    if done.returncode in (3, 4):
        raise ChrootUnavailable(
            f"scripts/asterisk-chroot exit {done.returncode}: {done.stderr.strip()[-1500:]}",
            mirror=done.returncode == 3,
        )
    if done.returncode != 0:
        raise AsteriskError(f"scripts/asterisk-chroot failed ({done.returncode}): {done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_udp_port_pair() -> int:
    """An even UDP port whose successor is free too (RTP + RTCP)."""
    for _ in range(200):
        port = free_port(socket.SOCK_DGRAM) & ~1
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise AsteriskError("no free UDP port pair on 127.0.0.1")


def free_udp_range(width: int = 40) -> int:
    """The start of `width` consecutive free UDP ports (Asterisk's and baresip's RTP ranges)."""
    for _ in range(200):
        start = free_udp_port_pair()
        if start + width >= 65535:
            continue
        sockets = []
        try:
            for port in range(start, start + width):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return start
    raise AsteriskError(f"no {width} free consecutive UDP ports on 127.0.0.1")


def process_state(pid: int) -> str | None:
    """The one-letter state in /proc/PID/stat ('Z' for a zombie), None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def load_install_prompts():
    """scripts/install-prompts as a module (one implementation for the box and for the tests)."""
    loader = SourceFileLoader("install_prompts", str(REPO / "scripts" / "install-prompts"))
    spec = importlib.util.spec_from_loader("install_prompts", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def resolve_inside(chroot: Path, inside: str, hops: int = 20) -> str:
    """Follow symlinks as the chroot sees them (absolute targets are relative to the chroot)."""
    path = Path(inside)
    for _ in range(hops):
        parts = path.parts
        for index in range(2, len(parts) + 1):
            prefix = Path(*parts[:index])
            host = chroot / str(prefix).lstrip("/")
            if host.is_symlink():
                target = Path(os.readlink(host))
                if not target.is_absolute():
                    target = prefix.parent / target
                path = Path(os.path.normpath(target.joinpath(*parts[index:])))
                break
        else:
            return str(path)
    raise AsteriskError(f"symlink loop at {inside} in {chroot}")


def fill_globals(extensions_conf: str, values: dict[str, str]) -> str:
    """Rewrite `NAME=value` lines of [globals]; every name must be there (the one place they are set)."""
    for name, value in values.items():
        pattern = re.compile(rf"^{re.escape(name)}=.*$", re.M)
        if not pattern.search(extensions_conf):
            raise AsteriskError(f"dialplan/extensions.conf has no {name}= line in [globals]")
        extensions_conf = pattern.sub(f"{name}={value}", extensions_conf)
    return extensions_conf


def fill_pjsip_port(pjsip_conf: str, sip_port: int) -> str:
    filled, count = re.subn(r"^bind=127\.0\.0\.1:\d+$", f"bind=127.0.0.1:{sip_port}", pjsip_conf, flags=re.M)
    if count != 1:
        raise AsteriskError("dialplan/pjsip.conf must have one `bind=127.0.0.1:PORT` transport line")
    return filled


# ------------------------------------------------------------------------------------------ audio

@dataclass(frozen=True)
class AudioStats:
    seconds: float
    rms: float  # over the whole file, 16-bit full scale = 32768
    voiced_ratio: float  # share of 20 ms frames louder than the silence threshold
    loudness_spread: float  # stdev/mean of voiced frames' RMS: speech varies, a tone does not

    def looks_like_speech(self) -> bool:
        return self.seconds >= 1.0 and self.voiced_ratio >= 0.2 and self.loudness_spread >= 0.15


def audio_stats(path: Path, silence_rms: float = 300.0) -> AudioStats:
    """Frame-level loudness of a 16-bit mono WAV (what a caller heard)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise AsteriskError(f"{path}: expected 16-bit mono, got {wav.getsampwidth() * 8}-bit "
                                f"{wav.getnchannels()} channel(s)")
        rate = wav.getframerate()
        samples = array.array("h", wav.readframes(wav.getnframes()))
    if sys.byteorder == "big":
        samples.byteswap()
    frame = max(1, rate // 50)
    frame_rms = []
    for start in range(0, len(samples) - frame + 1, frame):
        chunk = samples[start:start + frame]
        frame_rms.append(math.sqrt(sum(s * s for s in chunk) / frame))
    total_rms = math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0
    voiced = [r for r in frame_rms if r > silence_rms]
    if len(voiced) >= 2:
        mean = sum(voiced) / len(voiced)
        spread = math.sqrt(sum((r - mean) ** 2 for r in voiced) / len(voiced)) / mean
    else:
        spread = 0.0
    return AudioStats(
        seconds=len(samples) / rate if rate else 0.0,
        rms=total_rms,
        voiced_ratio=len(voiced) / len(frame_rms) if frame_rms else 0.0,
        loudness_spread=spread,
    )


def write_silence_wav(path: Path, seconds: float, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\x00\x00" * int(seconds * rate))


# --------------------------------------------------------------------------------------- the PBX

@dataclass
class AgiLine:
    channel: str
    direction: str  # "Rx" = a command from our server, "Tx" = Asterisk's reply or environment
    text: str


AGI_LOG_LINE = re.compile(r"<(?P<channel>[^>]+)>AGI (?P<dir>Rx|Tx) (?:<<|>>) (?P<text>.*)$")
REPLY_RESULT = re.compile(r"^200 result=(-?\d*)")


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
        self.rtp_start = free_udp_range(200)
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

    # ------------------------------------------------------------------ configuration
    def write_config(self) -> None:
        for sub in ("etc", "log", "run", "spool", "lib", "cache", "data/sounds", "phone"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        etc = self.root / "etc"
        moddir = self._module_dir()
        (etc / "asterisk.conf").write_text(f"""[directories]
astetcdir => {self.inside}/etc
astmoddir => {moddir}
astvarlibdir => {self.inside}/lib
astdbdir => {self.inside}/lib
astkeydir => {self.inside}/lib
astdatadir => {self.inside}/data
astagidir => /usr/share/asterisk/agi-bin
astspooldir => {self.inside}/spool
astrundir => {self.inside}/run
astlogdir => {self.inside}/log
astcachedir => {self.inside}/cache
astsbindir => /usr/sbin

[options]
verbose = 3
debug = 0
maxload = 0
hideconnect = yes
transcode_via_sln = yes
""")
        (etc / "logger.conf").write_text("""[general]
dateformat = %F %T.%3q

[logfiles]
full => notice,warning,error,verbose(3),dtmf
messages => notice,warning,error
""")
        (etc / "rtp.conf").write_text(
            f"[general]\nrtpstart={self.rtp_start}\nrtpend={self.rtp_start + 199}\n"
        )
        for name, text in STUB_CONFIGS.items():
            (etc / name).write_text(text)
        # the stock tone tables (Playtones/indications); ours would only repeat them
        shutil.copyfile(self.chroot / "etc/asterisk/indications.conf", etc / "indications.conf")
        shutil.copyfile(DIALPLAN_DIR / "modules.conf", etc / "modules.conf")
        extensions = fill_globals(
            (DIALPLAN_DIR / "extensions.conf").read_text(),
            {"FASTAGI_HOST": self.fastagi_host, "FASTAGI_PORT": str(self.fastagi_port)},
        )
        (etc / "extensions.conf").write_text(extensions + TEST_CONTEXTS)
        (etc / "pjsip.conf").write_text(fill_pjsip_port((DIALPLAN_DIR / "pjsip.conf").read_text(), self.sip_port))
        self._build_data_dir()

    def _module_dir(self) -> str:
        found = sorted(self.chroot.glob("usr/lib/*/asterisk/modules"))
        if not found:
            raise AsteriskError(f"no Asterisk modules dir in {self.chroot}")
        return "/" + str(found[0].relative_to(self.chroot))

    def _build_data_dir(self) -> None:
        """astdatadir: the stock one, except sounds/, which gets the stock English set + our prompts."""
        stock = self.chroot / "usr/share/asterisk"
        data = self.root / "data"
        for entry in stock.iterdir():
            if entry.name != "sounds":
                (data / entry.name).symlink_to(Path("/usr/share/asterisk") / entry.name)
        target_inside = resolve_inside(self.chroot, "/usr/share/asterisk/sounds/en")
        stock_en_host = self.host_path(target_inside)
        for dirpath, _dirs, files in os.walk(stock_en_host):
            relative = Path(dirpath).relative_to(stock_en_host)
            (self.sounds_dir / "en" / relative).mkdir(parents=True, exist_ok=True)
            for name in files:
                (self.sounds_dir / "en" / relative / name).symlink_to(Path(target_inside) / relative / name)
        if self.prompts_dir is not None and self.prompts_dir.is_dir() and any(self.prompts_dir.iterdir()):
            installer = load_install_prompts()
            self.installed_prompts = installer.install_prompts(self.sounds_dir, self.prompts_dir)

    # ------------------------------------------------------------------ life cycle
    def start(self) -> "AsteriskPeer":
        self.write_config()
        console = open(self.root / "log" / "console.out", "wb")
        self.process = subprocess.Popen(
            ["chroot", str(self.chroot), "/usr/sbin/asterisk", "-f", "-n", "-C", str(self.conf_inside)],
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"},
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
            capture_output=True, text=True, timeout=timeout,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"},
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
        found = []
        for line in self.log_text().splitlines():
            match = AGI_LOG_LINE.search(line)
            if match and match["channel"].startswith(channel_prefix):
                found.append(AgiLine(match["channel"], match["dir"], match["text"]))
        return found

    def agi_script_completions(self) -> int:
        """How many AGI sessions ended, i.e. our server closed the socket (Asterisk never does)."""
        return sum(1 for line in self.log_text().splitlines() if re.search(r"AGI Script agi://\S+ completed", line))

    # ------------------------------------------------------------------ calls
    def originate(self, callerid: str | None, exten: str, dtmf: str = "",
                  press_delay_s: float = 0.4, timeout_s: float = 120) -> "LocalCall":
        """Place a call from `callerid` (None: no caller id) to `exten` of [subscribers].

        `dtmf`: what the caller does each time the server asks for a digit, one character per
        menu: a digit (or * #) is pressed, `h` hangs up there. With dtmf, this returns once every
        step was taken; the call may still be running (call.wait_ended())."""
        call = LocalCall(self, f"call{next(self._call_ids)}", callerid, exten)
        call.place()
        for step in dtmf:
            call.wait_for_digit_prompt(timeout_s)
            time.sleep(press_delay_s)  # a human reacts; also lets Asterisk enter the read
            if step == "h":
                call.hangup()
            else:
                call.press(step)
        return call


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


class LocalCall:
    """One call placed with `channel originate Local/...`, seen from the caller's side."""

    def __init__(self, pbx: AsteriskPeer, call_id: str, callerid: str | None, exten: str):
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


# ------------------------------------------------------------------------------------- baresip

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


# ------------------------------------------------------------------------- a tiny FastAGI peer

class TinyFastAgi:
    """A minimal FastAGI responder to prove the harness without our IVR: it sends `script` (AGI
    commands) to each call, records the environment and the replies, and closes the socket on a
    hangup (a bare HANGUP line, 511, or result=-1) like a well-behaved server must."""

    def __init__(self, script: list[str]):
        self.script = script
        self.sessions: list[dict] = []
        self._server = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self._server.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def start(self) -> "TinyFastAgi":
        self._acceptor = threading.Thread(target=self._accept, name="tiny-fastagi", daemon=True)
        self._acceptor.start()
        return self

    def _accept(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        session = {"env": {}, "replies": [], "closed": False}
        self.sessions.append(session)
        conn.settimeout(60)
        try:
            reader = conn.makefile("r", encoding="utf-8", newline="\n")
            while (line := reader.readline().rstrip("\n")):
                key, _, value = line.partition(": ")
                session["env"][key] = value
            for command in self.script:
                conn.sendall(command.encode() + b"\n")
                reply = reader.readline().rstrip("\n")
                if reply == "HANGUP":  # async notice: the reply of the command follows
                    reply = reader.readline().rstrip("\n")
                    session["replies"].append((command, "HANGUP+" + reply))
                    break
                session["replies"].append((command, reply))
                if not reply or reply.startswith("511") or reply.startswith("200 result=-1") and "endpos" not in reply:
                    break
        except OSError:
            pass
        finally:
            conn.close()
            session["closed"] = True

    def stop(self) -> None:
        self._stopping = True
        self._server.close()
        for thread in self._threads:
            thread.join(5)
