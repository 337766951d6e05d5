"""parse -> billing -> render on a real SQLite core: charges, refusals and retries."""
from datetime import timedelta
from decimal import Decimal

from billing import services
from billing.tariffs import load_tariffs
from sms.cli import sms_command
import texts
from sms.service import handle_sms

TEXTS = texts.current()["sms"]
PRE, POST, VIEWER = "+994501234567", "+994551234567", "+994502223344"


def add_prepaid(core, msisdn=PRE, balance="10.00", language="az"):
    with core.uow() as uow:
        services.add_subscriber(uow, msisdn, "prepaid", balance=Decimal(balance), language=language)


def add_postpaid(core, msisdn=POST, language="en", **figures):
    with core.uow() as uow:
        services.add_subscriber(uow, msisdn, "postpaid", language=language, bill_day=10,
                                **{k: Decimal(v) for k, v in figures.items()})


def report(core, msisdn):
    with core.uow() as uow:
        return services.balance_report(uow, msisdn)


def audit_clean(core):
    with core.uow() as uow:
        assert services.audit(uow) == []


def test_blank_2112_charges_the_tariff_fee_and_reports_balance_and_dates(core):
    add_prepaid(core)
    fee = load_tariffs().info_sms_fee("2112")

    reply = handle_sms(core, PRE, "2112", "", "k1")

    after = report(core, PRE)
    assert after.balance == Decimal("10.00") - fee
    assert reply.charged == fee and reply.flash and reply.ucs2
    assert reply.text == TEXTS.render("prepaid-balance", "az", balance="9.98",
                                      expires=after.balance_expires,
                                      ends=after.subscription_ends)
    audit_clean(core)


def test_a_retry_with_the_same_key_returns_the_same_reply_and_charges_nothing(core):
    add_prepaid(core)
    first = handle_sms(core, PRE, "2112", "", "twilio:SM1")
    second = handle_sms(core, PRE, "2112", "", "twilio:SM1")

    assert second.text == first.text and second.duplicate and second.charged == 0
    assert report(core, PRE).balance == Decimal("9.98")
    audit_clean(core)


def test_a_free_answer_is_remembered_for_its_retry_too(core):
    first = handle_sms(core, "+994509999999", "2112", "", "k-unknown")
    assert handle_sms(core, "+994509999999", "2112", "", "k-unknown").text == first.text


def test_postpaid_on_2112_is_sent_to_650_and_not_charged(core):
    add_postpaid(core, current="1.00")
    reply = handle_sms(core, POST, "2112", "", "k2")
    assert reply.text == TEXTS.render("use-650", "en") and reply.charged == 0
    assert report(core, POST).current == Decimal("1.00")


def test_blank_650_reports_billed_current_advance_with_the_650_fee(core):
    add_postpaid(core, billed="25.30", current="7.15", advance="5.00")
    reply = handle_sms(core, POST, "650", "", "k3")
    assert reply.charged == Decimal("0.0236")
    assert reply.text == TEXTS.render("postpaid-balance", "en", billed="25.30", current="7.18", advance="5.00")  # 7.1736 owed: shown up


def test_prepaid_below_the_fee_gets_a_clear_answer_and_no_charge(core):
    add_prepaid(core, balance="0.01", language="en")
    reply = handle_sms(core, PRE, "2112", "", "k4")
    assert reply.text == TEXTS.render("insufficient-balance", "en", fee="0.02") and reply.charged == 0
    assert report(core, PRE).balance == Decimal("0.01")
    audit_clean(core)


def test_unknown_sender_gets_a_polite_free_answer_in_azerbaijani(core):
    reply = handle_sms(core, "+994509999999", "650", "", "k5")
    assert reply.text == TEXTS.render("unknown-sender", "az") and reply.charged == 0


def test_sharing_grant_view_revoke_and_revoke_all(core):
    add_postpaid(core, billed="10.00")
    add_prepaid(core, VIEWER, language="ru")
    assert handle_sms(core, POST, "650", "+0502223344", "g1").text == TEXTS.render("grant-made", "en", number="0502223344")
    assert handle_sms(core, POST, "650", "+0502223344", "g2").text == TEXTS.render("grant-exists", "en", number="0502223344")
    seen = handle_sms(core, VIEWER, "650", "0551234567", "g3")
    assert seen.text.startswith("0551234567: выставлено 10.00 AZN") and seen.flash
    assert handle_sms(core, POST, "650", "-", "g4").text == TEXTS.render("revoke-all-done", "en", count="1")
    refused = handle_sms(core, VIEWER, "650", "0551234567", "g5")
    assert refused.text == TEXTS.render("shared-refused", "ru") and refused.charged == 0
    audit_clean(core)


def test_a_refusal_reveals_nothing_about_whether_the_owner_exists(core):
    add_postpaid(core)
    add_prepaid(core, VIEWER)
    existing = handle_sms(core, VIEWER, "650", "0551234567", "r1").text
    missing = handle_sms(core, VIEWER, "650", "0559999999", "r2").text
    assert existing == missing == TEXTS.render("shared-refused", "az")


def test_a_prepaid_line_cannot_grant_and_is_not_charged(core):
    add_prepaid(core)
    reply = handle_sms(core, PRE, "650", "+0502223344", "p1")
    assert reply.text == TEXTS.render("grant-needs-postpaid", "az") and reply.charged == 0


def test_1005_reports_tariff_plan_and_roaming(core):
    add_prepaid(core, language="ru")
    with core.uow() as uow:
        services.set_roaming(uow, PRE, True)
    reply = handle_sms(core, PRE, "1005", "", "t1")
    assert reply.text == TEXTS.render("line-info", "ru", tariff="Класс", roaming="roaming-on")
    assert reply.charged == Decimal("0.02")


def test_1003_says_whether_the_card_was_used(core, clock):
    add_prepaid(core, language="en")
    with core.uow() as uow:
        services.add_card(uow, "1000000001", "1234", "5.00")
    assert handle_sms(core, PRE, "1003", "1000000001", "c1").text == TEXTS.render("card-unused", "en", serial="1000000001")
    clock.advance(timedelta(hours=1))
    with core.uow() as uow:
        services.redeem_card(uow, PRE, "1234", key="redeem", serial="1000000001")
    used = handle_sms(core, PRE, "1003", "1000000001", "c2")
    assert used.text == "Card 1000000001 was used on November 22, 2026 13:00."
    hint = handle_sms(core, PRE, "1003", "12345", "c3")
    assert hint.text == TEXTS.render("usage-1003", "en", fee="0.02") and hint.charged == 0


def test_the_cli_goes_the_same_way_and_each_call_is_a_new_sms(core):
    add_prepaid(core)
    first = sms_command(core, "0501234567", "2112", "")
    second = sms_command(core, "0501234567", "2112")
    assert first.startswith("Balansınız: 9.98 AZN") and second.startswith("Balansınız: 9.96 AZN")


def test_a_friend_answers_a_credit_request_by_sms_to_700(core, clock):
    from tests.unit.packs_credit_scenarios import credit_ready_line

    credit_ready_line(core, clock, VIEWER)  # the friend has the credit history
    add_prepaid(core, PRE, balance="0")
    with core.uow() as uow:
        services.ask_friend_for_credit(uow, PRE, VIEWER, "ask-1")

    unclear = handle_sms(core, VIEWER, "700", "maybe", "sms-1")
    sent = handle_sms(core, VIEWER, "700", "Bəli", "sms-2")
    again = handle_sms(core, VIEWER, "700", "Bəli", "sms-2")  # the gateway's retry
    nothing = handle_sms(core, VIEWER, "700", "Bəli", "sms-3")

    assert unclear.text == TEXTS.render("usage-700", "en")
    assert sent.text == TEXTS.render("friend-credit-sent", "en", number="0501234567", balance="3.00")
    assert again.text == sent.text and again.duplicate
    assert nothing.text == TEXTS.render("friend-credit-none", "en")
    assert report(core, PRE).balance == Decimal("3.00")
    audit_clean(core)


def test_a_credit_request_sms_comes_from_700_so_the_reply_reaches_it():
    from billing.outbox import Outgoing
    from sms.dispatch import KannelTransport

    transport = KannelTransport("http://127.0.0.1:1/cgi-bin/sendsms", "u", "p", sender="2112")
    ask = Outgoing("k", VIEWER, "az", "friend-credit-request", {})
    other = Outgoing("k2", VIEWER, "az", "balance-changed", {})
    assert transport.query(ask, "x")["from"] == "700"
    assert transport.query(other, "x")["from"] == "2112"


def test_a_retry_carries_the_first_answers_flash_flag(core):
    add_postpaid(core)
    add_prepaid(core)
    told = handle_sms(core, POST, "2112", "", "f1")
    told_again = handle_sms(core, POST, "2112", "", "f1")
    balance = handle_sms(core, PRE, "2112", "", "f2")
    balance_again = handle_sms(core, PRE, "2112", "", "f2")
    assert (told.flash, told_again.flash, told_again.duplicate) == (False, False, True)
    assert (balance.flash, balance_again.flash, balance_again.duplicate) == (True, True, True)



def test_1003_says_used_on_once_a_card_topped_up_a_line_by_ussd_or_by_a_call(core, clock):
    from ivr.simulate import simulate_call
    from ussd.cli import ussd_command

    add_prepaid(core, language="en")
    add_prepaid(core, VIEWER, balance="1.00", language="ru")
    with core.uow() as uow:
        services.add_card(uow, "1000000001", "12345678901234", "5.00")
        services.add_card(uow, "1000000002", "98765432109876", "3.00")
    assert sms_command(core, "0501234567", "1003", "1000000001") == "Card 1000000001 has not been used."

    clock.advance(timedelta(minutes=30))
    assert ussd_command(core, PRE, "*104*12345678901234#").startswith("END Card top-up of 5.00 AZN done.")
    clock.advance(timedelta(minutes=15))
    assert "card-topped-up" in [pid for pid, _ in simulate_call(core, VIEWER, "2112", "598765432109876#9")]

    clock.advance(timedelta(days=1))
    assert sms_command(core, "0501234567", "1003", "1000000001") == "Card 1000000001 was used on November 22, 2026 12:30."
    assert sms_command(core, "0502223344", "1003", "1000000002") == "Карта 1000000002 использована: 22 ноября 2026 12:45."
    with core.uow() as uow:
        assert services.audit(uow) == []


def test_a_serial_in_full_width_digits_is_read_as_typed_and_other_digits_are_refused_free(core):
    add_prepaid(core, language="en")
    with core.uow() as uow:
        services.add_card(uow, "1000000001", "1234", "5.00")
    wide = handle_sms(core, PRE, "1003", "１０００００００01", "fw-1")
    arabic = handle_sms(core, PRE, "1003", "١٠٠٠٠٠٠٠٠١", "fw-2")
    assert (wide.text, wide.charged) == ("Card 1000000001 has not been used.", Decimal("0.02"))
    assert arabic.text.startswith("To check a scratch card send its 10-digit serial number to 1003")
    assert arabic.charged == 0


def test_a_friend_who_cannot_lend_is_told_why_by_sms(core, clock):
    from tests.unit.packs_credit_scenarios import credit_ready_line

    credit_ready_line(core, clock, VIEWER)
    add_prepaid(core, PRE, balance="0")
    with core.uow() as uow:
        services.take_nar_credit(uow, VIEWER, "own-credit", "03")  # the friend's whole 3.00 AZN
        services.ask_friend_for_credit(uow, PRE, VIEWER, "ask-2")
    refused = handle_sms(core, VIEWER, "700", "YES", "sms-why")
    assert refused.text == "The credit could not be sent: your Nar Credit limit is reached (*700#150#). This SMS is free."
