"""Sign-in by SMS code (billing.signin) on SQLite and PostgreSQL: the code through the outbox, its
five minutes, single use, five wrong tries, the hourly limits, no enumeration, tokens and page
sessions (revoked, expired, idle)."""
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from billing import services, signin
from billing.errors import (CodeExpired, InvalidCode, InvalidMsisdn, NotSignedIn, TooManyCodes,
                            TooManyWrongCodes, WrongCode)
from billing.models import OutboxMessage, SigninChallenge, WebSession
from billing.outbox import Outgoing
import texts
from texts.notifications import render
from sms.dispatch import Dispatcher, LogTransport, TransportError
from tests.unit.packs_credit_scenarios import D, PRE, call, open_prepaid

UNKNOWN = "+994509998877"
CLIENT = "127.0.0.1"


def ask(core, number=PRE, client=CLIENT):
    return call(core, signin.request_code, number, client)


def sent_code(core, request_id):
    """The code as the SMS carries it, read from the outbox row the request wrote."""
    with core.reader() as uow:
        row = uow.session.scalar(select(OutboxMessage).where(OutboxMessage.key == f"signin:{request_id}"))
    return None if row is None else row


def code_of(core, request_id):
    import json
    return json.loads(sent_code(core, request_id).params)["code"]


def verify(core, request_id, code, number=PRE, kind="api"):
    return call(core, signin.verify_code, request_id, number, code, kind)


def wrong(code):
    return f"{(int(code) + 1) % 10**6:06d}"


def test_the_code_goes_out_through_the_outbox_in_the_lines_language(any_core):
    open_prepaid(any_core, language="ru")
    request_id = ask(any_core)
    row = sent_code(any_core, request_id)
    assert (row.template, row.language, row.msisdn) == ("signin-code", "ru", PRE)
    code = code_of(any_core, request_id)
    assert len(code) == 6 and code.isdigit()
    message = Outgoing(row.key, row.msisdn, row.language, row.template, {"code": code, "minutes": 5})
    assert render(texts.load(), message, any_core.tariffs, any_core.offers) == (
        f"Код для входа: {code}. Действует 5 минут. Никому его не сообщайте: мы его никогда не спрашиваем.")
    with any_core.reader() as uow:  # the challenge keeps a keyed digest, never the code
        stored = uow.session.scalar(select(SigninChallenge).where(SigninChallenge.request_id == request_id))
    assert code not in stored.code_digest and len(stored.code_digest) == 64


def test_a_right_code_gives_a_token_that_names_the_line_once(any_core, clock):
    open_prepaid(any_core)
    request_id = ask(any_core)
    issued = verify(any_core, request_id, code_of(any_core, request_id))
    assert (issued.kind, issued.msisdn, issued.expires_at) == ("api", PRE, clock.now() + timedelta(days=30))
    signed = call(any_core, signin.authenticate, issued.secret, "api")
    assert (signed.msisdn, signed.kind, signed.needs_touch) == (PRE, "api", False)
    with pytest.raises(CodeExpired):  # single use
        verify(any_core, request_id, code_of(any_core, request_id))
    with any_core.reader() as uow:
        assert issued.secret not in uow.session.scalar(select(WebSession.digest))


def test_a_code_is_valid_five_minutes(any_core, clock):
    open_prepaid(any_core)
    request_id = ask(any_core)
    clock.advance(timedelta(minutes=5))
    with pytest.raises(CodeExpired):
        verify(any_core, request_id, code_of(any_core, request_id))


def test_a_code_opens_only_its_own_number(any_core):
    open_prepaid(any_core)
    open_prepaid(any_core, msisdn="+994502223344")
    request_id = ask(any_core)
    with pytest.raises(CodeExpired):
        verify(any_core, request_id, code_of(any_core, request_id), number="+994502223344")


def test_five_wrong_codes_then_even_the_right_one_is_refused(any_core):
    open_prepaid(any_core)
    request_id = ask(any_core)
    code = code_of(any_core, request_id)
    left = []
    for _ in range(5):
        with pytest.raises(WrongCode) as refused:
            verify(any_core, request_id, wrong(code))
        left.append(refused.value.tries_left)
    assert left == [4, 3, 2, 1, 0]
    with pytest.raises(TooManyWrongCodes):
        verify(any_core, request_id, code)


def test_a_malformed_code_is_refused_and_not_counted(any_core):
    open_prepaid(any_core)
    request_id = ask(any_core)
    for bad in ("12345", "1234567", "12a456", "١٢٣٤٥٦", ""):
        with pytest.raises(InvalidCode):
            verify(any_core, request_id, bad)
    with any_core.reader() as uow:
        assert uow.session.scalar(select(SigninChallenge.wrong_tries)) == 0


def test_an_unserved_number_gets_the_same_answer_and_no_sms(any_core):
    request_id = ask(any_core, UNKNOWN)
    assert isinstance(request_id, str) and len(request_id) == 32
    with any_core.reader() as uow:
        assert uow.session.scalar(select(func.count(OutboxMessage.id))) == 0
    with pytest.raises(WrongCode):  # the same refusal a served number gets for a wrong code
        verify(any_core, request_id, "000000", number=UNKNOWN)
    with pytest.raises(InvalidMsisdn):  # not a number at all says nothing about our subscribers
        ask(any_core, "12345")


def test_codes_per_number_are_limited_per_hour_for_served_and_unserved_numbers(any_core, clock):
    open_prepaid(any_core)
    for number in (PRE, UNKNOWN):
        for i in range(5):
            ask(any_core, number, client=f"10.0.0.{i}")
        with pytest.raises(TooManyCodes):
            ask(any_core, number, client="10.0.1.1")
    clock.advance(timedelta(hours=1))
    ask(any_core, PRE)


def test_codes_per_client_address_are_limited_per_hour(any_core):
    numbers = [f"+99450{n:07d}" for n in range(1000001, 1000032)]
    for number in numbers[:30]:
        ask(any_core, number, client="10.9.9.9")
    with pytest.raises(TooManyCodes):
        ask(any_core, numbers[30], client="10.9.9.9")
    ask(any_core, numbers[30], client="10.9.9.8")


def test_a_revoked_or_expired_token_is_refused(any_core, clock):
    open_prepaid(any_core)
    tokens = []
    for _ in range(2):
        request_id = ask(any_core)
        tokens.append(verify(any_core, request_id, code_of(any_core, request_id)).secret)
    assert call(any_core, signin.sign_out, tokens[0]) is True
    with pytest.raises(NotSignedIn):
        call(any_core, signin.authenticate, tokens[0], "api")
    call(any_core, signin.authenticate, tokens[1], "api")
    clock.advance(timedelta(days=30))
    with pytest.raises(NotSignedIn):
        call(any_core, signin.authenticate, tokens[1], "api")
    for stranger in ("", None, "x" * 300, "not-a-token"):
        with pytest.raises(NotSignedIn):
            call(any_core, signin.authenticate, stranger, "api")


def test_a_page_session_ends_when_idle_and_its_secret_is_no_bearer_token(any_core, clock):
    open_prepaid(any_core)
    request_id = ask(any_core)
    page = verify(any_core, request_id, code_of(any_core, request_id), kind="page")
    with pytest.raises(NotSignedIn):
        call(any_core, signin.authenticate, page.secret, "api")
    clock.advance(timedelta(minutes=29))
    signed = call(any_core, signin.authenticate, page.secret, "page")
    assert signed.needs_touch
    call(any_core, signin.touch, signed)
    clock.advance(timedelta(minutes=29))  # 58 minutes in, 29 idle: still signed in
    assert call(any_core, signin.authenticate, page.secret, "page").msisdn == PRE
    clock.advance(timedelta(minutes=1))  # 30 idle, not touched since

    with pytest.raises(NotSignedIn):
        call(any_core, signin.authenticate, page.secret, "page")


def test_signing_out_everywhere_ends_every_session_of_the_line(any_core):
    open_prepaid(any_core)
    secrets_ = []
    for kind in ("api", "page"):
        request_id = ask(any_core)
        secrets_.append((verify(any_core, request_id, code_of(any_core, request_id), kind=kind).secret, kind))
    assert call(any_core, signin.sign_out_everywhere, PRE) == 2
    for secret, kind in secrets_:
        with pytest.raises(NotSignedIn):
            call(any_core, signin.authenticate, secret, kind)


def test_purge_forgets_old_challenges_and_ended_sessions_only(any_core, clock):
    open_prepaid(any_core)
    request_id = ask(any_core)
    token = verify(any_core, request_id, code_of(any_core, request_id)).secret
    clock.advance(timedelta(days=2))
    fresh_id = ask(any_core)
    fresh = verify(any_core, fresh_id, code_of(any_core, fresh_id)).secret
    # the first challenge and its SMS, never sent (no dispatcher here) and its code expired;
    # both tokens still run (30 days), the fresh SMS may still go out
    assert call(any_core, signin.purge) == 2
    clock.advance(timedelta(days=29, minutes=1))
    # the second challenge and its SMS, and the first token, ended 1+ day ago
    assert call(any_core, signin.purge) == 3
    with pytest.raises(NotSignedIn):
        call(any_core, signin.authenticate, token, "api")
    assert call(any_core, signin.authenticate, fresh, "api").msisdn == PRE


def test_the_worker_purges_what_sign_in_left_behind(core, clock):
    from selfcare import worker

    ask(core, UNKNOWN)
    clock.advance(timedelta(days=1, minutes=6))
    assert worker.run_once(core)["signin-purge"] == 1
    with core.reader() as uow:
        assert uow.session.scalar(select(func.count(SigninChallenge.id))) == 0


def test_the_sign_in_migration_goes_up_down_and_up(tmp_path):
    from alembic import command
    from sqlalchemy import inspect

    from billing.core import make_engine
    from billing.migrate import alembic_config, upgrade

    tables = {"signin_challenge", "signin_quota", "web_session"}
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        upgrade(engine, "head")
        assert tables <= set(inspect(engine).get_table_names())
        command.downgrade(alembic_config(engine), "0006_call_sessions")
        assert not tables & set(inspect(engine).get_table_names())
        upgrade(engine, "head")
        assert tables <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


class _TransportDown:
    name = "down"

    def send(self, message, text):
        raise TransportError("smsc unreachable")


def outbox_rows(core):
    with core.reader() as uow:
        return [(r.template, r.params, r.sent_at is not None)
                for r in uow.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]


def test_the_code_leaves_the_outbox_row_when_its_sms_is_sent_and_still_signs_in(any_core):
    open_prepaid(any_core, language="en")
    request_id = ask(any_core)
    code = code_of(any_core, request_id)
    transport = LogTransport()
    assert Dispatcher(transport).run(any_core) == 1
    assert transport.sent == [(PRE, f"Your sign-in code: {code}. Valid for 5 minutes. "
                                    "Never tell it to anyone: we never ask for it.")]
    assert outbox_rows(any_core) == [("signin-code", '{"code": "", "minutes": 5}', True)]
    assert verify(any_core, request_id, code).msisdn == PRE  # the challenge's digest is what checks it


def test_other_messages_keep_their_values_when_sent(any_core):
    open_prepaid(any_core, balance="5", language="en")
    call(any_core, services.topup, PRE, D("2"), "t-1")
    Dispatcher(LogTransport()).run(any_core)
    [(template, params, sent)] = outbox_rows(any_core)
    assert (template, sent) == ("balance-changed", True)
    assert json.loads(params)["change"] == "2.0000"


def test_a_code_sms_not_sent_before_its_code_expires_is_dropped(any_core, clock):
    open_prepaid(any_core)
    ask(any_core)
    Dispatcher(_TransportDown()).run(any_core)  # the SMSC is down: the code waits in the outbox
    [(template, params, sent)] = outbox_rows(any_core)
    assert (template, sent, json.loads(params)["minutes"]) == ("signin-code", False, 5)
    clock.advance(timedelta(minutes=4, seconds=59))
    assert call(any_core, signin.purge) == 0  # still of use: it may yet go out
    clock.advance(timedelta(seconds=1))
    assert call(any_core, signin.purge) == 1
    assert outbox_rows(any_core) == []
    transport = LogTransport()
    assert Dispatcher(transport).run(any_core) == 0 and transport.sent == []  # the SMSC back: nothing stale goes


def test_the_worker_drops_an_expired_unsent_code_and_keeps_a_sent_one_blank(core, clock, monkeypatch):
    from selfcare import worker

    monkeypatch.setenv("SELFCARE_SMS_TRANSPORT", "log")
    open_prepaid(core)
    ask(core)
    worker.run_once(core)
    ask(core)  # this one is never dispatched: its SMS expires unsent
    clock.advance(timedelta(minutes=5))
    done = worker.run_once(core)  # the purge runs before the outbox job: the stale code never goes
    assert (done["signin-purge"], done["sms-outbox"]) == (1, 0)
    assert [row for row in outbox_rows(core) if row[0] == "signin-code"] == [
        ("signin-code", '{"code": "", "minutes": 5}', True)]


def test_migration_0008_blanks_the_codes_of_sign_in_messages_sent_before_it(tmp_path):
    from datetime import datetime

    from sqlalchemy import text

    from billing.core import make_engine
    from billing.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    at = datetime(2026, 11, 22, 12, 0)
    rows = [  # (key, template, params, sent_at)
        ("signin:sent", "signin-code", '{"code": "123456", "minutes": 5}', at),
        ("signin:waiting", "signin-code", '{"code": "654321", "minutes": 5}', None),
        ("other:sent", "card-used", '{"code": "1000000002"}', at),
    ]
    try:
        upgrade(engine, "0007_signin")
        with engine.begin() as connection:
            for key, template, params, sent_at in rows:
                connection.execute(text(
                    "INSERT INTO outbox_message (key, msisdn, language, template, params, created_at, attempts,"
                    " next_attempt_at, sent_at, ref) VALUES (:key, '+994501234567', 'az', :template, :params,"
                    " :at, 0, :at, :sent_at, :key)"), dict(key=key, template=template, params=params, at=at,
                                                          sent_at=sent_at))
        upgrade(engine, "head")
        with engine.connect() as connection:
            kept = dict(connection.execute(text("SELECT key, params FROM outbox_message")).all())
    finally:
        engine.dispose()
    assert kept == {
        "signin:sent": '{"code": "", "minutes": 5}',
        "signin:waiting": '{"code": "654321", "minutes": 5}',  # still to be sent (or dropped by purge)
        "other:sent": '{"code": "1000000002"}',
    }
