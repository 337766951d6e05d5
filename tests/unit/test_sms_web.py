"""The Twilio webhook and the Kannel endpoint, through Flask's test client on a real core."""
from decimal import Decimal

import pytest
from twilio.request_validator import RequestValidator

from billing import services
from selfcare.config import Settings
from selfcare.http import create_app

TOKEN, SECRET, PRE = "twilio-test-token", "kannel-test-secret", "+994501234567"


def settings(**kw):
    base = dict(agi=("127.0.0.1", 0), http=("127.0.0.1", 0), twilio_auth_token=TOKEN, twilio_public_url=None,
                kannel_secret=SECRET, kannel_allow=())
    return Settings(**{**base, **kw})


@pytest.fixture
def line(core):
    with core.uow() as uow:
        services.add_subscriber(uow, PRE, "prepaid", balance=Decimal("10.00"), language="az")
    return PRE


def balance(core):
    with core.uow() as uow:
        return services.balance_report(uow, PRE).balance


def signed_post(client, url, form, token=TOKEN):
    signature = RequestValidator(token).compute_signature(url, form)
    return client.post(url, data=form, headers={"X-Twilio-Signature": signature})


FORM = {"MessageSid": "SM0001", "From": PRE, "To": "2112", "Body": ""}


def test_a_correctly_signed_twilio_request_gets_twiml_and_is_charged_once(core, line):
    client = create_app(core, settings()).test_client()
    first = signed_post(client, "http://localhost/sms/twilio", FORM)
    retry = signed_post(client, "http://localhost/sms/twilio", FORM)

    assert first.status_code == 200 and first.content_type.startswith("application/xml")
    body = first.get_data(as_text=True)
    assert body.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Message>Balansınız: 9.98 AZN')
    assert retry.get_data(as_text=True) == body
    assert balance(core) == Decimal("9.98")


def test_a_forged_or_missing_twilio_signature_is_refused_and_charges_nothing(core, line):
    client = create_app(core, settings()).test_client()
    forged = signed_post(client, "http://localhost/sms/twilio", FORM, token="not-the-token")
    missing = client.post("/sms/twilio", data=FORM)
    tampered = client.post("/sms/twilio", data={**FORM, "From": "+994502223344"}, headers={
        "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature("http://localhost/sms/twilio", FORM)})
    assert (forged.status_code, missing.status_code, tampered.status_code) == (403, 403, 403)
    assert balance(core) == Decimal("10.00")


def test_behind_a_proxy_the_public_url_is_what_twilio_signed(core, line):
    client = create_app(core, settings(twilio_public_url="https://sms.example.com/selfcare")).test_client()
    signature = RequestValidator(TOKEN).compute_signature("https://sms.example.com/selfcare/sms/twilio", FORM)
    ok = client.post("/sms/twilio", data=FORM, headers={"X-Twilio-Signature": signature})
    assert ok.status_code == 200


def test_a_twilio_number_names_its_service_in_the_webhook_url(core, line):
    client = create_app(core, settings()).test_client()
    form = {**FORM, "To": "+15005550006", "MessageSid": "SM0002"}
    reply = signed_post(client, "http://localhost/sms/twilio?service=2112", form)
    assert "Balansınız" in reply.get_data(as_text=True)


def test_kannel_gets_plain_utf8_with_ucs2_and_flash_headers_and_dedupes_on_id(core, line):
    client = create_app(core, settings()).test_client()
    query = {"from": PRE, "to": "2112", "text": "", "id": "k-1", "secret": SECRET}
    first = client.get("/sms/kannel", query_string=query)
    retry = client.post("/sms/kannel", data=query)

    assert first.status_code == 200 and first.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert first.headers["X-Kannel-Coding"] == "2" and first.headers["X-Kannel-MClass"] == "0"
    assert retry.get_data(as_text=True) == first.get_data(as_text=True)
    assert balance(core) == Decimal("9.98")


def test_kannel_gsm7_reply_carries_no_coding_header_and_a_hint_is_not_flash(core, line):
    with core.uow() as uow:
        services.set_language(uow, PRE, "en")
    client = create_app(core, settings()).test_client()
    hint = client.get("/sms/kannel", query_string={"from": PRE, "to": "2112", "text": "hi", "id": "k-2", "secret": SECRET})
    assert "X-Kannel-Coding" not in hint.headers and "X-Kannel-MClass" not in hint.headers


@pytest.mark.parametrize("kw,query", [
    ({}, {"secret": "wrong"}),
    ({}, {}),
    ({"kannel_secret": None}, {"secret": ""}),
    ({"kannel_allow": ("10.0.0.0/8",)}, {"secret": SECRET}),
])
def test_kannel_requests_without_the_secret_or_from_outside_the_allow_list_are_refused(core, line, kw, query):
    client = create_app(core, settings(**kw)).test_client()
    answer = client.get("/sms/kannel", query_string={"from": PRE, "to": "2112", "text": "", "id": "x", **query})
    assert answer.status_code == 403
    assert balance(core) == Decimal("10.00")


def test_kannel_allow_list_accepts_a_listed_network(core, line):
    client = create_app(core, settings(kannel_allow=("127.0.0.0/8",))).test_client()
    answer = client.get("/sms/kannel", query_string={"from": PRE, "to": "2112", "id": "y", "secret": SECRET})
    assert answer.status_code == 200


def test_the_allow_list_answer_is_remembered_per_list_and_address(core, line):
    """One process, two settings: an address allowed by one list is not by the other."""
    inside = create_app(core, settings(kannel_allow=("127.0.0.0/8",))).test_client()
    outside = create_app(core, settings(kannel_allow=("10.0.0.0/8", "not-a-network"))).test_client()
    for client, status in [(inside, 200), (outside, 403), (inside, 200), (outside, 403)]:
        answer = client.get("/sms/kannel", query_string={"from": PRE, "to": "2112", "id": f"m-{status}",
                                                         "secret": SECRET})
        assert answer.status_code == status


def test_kannel_text_is_read_as_utf8_and_a_parameter_given_twice_counts_once(core, line):
    client = create_app(core, settings()).test_client()
    # "да" (Russian yes) to 700, percent-escaped as smsbox sends it: read as a yes, not a usage hint
    answer = client.get(f"/sms/kannel?from=%2B994501234567&to=700&text=%D0%B4%D0%B0&id=k-3&secret={SECRET}&to=2112")
    assert answer.status_code == 200
    assert answer.get_data(as_text=True) == "Sizi gözləyən kredit istəyi yoxdur. Bu SMS pulsuzdur."
    # a form's value after the query string's: the query string's wins, as in werkzeug's request.values
    form = client.post(f"/sms/kannel?from={PRE}&to=2112&id=k-4&secret={SECRET}",
                       data={"to": "650", "text": ""})
    assert form.get_data(as_text=True).startswith("Balansınız: 9.98 AZN")
    assert balance(core) == Decimal("9.98")


def test_kannel_endpoint_answers_other_methods_and_over_long_bodies_with_http_errors(core, line):
    client = create_app(core, settings()).test_client()
    put = client.put("/sms/kannel", data={"from": PRE, "to": "2112", "id": "k-5", "secret": SECRET})
    assert (put.status_code, put.headers["Allow"]) == (405, "GET, POST")
    long = client.post("/sms/kannel", data={"from": PRE, "to": "2112", "id": "k-6", "secret": SECRET,
                                            "text": "x" * 70_000})
    assert long.status_code == 413
    bad_bytes = client.get(f"/sms/kannel?from={PRE}&to=2112&id=k-7&secret={SECRET}&text=%FF%FE")
    assert bad_bytes.status_code == 200  # a byte that is no UTF-8 is replaced, not a 500
    assert balance(core) == Decimal("10.00")


# -- Kannel's delivery reports (dlr-url of our sendsms requests) --------------------------------

def _sent_notification(core):
    """A line with a top-up notification waiting; returns the ref it goes out under."""
    from billing.outbox import pending

    with core.uow() as uow:
        services.add_subscriber(uow, PRE, "prepaid", balance=Decimal("1.00"), language="az")
    with core.uow() as uow:
        services.topup(uow, PRE, Decimal("5.00"), key="topup-dlr")
    with core.uow() as uow:
        (row,) = pending(uow)
        return row.ref


def _delivery(core, ref):
    from billing.models import OutboxMessage
    from sqlalchemy import select

    with core.uow() as uow:
        return uow.session.scalars(select(OutboxMessage.delivery_status).where(OutboxMessage.ref == ref)).one()


def test_kannel_delivery_reports_are_recorded_on_the_message_they_name(core):
    ref = _sent_notification(core)
    client = create_app(core, settings(kannel_allow=("127.0.0.1",))).test_client()

    smsc_ack = client.get("/sms/kannel/dlr", query_string={"ref": ref, "status": "8", "secret": SECRET})
    assert smsc_ack.status_code == 200 and _delivery(core, ref) == "accepted"
    delivered = client.post("/sms/kannel/dlr", data={"ref": ref, "status": "1", "secret": SECRET})
    assert delivered.status_code == 200 and _delivery(core, ref) == "delivered"
    late_buffered = client.get("/sms/kannel/dlr", query_string={"ref": ref, "status": "4", "secret": SECRET})
    assert late_buffered.status_code == 200 and _delivery(core, ref) == "delivered"


@pytest.mark.parametrize("kw,query,status", [
    ({}, {"secret": "wrong", "status": "1"}, 403),
    ({}, {"status": "1"}, 403),
    ({"kannel_secret": None}, {"secret": "", "status": "1"}, 403),
    ({"kannel_allow": ("10.0.0.0/8",)}, {"secret": SECRET, "status": "1"}, 403),
    ({}, {"secret": SECRET, "status": "3"}, 400),
    ({}, {"secret": SECRET, "status": "%d"}, 400),
])
def test_kannel_delivery_reports_need_the_secret_an_allowed_address_and_a_known_status(core, kw, query, status):
    ref = _sent_notification(core)
    client = create_app(core, settings(**kw)).test_client()
    answer = client.get("/sms/kannel/dlr", query_string={"ref": ref, **query})
    assert answer.status_code == status
    assert _delivery(core, ref) is None


def test_a_delivery_report_for_an_unknown_message_is_404_and_changes_nothing(core):
    ref = _sent_notification(core)
    client = create_app(core, settings()).test_client()
    answer = client.get("/sms/kannel/dlr", query_string={"ref": "0" * 24, "status": "1", "secret": SECRET})
    missing = client.get("/sms/kannel/dlr", query_string={"status": "1", "secret": SECRET})
    assert (answer.status_code, missing.status_code) == (404, 400)
    assert _delivery(core, ref) is None
