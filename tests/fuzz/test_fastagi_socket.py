"""Fuzzing the FastAGI server over a real socket: random bytes as the environment and as Asterisk's
replies. Every connection ends (the server closes it), no call is left live, the server keeps
accepting real calls afterwards, and no money moved without a call that charges."""
from __future__ import annotations

import socket
import threading
import time
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from billing import services
from billing.clock import FixedClock
from ivr.fastagi import FastAgiServer
from tests.conftest import START, make_core
from tests.e2e.test_serve import agi_call

PREPAID = "+994501234567"
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def agi(tmp_path_factory):
    core = make_core(f"sqlite:///{tmp_path_factory.mktemp('agi-fuzz') / 'agi.db'}", FixedClock(START))
    with core.uow() as uow:
        services.add_subscriber(uow, PREPAID, "prepaid", balance=Decimal("10.00"), language="en")
    threads_before = set(threading.enumerate())
    server = FastAgiServer(core, "127.0.0.1", 0).start()
    yield core, server
    server.stop()
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    core.dispose()
    assert leftover == [], f"threads left behind: {leftover}"


def wait_until_idle(server, timeout_s: float = 10.0) -> int:
    deadline = time.monotonic() + timeout_s
    while server.live_calls() and time.monotonic() < deadline:
        time.sleep(0.005)
    return server.live_calls()


def balance(core) -> Decimal:
    with core.reader() as uow:
        return services.balance_report(uow, PREPAID).balance


def converse(port: int, environment: bytes, replies: list[bytes]) -> None:
    """Send the environment and every reply at once, then hang up (EOF), and read until the server
    closes the call: its reader meets the replies in order, whatever it asked."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(environment + b"".join(replies))
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass


real_env = (b"agi_network: yes\nagi_network_script: 2112\nagi_channel: PJSIP/fuzz\nagi_language: en\n"
            b"agi_uniqueid: fuzz.1\nagi_callerid: " + PREPAID.encode() + b"\n\n")
environments = (st.binary(max_size=400)
                | st.builds(lambda head, tail: head + tail, st.sampled_from([real_env, real_env[:40], b"\n"]),
                            st.binary(max_size=100)))
replies = st.lists(st.sampled_from([b"200 result=0\n", b"200 result=49\n", b"200 result=-1\n", b"HANGUP\n",
                                    b"511 dead\n", b"520-x\n", b"\xff\xfe\n", b"200 result=0 endpos=8000\n"])
                   | st.binary(max_size=60), max_size=12)


@FUZZ
@given(environment=environments, answers=replies)
@example(environment=b"\xff\xfe\x00garbage\n\n", answers=[])
@example(environment=real_env, answers=[b"200 result=0\n", b"\x80\x81 not utf-8\n"])
def test_random_bytes_over_fastagi_end_the_call_and_the_server_keeps_serving(agi, environment, answers):
    core, server = agi
    before = balance(core)
    converse(server.port, environment, answers)
    assert wait_until_idle(server) == 0
    assert balance(core) == before  # a balance call is free; nothing else may move money here
    with core.reader() as uow:
        assert services.audit(uow) == []


def test_after_the_fuzzing_a_real_call_is_still_served(agi):
    _core, server = agi
    heard = agi_call(server.port, PREPAID, "2112", digits="9")
    assert heard[0] == "ANSWER" and any(c.startswith("STREAM FILE welcome-2112") for c in heard)
