"""Sign-in through the real peers: two `selfcare serve` process trees on one PostgreSQL database,
each with its own HTTP port and its own worker sending through a real Kannel's sendsms. The code
arrives at Kannel's fake SMSC as the subscriber would read it; five wrong codes spread over the two
serving processes use up the challenge, so the sixth try is refused by either, even with the right
code; a new code taken from the SMS signs in on one process and the token reads on the other."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.error
import urllib.request
from decimal import Decimal

import pytest

from billing import services
from billing.core import Core
from tests import peers
from tests.e2e.test_serve import REPO, SELFCARE, read_ready_line
from tests.peers.kannel import KannelPeer, kannel_installed
from tests.peers.ports import free_port

pytestmark = [pytest.mark.kannel, pytest.mark.postgres]

SECRET = "signin-kannel-secret"
LINE = "+994501237788"
CODE = re.compile(r"^Your sign-in code: ([0-9]{6})\. Valid for 5 minutes\. Never tell it to anyone: we never ask for it\.$")


def call(port: int, method: str, path: str, body: dict | None = None, token: str | None = None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def start_serve(url: str, peer: KannelPeer) -> tuple[subprocess.Popen, int]:
    http = free_port()
    env = {**os.environ, "SELFCARE_HTTP": f"127.0.0.1:{http}", "SELFCARE_AGI": f"127.0.0.1:{free_port()}",
           "SELFCARE_KANNEL_SECRET": SECRET, "SELFCARE_KANNEL_ALLOW": "127.0.0.1",
           "SELFCARE_SMS_TRANSPORT": "kannel", "SELFCARE_KANNEL_SENDSMS_URL": peer.sendsms_url,
           "SELFCARE_KANNEL_USERNAME": peer.sendsms_user, "SELFCARE_KANNEL_PASSWORD": peer.sendsms_password}
    env.pop("SELFCARE_PROCESSES", None)
    process = subprocess.Popen([*SELFCARE, "--db", url, "serve", "--processes", "1"], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    read_ready_line(process)
    return process, http


def stop_serve(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@pytest.fixture
def two_serving(tmp_path, pg_url):
    if not kannel_installed():
        if peers.required():
            pytest.fail("Kannel is not installed but real peers are required")
        pytest.skip("no Kannel: apt-get install kannel kannel-extras")
    core = Core(pg_url)
    try:
        core.upgrade_schema()
        with core.uow() as uow:
            services.add_subscriber(uow, LINE, "prepaid", balance=Decimal("7.25"), language="en")
    finally:
        core.dispose()
    peer = KannelPeer(tmp_path / "kannel", free_port(), SECRET)
    servers = []
    try:
        peer.start()
        for _ in range(2):
            servers.append(start_serve(pg_url, peer))
        yield peer, [port for _, port in servers]
    finally:
        for process, _ in servers:
            stop_serve(process)
        peer.stop()


def code_by_sms(peer: KannelPeer) -> str:
    mt = peer.expect(LINE, timeout_s=30)  # the worker sends the outbox every 5 s
    found = CODE.match(mt.text)
    assert found, mt.text
    return found.group(1)


def test_the_code_comes_by_sms_and_the_sixth_try_is_refused_by_either_serving_process(two_serving):
    peer, ports = two_serving
    status, asked = call(ports[0], "POST", "/signin/code", {"msisdn": "0501237788"})
    assert status == 202
    code = code_by_sms(peer)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    tries = [call(ports[i % 2], "POST", "/signin/verify", {"request_id": asked["request_id"], "msisdn": LINE,
                                                            "code": wrong}) for i in range(5)]
    assert [(s, b["error"]["code"], b["error"]["tries_left"]) for s, b in tries] == [
        (400, "wrong-code", left) for left in (4, 3, 2, 1, 0)]
    for port in ports:
        status, refused = call(port, "POST", "/signin/verify", {"request_id": asked["request_id"], "msisdn": LINE,
                                                                 "code": code})
        assert (status, refused["error"]["code"]) == (429, "too-many-wrong-codes")

    status, again = call(ports[1], "POST", "/signin/code", {"msisdn": LINE})
    status, signed = call(ports[1], "POST", "/signin/verify", {"request_id": again["request_id"], "msisdn": LINE,
                                                                "code": code_by_sms(peer)})
    assert status == 200 and signed["msisdn"] == LINE
    status, figures = call(ports[0], "GET", "/balance", token=signed["token"])
    assert (status, figures["msisdn"], figures["plan"], figures["balance"]) == (200, LINE, "prepaid", "7.2500")
