"""The metrics: what each adapter counts, what /metrics reads from the database, and the
multiprocess mode `selfcare serve` runs them in (real processes writing real metric files)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from billing import services
from selfcare import metrics
from selfcare.config import Settings
from selfcare.http import create_app
from selfcare.worker import audit_now_and_then

SECRET = "kannel-test-secret"
PRE, POST = "+994501234567", "+994551234567"
REPO = Path(__file__).resolve().parents[2]


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """How much each named sample grew while the block ran (the registry is the process's own)."""

    def __init__(self, *samples):
        self.samples = samples

    def __enter__(self):
        self.before = [sample(name, **labels) for name, labels in self.samples]
        return self

    def __exit__(self, *exc):
        self.grew = [round(sample(name, **labels) - before, 6)
                     for (name, labels), before in zip(self.samples, self.before)]


@pytest.fixture
def client(core):
    with core.uow() as uow:
        services.add_subscriber(uow, PRE, "prepaid", balance=Decimal("0.03"), language="az")
        services.add_subscriber(uow, POST, "postpaid", language="en")
    settings = Settings(agi=("127.0.0.1", 0), http=("127.0.0.1", 0), twilio_auth_token=None,
                        twilio_public_url=None, kannel_secret=SECRET, kannel_allow=())
    return create_app(core, settings).test_client()


def kannel(client, sender, to, message_id):
    return client.get("/sms/kannel", query_string={"from": sender, "to": to, "text": "", "id": message_id,
                                                   "secret": SECRET})


def test_an_sms_is_counted_by_short_number_and_outcome_with_its_fee_and_time(client):
    asked = ("selfcare_requests_total", dict(channel="sms", service="2112", outcome="prepaid-balance"))
    retried = ("selfcare_requests_total", dict(channel="sms", service="2112", outcome="retry"))
    charges = ("selfcare_charges_total", dict(channel="sms", service="2112"))
    azn = ("selfcare_charged_azn_total", dict(channel="sms", service="2112"))
    timed = ("selfcare_sms_request_seconds_count", dict(gateway="kannel"))
    with Delta(asked, retried, charges, azn, timed) as delta:
        assert kannel(client, PRE, "2112", "m-1").status_code == 200
        assert kannel(client, PRE, "2112", "m-1").status_code == 200  # Kannel's retry
    assert delta.grew == [1, 1, 1, 0.02, 2]


def test_a_refused_sms_is_counted_with_its_reason_and_takes_no_fee(client):
    refused = ("selfcare_refusals_total", dict(channel="sms", service="2112", reason="insufficient-balance"))
    charges = ("selfcare_charges_total", dict(channel="sms", service="2112"))
    unknown = ("selfcare_refusals_total", dict(channel="sms", service="2112", reason="unknown-sender"))
    with Delta(refused, charges, unknown) as delta:
        kannel(client, PRE, "2112", "r-1")  # 0.03 -> 0.01
        kannel(client, PRE, "2112", "r-2")  # below the 0.02 fee: refused
        kannel(client, "+994509999999", "2112", "r-3")
    assert delta.grew == [1, 1, 1]


def test_a_number_nobody_serves_is_counted_as_other_not_as_a_new_series(client):
    other = ("selfcare_requests_total", dict(channel="sms", service="other", outcome="not-served"))
    with Delta(other) as delta:
        kannel(client, PRE, "123456789", "o-1")
    assert delta.grew == [1]


def test_ussd_requests_are_counted_by_action_and_whether_the_session_goes_on(client):
    ended = ("selfcare_requests_total", dict(channel="ussd", service="postpaid-balance", outcome="end"))
    bad = ("selfcare_requests_total", dict(channel="ussd", service="invalid", outcome="bad-request"))
    with Delta(ended, bad) as delta:
        form = {"sessionId": "u-1", "serviceCode": "*650#", "phoneNumber": POST, "text": ""}
        assert client.post("/ussd", data=form).get_data(as_text=True).startswith("END ")
        assert client.post("/ussd", data={**form, "sessionId": "bad id!"}).status_code == 400
    assert delta.grew == [1, 1]


def test_metrics_endpoint_reads_the_outbox_backlog_and_its_oldest_age_from_the_database(core, client, clock):
    with core.uow() as uow:
        services.topup(uow, PRE, "5", "topup-1")  # a balance-change SMS waits in the outbox
    clock.advance(timedelta(seconds=90))
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.content_type.startswith("text/plain")
    body = answer.get_data(as_text=True)
    assert "selfcare_outbox_backlog 1.0\n" in body
    assert "selfcare_outbox_oldest_age_seconds 90.0\n" in body
    assert "# TYPE selfcare_requests_total counter" in body


def test_metrics_endpoint_counts_the_twilio_voice_calls_whose_state_is_alive(core, clock):
    from tests.unit.voice_support import BASE, TwilioCaller, voice_settings

    with core.uow() as uow:
        services.add_subscriber(uow, PRE, "prepaid", balance=Decimal("3.00"), language="az")
        services.add_subscriber(uow, POST, "postpaid", language="en")
    client = create_app(core, voice_settings()).test_client()
    scraped = lambda: client.get("/metrics").get_data(as_text=True)  # noqa: E731
    assert "selfcare_twilio_live_calls 0.0\n" in scraped()
    first, second = TwilioCaller(client, PRE, call_sid="CA" + "1" * 32), TwilioCaller(client, POST, call_sid="CA" + "2" * 32)
    assert first.post(f"{BASE}/voice/twilio?service=2112", first.form()).status_code == 200
    assert second.post(f"{BASE}/voice/twilio?service=650", second.form()).status_code == 200
    assert "selfcare_twilio_live_calls 2.0\n" in scraped()
    assert first.post(f"{BASE}/voice/twilio/status", first.form(CallStatus="completed")).status_code == 204
    assert "selfcare_twilio_live_calls 1.0\n" in scraped()
    clock.advance(timedelta(hours=2))  # the other's state expired (no status callback came)
    assert "selfcare_twilio_live_calls 0.0\n" in scraped()


def test_a_database_down_at_scrape_time_still_answers_and_counts_the_error(tmp_path, clock):
    from billing.core import Core

    core = Core(f"sqlite:///{tmp_path / 'no-schema.db'}", clock=clock)  # no outbox table
    metrics.instrument_core(core)
    with Delta(("selfcare_database_errors_total", dict(error="OperationalError"))) as delta:
        body, _ = metrics.exposition(core)
    assert b"selfcare_outbox_backlog" not in body and b"selfcare_requests_total" in body
    assert delta.grew == [2]  # seen by the engine's handle_error hook, and by the collector
    core.dispose()


def test_database_errors_are_counted_by_class(core):
    metrics.instrument_core(core)
    with Delta(("selfcare_database_errors_total", dict(error="OperationalError"))) as delta:
        with pytest.raises(Exception), core.read_engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))
    assert delta.grew == [1]


def test_each_group_commit_batch_is_timed(core):
    metrics.instrument_core(core)
    with core.uow() as uow:
        services.add_subscriber(uow, PRE, "prepaid", language="az")
    with Delta(("selfcare_charge_commit_seconds_count", {})) as delta:
        core.group_commit.submit(lambda uow: services.topup(uow, PRE, "1", "commit-2"))
        core.group_commit.submit(lambda uow: services.topup(uow, PRE, "1", "commit-3"))
    assert delta.grew == [2]


def test_think_time_runs_from_a_reply_to_the_next_command():
    timer = metrics.ThinkTimer()
    with Delta(("selfcare_agi_think_seconds_count", {})) as delta:
        timer.commanded()  # nothing read yet: the environment comes first
        timer.replied()
        timer.commanded()
        timer.commanded()  # a second command with no reply between is not a new wait
    assert delta.grew == [1]


def test_the_audit_job_publishes_a_clean_audit_then_a_mismatch(core, monkeypatch):
    monkeypatch.setattr("selfcare.worker.AUDIT_INTERVAL_S", 0)
    with core.uow() as uow:
        services.add_subscriber(uow, PRE, "prepaid", balance=Decimal("1.00"), language="az")
    assert audit_now_and_then(core) == 0
    assert (sample("selfcare_audit_mismatches"), sample("selfcare_audit_failed")) == (0.0, 0.0)
    with core.engine.begin() as conn:
        conn.execute(text("UPDATE subscriber SET balance_units = balance_units + 1"))
    assert audit_now_and_then(core) == 1
    assert (sample("selfcare_audit_mismatches"), sample("selfcare_audit_failed")) == (1.0, 1.0)


def test_the_audit_waits_its_interval_between_runs(core, monkeypatch):
    monkeypatch.setattr("selfcare.worker.AUDIT_INTERVAL_S", 3600)
    monkeypatch.setattr("selfcare.worker._last_audit", {})
    assert audit_now_and_then(core) == 0
    assert audit_now_and_then(core) == "later"


# -- multiprocess mode, as `selfcare serve` runs it --------------------------------------------------

COUNT_IN_A_PROCESS = textwrap.dedent("""
    import os, sys
    from selfcare import metrics
    metrics.REQUESTS.labels(channel="sms", service="2112", outcome="prepaid-balance").inc(int(sys.argv[1]))
    metrics.LIVE_CALLS.inc(int(sys.argv[2]))
    print(os.getpid())
""")

SCRAPE = textwrap.dedent("""
    import sys
    from selfcare import metrics
    for pid in sys.argv[1:]:
        metrics.process_exited(int(pid))
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    sys.stdout.write(generate_latest(registry).decode())
""")


def run_python(code: str, *args: str, env: dict) -> str:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          check=True, timeout=60).stdout


def test_processes_sharing_a_metrics_directory_report_one_view(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    first = run_python(COUNT_IN_A_PROCESS, "3", "2", env=env).strip()
    run_python(COUNT_IN_A_PROCESS, "4", "1", env=env)
    view = run_python(SCRAPE, env=env)
    assert 'selfcare_requests_total{channel="sms",outcome="prepaid-balance",service="2112"} 7.0' in view
    assert "selfcare_live_calls 3.0" in view
    # a serving process that exited no longer holds calls up (mark_process_dead), its counts stay
    view = run_python(SCRAPE, first, env=env)
    assert "selfcare_live_calls 1.0" in view
    assert 'selfcare_requests_total{channel="sms",outcome="prepaid-balance",service="2112"} 7.0' in view


def test_serve_starts_each_run_from_an_empty_metrics_directory(tmp_path, monkeypatch):
    from selfcare.serve import use_metrics_dir

    stale = tmp_path / "counter_123.db"
    stale.write_bytes(b"left by the last run")
    code = ("import sys; from selfcare.serve import use_metrics_dir; print(use_metrics_dir()); "
            "from selfcare import metrics; print(type(metrics.REQUESTS.labels('sms', '2112', 'x')._value).__name__)")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    out = run_python(code, env=env).splitlines()
    assert out == [f"('{tmp_path}', False)", "MmapedValue"]
    assert not stale.exists()
    # this test process has selfcare.metrics imported: too late to choose the storage, said loudly
    with pytest.raises(RuntimeError, match="imported before"):
        use_metrics_dir()


def test_a_refused_ussd_request_is_counted_with_its_reason(client):
    form = {"sessionId": "u-2", "serviceCode": "*700#", "phoneNumber": PRE, "text": ""}
    refused = ("selfcare_refusals_total", dict(channel="ussd", service="nar-max", reason="credit-too-new"))
    with Delta(refused) as delta:
        answer = client.post("/ussd", data=form).get_data(as_text=True)
        assert client.post("/ussd", data=form).get_data(as_text=True) == answer  # the gateway's retry
    assert answer.startswith("END ")
    assert delta.grew == [1]


class RefusingTransport:
    name = "kannel"
    timeout_s = 1.0

    def send(self, message, text):
        raise OSError("connection refused by smsbox")


def waiting_notification(core) -> str:
    from billing.outbox import pending

    with core.uow() as uow:
        services.topup(uow, PRE, "5", "topup-delivery")
    with core.uow() as uow:
        (row,) = pending(uow)
        return row.ref


def test_a_send_the_transport_refuses_is_a_delivery_failure_and_stays_queued(core, client):
    from billing.outbox import pending
    from sms.dispatch import Dispatcher

    waiting_notification(core)
    with Delta(("selfcare_delivery_failures_total", dict(transport="kannel", reason="send-failed"))) as delta:
        assert Dispatcher(RefusingTransport()).run(core) == 0
    assert delta.grew == [1]
    with core.uow() as uow:
        assert len(pending(uow)) == 1


def test_a_delivery_report_of_failure_is_counted_and_a_delivery_is_not(core, client):
    ref = waiting_notification(core)
    failed = ("selfcare_delivery_failures_total", dict(transport="kannel", reason="undelivered"))
    with Delta(failed) as delta:
        for status in ("8", "1", "2"):  # SMSC ack, delivered, then the handset's failure
            answer = client.get("/sms/kannel/dlr", query_string={"ref": ref, "status": status, "secret": SECRET})
            assert answer.status_code == 200
    assert delta.grew == [1]


def test_a_pack_ordered_by_ussd_is_a_charge_of_its_price(core, client):
    with core.uow() as uow:
        services.topup(uow, PRE, "10", "topup-pack")
    charges = ("selfcare_charges_total", dict(channel="ussd", service="pack-order"))
    azn = ("selfcare_charged_azn_total", dict(channel="ussd", service="pack-order"))
    form = {"sessionId": "u-3", "serviceCode": "*100*1#", "phoneNumber": PRE, "text": ""}
    with Delta(charges, azn) as delta:
        assert client.post("/ussd", data=form).status_code == 200
        client.post("/ussd", data=form)  # the gateway's retry: answered from memory
    assert delta.grew == [1, 3.0]  # pack 1 costs 3.00 AZN (billing/offers.toml)
