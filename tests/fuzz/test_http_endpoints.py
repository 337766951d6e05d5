"""Fuzzing each HTTP endpoint through Flask's test client on a real core (SQLite): random bytes
under random content types, and random forms that look valid (signed for Twilio SMS and Voice, with
the secret for Kannel, a well-formed session for USSD, a signed-in page session with and without
its CSRF token), the prompt URLs and /metrics. No input answers 500, leaves a thread behind, or
changes money without a 200 reply that says so; the ledger and the balances agree after each."""
from __future__ import annotations

import threading
import urllib.parse
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from billing import services
from billing.clock import FixedClock
from billing.models import LedgerEntry
from selfcare.config import Settings
from selfcare.http import create_app
from sms.commands import Kind, parse as parse_sms
from tests.conftest import START, make_core

TOKEN, SECRET = "fuzz-twilio-token", "fuzz-kannel-secret"
PREPAID, PREPAID_EN, POSTPAID = "+994501234567", "+994502223344", "+994551234567"
LINES = (PREPAID, PREPAID_EN, POSTPAID)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
OK_STATUSES = {200, 400, 403, 404, 405, 413, 415}
PAGE_STATUSES = OK_STATUSES | {302, 303}  # a page redirects to sign-in, a form to its answer


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    core = make_core(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}", FixedClock(START))
    with core.uow() as uow:
        services.add_subscriber(uow, PREPAID, "prepaid", balance=Decimal("1000.00"), language="az")
        services.add_subscriber(uow, PREPAID_EN, "prepaid", balance=Decimal("1000.00"), language="en")
        services.add_subscriber(uow, POSTPAID, "postpaid", billed=Decimal("25.30"), current=Decimal("7.15"),
                                advance=Decimal("5"), bill_day=10)
    app = create_app(core, Settings(agi=("127.0.0.1", 0), http=("127.0.0.1", 0), twilio_auth_token=TOKEN,
                                    twilio_public_url=None, kannel_secret=SECRET, kannel_allow=()))
    client = app.test_client()
    client.get("/health")  # whatever threads the app starts lazily start now, not inside an example
    yield core, client
    core.dispose()


def money(core) -> tuple[int, int, dict]:
    """(ledger entries, their sum, each line's balance)."""
    with core.reader() as uow:
        count, total = uow.session.execute(select(func.count(LedgerEntry.id),
                                                  func.coalesce(func.sum(LedgerEntry.delta_units), 0))).one()
        balances = {msisdn: services.balance_report(uow, msisdn) for msisdn in LINES}
    return count, total, balances


class Watch:
    """Money and threads around one request."""

    def __init__(self, core):
        self.core = core

    def __enter__(self):
        self.threads = set(threading.enumerate())
        self.before = money(self.core)
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            return False
        self.after = money(self.core)
        assert set(threading.enumerate()) <= self.threads, "a request left a thread behind"
        with self.core.reader() as uow:
            assert services.audit(uow) == []
        return False

    @property
    def money_changed(self) -> bool:
        return self.after[:2] != self.before[:2]


def check(watch: Watch, response, expect_charge_reply, statuses=OK_STATUSES) -> None:
    assert response.status_code in statuses, (response.status_code, response.get_data(as_text=True)[:200])
    if watch.money_changed:
        assert response.status_code == 200
        expect_charge_reply(response.get_data(as_text=True), watch.after[2])


def says_the_new_balance(to: str, text: str | None):
    command = parse_sms(to, text)

    def expect(body: str, balances: dict) -> None:
        assert not command.free, f"a free command ({command.kind}) changed money"
        if command.kind is Kind.PREPAID_BALANCE:
            assert any(f"{balances[m].balance:.2f}" in body for m in (PREPAID, PREPAID_EN)), body
        assert "unavailable" not in body
    return expect


raw_bodies = st.binary(max_size=600)
content_types = st.sampled_from(["application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                 "text/plain", "application/json", "", "application/x-www-form-urlencoded; charset=koi8-r"])
senders = st.sampled_from([*LINES, "0501234567", "994551234567", "", "+", "abc", "+99450123456789012"]) | st.text(max_size=20)
short_numbers = st.sampled_from(["2112", "650", "1005", "1003", "700", "+2112", "9999", ""]) | st.text(max_size=8)
sms_texts = (st.sampled_from(["", " ", "+0502223344", "-0502223344", "-", "0551234567", "1000000002", "bəli", "NO"])
             | st.text(max_size=200))
ids = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20) | st.text(max_size=40)


@FUZZ
@given(path=st.sampled_from(["/sms/twilio", "/sms/kannel", "/sms/kannel/dlr", "/ussd", "/health", "/metrics",
                             "/voice/twilio", "/voice/twilio/turn/1", "/voice/twilio/status",
                             "/voice/prompts/az/menu-main.wav", "/", "/code", "/balance", "/packs/order"]),
       method=st.sampled_from(["GET", "POST", "PUT"]), body=raw_bodies, content_type=content_types,
       query=st.binary(max_size=200))
@example(path="/sms/kannel", method="POST", body=b"from=%FF&to=2112", content_type="application/x-www-form-urlencoded",
         query=b"")
def test_random_bytes_to_any_endpoint_change_nothing_and_never_answer_500(served, path, method, body, content_type,
                                                                          query):
    core, client = served
    url = path + ("?" + urllib.parse.quote_from_bytes(query, safe="=&%") if query else "")
    with Watch(core) as watch:
        response = client.open(url, method=method, data=body, content_type=content_type or None)
    statuses = OK_STATUSES if path.startswith(("/sms", "/ussd", "/voice", "/health", "/metrics")) else PAGE_STATUSES
    check(watch, response, lambda body, _b: pytest.fail(f"random bytes changed money: {body[:120]}"), statuses)


@FUZZ
@given(sender=st.sampled_from(LINES) | senders, to=st.sampled_from(["2112", "650"]) | short_numbers, text=st.none() | sms_texts, message_id=ids, method=st.sampled_from(["GET", "POST"]))
@example(sender=PREPAID, to="2112", text="", message_id="fuzz-fixed-1", method="GET")
def test_kannel_forms_charge_only_what_the_reply_says(served, sender, to, text, message_id, method):
    core, client = served
    form = {"from": sender, "to": to, "id": message_id, "secret": SECRET}
    if text is not None:
        form["text"] = text
    with Watch(core) as watch:
        if method == "GET":
            response = client.get("/sms/kannel?" + urllib.parse.urlencode(form))
        else:
            response = client.post("/sms/kannel", data=form)
    check(watch, response, says_the_new_balance(to, text))


@FUZZ
@given(sender=st.sampled_from(LINES) | senders, to=st.sampled_from(["2112", "650"]) | short_numbers, text=st.none() | sms_texts, sid=ids,
       extra=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3))
def test_signed_twilio_forms_charge_only_what_the_reply_says(served, sender, to, text, sid, extra):
    core, client = served
    form = {**extra, "MessageSid": sid, "From": sender, "To": to}
    if text is not None:
        form["Body"] = text
    signature = RequestValidator(TOKEN).compute_signature("http://localhost/sms/twilio", form)
    with Watch(core) as watch:
        response = client.post("/sms/twilio", data=form, headers={"X-Twilio-Signature": signature})
    check(watch, response, says_the_new_balance(to, text))


ussd_codes = (st.sampled_from(["*111*1*7#", "*650#", "*100#", "*100*0#", "*100*00#", "*100*1#", "*700#", "*700#150#",
                               "*700#03#", "*711#", "*711#150#", "*700*01*0502223344#", "*700*1#", "*104*12345678#",
                               "*104#", "*100*٣#"])
              | st.from_regex(r"\A\*[0-9]{3}([*#][0-9]{1,10}){0,2}#\Z") | st.text(max_size=30))
ussd_inputs = st.from_regex(r"\A([0-9]{1,2}(\*[0-9]{1,2}){0,3})?\Z") | st.text(max_size=40)


@FUZZ
@given(session=st.from_regex(r"\A[A-Za-z0-9_.:\-]{1,30}\Z") | st.text(max_size=10), phone=senders, code=ussd_codes,
       text=ussd_inputs)
def test_ussd_forms_answer_con_or_end_within_182_characters_and_charge_only_with_an_end(served, session, phone, code,
                                                                                      text):
    core, client = served
    form = {"sessionId": session, "phoneNumber": phone, "serviceCode": code, "text": text}

    def expect(body: str, _balances) -> None:
        assert body.startswith("END "), body  # a charge ends the session with its answer
        assert "unavailable" not in body

    with Watch(core) as watch:
        response = client.post("/ussd", data=form)
    body = response.get_data(as_text=True)
    assert body.startswith(("CON ", "END ")), body
    # the database is healthy: an answer of service-error here would be a bug answered politely
    assert "Xidmət müvəqqəti əlçatan deyil" not in body and "temporarily unavailable" not in body, body
    if response.status_code == 200:
        assert len(body) <= 182, body
    check(watch, response, expect)


# -- Twilio Voice, the prompts, /metrics ----------------------------------------------------------

VOICE_FUZZ = settings(FUZZ, max_examples=60)
call_sids = st.from_regex(r"\ACA[0-9a-f]{32}\Z") | ids
call_statuses = st.sampled_from(["completed", "busy", "failed", "no-answer", "canceled", "ringing", "in-progress", ""]) \
    | st.text(max_size=12)
digits = st.none() | st.from_regex(r"\A[0-9*#]{0,16}\Z") | st.text(max_size=20)


def signed_post(client, url: str, form: dict):
    signature = RequestValidator(TOKEN).compute_signature(f"http://localhost{url}", form)
    return client.post(url, data=form, headers={"X-Twilio-Signature": signature})


@VOICE_FUZZ
@given(service=st.sampled_from(["2112", "650"]) | st.text(max_size=6), sid=call_sids,
       caller=st.sampled_from(LINES) | senders, turns=st.lists(st.tuples(st.integers(-2, 12), digits), max_size=4),
       status=call_statuses, extra=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3))
@example(service="2112", sid="CA" + "0" * 32, caller=PREPAID, turns=[(1, "5"), (2, "12345678901234#")],
         status="completed", extra={})
def test_a_signed_twilio_call_with_random_turns_answers_twiml_and_moves_no_money(served, service, sid, caller, turns,
                                                                                status, extra):
    core, client = served
    known_service = service in ("2112", "650")
    with Watch(core) as watch:
        answers = [signed_post(client, "/voice/twilio?" + urllib.parse.urlencode({"service": service}),
                               {**extra, "CallSid": sid, "From": caller})]
        for turn, pressed in turns:
            form = {**extra, "CallSid": sid, "From": caller, **({} if pressed is None else {"Digits": pressed})}
            answers.append(signed_post(client, f"/voice/twilio/turn/{turn}", form))
        answers.append(signed_post(client, "/voice/twilio/status", {**extra, "CallSid": sid, "CallStatus": status}))
    assert not watch.money_changed, "a call without a card moved money"
    for answer in answers:
        assert answer.status_code in OK_STATUSES | {204}, (answer.status_code, answer.get_data(as_text=True)[:200])
        body = answer.get_data(as_text=True)
        if answer.status_code == 200:
            assert body.startswith('<?xml version="1.0" encoding="UTF-8"?><Response>'), body[:200]
            if known_service:  # the database is healthy: nothing here may fail into "unavailable"
                assert "service-unavailable" not in body, body


@VOICE_FUZZ
@given(path=st.sampled_from(["/voice/twilio", "/voice/twilio?service=2112", "/voice/twilio/turn/1",
                             "/voice/twilio/turn/0", "/voice/twilio/status"]),
       form=st.dictionaries(st.sampled_from(["CallSid", "From", "Digits", "CallStatus"]) | st.text(max_size=10),
                            st.text(max_size=40), max_size=5),
       signature=st.none() | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
def test_unsigned_or_wrongly_signed_voice_webhooks_are_refused(served, path, form, signature):
    core, client = served
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    with Watch(core) as watch:
        answer = client.post(path, data=form, headers=headers)
    assert answer.status_code == 403 and not watch.money_changed, answer.status_code


@VOICE_FUZZ
@given(language=st.sampled_from(["az", "en", "ru", "xx", "..", "", "%2e%2e"]) | st.text(max_size=6),
       name=st.sampled_from(["menu-main.wav", "num/5.wav", "menu-main", "../catalogue.toml", "..%2F..%2Fetc%2Fpasswd",
                             "/etc/passwd", "cur/manat-5.wav"]) | st.text(max_size=30))
@example(language="..", name="catalogue.toml")
def test_prompt_urls_serve_a_prompt_wav_or_refuse_and_nothing_outside_the_sounds(served, language, name):
    core, client = served
    with Watch(core):
        answer = client.get(f"/voice/prompts/{urllib.parse.quote(language, safe='.%')}/"
                            f"{urllib.parse.quote(name, safe='/.%')}")
    assert answer.status_code in {200, 308, 400, 404}, answer.status_code
    if answer.status_code == 200:
        assert answer.mimetype in ("audio/wav", "audio/x-wav") and answer.data[:4] == b"RIFF"


@settings(FUZZ, max_examples=20)
@given(method=st.sampled_from(["GET", "HEAD", "POST"]), query=st.binary(max_size=60))
def test_metrics_answers_the_text_format_to_any_query(served, method, query):
    core, client = served
    with Watch(core) as watch:
        answer = client.open("/metrics?" + urllib.parse.quote_from_bytes(query, safe="=&"), method=method)
    assert not watch.money_changed
    if method == "POST":
        assert answer.status_code == 405
    else:
        assert answer.status_code == 200 and answer.mimetype == "text/plain"
        if method == "GET":
            assert b"# TYPE selfcare_requests_total counter" in answer.data


# -- the subscriber pages ---------------------------------------------------------------------------

PAGE_GETS = ["/", "/code", "/balance", "/tariff", "/history", "/history?page=x", "/packs", "/credit", "/access",
             "/settings", "/topup", "/language/en", "/language/xx"]
# every POST form but /sign-out, which would end the signed-in session the examples share
PAGE_POSTS = ["/", "/code", "/packs/order", "/packs/deactivate", "/packs/stop-renewal", "/credit/nar", "/credit/sos",
              "/access/grant", "/access/revoke", "/settings/language", "/settings/notifications", "/topup"]
MAY_CHARGE = {"/packs/order", "/credit/nar", "/credit/sos", "/topup"}  # money moves only through these
page_fields = st.dictionaries(
    st.sampled_from(["number", "code", "msisdn", "kind", "pin", "serial", "language", "enabled", "page"])
    | st.text(max_size=8),
    st.sampled_from(["1", "2", "0", "nar", "sos", "05", "0502223344", PREPAID_EN, "en", "ru", "on", "123456", ""])
    | st.text(max_size=30), max_size=4)


@pytest.fixture(scope="module")
def browser(served):
    from tests.unit.pages_support import Browser

    core, client = served
    signed_in = Browser(client.application, core)
    assert signed_in.sign_in(PREPAID_EN) == "/balance"
    return signed_in


@settings(FUZZ, max_examples=80)
@given(method=st.sampled_from(["GET", "POST"]), get_path=st.sampled_from(PAGE_GETS), post_path=st.sampled_from(PAGE_POSTS),
       with_csrf=st.booleans(), fields=page_fields)
@example(method="POST", get_path="/", post_path="/packs/order", with_csrf=False, fields={"number": "1"})
def test_the_pages_never_answer_500_and_move_money_only_through_a_form_with_its_csrf_token(
        served, browser, method, get_path, post_path, with_csrf, fields):
    core, _client = served
    with Watch(core) as watch:
        if method == "GET":
            answer = browser.get(get_path)
        else:
            hidden = {}
            if with_csrf:
                browser.get("/settings")  # any page a form is on: its CSRF token and a fresh request id
                hidden = browser.hidden_fields("/settings/language")
            answer = browser.post(post_path, {**fields, **hidden}, follow=False)
    assert answer.status_code < 500, (answer.status_code, answer.get_data(as_text=True)[:200])
    if watch.money_changed:
        assert method == "POST" and with_csrf and post_path in MAY_CHARGE, (post_path, fields)
    elif method == "POST" and not with_csrf and post_path != "/":
        assert answer.status_code in (302, 303, 400, 403), answer.status_code  # refused before anything ran
