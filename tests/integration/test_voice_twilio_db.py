"""Twilio Voice call state on both databases (SQLite and a real PostgreSQL): a whole call walked
through the webhooks, and a webhook and its retry racing, of which exactly one does the work."""
from __future__ import annotations

import threading
from decimal import Decimal

from sqlalchemy import select

from billing import services
from billing.models import CallSession
from selfcare.http import create_app

from tests.unit.voice_support import BASE, TwilioCaller, voice_settings

CALLER = "+994501234567"
PAUSE_AND_COME_BACK = '<Pause length="1" />'


def add_caller(core):
    with core.uow() as uow:
        services.add_subscriber(uow, CALLER, "prepaid", tariff="klass", balance=Decimal("12.48"), language="ru")


def test_a_whole_twilio_call_keeps_its_state_in_the_database_and_drops_it_at_the_end(any_core):
    add_caller(any_core)
    client = create_app(any_core, voice_settings()).test_client()
    call = TwilioCaller(client, CALLER, "3 49").call("2112")
    assert call.prompt_ids[-8:] == ["menu-main", "notifications-off", "menu-main", "no-input", "menu-main",
                                    "fraud-advice", "menu-main", "goodbye"]
    assert {heard.language for heard in call.heard} == {"ru"}
    with any_core.reader() as uow:
        assert services.balance_report(uow, CALLER).notify_balance is False
        assert uow.session.scalars(select(CallSession)).all() == []


def test_a_webhook_and_its_retry_racing_change_the_line_once(any_core):
    add_caller(any_core)
    app = create_app(any_core, voice_settings())
    first = TwilioCaller(app.test_client(), CALLER)
    first.post(f"{BASE}/voice/twilio?service=2112", first.form())
    start = threading.Barrier(2)
    answers = []

    def post_turn_1():
        caller = TwilioCaller(app.test_client(), CALLER)
        start.wait(5)
        answers.append(caller.post(f"{BASE}/voice/twilio/turn/1", caller.form(Digits="3")).get_data(as_text=True))

    twins = [threading.Thread(target=post_turn_1) for _ in range(2)]
    for twin in twins:
        twin.start()
    for twin in twins:
        twin.join(30)
    with any_core.reader() as uow:
        assert services.balance_report(uow, CALLER).notify_balance is False  # toggled once, not back
    done = [answer for answer in answers if "notifications-off.wav" in answer]
    assert len(answers) == 2 and len(done) >= 1
    assert all(answer == done[0] or PAUSE_AND_COME_BACK in answer for answer in answers)
