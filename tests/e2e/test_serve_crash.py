"""`selfcare serve` killed in the middle of an SMS burst (`kill -9` of the whole tree, or SIGTERM),
started again, and every request retried with its key, as Kannel retries a get-url that failed:
each message is charged exactly once, the retries answer what was first answered, audit is clean."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from tests.drills.sms_burst import SECRET, SMS_FEE, START_BALANCE, Burst, add_lines, ledger_per_key
from tests.e2e.test_serve import REPO, SELFCARE, read_ready_line, selfcare
from tests.peers.ports import free_port

LINES = 100
MESSAGES = 1500
CLIENTS = 32  # keep-alive connections, like smsbox's pool
KILL_AFTER_REPLIES = 300


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'billing.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    selfcare(url, "db", "upgrade")
    add_lines(url, LINES)
    return url


def start_serve(db_url: str, http_port: int) -> subprocess.Popen:
    env = {**os.environ, "SELFCARE_HTTP": f"127.0.0.1:{http_port}", "SELFCARE_AGI": f"127.0.0.1:{free_port()}",
           "SELFCARE_KANNEL_SECRET": SECRET}
    env.pop("SELFCARE_PROCESSES", None)
    # its own session, so that the whole tree can be killed at once, as a crash or an OOM kill would
    process = subprocess.Popen([*SELFCARE, "--db", db_url, "serve"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    read_ready_line(process)
    return process


def answered(burst: Burst) -> dict[int, str]:
    """Message number -> reply, for the messages the server answered."""
    return {n: text for n, (text, *_when) in list(burst.replies.items()) if text is not None}


@pytest.mark.parametrize("how", ["kill-9", "sigterm"])
def test_a_burst_cut_by_a_crash_and_retried_is_charged_exactly_once(db_url, how):
    port = free_port()
    cut = Burst("crash", LINES)
    process = start_serve(db_url, port)
    try:
        sender = threading.Thread(target=cut.send, args=([port], list(range(MESSAGES)), CLIENTS))
        sender.start()
        deadline = time.monotonic() + 60
        while len(answered(cut)) < KILL_AFTER_REPLIES and time.monotonic() < deadline and sender.is_alive():
            time.sleep(0.005)
        if how == "kill-9":
            os.killpg(process.pid, signal.SIGKILL)  # the parent and every serving process at once
        else:
            process.send_signal(signal.SIGTERM)  # graceful: requests in hand finish, then it stops
        sender.join(60)  # the rest fail fast once it is gone: Kannel would queue them for a retry
        process.wait(30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    first = answered(cut)
    assert KILL_AFTER_REPLIES <= len(first) < MESSAGES, "the burst was not cut in the middle"
    if how == "sigterm":
        assert process.returncode == 0

    retried = Burst("crash", LINES)
    process = start_serve(db_url, port)
    try:
        retried.send([port], list(range(MESSAGES)), CLIENTS)  # every one again, with its key
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)

    again = answered(retried)
    assert sorted(again) == list(range(MESSAGES))
    assert {n: again[n] for n in first} == first  # a retry is answered what was answered the first time
    assert retried.other() == [] and len(retried.charged()) == MESSAGES
    per_key, problems, balances = ledger_per_key(db_url, "crash", LINES)
    assert len(per_key) == MESSAGES and set(per_key.values()) == {1}
    assert problems == []
    assert balances == [START_BALANCE - SMS_FEE * (MESSAGES // LINES)] * LINES
