"""The SMS channel through a real Kannel: fakesmsc -> bearerbox -> smsbox -> our app -> back."""
from __future__ import annotations

from decimal import Decimal

import pytest

from billing import services
import texts
from sms.dispatch import Dispatcher, KannelTransport

pytestmark = pytest.mark.kannel

TEXTS = texts.current()["sms"]


def add_prepaid(core, msisdn, balance="10.00", language="az"):
    with core.uow() as uow:
        services.add_subscriber(uow, msisdn, "prepaid", balance=Decimal(balance), language=language)


def add_postpaid(core, msisdn, language="az", **figures):
    figures = {k: Decimal(v) for k, v in figures.items()}
    with core.uow() as uow:
        services.add_subscriber(uow, msisdn, "postpaid", language=language, bill_day=10, **figures)


def report(core, msisdn):
    with core.uow() as uow:
        return services.balance_report(uow, msisdn)


def audit_clean(core):
    with core.uow() as uow:
        assert services.audit(uow) == []


def test_blank_sms_to_2112_answers_an_azerbaijani_balance_intact_as_flash_and_charges_once(kannel_world):
    core, peer = kannel_world.core, kannel_world.peer
    add_prepaid(core, "+994501110001", "10.00", "az")

    mt = peer.ask("+994501110001", "2112", "")

    after = report(core, "+994501110001")
    assert after.balance == Decimal("9.98")
    assert mt.sender == "2112"
    assert mt.text == ("Balansınız: 9.98 AZN. Balans 20 fevral 2027 tarixinədək, abunəlik 19 avqust 2027 "
                       "tarixinədək qüvvədədir.")
    assert "?" not in mt.text and "ı" in mt.text and "ə" in mt.text
    assert peer.sent_flags("+994501110001")[-1] == ("0", "2")  # flash (class 0), UCS-2
    audit_clean(core)


def test_blank_sms_to_2112_in_russian_arrives_in_cyrillic(kannel_world):
    core, peer = kannel_world.core, kannel_world.peer
    add_prepaid(core, "+994501110002", "3.00", "ru")

    mt = peer.ask("+994501110002", "2112", "")

    assert mt.text == "Баланс: 2.98 AZN. Баланс действует до 22 декабря 2026, номер активен до 20 июня 2027."
    assert "?" not in mt.text


def test_postpaid_line_on_2112_is_sent_to_650_free(kannel_world):
    core, peer = kannel_world.core, kannel_world.peer
    add_postpaid(core, "+994551110001", "en", billed="20.00", current="4.00", advance="1.00")

    mt = peer.ask("+994551110001", "2112", "")

    assert mt.text == TEXTS.render("use-650", "en")
    assert report(core, "+994551110001").current == Decimal("4.00")


def test_blank_sms_to_650_reports_billed_current_advance_and_charges_0_0236(kannel_world):
    core, peer = kannel_world.core, kannel_world.peer
    add_postpaid(core, "+994551110002", "en", billed="25.30", current="7.15", advance="5.00")

    mt = peer.ask("+994551110002", "650", "")

    after = report(core, "+994551110002")
    assert after.current == Decimal("7.1736")
    # 7.1736 owed is shown rounded up: no part of what is owed is hidden
    assert mt.text == "Billed amount: 25.30 AZN. Current amount: 7.18 AZN. Advance payment: 5.00 AZN."
    assert peer.sent_flags("+994551110002")[-1] == ("0", "0")  # flash, GSM-7


def test_plus_and_minus_to_650_grant_and_revoke_a_viewer(kannel_world):
    core, peer = kannel_world.core, kannel_world.peer
    add_postpaid(core, "+994551110003", "az", billed="11.00", current="2.50", advance="0.00")
    add_prepaid(core, "+994501110003", "5.00", "en")

    granted = peer.ask("+994551110003", "650", "+0501110003")
    seen = peer.ask("+994501110003", "650", "0551110003")
    revoked = peer.ask("+994551110003", "650", "-0501110003")
    refused = peer.ask("+994501110003", "650", "0551110003")

    assert granted.text == "0501110003 artıq balans məlumatınızı görə bilər. Ləğv: 650-yə -0501110003 göndərin."
    # the owner's current amount when viewed: 2.50 + the 0.0236 grant SMS, owed, so shown up
    assert seen.text == "0551110003: billed 11.00 AZN, current 2.53 AZN, advance 0.00 AZN."
    assert report(core, "+994551110003").current == Decimal("2.5472")  # grant + revoke SMS
    assert revoked.text == "0501110003 nömrəsinin balans məlumatınıza icazəsi ləğv edildi."
    assert refused.text == "You have no access to that number's balance information. This SMS is free."
    assert report(core, "+994501110003").balance == Decimal("4.9764")  # one 650 fee: the report, not the refusal
    audit_clean(core)


def test_a_scratch_card_serial_to_1003_says_when_it_was_used(kannel_world):
    core, peer = kannel_world.core, kannel_world.peer
    add_prepaid(core, "+994501110004", "2.00", "az")
    with core.uow() as uow:
        services.add_card(uow, "4000000001", "1234", "5.00")
    with core.uow() as uow:
        services.redeem_card(uow, "+994501110004", "1234", key="test:card:4000000001", serial="4000000001")
    mt = peer.ask("+994501110004", "1003", "4000000001")

    assert mt.text == "4000000001 seriyalı kart istifadə olunub: 22 noyabr 2026 12:00."
    assert report(core, "+994501110004").balance == Decimal("6.98")


def test_a_card_topped_up_by_ussd_over_http_is_used_on_when_1003_is_asked_through_kannel(kannel_world):
    import urllib.parse
    import urllib.request

    core, peer, app = kannel_world.core, kannel_world.peer, kannel_world.app
    add_prepaid(core, "+994501110009", "2.00", "ru")
    with core.uow() as uow:
        services.add_card(uow, "4000000002", "55556666777788", "5.00")
    form = urllib.parse.urlencode({"sessionId": "kannel-card-1", "serviceCode": "*104*55556666777788#",
                                   "phoneNumber": "+994501110009", "text": ""}).encode()
    with urllib.request.urlopen(f"http://127.0.0.1:{app.port}/ussd", data=form, timeout=30) as answer:
        assert answer.read().decode() == "END Карта на 5.00 AZN зачислена. Ваш баланс: 7.00 AZN."

    mt = peer.ask("+994501110009", "1003", "4000000002")

    assert mt.text == "Карта 4000000002 использована: 22 ноября 2026 12:00."
    assert report(core, "+994501110009").balance == Decimal("6.98")  # the card, then the 1003 fee
    audit_clean(core)


def test_an_unknown_sender_gets_a_polite_free_answer(kannel_world):
    mt = kannel_world.peer.ask("+994509990001", "2112", "")

    assert mt.text == TEXTS.render("unknown-sender", "az")


def test_a_balance_notification_goes_out_through_sendsms_as_flash(kannel_world):
    core, peer = kannel_world.core, kannel_world.peer
    add_prepaid(core, "+994501110005", "1.00", "ru")
    with core.uow() as uow:
        services.topup(uow, "+994501110005", Decimal("5.00"), key="test:topup:110005")
    transport = KannelTransport(peer.sendsms_url, peer.sendsms_user, peer.sendsms_password, sender="2112")

    sent = Dispatcher(transport).run(core)

    mt = peer.expect("+994501110005")
    assert sent >= 1
    assert mt.text == ("Баланс пополнен (пополнение): +5.00 AZN. Баланс: 6.00 AZN. "
                       "Мы никогда не просим вернуть деньги.")
    assert peer.sent_flags("+994501110005")[-1] == ("0", "2")
    assert Dispatcher(transport).run(core) == 0  # marked sent: never twice


def test_a_notification_asks_for_delivery_reports_and_kannel_s_reports_are_recorded(kannel_world):
    """Kannel's fake SMSC acknowledges every MT and calls it delivered: bearerbox reports 8 (accepted
    by the SMSC) and then 1 (delivered), and smsbox passes both to our dlr-url."""
    import threading
    import time

    from sqlalchemy import select

    from billing.models import OutboxMessage
    from tests.integration.conftest import KANNEL_SECRET

    core, peer = kannel_world.core, kannel_world.peer
    add_prepaid(core, "+994501110006", "1.00", "en")
    with core.uow() as uow:
        services.topup(uow, "+994501110006", Decimal("5.00"), key="test:topup:+994501110006")
    transport = KannelTransport(peer.sendsms_url, peer.sendsms_user, peer.sendsms_password, sender="2112",
                                dlr_url=f"http://127.0.0.1:{kannel_world.app.port}/sms/kannel/dlr",
                                dlr_secret=KANNEL_SECRET)

    assert Dispatcher(transport).run(core) >= 1
    mt = peer.expect("+994501110006")
    assert mt.text == "Balance topped up (top-up): +5.00 AZN. New balance: 6.00 AZN. We never ask you to send money back."

    def message():
        with core.uow() as uow:
            return uow.session.scalars(select(OutboxMessage).where(OutboxMessage.msisdn == "+994501110006")).one()

    deadline, tick = time.monotonic() + 15, threading.Event()
    while message().delivery_status != "delivered" and time.monotonic() < deadline:
        tick.wait(0.05)  # the reports arrive over HTTP from smsbox; nothing to block on but the row
    row = message()
    assert row.sent_at is not None and row.delivery_status == "delivered"
    ours = [line for line in peer.access_log().splitlines() if "[to:+994501110006]" in line]
    flags = [(line.split(" ", 3)[2], line.split("[flags:", 1)[1].split("]", 1)[0].rsplit(":", 1)[1]) for line in ours]
    assert ("Sent", "31") in flags  # asked for every report (dlr-mask 31)
    assert ("Receive", "8") in flags and ("Receive", "1") in flags  # the SMSC's ack, then delivery
    # What Kannel saw and wrote down names the message by its ref, never by its key.
    kannel_wrote = "".join(p.read_text("utf-8", "replace") for p in peer.work.glob("*.log"))
    assert row.key not in kannel_wrote and "test:topup" not in kannel_wrote
