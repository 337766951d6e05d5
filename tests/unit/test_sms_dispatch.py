"""Outbound SMS: outbox rendering, the Twilio client against a local fake API, retries."""
import json
import threading
import urllib.parse
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from billing import services
from billing.outbox import Outgoing, pending
from sms.dispatch import (
    ConfigError,
    Dispatcher,
    KannelTransport,
    LogTransport,
    TwilioTransport,
    transport_from_env,
)
PRE = "+994501234567"


class FakeApi(BaseHTTPRequestHandler):
    """Records requests; answers like Twilio's Messages API, or fails while `fail` is set."""

    requests: list = []
    fail = False

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        type(self).requests.append((self.path, urllib.parse.parse_qs(body)))
        status = 500 if type(self).fail else 201
        payload = {"sid": f"SM{len(type(self).requests):032d}", "status": "queued"} if status == 201 else \
            {"code": 20500, "message": "boom", "status": 500}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_api():
    FakeApi.requests, FakeApi.fail = [], False
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def topped_up(core, language="en"):
    with core.uow() as uow:
        services.add_subscriber(uow, PRE, "prepaid", balance=Decimal("1.00"), language=language)
    with core.uow() as uow:
        services.topup(uow, PRE, Decimal("5.00"), key="topup-1")


def test_outbox_templates_render_in_each_language(core):
    dispatcher = Dispatcher(LogTransport())
    message = Outgoing("k", PRE, "az", "balance-changed",
                       {"change": "-0.0400", "reason": "call", "account": "balance", "value": "12.4400"})
    assert dispatcher.render(core, message) == "Balansınız dəyişdi (zəng): -0.04 AZN. Yeni balans: 12.44 AZN."
    bill = Outgoing("b", PRE, "ru", "bill-issued", {"usage": "7.1500", "billed": "32.4500", "advance": "0.0000"})
    assert dispatcher.render(core, bill) == "Счёт выставлен: расход 7.15 AZN, к оплате 32.45 AZN, аванс 0.00 AZN."
    moved = Outgoing("p", PRE, "az", "plan-changed", {"plan": "postpaid", "tariff": "biznes", "packs_annulled": 1})
    assert dispatcher.render(core, moved) == "Xəttiniz fakturalı sistemə keçirildi (Biznes). Ləğv olunan paketlər: 1."


def test_the_twilio_transport_posts_to_the_configured_api_and_marks_the_message_sent(core, fake_api):
    topped_up(core)
    transport = TwilioTransport("AC" + "0" * 32, "token", "+15005550006", base_url=fake_api, timeout_s=7)
    assert transport.timeout_s == 7  # the dispatcher's lease follows it

    assert Dispatcher(transport).run(core) == 1

    path, form = FakeApi.requests[0]
    assert path == f"/2010-04-01/Accounts/AC{'0' * 32}/Messages.json"
    assert form["To"] == [PRE] and form["From"] == ["+15005550006"]
    assert form["Body"] == ["Balance topped up (top-up): +5.00 AZN. New balance: 6.00 AZN. We never ask you to send money back."]
    with core.uow() as uow:
        assert pending(uow) == []


def test_a_failed_delivery_stays_in_the_outbox_for_a_later_retry(core, fake_api, clock):
    from datetime import timedelta

    topped_up(core)
    FakeApi.fail = True
    transport = TwilioTransport("AC" + "0" * 32, "token", "+15005550006", base_url=fake_api)
    assert Dispatcher(transport).run(core) == 0
    with core.uow() as uow:
        assert len(pending(uow)) == 1
    FakeApi.fail = False
    clock.advance(timedelta(minutes=5))
    assert Dispatcher(transport).run(core) == 1
    assert Dispatcher(transport).run(core) == 0


def test_kannel_sendsms_query_asks_for_ucs2_and_flash_when_needed():
    transport = KannelTransport("http://127.0.0.1:1/cgi-bin/sendsms", "u", "p")
    message = Outgoing("k", PRE, "az", "balance-changed", {})
    query = transport.query(message, "Balansınız dəyişdi")
    assert query["coding"] == "2" and query["mclass"] == "0" and query["charset"] == "utf-8"
    plain = transport.query(Outgoing("k", PRE, "en", "bill-issued", {}), "Your bill is ready")
    assert "coding" not in plain and "mclass" not in plain


def test_an_unreachable_kannel_leaves_the_message_pending(core):
    topped_up(core)
    transport = KannelTransport("http://127.0.0.1:9/cgi-bin/sendsms", "u", "p", timeout_s=1)
    assert Dispatcher(transport).run(core) == 0
    with core.uow() as uow:
        assert "unreachable" in pending(uow)[0].last_error


def test_the_log_transport_is_the_default_and_a_half_configured_one_is_refused():
    assert isinstance(transport_from_env({}), LogTransport)
    with pytest.raises(ConfigError, match="SELFCARE_KANNEL_SENDSMS_URL"):
        transport_from_env({"SELFCARE_SMS_TRANSPORT": "kannel"})
    with pytest.raises(ConfigError, match="log, kannel or twilio"):
        transport_from_env({"SELFCARE_SMS_TRANSPORT": "pigeon"})


def test_pack_and_credit_notifications_render_from_the_one_catalogue(core):
    message = Outgoing("k:notify", "+994501234567", "en", "credit-from-friend", {"amount": "1.0000", "friend": "+994502223344"})
    assert Dispatcher(LogTransport()).render(core, message) == (
        "0502223344 sent you 1.00 AZN of credit.")
def test_kannel_asks_for_every_delivery_report_under_the_ref_and_never_the_key():
    key = "demo:topup:+994501234567:notify"  # keys may hold a number or a request id
    message = Outgoing(key, PRE, "en", "bill-issued", {})
    plain = KannelTransport("http://127.0.0.1:1/cgi-bin/sendsms", "u", "p").query(message, "Your bill")
    assert "dlr-url" not in plain and "dlr-mask" not in plain  # no DLR URL set: nothing asked

    transport = KannelTransport("http://127.0.0.1:1/cgi-bin/sendsms", "u", "p",
                                dlr_url="http://127.0.0.1:8080/sms/kannel/dlr", dlr_secret="s3cret")
    query = transport.query(message, "Your bill")
    assert query["dlr-mask"] == "31"
    assert query["dlr-url"] == f"http://127.0.0.1:8080/sms/kannel/dlr?ref={message.ref}&status=%d&secret=s3cret"
    assert key not in query["dlr-url"] and "501234567" not in query["dlr-url"]


def test_a_dlr_url_from_the_environment_needs_a_url_safe_kannel_secret():
    env = {"SELFCARE_SMS_TRANSPORT": "kannel", "SELFCARE_KANNEL_SENDSMS_URL": "http://127.0.0.1:13013/cgi-bin/sendsms",
           "SELFCARE_KANNEL_USERNAME": "u", "SELFCARE_KANNEL_PASSWORD": "p"}
    assert transport_from_env(env).dlr_url is None
    dlr = {**env, "SELFCARE_KANNEL_DLR_URL": "http://127.0.0.1:8080/sms/kannel/dlr"}
    with pytest.raises(ConfigError, match="SELFCARE_KANNEL_SECRET"):
        transport_from_env(dlr)
    with pytest.raises(ConfigError, match="URL"):
        transport_from_env({**dlr, "SELFCARE_KANNEL_SECRET": "50%&off"})
    transport = transport_from_env({**dlr, "SELFCARE_KANNEL_SECRET": "Kannel-Secret_1"})
    assert (transport.dlr_url, transport.dlr_secret) == (dlr["SELFCARE_KANNEL_DLR_URL"], "Kannel-Secret_1")
