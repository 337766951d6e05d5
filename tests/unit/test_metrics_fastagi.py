"""What the FastAGI server counts: calls by service and outcome, think time, live calls, and the
call's id on its log lines (through the scripted Asterisk of tests/unit/ivr_support.py)."""
from __future__ import annotations

import logging
import socket
import time

import pytest
from prometheus_client import REGISTRY

from ivr.fastagi import FastAgiServer
from selfcare import logs
from tests.unit.ivr_support import PREPAID_AZ, MockAsterisk, ScriptedCaller, env_for, make_core


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def server(tmp_path):
    core = make_core(tmp_path)
    server = FastAgiServer(core, "127.0.0.1", 0).start()
    yield server
    server.stop()
    core.dispose()


def call(server, script="2112", keys="9"):
    return MockAsterisk(ScriptedCaller(keys)).call(server.address, env_for(script, PREPAID_AZ))


def wait_until(condition, timeout_s=5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_a_call_is_counted_by_service_and_outcome_and_each_command_is_timed(server):
    completed = dict(channel="ivr", service="2112", outcome="completed")
    before = sample("selfcare_requests_total", **completed), sample("selfcare_agi_think_seconds_count")
    asterisk = call(server)
    assert asterisk.commands[-1] == "HANGUP"
    assert wait_until(lambda: sample("selfcare_requests_total", **completed) == before[0] + 1)
    # every command we sent followed a line read from Asterisk (the environment, then each reply)
    assert sample("selfcare_agi_think_seconds_count") - before[1] == len(asterisk.commands)


def test_an_unknown_service_is_counted_under_one_name(server):
    unknown = dict(channel="ivr", service="unknown", outcome="unknown-service")
    before = sample("selfcare_requests_total", **unknown)
    call(server, script="no-such-line")
    assert wait_until(lambda: sample("selfcare_requests_total", **unknown) == before + 1)


def test_a_call_in_progress_is_a_live_call_until_its_socket_closes(server):
    before = sample("selfcare_live_calls")
    with socket.create_connection(server.address, timeout=5) as sock, sock.makefile("rw") as peer:
        peer.write("\n".join(env_for("2112", PREPAID_AZ)) + "\n\n")
        peer.flush()
        assert peer.readline().strip() == "ANSWER"
        assert sample("selfcare_live_calls") == before + 1
    assert wait_until(lambda: server.live_calls() == 0)
    assert sample("selfcare_live_calls") == before


def test_the_lines_logged_for_a_call_carry_its_id_and_masked_number(server, caplog):
    logs._capture_context()
    with caplog.at_level(logging.INFO, logger="ivr"):
        call(server)
        assert wait_until(lambda: any("ended" in r.getMessage() for r in caplog.records))
    ended = next(r for r in caplog.records if "ended" in r.getMessage())
    assert ended.selfcare == {"call_id": "1795368681.11", "number": "+99450***4567"}  # the transcript's call
