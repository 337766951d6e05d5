"""`selfcare serve` killed in the middle of an SMS burst (`kill -9` of the whole tree, or SIGTERM),
started again, and every request retried with its key, as Kannel retries a get-url that failed:
each message is charged exactly once, the retries answer what was first answered, audit is clean."""
from __future__ import annotations

import http.client
import os
import signal
import subprocess
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from billing import services
from billing.core import Core
from billing.models import LedgerEntry, Operation
from tests.e2e.test_serve import REPO, SELFCARE, read_ready_line, selfcare
from tests.peers.ports import free_port

SECRET = "crash-test-secret"
LINES = 100
MESSAGES = 1500
CLIENTS = 32  # keep-alive connections, like smsbox's pool
KILL_AFTER_REPLIES = 300
SMS_FEE = Decimal("0.02")  # tariffs.toml: a balance SMS to 2112 on the demo tariff
START_BALANCE = Decimal("1000.00")


def msisdn(line: int) -> str:
    return f"+99450{7100000 + line:07d}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'billing.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    selfcare(url, "db", "upgrade")
    core = Core(url)
    try:
        for line in range(LINES):
            with core.uow() as uow:
                services.add_subscriber(uow, msisdn(line), "prepaid", balance=START_BALANCE)
    finally:
        core.dispose()
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


def path_for(number: int) -> str:
    query = urllib.parse.urlencode({"from": msisdn(number % LINES), "to": "2112", "text": "",
                                    "id": f"crash-{number}", "secret": SECRET})
    return f"/sms/kannel?{query}"


class Client:
    """One keep-alive connection sending GET /sms/kannel the way smsbox does."""

    def __init__(self, port: int):
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> str | None:
        """The reply text, or None when the server was not there to answer."""
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.conn.request("GET", path)
            answer = self.conn.getresponse()
            body = answer.read().decode()
            assert answer.status == 200, (answer.status, body)
            return body
        except (OSError, http.client.HTTPException):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return None


def burst(port: int, numbers: list[int], replies: dict, stop_on_failure: bool) -> None:
    """Send `numbers` over CLIENTS connections; record each reply by message number."""
    pending = iter(numbers)
    lock = threading.Lock()

    def run() -> None:
        client = Client(port)
        while True:
            with lock:
                number = next(pending, None)
            if number is None:
                return
            text = client.get(path_for(number))
            if text is not None:
                replies[number] = text
            elif stop_on_failure:
                return  # the server is gone: Kannel would queue this one for a retry

    with ThreadPoolExecutor(CLIENTS) as pool:
        for _ in range(CLIENTS):
            pool.submit(run)


def ledger(db_url: str) -> tuple[dict[str, int], list, list]:
    """(ledger entries per crash-test key, audit problems, each line's balance)."""
    core = Core(db_url)
    try:
        with core.uow() as uow:
            rows = uow.session.execute(
                select(Operation.key, func.count(LedgerEntry.id))
                .join(LedgerEntry, LedgerEntry.operation_id == Operation.id)
                .where(Operation.key.like("kannel:crash-%")).group_by(Operation.key)).all()
            problems = services.audit(uow)
            balances = [services.balance_report(uow, msisdn(line)).balance for line in range(LINES)]
        return {key: count for key, count in rows}, problems, balances
    finally:
        core.dispose()


@pytest.mark.parametrize("how", ["kill-9", "sigterm"])
def test_a_burst_cut_by_a_crash_and_retried_is_charged_exactly_once(db_url, how):
    port = free_port()
    first: dict[int, str] = {}
    process = start_serve(db_url, port)
    try:
        sender = threading.Thread(target=burst, args=(port, list(range(MESSAGES)), first, True))
        sender.start()
        deadline = time.monotonic() + 60
        while len(first) < KILL_AFTER_REPLIES and time.monotonic() < deadline and sender.is_alive():
            time.sleep(0.005)
        if how == "kill-9":
            os.killpg(process.pid, signal.SIGKILL)  # the parent and every serving process at once
        else:
            process.send_signal(signal.SIGTERM)  # graceful: requests in hand finish, then it stops
        sender.join(60)
        process.wait(30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    assert KILL_AFTER_REPLIES <= len(first) < MESSAGES, "the burst was not cut in the middle"
    if how == "sigterm":
        assert process.returncode == 0

    again: dict[int, str] = {}
    process = start_serve(db_url, port)
    try:
        burst(port, list(range(MESSAGES)), again, stop_on_failure=False)  # every one, with its key
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)

    assert sorted(again) == list(range(MESSAGES))
    assert {n: again[n] for n in first} == first  # a retry is answered what was answered the first time
    per_key, problems, balances = ledger(db_url)
    assert len(per_key) == MESSAGES and set(per_key.values()) == {1}
    assert problems == []
    assert balances == [START_BALANCE - SMS_FEE * (MESSAGES // LINES)] * LINES
