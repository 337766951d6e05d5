"""A real Prometheus scrapes a real `selfcare serve` (two serving processes) during a short SMS and
FastAGI load, and its HTTP API answers with the counts the load produced."""
from __future__ import annotations

import os
import subprocess
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import peers
from tests.e2e.test_serve import REPO, SELFCARE, agi_call, read_ready_line, selfcare, stop_on_sigterm, wait_until_up
from tests.peers import prometheus
from tests.peers.ports import free_port

pytestmark = pytest.mark.prometheus

SECRET = "metrics-drill"
PREPAID, POSTPAID = "0501234567", "0551234567"  # demo lines (billing/demo.py)


@pytest.fixture
def served(tmp_path):
    db = f"sqlite:///{tmp_path / 'selfcare.db'}"
    selfcare(db, "db", "upgrade")
    selfcare(db, "demo")
    http, agi = free_port(), free_port()
    env = {**os.environ, "SELFCARE_HTTP": f"127.0.0.1:{http}", "SELFCARE_AGI": f"127.0.0.1:{agi}",
           "SELFCARE_KANNEL_SECRET": SECRET, "SELFCARE_LOG_LEVEL": "WARNING"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # serve makes its own, fresh
    process = subprocess.Popen([*SELFCARE, "--db", db, "serve", "--processes", "2"], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert read_ready_line(process) == f"selfcare ready: http://127.0.0.1:{http}/health\n"
        wait_until_up(http, process)
        yield db, http, agi
    finally:
        stop_on_sigterm(process)


@pytest.fixture
def scraper(request, tmp_path):
    if prometheus.binary() is None:  # before serve starts: nothing to stop then
        message = "prometheus is not installed (scripts/install-deps installs Debian's package)"
        if peers.required():
            pytest.fail(message)
        pytest.skip(message)
    _, http, _ = request.getfixturevalue("served")
    with prometheus.Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{http}"], interval_s=1) as running:
        yield running


def kannel_sms(http: int, sender: str, to: str, message_id: str) -> str:
    query = urllib.parse.urlencode({"from": sender, "to": to, "text": "", "id": message_id, "secret": SECRET})
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/sms/kannel?{query}", timeout=30) as answer:
        assert answer.status == 200
        return answer.read().decode()


def test_prometheus_scrapes_the_counts_of_an_sms_and_fastagi_load(scraper, served):
    db, http, agi = served
    with ThreadPoolExecutor(8) as pool:
        sms = [pool.submit(kannel_sms, http, PREPAID, "2112", f"prom-{n}") for n in range(60)]
        sms += [pool.submit(kannel_sms, http, POSTPAID, "650", f"prom-650-{n}") for n in range(20)]
        calls = [pool.submit(agi_call, agi, "+994501234567", "2112", "9") for _ in range(12)]
        calls += [pool.submit(agi_call, agi, "+994551234567", "650", "9") for _ in range(6)]
        replies = [f.result() for f in sms]
        heard = [f.result() for f in calls]
        # then Kannel retrying five of them (same id): answered from memory, charged once
        retries = list(pool.map(lambda n: kannel_sms(http, PREPAID, "2112", f"prom-{n}"), range(5)))
    assert all(reply.startswith("Balans") for reply in replies[:60])
    assert retries == replies[:5]
    assert all(commands[0] == "ANSWER" and commands[-1] == "HANGUP" for commands in heard)

    requests = scraper.wait_for("sum by (channel, service, outcome) (selfcare_requests_total)", {
        ("sms", "2112", "prepaid-balance"): 60.0,
        ("sms", "650", "postpaid-balance"): 20.0,
        ("sms", "2112", "retry"): 5.0,
        ("ivr", "2112", "completed"): 12.0,
        ("ivr", "650", "completed"): 6.0,
    }, "channel", "service", "outcome")
    assert requests == {
        ("sms", "2112", "prepaid-balance"): 60.0,
        ("sms", "650", "postpaid-balance"): 20.0,
        ("sms", "2112", "retry"): 5.0,
        ("ivr", "2112", "completed"): 12.0,
        ("ivr", "650", "completed"): 6.0,
    }
    # both serving processes answered, and the one view sums them
    assert len(scraper.targets_up()) == 1
    assert scraper.values("sum by (service) (selfcare_charges_total)", "service") == {("2112",): 60.0, ("650",): 20.0}
    assert scraper.values("sum(selfcare_sms_request_seconds_count)") == {(): 85.0}
    assert scraper.values("round(sum(selfcare_charged_azn_total) * 10000)") == {(): 16720.0}  # 60 × 0.02 + 20 × 0.0236
    assert scraper.values("sum(selfcare_live_calls)") == {(): 0.0}
    # every call's commands were timed (the 2112 and 650 flows send at least 5 each)
    assert scraper.values("sum(selfcare_agi_think_seconds_count) >= 90") != {}
    assert scraper.values("selfcare_outbox_backlog >= 0") != {}
    assert scraper.values("selfcare_audit_failed") == {(): 0.0}

    audit = subprocess.run([*SELFCARE, "--db", db, "audit"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert audit.returncode == 0, audit.stdout
