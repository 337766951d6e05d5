"""A real Kannel (Debian's bearerbox + smsbox, fakesmsc as the SMSC) in front of our app.

    fakesmsc --MO--> bearerbox (smsc = fake) --> smsbox --get-url--> our app (app_server.py)
    fakesmsc <--MT-- bearerbox <-------------- smsbox <--text/plain-- our app
                                               smsbox <--sendsms----- our dispatcher (outbound)

Everything binds 127.0.0.1 on free ports and lives in one work directory (config, logs). What
fakesmsc receives is read from its debug log (fakesmsc_log.py).
"""
from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tests.peers.errors import KannelError
from tests.peers.fakesmsc_log import GOT, MT, SENT, Reassembly, parse_mt
from tests.peers.ports import free_port, wait_for_port

BEARERBOX = shutil.which("bearerbox") or "/usr/sbin/bearerbox"
SMSBOX = shutil.which("smsbox") or "/usr/sbin/smsbox"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"


def kannel_installed() -> bool:
    return all(os.access(p, os.X_OK) for p in (BEARERBOX, SMSBOX, FAKESMSC))


CONFIG = """\
group = core
admin-port = {admin_port}
admin-interface = 127.0.0.1
admin-password = {admin_password}
smsbox-port = {smsbox_port}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-file = "{work}/bearerbox.log"
log-level = {log_level}
access-log = "{work}/access.log"

group = smsc
smsc = fake
smsc-id = fake
port = {fake_port}
our-host = 127.0.0.1
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
sendsms-port = {sendsms_port}
sendsms-interface = 127.0.0.1
log-file = "{work}/smsbox.log"
log-level = {log_level}
mo-recode = true
max-pending-requests = {max_pending}

group = sendsms-user
username = {sendsms_user}
password = {sendsms_password}
concatenation = true
max-messages = 3

group = sms-service
keyword = default
catch-all = true
get-url = "{get_url}"
accept-x-kannel-headers = true
omit-empty = true
concatenation = true
max-messages = 3
"""


class KannelPeer:
    """bearerbox + smsbox + an interactive fakesmsc, all stopped by `stop()` (use it in `finally`)."""

    def __init__(self, work: Path, app_port: int, secret: str, app_path: str = "/sms/kannel", log_level: int = 1,
                 max_pending: int = 32):
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.admin_port, self.smsbox_port = free_port(), free_port()
        self.fake_port, self.sendsms_port = free_port(), free_port()
        self.admin_password = "admin-" + os.urandom(4).hex()
        self.sendsms_user, self.sendsms_password = "selfcare", "pw-" + os.urandom(4).hex()
        query = f"from=%p&to=%P&text=%a&id=%I&secret={urllib.parse.quote(secret)}"
        self.get_url = f"http://127.0.0.1:{app_port}{app_path}?{query}"
        self.config = self.work / "kannel.conf"
        self.max_pending = max_pending  # smsbox's keep-alive pool to the app (its max-pending-requests)
        self.config.write_text(CONFIG.format(work=self.work, get_url=self.get_url, log_level=log_level,
                                             max_pending=max_pending, **{
            k: getattr(self, k) for k in ("admin_port", "admin_password", "smsbox_port", "fake_port",
                                          "sendsms_port", "sendsms_user", "sendsms_password")}))
        self._procs: list[subprocess.Popen] = []
        self.fakesmsc: subprocess.Popen | None = None
        self.received: "queue.Queue[MT]" = queue.Queue()
        self._sent_count = 0
        self.parts_received = 0
        self._sent_cond = threading.Condition()

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"

    # -- start / stop ----------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], **kw) -> subprocess.Popen:
        out = open(self.work / f"{name}.out", "wb")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.work,
                                start_new_session=True, **kw)
        self._procs.append(proc)
        return proc

    def start(self, fakesmsc: bool = True) -> "KannelPeer":
        try:
            self._spawn("bearerbox", [BEARERBOX, "-v", "1", str(self.config)])
            wait_for_port(self.smsbox_port)  # (not the fake port: a probe would count as an SMSC client)
            self._spawn("smsbox", [SMSBOX, "-v", "1", str(self.config)])
            wait_for_port(self.sendsms_port)
            self._wait_smsbox_connected()
            if fakesmsc:
                self.start_fakesmsc()
        except Exception:
            self.stop()
            raise
        return self

    def _status(self) -> str:
        url = f"http://127.0.0.1:{self.admin_port}/status.txt?password={self.admin_password}"
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.read().decode("utf-8", "replace")

    def _wait_smsbox_connected(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if re.search(r"Box connections:\s*\n\s*smsbox:", self._status()):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise KannelError(f"smsbox did not connect to bearerbox; see {self.work}/smsbox.out")

    def start_fakesmsc(self, messages: list[str] | None = None, count: int | None = None,
                       interval_s: float = 0.0) -> subprocess.Popen:
        """Interactive (MO lines written later with `send`) or a burst of `count` from `messages`."""
        argv = [FAKESMSC, "-v", "0", "-H", "127.0.0.1", "-r", str(self.fake_port), "-i", str(interval_s)]
        if messages:
            argv += ["-m", str(count or len(messages))] + messages
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        self._procs.append(proc)
        self.fakesmsc = proc
        threading.Thread(target=self._read_fakesmsc, args=(proc,), name="fakesmsc-reader", daemon=True).start()
        self._wait_fake_connected()
        return proc

    def _wait_fake_connected(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if re.search(rf"FAKE:{self.fake_port} \(online", self._status()):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise KannelError("fakesmsc did not come online in bearerbox")

    def _read_fakesmsc(self, proc: subprocess.Popen) -> None:
        log = open(self.work / "fakesmsc.log", "a", encoding="utf-8", errors="replace")
        joiner = Reassembly()
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace")
            log.write(line)
            got = GOT.search(line)
            if got:
                self.parts_received += 1
                whole = joiner.add(parse_mt(got.group(2)))
                if whole is not None:
                    self.received.put(whole)
                continue
            sent = SENT.search(line)
            if sent:
                with self._sent_cond:
                    self._sent_count = int(sent.group(1))
                    self._sent_cond.notify_all()
        log.close()

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                try:
                    # fakesmsc only stops on SIGINT; the boxes shut down cleanly on it too.
                    os.killpg(proc.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        for proc in reversed(self._procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self._procs.clear()

    # -- talking to it ---------------------------------------------------------------------------

    def send(self, sender: str, receiver: str, text: str = "", timeout_s: float = 10.0) -> None:
        """One MO SMS from the fake SMSC. A blank SMS is `"<from> <to> text "` (trailing space);
        non-ASCII text goes as URL-encoded UTF-16BE (`ucs2`), as a handset would send it."""
        if text and not text.isascii():
            body = urllib.parse.quote_from_bytes(text.encode("utf-16-be"))
            line = f"{sender} {receiver} ucs2 {body}\n"
        else:
            line = f"{sender} {receiver} text {text}\n"
        with self._sent_cond:
            before = self._sent_count
            # fakesmsc reads stdin with stdio: one line at a time, or lines wait in its buffer.
            self.fakesmsc.stdin.write(line.encode())
            self.fakesmsc.stdin.flush()
            if not self._sent_cond.wait_for(lambda: self._sent_count > before, timeout=timeout_s):
                raise KannelError(f"fakesmsc did not send {line.strip()!r}")

    def expect(self, receiver: str, timeout_s: float = 15.0) -> MT:
        """The next MT message for `receiver` (others received meanwhile are kept)."""
        deadline = time.monotonic() + timeout_s
        kept = []
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise KannelError(f"no MT message for {receiver} within {timeout_s}s")
                try:
                    mt = self.received.get(timeout=left)
                except queue.Empty:
                    continue
                if mt.receiver == receiver:
                    return mt
                kept.append(mt)
        finally:
            for mt in kept:
                self.received.put(mt)

    def ask(self, sender: str, receiver: str, text: str = "", timeout_s: float = 15.0) -> MT:
        self.send(sender, receiver, text)
        return self.expect(sender, timeout_s)

    def access_log(self) -> str:
        path = self.work / "access.log"
        return path.read_text("utf-8", "replace") if path.exists() else ""

    def sent_flags(self, receiver: str) -> list[tuple[str, str]]:
        """(mclass, coding) of each MT bearerbox sent to `receiver`, from its access log
        (`[flags:mclass:coding:mwi:compress:dlrmask]`; -1 means unset)."""
        found = []
        for line in self.access_log().splitlines():
            if line.split(" ", 3)[2:3] == ["Sent"] and f"[to:{receiver}]" in line:
                flags = re.search(r"\[flags:(-?\d+):(-?\d+):", line)
                if flags:
                    found.append((flags.group(1), flags.group(2)))
        return found

    def sendsms(self, to: str, text: str, sender: str = "2112", **extra) -> tuple[int, str]:
        query = {"username": self.sendsms_user, "password": self.sendsms_password, "from": sender, "to": to,
                 "text": text, "charset": "utf-8", **extra}
        url = f"{self.sendsms_url}?{urllib.parse.urlencode(query)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
