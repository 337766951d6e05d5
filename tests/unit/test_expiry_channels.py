"""What a subscriber meets once the balance expiry date or the subscription end has passed, on every
channel: `selfcare sms/ussd/call/usage/topup/worker` at a moved `--now`, and the HTTP endpoints.

The line of the CLI tests opens on 2026-10-01 with 1.00 AZN: valid until October 31, 2026 (the
issue's example: in November the reply must not say "valid until October 31"), subscription to
April 29, 2027, closed from April 30, 2027.
"""
from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from click.testing import CliRunner
from sqlalchemy import select

import texts
from billing import services
from billing.core import Core
from billing.models import OutboxMessage
from billing.outbox import Outgoing
from selfcare.cli import cli
from selfcare.config import Settings
from selfcare.http import create_app
from texts import notifications

LINE = "0501234567"
E164 = "+994501234567"
OPENED, LAST_VALID_DAY, EXPIRED_DAY = "2026-10-01T12:00", "2026-10-31T20:00", "2026-11-05T12:00"
CLOSED_DAY = "2027-04-30T00:00"


@pytest.fixture
def db(tmp_path):
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def run(db):
    runner = CliRunner()

    def invoke(now, *args):
        return runner.invoke(cli, ["--db", db, "--now", now, *args], catch_exceptions=False)

    assert invoke(OPENED, "db", "upgrade").exit_code == 0
    return invoke


def open_line(run, lang="en", msisdn=LINE):
    assert run(OPENED, "subscriber", "add", msisdn, "--plan", "prepaid", "--balance", "1", "--lang", lang).exit_code == 0


def show(run, now):
    return json.loads(run(now, "subscriber", "show", LINE, "--json").output)


def outbox(db, template):
    """The line's queued notifications of one template, worded as the dispatcher words them."""
    core = Core(db)
    try:
        with core.reader() as uow:
            rows = uow.session.scalars(select(OutboxMessage).where(OutboxMessage.template == template)
                                       .order_by(OutboxMessage.id)).all()
        return [notifications.render(texts.current(), Outgoing(r.key, r.msisdn, r.language, r.template,
                                                               json.loads(r.params)), core.tariffs, core.offers)
                for r in rows]
    finally:
        core.dispose()


# -- after the balance expiry date -------------------------------------------------------------

EXPIRED_REPLY = {
    "en": "Balance: 0.98 AZN, expired on October 31, 2026: top up to use it again. Without a top-up your "
          "subscription ends on April 29, 2027. This SMS is free.",
    "az": "Balans 0.98 AZN, müddəti 31 oktyabr 2026 bitib: balansı artırın. Artırılmasa, abunəlik 29 aprel 2027 "
          "bitir. SMS pulsuzdur.",
    "ru": "Баланс 0.98 AZN, срок истёк 31 октября 2026: пополните баланс. Иначе номер закроется после "
          "29 апреля 2027. SMS бесплатно.",
}


@pytest.mark.parametrize("lang", ["en", "az", "ru"])
def test_sms_2112_after_the_expiry_date_says_it_expired_and_how_to_reactivate_and_is_free(run, lang):
    open_line(run, lang)
    assert run(LAST_VALID_DAY, "sms", LINE, "2112").output.startswith(
        {"en": "Balance: 0.98 AZN. Balance valid until October 31, 2026.", "az": "Balansınız: 0.98 AZN.",
         "ru": "Баланс: 0.98 AZN."}[lang])
    assert run(EXPIRED_DAY, "sms", LINE, "2112").output == EXPIRED_REPLY[lang] + "\n"
    assert show(run, EXPIRED_DAY)["balance"] == "0.9800"  # nothing taken from an expired balance
    assert run(EXPIRED_DAY, "audit").exit_code == 0


def test_sms_to_paid_numbers_after_the_expiry_date_is_answered_free(run):
    open_line(run)
    assert run(EXPIRED_DAY, "sms", LINE, "1005").output == (
        "Your balance expired on October 31, 2026: top up to use paid services again. This SMS is free.\n")
    assert show(run, EXPIRED_DAY)["balance"] == "1.0000"


def test_ussd_dates_after_the_expiry_date_say_it_expired(run):
    open_line(run)
    assert run(LAST_VALID_DAY, "ussd", LINE, "*111*1*7#").output == (
        "END Balance 1.00 AZN. Balance valid until October 31, 2026, subscription until April 29, 2027.\n")
    assert run(EXPIRED_DAY, "ussd", LINE, "*111*1*7#YES").output == (
        "END Balance 1.00 AZN, expired on October 31, 2026: top up to use your line again. Without a top-up "
        "your subscription ends on April 29, 2027.\n")


def test_ussd_spends_after_the_expiry_date_are_refused_with_the_reason(run):
    open_line(run)
    run(OPENED, "topup", LINE, "5")  # enough for a pack, and valid to November 30, 2026
    later = "2026-12-05T12:00"
    assert run(later, "ussd", LINE, "*100*1#").output == (
        "END Your balance has expired: top up to use your line again. Dates: *111*1*7#.\n")
    assert run(later, "ussd", LINE, "*700#").output == (
        "END Credit is not available: your balance has expired. Top up to use your line again.\n")
    assert run(later, "ussd", LINE, "*700#150#").output == "END Your Nar Credit debt: 0.00 AZN.\n"  # reads stay free
    assert show(run, later)["balance"] == "6.0000"
    assert run(later, "audit").exit_code == 0


def test_a_call_to_2112_after_the_expiry_date_hears_it_expired_and_how_to_reactivate(run):
    open_line(run)
    heard = [line.split("\t")[0] for line in run(EXPIRED_DAY, "call", LINE, "2112", "--press", "9").output.splitlines()]
    assert heard == [
        "welcome-2112", "line-suspended",
        "your-balance-is", "num/1", "cur/manat-1", "your-tariff-is", "tariff-klass",
        "balance-expired-on", "day/31", "month/10", "num/2", "num/thousand-5", "num/20", "num/6",
        "topup-to-reactivate",
        "subscription-ends-on", "day/29", "month/4", "num/2", "num/thousand-5", "num/20", "num/7",
        "menu-main", "goodbye"]


def test_data_after_the_expiry_date_is_not_taken_from_the_balance(run):
    open_line(run)
    assert run(EXPIRED_DAY, "usage", LINE, "10").output == (
        "10 MB: 0 MB from packs, 0 MB throttled, 10 MB charged 0.0000 AZN "
        "(cut off: balance-expired, nothing taken from the balance)\n")
    assert show(run, EXPIRED_DAY)["balance"] == "1.0000"


def test_the_worker_reminds_ahead_suspends_when_due_and_a_top_up_reactivates(run, db):
    open_line(run)
    assert "expiry-reminders       0" in run("2026-10-28T09:00", "worker", "--once").output  # not at night
    assert "expiry-reminders       1" in run("2026-10-28T10:00", "worker", "--once").output  # 3 days ahead
    assert "expiry-reminders       0" in run("2026-10-29T10:00", "worker", "--once").output
    assert outbox(db, "balance-expiring") == [
        "Your balance expires on October 31, 2026. Top up before then to keep using your line."]
    assert "line-expiries          0" in run("2026-10-31T23:59", "worker", "--once").output
    assert show(run, "2026-10-31T23:59")["status"] == "active"
    assert "line-expiries          1" in run("2026-11-01T00:00", "worker", "--once").output
    assert show(run, "2026-11-01T00:00")["status"] == "expired"
    assert outbox(db, "balance-expired") == [
        "Your balance expired on October 31, 2026: until you top up, only incoming calls work. Without a "
        "top-up your subscription ends on April 29, 2027."]
    assert "topped up 1.00 AZN; balance 2.0000" in run(EXPIRED_DAY, "topup", LINE, "1").output
    after = show(run, EXPIRED_DAY)
    assert (after["status"], after["balance_expires"], after["subscription_ends"]) == (
        "active", "2026-12-05", "2027-06-03")
    assert outbox(db, "line-reactivated") == ["Your line is active again. Balance valid until December 5, 2026."]
    assert run(EXPIRED_DAY, "sms", LINE, "2112").output.startswith("Balance: 1.98 AZN. Balance valid until December 5")


# -- after the subscription end ----------------------------------------------------------------

def test_the_worker_closes_the_number_after_its_subscription_end_and_forfeits_the_balance(run, db):
    open_line(run)
    assert "expiry-reminders       1" in run("2027-04-22T10:00", "worker", "--once").output  # 7 days ahead
    assert outbox(db, "subscription-ending") == [
        "Your subscription ends on April 29, 2027: top up by then to keep your number, or it is closed and its "
        "1.00 AZN balance forfeited."]
    assert "line-expiries          1" in run(CLOSED_DAY, "worker", "--once").output
    closed = show(run, CLOSED_DAY)
    assert (closed["status"], closed["balance"]) == ("deactivated", "0.0000")
    assert outbox(db, "line-closed") == [
        "Your number is closed: its subscription ended on April 29, 2027. The remaining balance of 1.00 AZN was "
        "forfeited."]
    audit = run(CLOSED_DAY, "audit")
    assert audit.exit_code == 0 and audit.output.startswith("ok: 1 lines")


def test_a_closed_number_is_told_so_on_every_channel_and_takes_no_money(run):
    open_line(run)
    run(CLOSED_DAY, "worker", "--once")
    assert run(CLOSED_DAY, "sms", LINE, "2112").output == (
        "This number is closed: its subscription ended on April 29, 2027. This SMS is free.\n")
    assert run(CLOSED_DAY, "ussd", LINE, "*111*1*7#").output == (
        "END This number is closed: its subscription ended on April 29, 2027.\n")
    heard = [line.split("\t")[0] for line in run(CLOSED_DAY, "call", LINE, "2112", "--press", "9").output.splitlines()]
    assert heard == ["welcome-2112", "line-closed"]
    refused = run(CLOSED_DAY, "topup", LINE, "5")
    assert refused.exit_code == 2 and "closed" in refused.output
    assert show(run, CLOSED_DAY)["balance"] == "0.0000"
    assert run(CLOSED_DAY, "audit").exit_code == 0


# -- the HTTP endpoints ------------------------------------------------------------------------

@pytest.fixture
def expired_line(core, clock):
    with core.uow() as uow:
        services.add_subscriber(uow, E164, "prepaid", balance=Decimal("1.00"), language="en")  # to 2026-12-22
    clock.advance(timedelta(days=31))
    return E164


def test_the_ussd_gateway_answers_an_expired_line_with_its_expiry(core, expired_line):
    client = create_app(core).test_client()
    answer = client.post("/ussd", data={"sessionId": "exp-1", "serviceCode": "*111*1*7#", "phoneNumber": E164,
                                        "text": ""})
    assert answer.get_data(as_text=True) == (
        "END Balance 1.00 AZN, expired on December 22, 2026: top up to use your line again. Without a top-up "
        "your subscription ends on June 20, 2027.")
    refused = client.post("/ussd", data={"sessionId": "exp-2", "serviceCode": "*100*1#", "phoneNumber": E164,
                                         "text": ""})
    assert refused.get_data(as_text=True).startswith("END Your balance has expired")


def test_kannel_answers_an_expired_line_free(core, expired_line):
    settings = Settings(agi=("127.0.0.1", 0), http=("127.0.0.1", 0), twilio_auth_token="t", twilio_public_url=None,
                        kannel_secret="s", kannel_allow=())
    client = create_app(core, settings).test_client()
    reply = client.get("/sms/kannel", query_string={"from": E164, "to": "2112", "text": "", "id": "exp-k1",
                                                     "secret": "s"})
    assert reply.get_data(as_text=True) == (
        "Balance: 1.00 AZN, expired on December 22, 2026: top up to use it again. Without a top-up your "
        "subscription ends on June 20, 2027. This SMS is free.")
    with core.uow() as uow:
        assert services.balance_report(uow, E164).balance == Decimal("1.00")
