"""`selfcare serve` itself (Granian, its default processes) behind a real Kannel, with smsbox's
keep-alive pool at the recommended 32 connections and at Kannel's default 512: a burst from many
lines is answered whole, each message charged once, audit clean."""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import time
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from billing import services
from billing.core import Core
from billing.models import LedgerEntry
from tests import peers
from tests.e2e.test_serve import REPO, SELFCARE, read_ready_line
from tests.peers.kannel import KannelPeer, kannel_installed
from tests.peers.ports import free_port

pytestmark = pytest.mark.kannel

SECRET = "serve-kannel-secret"
LINES = 100
MESSAGES = 1000


def msisdn(line: int) -> str:
    return f"+99450{7200000 + line:07d}"


@pytest.fixture
def served(tmp_path):
    if not kannel_installed():
        if peers.required():
            pytest.fail("Kannel is not installed but real peers are required")
        pytest.skip("no Kannel: apt-get install kannel kannel-extras")
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    core = Core(url)
    try:
        core.upgrade_schema()
        for line in range(LINES):
            with core.uow() as uow:
                services.add_subscriber(uow, msisdn(line), "prepaid", balance=Decimal("100.00"), language="en")
    finally:
        core.dispose()
    http = free_port()
    env = {**os.environ, "SELFCARE_HTTP": f"127.0.0.1:{http}", "SELFCARE_AGI": f"127.0.0.1:{free_port()}",
           "SELFCARE_KANNEL_SECRET": SECRET, "SELFCARE_KANNEL_ALLOW": "127.0.0.1"}
    env.pop("SELFCARE_PROCESSES", None)
    process = subprocess.Popen([*SELFCARE, "--db", url, "serve"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        read_ready_line(process)
        yield url, http
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
            pytest.fail("selfcare serve did not stop on SIGTERM")


@pytest.mark.parametrize("pool", [32, 512])
def test_a_burst_through_kannel_is_answered_whole_and_charged_once(served, tmp_path, pool):
    url, http = served
    peer = KannelPeer(tmp_path / "kannel", http, SECRET, log_level=2, max_pending=pool)
    received = []
    try:
        peer.start(fakesmsc=False)
        peer.start_fakesmsc([f"{msisdn(line)} 2112 text " for line in range(LINES)], count=MESSAGES)
        deadline = time.monotonic() + 120
        while len(received) < MESSAGES and time.monotonic() < deadline:
            try:
                received.append(peer.received.get(timeout=1))
            except queue.Empty:
                continue
    finally:
        peer.stop()

    assert len(received) == MESSAGES
    assert all(mt.text.startswith("Balance: ") for mt in received), {mt.text for mt in received}
    core = Core(url)
    try:
        with core.uow() as uow:
            charges = uow.session.scalar(
                select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "sms:2112"))
            assert charges == MESSAGES
            assert services.audit(uow) == []
    finally:
        core.dispose()
