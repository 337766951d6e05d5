"""Twilio Voice: whole calls walked through the webhooks the way Twilio does, heard exactly as the
FastAGI adapter plays them for the same caller and keys (one table of cases, both adapters), over
a real billing core on SQLite; signatures, retries, the end of a call, expiry and the prompts' audio."""
from __future__ import annotations

import io
import logging
import wave
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing import call_sessions, services
from billing.core import Core
from billing.models import CallSession, Operation
from ivr import flows
from ivr.fastagi import FastAgiServer
from selfcare.http import create_app

from tests.unit.voice_support import (
    AUTH_TOKEN,
    BASE,
    CALLERS,
    CARD_PIN,
    USED_CARD_PIN,
    WRONG_PIN,
    TwilioCaller,
    build_template,
    core_from,
    fastagi_heard,
    prompt_of,
    voice_settings,
)

LANGUAGES = ("az", "en", "ru")

# Every branch of both menus, as keys pressed (a space: silence), or as (keys, the prompt the
# first key is pressed during: barge-in where a key may interrupt it, lost where not). 2112 is the
# prepaid line, 650 the postpaid one; each walk runs in each language.
BRANCHES_2112 = {
    "goodbye": "9",
    "repeat": "19",
    "language az": "219",
    "language en": "229",
    "language ru": "239",
    "language menu exhausted": "2 7#",
    "notifications off": "39",
    "notifications off, on": "339",
    "safety advice": "49",
    "card topped up": f"5{CARD_PIN}#9",
    "card wrong pin": f"5{WRONG_PIN}#9",
    "card short pin, silence, silence": "512#  9",
    "invalid then goodbye": "79",
    "invalid x3": "70#",
    "silence then goodbye": " 9",
    "silence x3": "   ",
    "hang up at the menu": "",
    "hang up at the pin": "5",
    "card already used": f"5{USED_CARD_PIN}#9",
    "card locked after five wrong pins": f"5{WRONG_PIN}#" * 6 + "9",
    "pin typed during no-input": (f"5 {CARD_PIN}#9", "no-input"),
    "pin typed during card-pin-invalid": (f"512#{CARD_PIN}#9", "card-pin-invalid"),
    "menu answered during no-input": (" 9", "no-input"),
    "menu answered during invalid-choice": ("749", "invalid-choice"),
    "menu answered during the figures": ("49", "your-balance-is"),
    "a key during the welcome is lost": ("19", "welcome-2112"),
}
BRANCHES_650 = {
    "goodbye": "9",
    "repeat": "19",
    "language az": "219",
    "language en": "229",
    "language ru": "239",
    "language menu exhausted": "2  *",
    "notifications off": "39",
    "notifications off, on": "339",
    "safety advice": "49",
    "no card option on 650": "59",
    "menu answered during the figures": ("49", "billed-amount-is"),
    "invalid x3": "7*0",
    "silence x3": "   ",
    "hang up at the menu": "",
}
# Lines that are not in good standing, on their own number, in each language.
LINES = {
    "2112": {"balance expired, suspended": "expired", "closed": "closed"},
    "650": {"suspended by the operator": "suspended"},
}


def _walk(branch) -> tuple[str, str | None]:
    return (branch, None) if isinstance(branch, str) else branch


CASES = (
    [pytest.param("2112", CALLERS["prepaid", lang], *_walk(branch), id=f"2112-{lang}-{name}")
     for lang in LANGUAGES for name, branch in BRANCHES_2112.items()]
    + [pytest.param("650", CALLERS["postpaid", lang], *_walk(branch), id=f"650-{lang}-{name}")
       for lang in LANGUAGES for name, branch in BRANCHES_650.items()]
    + [pytest.param(service, CALLERS[kind, lang], "19", None, id=f"{service}-{lang}-{name}")
       for service, lines in LINES.items() for name, kind in lines.items() for lang in LANGUAGES]
    + [
        pytest.param("2112", CALLERS["postpaid", "ru"], "9", None, id="postpaid-on-2112"),
        pytest.param("650", CALLERS["prepaid", "en"], "9", None, id="prepaid-on-650"),
        pytest.param("2112", "+994709998877", "9", None, id="unknown-caller"),
        pytest.param("2112", "anonymous", "9", None, id="withheld-number"),
        pytest.param("2112", "+266696687", "9", None, id="withheld-number-twilio-anonymous"),
        pytest.param("650", "+7378742833", "9", None, id="withheld-number-twilio-restricted"),
        pytest.param("650", "", "9", None, id="no-caller-id"),
    ]
)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return build_template(tmp_path_factory.mktemp("voice") / "template.db")


@pytest.fixture
def make_core(template, tmp_path):
    made = []

    def make(name="billing.db"):
        made.append(core_from(template, tmp_path / name))
        return made[-1]

    yield make
    for core in made:
        core.dispose()


def twilio_client(core, **settings):
    return create_app(core, voice_settings(**settings)).test_client()


def heard_over_fastagi(core, service, caller, keys, during=None):
    with FastAgiServer(core, "127.0.0.1", 0) as server:
        return fastagi_heard(server, caller, service, keys, during)


def same_prompts(twilio, fastagi) -> None:
    """The same prompt ids in the same order, each one a key may interrupt on both adapters or on
    neither; each in the same language wherever the FastAGI flow had set one (before that,
    Asterisk plays in its own language, Twilio in the default)."""
    assert [(h.prompt_id, h.interruptible) for h in twilio] == [(h.prompt_id, h.interruptible) for h in fastagi]
    for on_twilio, on_agi in zip(twilio, fastagi):
        if on_agi.language is not None:
            assert on_twilio.language == on_agi.language, on_twilio.prompt_id


# -- one table of cases, both adapters ------------------------------------------------------------

@pytest.mark.parametrize("service, caller, keys, during", CASES)
def test_twilio_callers_hear_what_fastagi_callers_hear(make_core, service, caller, keys, during):
    fastagi = heard_over_fastagi(make_core("agi.db"), service, caller, keys, during)
    twilio_core = make_core("twilio.db")
    call = TwilioCaller(twilio_client(twilio_core), caller, keys, during=during).call(service)
    same_prompts(call.heard, fastagi)
    assert call.hung_up_by == ("caller" if keys in ("", "5") else "server")
    with twilio_core.reader() as uow:
        assert services.audit(uow) == []
        assert uow.session.scalars(select(CallSession)).all() == []  # the status callback dropped it


PREPAID_AZ_FIGURES = ["your-balance-is", "num/12", "cur/manat-1", "num/40", "num/8", "cur/qepik-1",
                      "your-tariff-is", "tariff-klass"]
POSTPAID_RU_FIGURES = ["billed-amount-is", "num/20", "num/5", "cur/manat-5", "num/30", "cur/qepik-5",  # 25.30
                       "current-amount-is", "num/7", "cur/manat-5", "num/15", "cur/qepik-5",  # 7.15
                       "advance-payment-is", "num/5", "cur/manat-5"]  # 5.00


def test_a_2112_call_on_twilio_pins_the_prompts_and_the_twiml(make_core):
    call = TwilioCaller(twilio_client(make_core()), CALLERS["prepaid", "az"], "9").call("2112")
    assert call.prompt_ids[:9] == ["welcome-2112", *PREPAID_AZ_FIGURES]
    assert call.prompt_ids[-2:] == ["menu-main", "goodbye"]
    assert {heard.language for heard in call.heard} == {"az"}
    first = call.answers[0]
    # the welcome heard whole; the figures and the menu inside the Gather (barge-in)
    assert first.startswith('<?xml version="1.0" encoding="UTF-8"?><Response>'
                            f"<Play>{BASE}/voice/prompts/az/welcome-2112.wav</Play>"
                            f'<Gather action="{BASE}/voice/twilio/turn/1" finishOnKey="" input="dtmf" method="POST" '
                            f'numDigits="1" timeout="5"><Play>{BASE}/voice/prompts/az/your-balance-is.wav</Play>')
    assert first.endswith(f"<Play>{BASE}/voice/prompts/az/menu-main.wav</Play></Gather>"
                          f'<Redirect method="POST">{BASE}/voice/twilio/turn/1</Redirect></Response>')
    assert call.answers[1] == ('<?xml version="1.0" encoding="UTF-8"?><Response>'
                               f"<Play>{BASE}/voice/prompts/az/goodbye.wav</Play><Hangup /></Response>")
    assert [url for url, _ in call.posts] == [f"{BASE}/voice/twilio?service=2112", f"{BASE}/voice/twilio/turn/1"]
    assert call.posts[1][1]["Digits"] == "9"


def test_a_650_call_on_twilio_in_russian_pins_the_prompts(make_core):
    call = TwilioCaller(twilio_client(make_core()), CALLERS["postpaid", "ru"], " 9").call("650")
    assert call.prompt_ids == ["welcome-650", *POSTPAID_RU_FIGURES, "menu-main-650", "no-input", "menu-main-650",
                               "goodbye"]
    assert {heard.language for heard in call.heard} == {"ru"}
    assert "Digits" not in call.posts[1][1]  # the silence: the <Redirect> posted without Digits


def test_a_card_pin_is_gathered_up_to_hash_and_keyed_on_the_call_sid(make_core):
    core = make_core()
    caller = TwilioCaller(twilio_client(core), CALLERS["prepaid", "en"], f"5{CARD_PIN}#9", call_sid="CA" + "ab" * 16)
    call = caller.call("2112")
    assert '<Gather action="http://localhost/voice/twilio/turn/2" finishOnKey="#" input="dtmf" method="POST" ' \
           'numDigits="16" timeout="6"><Play>http://localhost/voice/prompts/en/card-enter-pin.wav</Play></Gather>' \
           in call.answers[1]
    assert call.posts[2][1]["Digits"] == CARD_PIN
    start = call.prompt_ids.index("card-topped-up")
    assert call.prompt_ids[start:] == ["card-topped-up", "num/5", "cur/manat-5", "your-new-balance-is", "num/17",
                                       "cur/manat-5", "word/and", "num/40", "num/8", "cur/qepik-5", "menu-main",
                                       "goodbye"]
    with core.reader() as uow:
        assert services.balance_report(uow, CALLERS["prepaid", "en"]).balance == Decimal("17.48")
        assert set(uow.session.scalars(select(Operation.key).where(Operation.kind == "card"))) == {
            "template:used-card",  # the template's used card
            f"ivr:CA{'ab' * 16}:4"}  # the CallSid and the step, as AGI keys it by uniqueid and step


def _gather(turn: int, language: str, *prompt_ids: str, num_digits: int = 1, finish_on_key: str = "",
            timeout: int = 5) -> str:
    plays = "".join(f"<Play>{BASE}/voice/prompts/{language}/{prompt_id}.wav</Play>" for prompt_id in prompt_ids)
    action = f"{BASE}/voice/twilio/turn/{turn}"
    return ('<?xml version="1.0" encoding="UTF-8"?><Response>'
            f'<Gather action="{action}" finishOnKey="{finish_on_key}" input="dtmf" method="POST" '
            f'numDigits="{num_digits}" timeout="{timeout}">{plays}</Gather>'
            f'<Redirect method="POST">{action}</Redirect></Response>')


def test_the_error_prompts_of_a_menu_sit_inside_the_gather_on_twilio(make_core):
    call = TwilioCaller(twilio_client(make_core()), CALLERS["prepaid", "az"], "7 9").call("2112")
    assert call.answers[1] == _gather(2, "az", "invalid-choice", "menu-main")
    assert call.answers[2] == _gather(3, "az", "no-input", "menu-main")


def test_a_pin_typed_during_no_input_on_twilio_is_gathered_whole_and_tops_up(make_core):
    core = make_core()
    call = TwilioCaller(twilio_client(core), CALLERS["prepaid", "en"], f"5 {CARD_PIN}#9", during="no-input").call("2112")
    # silence at the PIN: no-input and the PIN prompt again, both inside the PIN's <Gather>
    assert call.answers[2] == _gather(3, "en", "no-input", "card-enter-pin", num_digits=16, finish_on_key="#",
                                      timeout=6)
    assert call.posts[3][1]["Digits"] == CARD_PIN  # typed from within no-input: no digit lost
    start = call.prompt_ids.index("card-enter-pin")
    assert call.prompt_ids[start:start + 3] == ["card-enter-pin", "no-input", "card-topped-up"]
    with core.reader() as uow:
        assert services.balance_report(uow, CALLERS["prepaid", "en"]).balance == Decimal("17.48")


def _marked(call) -> list[str]:
    """Prompt ids, upper case where heard whole (no key could interrupt it)."""
    return [h.prompt_id if h.interruptible else h.prompt_id.upper() for h in call.heard]


def test_a_line_whose_balance_expired_is_told_it_is_suspended_and_when_it_expired(make_core):
    call = TwilioCaller(twilio_client(make_core()), CALLERS["expired", "en"], "9").call("2112")
    assert _marked(call) == [
        "WELCOME-2112", "LINE-SUSPENDED", "your-balance-is", "num/3", "cur/manat-5", "your-tariff-is",
        "tariff-klass", "balance-expired-on", "day/1", "month/10", "num/2", "num/thousand-5", "num/20", "num/6",
        "topup-to-reactivate", "subscription-ends-on", "day/30", "month/3", "num/2", "num/thousand-5", "num/20",
        "num/7", "menu-main", "GOODBYE"]


def test_a_closed_line_hears_line_closed_and_the_call_ends(make_core):
    call = TwilioCaller(twilio_client(make_core()), CALLERS["closed", "ru"], "9").call("2112")
    assert call.answers == ['<?xml version="1.0" encoding="UTF-8"?><Response>'
                            f"<Play>{BASE}/voice/prompts/ru/welcome-2112.wav</Play>"
                            f"<Play>{BASE}/voice/prompts/ru/line-closed.wav</Play><Hangup /></Response>"]


def test_a_used_card_is_told_with_the_day_it_was_used(make_core):
    call = TwilioCaller(twilio_client(make_core()), CALLERS["prepaid", "az"], f"5{USED_CARD_PIN}#9").call("2112")
    start = call.prompt_ids.index("card-enter-pin")
    assert _marked(call)[start:] == ["card-enter-pin", "CARD-ALREADY-USED", "DAY/20", "MONTH/11", "NUM/2",
                                     "NUM/THOUSAND-1", "NUM/20", "NUM/6", "menu-main", "GOODBYE"]


def test_a_sixth_pin_after_five_wrong_ones_is_told_the_card_entry_is_locked(make_core):
    call = TwilioCaller(twilio_client(make_core()), CALLERS["prepaid", "ru"], f"5{WRONG_PIN}#" * 6 + "9").call("2112")
    assert call.prompt_ids.count("card-pin-wrong") == 5
    assert _marked(call)[-6:] == ["card-enter-pin", "CARD-LOCKED", "NUM/60", "TIME/MINUTE-5", "menu-main", "GOODBYE"]


def test_a_suspended_650_line_turns_notifications_off_and_on_again(make_core):
    call = TwilioCaller(twilio_client(make_core()), CALLERS["suspended", "az"], "339").call("650")
    assert _marked(call)[:3] == ["WELCOME-650", "LINE-SUSPENDED", "billed-amount-is"]
    assert _marked(call)[-6:] == ["menu-main-650", "NOTIFICATIONS-OFF", "menu-main-650", "NOTIFICATIONS-ON",
                                  "menu-main-650", "GOODBYE"]


def test_a_database_that_fails_plays_service_unavailable_as_on_asterisk(tmp_path):
    broken = Core(f"sqlite:///{tmp_path / 'no-schema.db'}")  # no tables: every query fails
    try:
        with FastAgiServer(broken, "127.0.0.1", 0) as server:
            fastagi = fastagi_heard(server, CALLERS["prepaid", "az"], "2112", "9")
        caller = TwilioCaller(twilio_client(broken), CALLERS["prepaid", "az"], "9")
        answer = caller.post(f"{BASE}/voice/twilio?service=2112", caller.form())
    finally:
        broken.dispose()
    assert [h.prompt_id for h in fastagi] == ["service-unavailable"]
    assert answer.status_code == 200
    assert answer.get_data(as_text=True) == (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        f"<Play>{BASE}/voice/prompts/az/service-unavailable.wav</Play><Hangup /></Response>")


def _without_call_sessions(core) -> None:
    """The lines can be read, the calls' state cannot be kept (as when writes fail)."""
    with core.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE call_session")


def test_a_failure_at_call_start_is_told_in_the_callers_language_when_it_can_be_read(make_core):
    core = make_core()
    _without_call_sessions(core)
    caller = TwilioCaller(twilio_client(core), CALLERS["prepaid", "ru"])
    answer = caller.post(f"{BASE}/voice/twilio?service=2112", caller.form())
    assert answer.status_code == 200
    assert answer.get_data(as_text=True) == (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        f"<Play>{BASE}/voice/prompts/ru/service-unavailable.wav</Play><Hangup /></Response>")


def test_a_failure_mid_call_is_told_in_the_callers_language(make_core):
    core = make_core()
    caller = TwilioCaller(twilio_client(core), CALLERS["postpaid", "en"])
    caller.post(f"{BASE}/voice/twilio?service=650", caller.form())
    _without_call_sessions(core)
    answer = caller.post(f"{BASE}/voice/twilio/turn/1", caller.form(Digits="9"))
    assert answer.get_data(as_text=True) == (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        f"<Play>{BASE}/voice/prompts/en/service-unavailable.wav</Play><Hangup /></Response>")


def test_the_status_callback_on_a_failing_database_is_answered_not_a_500(tmp_path, make_core):
    broken = Core(f"sqlite:///{tmp_path / 'no-schema.db'}")  # no tables: every query fails
    try:
        caller = TwilioCaller(twilio_client(broken), CALLERS["prepaid", "az"])
        answer = caller.post(f"{BASE}/voice/twilio/status", caller.form(CallStatus="completed"))
    finally:
        broken.dispose()
    assert answer.status_code == 200
    assert answer.get_data(as_text=True) == (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        f"<Play>{BASE}/voice/prompts/az/service-unavailable.wav</Play><Hangup /></Response>")
    core = make_core()
    _without_call_sessions(core)
    caller = TwilioCaller(twilio_client(core), CALLERS["prepaid", "az"])
    assert caller.post(f"{BASE}/voice/twilio/status", caller.form(CallStatus="completed")).status_code == 200


# the word (Twilio's From for a withheld number since 2023) or the word spelt on a keypad
@pytest.mark.parametrize("given", ["+266696687", "266696687", "+7378742833", "+86282452253", "+2562533",
                                   "+8656696", "Anonymous", "RESTRICTED", "unavailable", "Blocked"])
def test_every_way_twilio_writes_a_withheld_number_is_taken_as_withheld(make_core, caplog, given):
    with caplog.at_level(logging.INFO, logger="ivr"):
        call = TwilioCaller(twilio_client(make_core()), given, "9").call("2112")
    assert call.answers == ['<?xml version="1.0" encoding="UTF-8"?><Response>'
                            f"<Play>{BASE}/voice/prompts/az/unknown-caller.wav</Play><Hangup /></Response>"]
    assert any("caller id withheld" in record.getMessage() for record in caplog.records)  # not "not served"


def test_the_lines_logged_for_a_twilio_webhook_carry_the_call_sid_and_the_masked_number(make_core, caplog):
    from selfcare import logs

    logs._capture_context()
    sid = "CA" + "3c" * 16
    with caplog.at_level(logging.INFO, logger="ivr"):
        TwilioCaller(twilio_client(make_core()), CALLERS["prepaid", "az"], "39", call_sid=sid).call("2112")
    lines = [record for record in caplog.records if record.name.startswith("ivr.")]
    assert [record.getMessage() for record in lines] == [
        "call 2112 +99450***4567: figures told",  # the first webhook
        "menu main 2112 +99450***4567: matched notifications",  # the second
        "call 2112 +99450***4567: balance-change SMS off",
        "menu main 2112 +99450***4567: matched goodbye",  # the third
        f"twilio voice call {sid} 2112 +99450***4567 ended: completed",
        f"twilio voice call {sid} completed, state dropped"]  # the status callback
    for record in lines:
        assert record.selfcare == {"call_id": sid, "number": "+99450***4567"}, record.getMessage()


def test_a_billing_failure_mid_call_plays_service_unavailable_on_both_adapters(make_core, monkeypatch):
    from billing.errors import BillingError

    def refused(controller, turn_on):
        raise BillingError("the line cannot be changed now")

    monkeypatch.setattr(flows.CallController, "_save_notifications", refused)
    caller, keys = CALLERS["prepaid", "en"], "39"
    fastagi = heard_over_fastagi(make_core("agi.db"), "2112", caller, keys)
    call = TwilioCaller(twilio_client(make_core("twilio.db")), caller, keys).call("2112")
    same_prompts(call.heard, fastagi)
    assert call.prompt_ids[-2:] == ["menu-main", "service-unavailable"] and call.hung_up_by == "server"


# -- signatures ------------------------------------------------------------------------------------

def test_unsigned_and_forged_webhooks_are_refused_and_change_nothing(make_core):
    core = make_core()
    client = twilio_client(core)
    caller = TwilioCaller(client, CALLERS["prepaid", "az"])
    url = f"{BASE}/voice/twilio?service=2112"
    assert caller.post(url, caller.form(), signed=False).status_code == 403
    forged = TwilioCaller(client, CALLERS["prepaid", "az"], token="not-the-token")
    assert forged.post(url, forged.form()).status_code == 403
    signed_for_650 = caller.validator.compute_signature(f"{BASE}/voice/twilio?service=650", caller.form())
    moved = client.post("/voice/twilio?service=2112", data=caller.form(), headers={"X-Twilio-Signature": signed_for_650})
    assert moved.status_code == 403  # a signature is for one URL
    for path in ("/voice/twilio/turn/1", "/voice/twilio/status"):
        assert caller.post(f"{BASE}{path}", caller.form(Digits="3"), signed=False).status_code == 403
    with core.reader() as uow:
        assert uow.session.scalars(select(CallSession)).all() == []


def test_without_an_auth_token_every_voice_webhook_is_refused(make_core):
    client = twilio_client(make_core(), token=None)
    caller = TwilioCaller(client, CALLERS["prepaid", "az"])
    assert caller.post(f"{BASE}/voice/twilio?service=2112", caller.form()).status_code == 403


def test_behind_a_proxy_the_public_url_is_what_is_signed_and_handed_out(make_core):
    public = "https://voice.example.com/selfcare"
    client = twilio_client(make_core(), public_url=public)
    caller = TwilioCaller(client, CALLERS["prepaid", "az"], "49", base=public)
    call = caller.call("2112")
    assert call.prompt_ids[-3:] == ["fraud-advice", "menu-main", "goodbye"]
    assert f"<Play>{public}/voice/prompts/az/welcome-2112.wav</Play>" in call.answers[0]
    assert all(url.startswith(public) for url, _ in call.posts)


# -- retries, the end of a call, expiry -----------------------------------------------------------

def test_a_retried_webhook_gets_the_same_twiml_and_changes_nothing_twice(make_core):
    core = make_core()
    caller = TwilioCaller(twilio_client(core), CALLERS["prepaid", "az"])
    start = f"{BASE}/voice/twilio?service=2112"
    first = caller.post(start, caller.form()).get_data(as_text=True)
    assert caller.post(start, caller.form()).get_data(as_text=True) == first  # the start, retried
    toggle = f"{BASE}/voice/twilio/turn/1"
    answered = caller.post(toggle, caller.form(Digits="3")).get_data(as_text=True)
    retried = caller.post(toggle, caller.form(Digits="3")).get_data(as_text=True)
    assert retried == answered and "notifications-off.wav" in answered
    with core.reader() as uow:
        assert services.balance_report(uow, CALLERS["prepaid", "az"]).notify_balance is False  # toggled once
    following = caller.post(f"{BASE}/voice/twilio/turn/2", caller.form(Digits="9")).get_data(as_text=True)
    assert "goodbye.wav" in following and "<Hangup />" in following


def test_a_twin_that_comes_while_the_first_is_worked_out_is_sent_back_in_a_second(make_core):
    core = make_core()
    caller = TwilioCaller(twilio_client(core), CALLERS["prepaid", "az"])
    caller.post(f"{BASE}/voice/twilio?service=2112", caller.form())
    with core.uow() as uow:
        assert call_sessions.claim(uow, caller.call_sid, 1).won  # another process is at turn 1
    twin = caller.post(f"{BASE}/voice/twilio/turn/1", caller.form(Digits="3")).get_data(as_text=True)
    assert twin == ('<?xml version="1.0" encoding="UTF-8"?><Response><Pause length="1" />'
                    f'<Redirect method="POST">{BASE}/voice/twilio/turn/1</Redirect></Response>')
    core.clock.advance(call_sessions.WORK_LIFETIME + timedelta(seconds=1))  # that process died
    lost = caller.post(f"{BASE}/voice/twilio/turn/1", caller.form(Digits="3")).get_data(as_text=True)
    assert "/az/goodbye.wav" in lost and "<Hangup />" in lost


def test_the_status_callback_drops_the_call_and_a_later_webhook_hears_goodbye(make_core):
    core = make_core()
    caller = TwilioCaller(twilio_client(core), CALLERS["prepaid", "ru"])
    caller.post(f"{BASE}/voice/twilio?service=2112", caller.form())
    done = caller.post(f"{BASE}/voice/twilio/status", caller.form(CallStatus="completed"))
    assert done.status_code == 204
    with core.reader() as uow:
        assert uow.session.scalars(select(CallSession)).all() == []
    late = caller.post(f"{BASE}/voice/twilio/turn/1", caller.form(Digits="1")).get_data(as_text=True)
    assert late == ('<?xml version="1.0" encoding="UTF-8"?><Response>'
                    f"<Play>{BASE}/voice/prompts/ru/goodbye.wav</Play><Hangup /></Response>")


def test_a_call_whose_state_expired_is_answered_with_goodbye_not_a_500(make_core):
    core = make_core()
    caller = TwilioCaller(twilio_client(core), CALLERS["prepaid", "en"])
    caller.post(f"{BASE}/voice/twilio?service=2112", caller.form())
    core.clock.advance(call_sessions.IDLE_LIFETIME + timedelta(seconds=1))
    late = caller.post(f"{BASE}/voice/twilio/turn/1", caller.form(Digits="1"))
    assert late.status_code == 200
    assert late.get_data(as_text=True) == ('<?xml version="1.0" encoding="UTF-8"?><Response>'
                                           f"<Play>{BASE}/voice/prompts/en/goodbye.wav</Play><Hangup /></Response>")
    other = TwilioCaller(caller.client, CALLERS["prepaid", "az"], call_sid="CA" + "2" * 32)
    other.post(f"{BASE}/voice/twilio?service=2112", other.form())  # the next call sweeps expired ones
    with core.reader() as uow:
        assert [s.call_id for s in uow.session.scalars(select(CallSession))] == [other.call_sid]


def test_an_unknown_service_in_the_voice_url_is_told_service_unavailable(make_core):
    caller = TwilioCaller(twilio_client(make_core()), CALLERS["prepaid", "az"])
    answer = caller.post(f"{BASE}/voice/twilio?service=999", caller.form()).get_data(as_text=True)
    assert answer == ('<?xml version="1.0" encoding="UTF-8"?><Response>'
                      f"<Play>{BASE}/voice/prompts/az/service-unavailable.wav</Play><Hangup /></Response>")


def test_a_webhook_without_a_call_sid_is_a_bad_request(make_core):
    caller = TwilioCaller(twilio_client(make_core()), CALLERS["prepaid", "az"])
    form = caller.form()
    del form["CallSid"]
    assert caller.post(f"{BASE}/voice/twilio?service=2112", form).status_code == 400


# -- the prompts' audio -----------------------------------------------------------------------------

def test_every_prompt_a_flow_can_play_is_served_as_8_khz_audio_in_every_language(make_core):
    from prompts import catalogue

    client = twilio_client(make_core())
    core_tariffs = list(make_core("tariffs.db").tariffs.tariffs)
    playable = flows.static_prompt_ids(core_tariffs) | set(catalogue.load().ids())  # the say grammar's too
    assert {"welcome-2112", "menu-main-650", "num/12", "cur/qepik-5", "day/20", "month/2"} <= playable
    for language in LANGUAGES:
        for prompt_id in sorted(playable):
            response = client.get(f"/voice/prompts/{language}/{prompt_id}.wav")
            assert response.status_code == 200, (language, prompt_id)
            assert response.content_type == "audio/wav"  # a type Twilio's <Play> takes
            with wave.open(io.BytesIO(response.data)) as audio:
                assert (audio.getframerate(), audio.getnchannels(), audio.getsampwidth()) == (8000, 1, 2), prompt_id
                assert audio.getnframes() > 0, prompt_id


def test_every_play_url_of_a_walked_call_is_audio(make_core):
    client = twilio_client(make_core())
    call = TwilioCaller(client, CALLERS["prepaid", "ru"], f"5{WRONG_PIN}#2 9").call("2112")
    for url in {url for answer in call.answers for url in _play_urls(answer)}:
        assert client.get(url.removeprefix(BASE)).status_code == 200, url


@pytest.mark.parametrize("path", ["/voice/prompts/de/goodbye.wav", "/voice/prompts/az/goodbye.ulaw",
                                  "/voice/prompts/az/../manifest.json", "/voice/prompts/az/no-such-prompt.wav",
                                  "/voice/prompts/az/Goodbye.wav"])
def test_a_prompt_url_that_is_not_a_prompt_is_a_404(make_core, path):
    assert twilio_client(make_core()).get(path).status_code == 404


def _play_urls(twiml: str) -> list[str]:
    import xml.etree.ElementTree as ET

    return [element.text for element in ET.fromstring(twiml).iter("Play")]


def test_prompt_of_reads_the_id_and_language_back():
    assert prompt_of(f"{BASE}/voice/prompts/ru/cur/manat-5.wav") == ("cur/manat-5", "ru")
    assert AUTH_TOKEN  # the token the walker signs with is the app's


def test_migration_0006_goes_up_down_and_up_on_sqlite(tmp_path):
    from alembic import command
    from sqlalchemy import inspect, text

    from billing.core import make_engine
    from billing.migrate import alembic_config, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        upgrade(engine, "head")
        assert "call_session" in inspect(engine).get_table_names()
        command.downgrade(alembic_config(engine), "0005_fraud")
        assert "call_session" not in inspect(engine).get_table_names()
        upgrade(engine, "0006_call_sessions")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM call_session")).scalar() == 0
    finally:
        engine.dispose()


def test_a_webhook_after_the_call_hung_up_hears_goodbye_and_changes_nothing(make_core):
    core = make_core()
    caller = TwilioCaller(twilio_client(core), CALLERS["prepaid", "az"])
    caller.post(f"{BASE}/voice/twilio?service=2112", caller.form())
    assert "<Hangup />" in caller.post(f"{BASE}/voice/twilio/turn/1", caller.form(Digits="9")).get_data(as_text=True)
    after = caller.post(f"{BASE}/voice/twilio/turn/2", caller.form(Digits="3")).get_data(as_text=True)
    assert after == ('<?xml version="1.0" encoding="UTF-8"?><Response>'
                     f"<Play>{BASE}/voice/prompts/az/goodbye.wav</Play><Hangup /></Response>")
    with core.reader() as uow:
        assert services.balance_report(uow, CALLERS["prepaid", "az"]).notify_balance is True


def _requests_counted(service: str, outcome: str) -> float:
    from prometheus_client import REGISTRY

    labels = {"channel": "ivr", "service": service, "outcome": outcome}
    return REGISTRY.get_sample_value("selfcare_requests_total", labels) or 0.0


def test_a_twilio_call_is_counted_once_when_it_ends_as_a_fastagi_call_is(make_core):
    core = make_core()
    before = _requests_counted("2112", "completed")
    caller = TwilioCaller(twilio_client(core), CALLERS["prepaid", "az"], "9")
    call = caller.call("2112")
    assert _requests_counted("2112", "completed") == before + 1
    caller.post(call.posts[-1][0], call.posts[-1][1])  # a retried last webhook replays, uncounted
    caller.post(f"{BASE}/voice/twilio/status", caller.form(CallStatus="completed"))
    assert _requests_counted("2112", "completed") == before + 1


def test_a_twilio_caller_who_hangs_up_mid_menu_is_counted_as_a_hangup(make_core):
    core = make_core()
    before = _requests_counted("650", "hangup")
    caller = TwilioCaller(twilio_client(core), CALLERS["postpaid", "ru"], call_sid="CA" + "2" * 32)
    caller.post(f"{BASE}/voice/twilio?service=650", caller.form())
    caller.post(f"{BASE}/voice/twilio/status", caller.form(CallStatus="completed"))
    caller.post(f"{BASE}/voice/twilio/status", caller.form(CallStatus="completed"))  # Twilio may retry it
    assert _requests_counted("650", "hangup") == before + 1
