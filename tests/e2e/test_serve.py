"""`selfcare serve` as an operator starts it: one process tree answering HTTP and FastAGI."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from selfcare.serve import listening_sockets
from tests.peers.ports import free_port

REPO = Path(__file__).resolve().parents[2]
SELFCARE = [sys.executable, "-c", "from selfcare.cli import main; main()"]


def selfcare(db, *args, env=None):
    return subprocess.run([*SELFCARE, "--db", db, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=True)


def wait_until_up(port: int, process, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"selfcare serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("selfcare serve did not come up")


def agi_call(port: int, callerid: str, script: str, digits: str) -> list[str]:
    """A FastAGI session the way Asterisk runs it: environment, then one reply per command."""
    commands = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, sock.makefile("rw") as peer:
        for name, value in (("agi_network", "yes"), ("agi_network_script", script), ("agi_channel", "PJSIP/e2e-1"),
                            ("agi_language", "en"), ("agi_type", "PJSIP"), ("agi_uniqueid", f"e2e.{time.time()}"),
                            ("agi_callerid", callerid), ("agi_dnid", script)):
            peer.write(f"{name}: {value}\n")
        peer.write("\n")
        peer.flush()
        keys = iter(digits)
        while True:
            line = peer.readline().strip()
            if not line:
                return commands
            commands.append(line)
            if line.startswith("WAIT FOR DIGIT"):
                peer.write(f"200 result={ord(next(keys, '9'))}\n")
            elif line == "HANGUP":
                peer.write("200 result=1\nHANGUP\n")
            else:
                peer.write("200 result=0 endpos=8000\n")
            peer.flush()


def read_ready_line(process, seconds: float = 60) -> str:
    """The first line `selfcare serve` writes on stdout, read without blocking past `seconds`."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(seconds)
    if not lines:
        raise AssertionError("selfcare serve wrote no ready line")
    return lines[0]


@pytest.fixture(params=[1, 2, None], ids=["one-process", "two-processes", "default-processes"])
def served(request, tmp_path):
    db = f"sqlite:///{tmp_path / 'selfcare.db'}"
    selfcare(db, "db", "upgrade")
    selfcare(db, "demo")
    http, agi = free_port(), free_port()
    env = {**os.environ, "SELFCARE_HTTP": f"127.0.0.1:{http}", "SELFCARE_AGI": f"127.0.0.1:{agi}"}
    env.pop("SELFCARE_PROCESSES", None)
    processes = [] if request.param is None else ["--processes", str(request.param)]
    process = subprocess.Popen([*SELFCARE, "--db", db, "serve", *processes], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert read_ready_line(process) == f"selfcare ready: http://127.0.0.1:{http}/health\n"
        wait_until_up(http, process)
        # ready means every serving process listens on both ports (the default on SQLite: one per core)
        expected = request.param or len(os.sched_getaffinity(0))
        assert (listening_sockets(http), listening_sockets(agi)) == (expected, expected)
        yield db, http, agi
    finally:
        stop_on_sigterm(process)


def stop_on_sigterm(process: subprocess.Popen) -> None:
    """The graceful stop every serve fixture ends with: SIGTERM, then exit status 0 within 30 s."""
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(30) == 0
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("selfcare serve did not stop on SIGTERM")


def test_serve_answers_ussd_and_calls_and_stops_on_sigterm(served):
    db, http, agi = served
    form = urllib.parse.urlencode({"sessionId": "e2e-1", "serviceCode": "*650#", "phoneNumber": "+994551234567",
                                   "text": ""}).encode()
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/ussd", data=form, timeout=10) as answer:
        assert answer.read().decode().startswith("END ")

    heard = agi_call(agi, "+994501234567", "2112", digits="9")
    assert heard[0] == "ANSWER"
    assert any(c.startswith("STREAM FILE welcome-2112") for c in heard)
    assert heard[-1] == "HANGUP"

    audit = subprocess.run([*SELFCARE, "--db", db, "audit"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert audit.returncode == 0, audit.stdout
