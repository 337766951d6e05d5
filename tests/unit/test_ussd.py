"""USSD: every code of seeds 000/002/003, the session menus, the gateway endpoint and the texts."""
from datetime import timedelta
from decimal import Decimal as D

import pytest

from billing import services
from billing.friend_credit import run_friend_request_lapses
from billing.pack_renewal import run_pack_expiries, run_pack_renewals
from selfcare.http import create_app
import texts
from ussd.cli import ussd_command
from ussd.codes import parse
from texts import USSD_MAX_CHARS as MAX_CHARS
from tests.unit.packs_credit_scenarios import (
    FRIEND,
    POST,
    PRE,
    assert_audit_clean,
    call,
    credit_ready_line,
    debt,
    open_postpaid,
    open_prepaid,
    packs,
    report,
    template_names,
    templates,
)


def dial(core, code, msisdn=PRE):
    return ussd_command(core, msisdn, code)


# -- parser ------------------------------------------------------------------------------------

@pytest.mark.parametrize("code, action, arg", [
    ("*111*1*7#", "dates", None), ("*650#", "postpaid-balance", None), ("*100#", "pack-menu", None),
    ("*100*3#", "pack-order", "3"), ("*100*0#", "pack-deactivate", None), ("*100*00#", "pack-stop-renewal", None),
    ("*700#", "nar-max", None), ("*700#05#", "nar", "05"), ("*700#01#", "nar", "01"), ("*700#02#", "nar", "02"),
    ("*700#03#", "nar", "03"), ("*711#", "sos", None), ("*700#150#", "nar-debt", None),
    ("*711#150#", "sos-debt", None), ("*700*01*0502223344#", "credit-for-friend", "0502223344"),
    ("*700*1*+994502223344#", "ask-friend", "+994502223344"), ("*700*1#", "friend-requests", None),
])
def test_each_seed_code_parses_with_and_without_the_call_key(code, action, arg):
    assert parse(code) == parse(code + "YES") == parse(f" {code} yes ")
    assert (parse(code).action, parse(code).arg) == (action, arg)


@pytest.mark.parametrize("code", ["", "*", "*100", "100#", "*100*1*1#", "*700#5#", "*700#1500#", "*111*1*8#",
                                  "*700*01*12#", "*999#", "hello", "*100*0#YESYES", "*100*-1#"])
def test_unknown_or_malformed_codes_parse_to_help(code):
    assert parse(code).action == "help"


def test_an_unknown_code_gets_short_help_and_changes_nothing(core):
    open_prepaid(core, balance="10.00", language="en")
    for code in ("*999#", "*100*1*1#", "garbage", "*700#5#"):
        answer = dial(core, code)
        assert answer.startswith("END Unknown code.") and len(answer) <= MAX_CHARS + 4
    assert report(core).balance == D("10.00") and template_names(core) == []
    assert_audit_clean(core)


# -- each code ---------------------------------------------------------------------------------

def test_star_111_1_7_gives_the_dates_free_in_the_subscribers_language(core):
    open_prepaid(core, balance="12.48", language="ru")
    answer = dial(core, "*111*1*7#YES")
    # the same long date style as the SMS reply (texts/style.py), not a second one for USSD
    assert answer == "END Баланс 12.48 AZN. Баланс действует до 20 февраля 2027, абонемент до 19 августа 2027."
    assert report(core).balance == D("12.48")


def test_star_650_gives_the_postpaid_figures_and_points_prepaid_elsewhere(core):
    open_postpaid(core, billed=D("25.30"), current=D("7.15"), advance=D("5.00"), language="en")
    open_prepaid(core, language="en")
    assert dial(core, "*650#", POST) == "END Billed 25.30 AZN, current 7.15 AZN, advance 5.00 AZN. Bill day: 10."
    assert dial(core, "*650#YES").startswith("END *650# is for postpaid lines")
    assert dial(core, "*111*1*7#", POST).startswith("END *111*1*7# is for prepaid lines")


def test_star_100_n_orders_and_confirms_by_sms(core):
    open_prepaid(core, balance="10.00", language="en")
    answer = dial(core, "*100*1#YES")
    assert answer.startswith("END 1 GB pack active until") and "3.00 AZN charged" in answer
    assert report(core).balance == D("7.00")
    assert {"pack-ordered", "balance-changed"} <= set(template_names(core))
    assert dial(core, "*100*9#") == "END There is no such pack. Packs: *100#."
    assert dial(core, "*100*4#") == "END Your balance is not enough for this."
    assert report(core).balance == D("7.00")
    assert_audit_clean(core)


def test_star_100_00_stops_renewal_and_star_100_0_annuls_the_rest(core, clock):
    open_prepaid(core, balance="10.00", language="en")
    assert dial(core, "*100*0#") == "END You have no internet pack. To order: *100#."
    dial(core, "*100*1#")
    assert dial(core, "*100*00#").startswith("END Auto-renewal stopped (1)")
    assert "pack-renewal-stopped" in template_names(core)
    assert dial(core, "*100*0#") == "END Packs deactivated (1). The remaining MB were annulled."
    assert "pack-deactivated" in template_names(core)
    assert packs(core) == []
    assert_audit_clean(core)


def test_star_700_codes_take_nar_credit_and_star_700_150_shows_the_debt(core, clock):
    credit_ready_line(core, clock, topup="30.00")
    assert dial(core, "*700#150#") == "END Your Nar Credit debt: 0.00 AZN."
    assert dial(core, "*700#YES").startswith("END 3.00 AZN Nar Credit added. Service fee 0.60 AZN")
    assert dial(core, "*700#05#").startswith("END 0.50 AZN Nar Credit added. Service fee 0.10 AZN")
    assert dial(core, "*700#01#").startswith("END 1.00 AZN Nar Credit added. Service fee 0.20 AZN")
    assert dial(core, "*700#02#").startswith("END 2.00 AZN Nar Credit added. Service fee 0.40 AZN")
    assert dial(core, "*700#03#") == "END 3.00 AZN is more than the 0.50 AZN of Nar Credit left. For 0.50 AZN dial *700#05#."
    assert dial(core, "*700#07#").startswith("END No such credit amount")
    assert dial(core, "*700#150#") == "END Your Nar Credit debt: 7.80 AZN."
    assert template_names(core).count("credit-granted") == 4
    assert_audit_clean(core)


def test_star_711_gives_sos_after_the_nar_limit_and_star_711_150_its_debt(core, clock):
    credit_ready_line(core, clock)
    assert dial(core, "*711#").startswith("END SOS Credit is only for lines that reached their Nar Credit limit")
    dial(core, "*700#")
    assert dial(core, "*711#YES").startswith("END 1.00 AZN SOS Credit added. Service fee 0.40 AZN")
    assert dial(core, "*711#150#") == "END Your SOS Credit debt: 1.40 AZN."
    assert_audit_clean(core)


def test_credit_refusals_name_the_rule(core, clock):
    open_prepaid(core, balance="5.00", language="en")  # valid 60 days; an opening balance is not a top-up
    assert dial(core, "*700#") == "END Credit needs at least 30 days in the network."
    clock.advance(timedelta(days=30))
    assert dial(core, "*700#") == "END Credit needs at least one top-up."
    open_postpaid(core, language="en")
    assert dial(core, "*700#", POST) == "END Credit is for prepaid lines only."


def test_star_700_01_friend_sends_credit_to_a_friend(core, clock):
    credit_ready_line(core, clock)
    open_prepaid(core, FRIEND, language="az")
    answer = dial(core, "*700*01*0502223344#YES")
    assert answer.startswith("END 3.00 AZN Nar Credit sent to 0502223344")
    assert report(core, FRIEND).balance == D("3.00") and debt(core).nar == D("3.60")
    assert dial(core, "*700*01*0559999999#").startswith("END That number is not valid")
    assert_audit_clean(core)


def test_star_700_1_friend_asks_and_the_friend_confirms_by_ussd_within_30_minutes(core, clock):
    credit_ready_line(core, clock, FRIEND)
    open_prepaid(core, PRE, language="en")
    assert dial(core, "*700*1*502223344#") == "END Request sent to 0502223344. Your friend has 30 minutes to confirm."
    params = dict(templates(core, FRIEND))["friend-credit-request"]
    assert params["requester"] == PRE and params["minutes"] == 30
    clock.advance(timedelta(minutes=20))
    menu = ussd_command(core, FRIEND, "*700*1#", "", session="f1")
    assert menu.startswith("CON 0501234567 asks you for Nar Credit (3.00 AZN")
    done = ussd_command(core, FRIEND, "*700*1#", "1", session="f1")
    assert done == "END 3.00 AZN Nar Credit sent to 0501234567. Your debt 3.60 AZN."
    assert report(core).balance == D("3.00")
    assert ussd_command(core, FRIEND, "*700*1#") == "END No credit request is waiting for you."
    assert_audit_clean(core)


def test_an_unconfirmed_friend_request_lapses_after_30_minutes(core, clock):
    credit_ready_line(core, clock, FRIEND)
    open_prepaid(core, PRE, language="en")
    dial(core, "*700*1*502223344#")
    clock.advance(timedelta(minutes=30))
    assert ussd_command(core, FRIEND, "*700*1#") == "END No credit request is waiting for you."
    assert run_friend_request_lapses(core) == 1
    assert "friend-credit-lapsed" in template_names(core)
    assert report(core).balance == 0
    assert_audit_clean(core)


# -- session menus -----------------------------------------------------------------------------

def test_the_pack_menu_walks_order_then_shows_my_packs(core):
    open_prepaid(core, balance="10.00", language="az")
    root = ussd_command(core, PRE, "*100#", "", session="s")
    assert root.startswith("CON İnternet paketləri:")
    assert ussd_command(core, PRE, "*100#", "1", session="s").startswith("CON Paket seçin (30 gün):\n1 1 GB - 3.00 AZN")
    assert "Təsdiq edirsiniz?" in ussd_command(core, PRE, "*100#", "1*1", session="s")
    assert ussd_command(core, PRE, "*100#", "1*1*2", session="s") == "END Ləğv edildi. Heç nə dəyişmədi."
    assert report(core).balance == D("10.00")
    assert ussd_command(core, PRE, "*100#", "1*1*1", session="t").startswith("END 1 GB paketi")
    assert ussd_command(core, PRE, "*100#", "2", session="u").startswith("END 1 GB: 1024 MB qalıb")


def test_invalid_menu_input_reprompts_and_three_errors_end_the_session(core):
    open_prepaid(core, balance="10.00", language="en")
    assert ussd_command(core, PRE, "*100#", "7").startswith("CON Invalid choice.\nInternet packs:")
    assert ussd_command(core, PRE, "*100#", "7*1").startswith("CON Choose a pack")
    assert ussd_command(core, PRE, "*100#", "7*8*9") == "END Too many invalid choices. Please dial the code again."
    assert report(core).balance == D("10.00")


def test_menu_stop_renewal_and_deactivate_ask_for_confirmation(core):
    open_prepaid(core, balance="10.00", language="en")
    dial(core, "*100*1#")
    assert ussd_command(core, PRE, "*100#", "3").startswith("CON Stop the automatic renewal")
    assert ussd_command(core, PRE, "*100#", "3*1").startswith("END Auto-renewal stopped (1)")
    assert ussd_command(core, PRE, "*100#", "4*1").startswith("END Packs deactivated (1)")


def test_the_state_api_reports_a_throttled_50_gb_pack(core):
    open_prepaid(core, balance="30.00", language="en")
    dial(core, "*100*4#")
    call(core, services.record_data_usage, PRE, 51200 + 1, "u1")
    assert ussd_command(core, PRE, "*100#", "2").startswith("END 50 GB: volume used up, speed 128 kbit/s")


# -- the gateway endpoint ----------------------------------------------------------------------

@pytest.fixture
def client(core):
    app = create_app(core)
    app.testing = True
    return app.test_client()


def post(client, text, session="ATUid_1", code="*100#", phone="+994501234567"):
    return client.post("/ussd", data={"sessionId": session, "serviceCode": code, "phoneNumber": phone, "text": text})


def test_a_gateway_session_walks_the_pack_menu_and_a_retry_charges_once(core, client):
    open_prepaid(core, balance="10.00", language="en")
    first = post(client, "")
    assert first.status_code == 200 and first.mimetype == "text/plain"
    assert first.get_data(as_text=True).startswith("CON Internet packs:")
    assert post(client, "1").get_data(as_text=True).startswith("CON Choose a pack")
    assert post(client, "1*2").get_data(as_text=True).startswith("CON 3 GB pack for 6.00 AZN")
    done = post(client, "1*2*1").get_data(as_text=True)
    assert done.startswith("END 3 GB pack active until")
    assert post(client, "1*2*1").get_data(as_text=True) == done  # the gateway retried
    assert report(core).balance == D("4.00") and len(packs(core)) == 1
    for text in ("", "1", "1*2", "1*2*1"):
        assert len(post(client, text).get_data(as_text=True)) <= MAX_CHARS
    assert_audit_clean(core)


def test_the_gateway_gets_direct_codes_and_bad_requests(core, client):
    open_prepaid(core, balance="10.00", language="en")
    assert post(client, "", code="*111*1*7#").get_data(as_text=True).startswith("END Balance 10.00 AZN")
    unknown = post(client, "", phone="+994559999999").get_data(as_text=True)
    assert unknown == "END " + texts.current()["ussd"].render("unknown-subscriber", "az")  # no line, no language: the default
    assert post(client, "", session="").status_code == 400
    assert post(client, "", session="x" * 300).status_code == 400


def _errors(service: str) -> float:
    from prometheus_client import REGISTRY
    return REGISTRY.get_sample_value("selfcare_requests_total",
                                     dict(channel="ussd", service=service, outcome="error")) or 0.0


def test_a_database_without_its_tables_is_answered_unavailable_not_a_500_and_counted(tmp_path):
    from billing.core import Core

    broken = Core(f"sqlite:///{tmp_path / 'no-schema.db'}")  # every query fails: OperationalError
    try:
        client = create_app(broken).test_client()
        before = _errors("dates")
        answer = post(client, "", code="*111*1*7#")
        assert ussd_command(broken, PRE, "*650#") == "END Xidmət müvəqqəti əlçatan deyil. Bir az sonra yenidən cəhd edin."
    finally:
        broken.dispose()
    assert answer.status_code == 200  # the line's language is unknown: the default's words
    assert answer.get_data(as_text=True) == "END Xidmət müvəqqəti əlçatan deyil. Bir az sonra yenidən cəhd edin."
    assert _errors("dates") - before == 1


@pytest.mark.parametrize("language, words", [
    ("az", "END Xidmət müvəqqəti əlçatan deyil. Bir az sonra yenidən cəhd edin."),
    ("en", "END Service temporarily unavailable. Please try again later."),
    ("ru", "END Сервис временно недоступен. Попробуйте позже."),
])
def test_a_table_lost_after_the_line_was_read_is_answered_unavailable_in_its_language(core, client, language, words):
    from billing.models import Base

    open_prepaid(core, balance="10.00", language=language)
    packs_table = Base.metadata.tables["pack_subscription"]
    packs_table.drop(core.engine)  # the line reads; ordering or listing a pack fails
    before = _errors("pack-order"), _errors("pack-menu")
    ordered = post(client, "", code="*100*1#")
    assert (ordered.status_code, ordered.get_data(as_text=True)) == (200, words)
    assert post(client, "2", session="ATUid_2").get_data(as_text=True) == words  # *100# 2, my packs: a read fails alike
    assert (_errors("pack-order") - before[0], _errors("pack-menu") - before[1]) == (1, 1)
    assert report(core).balance == D("10.00")
    packs_table.create(core.engine)  # back: the gateway's retry is a new attempt, charged once
    assert post(client, "", code="*100*1#").get_data(as_text=True).startswith("END ")
    assert report(core).balance == D("7.00") and len(packs(core)) == 1
    assert_audit_clean(core)


# -- texts -------------------------------------------------------------------------------------

def test_every_template_the_scenarios_enqueue_has_a_text(core, clock):
    from tests.unit import packs_credit_scenarios as scenarios

    lead_templates = {"balance-changed"}  # one template, worded per account
    seen = set()
    for scenario in scenarios.SCENARIOS:
        fresh = core.__class__(f"{core.db_url}-{scenario.__name__}.db", clock=clock)
        fresh.upgrade_schema()
        try:
            scenario(fresh, clock)
            with fresh.uow() as uow:
                from billing.outbox import pending
                seen |= {m.template for m in pending(uow)}
        finally:
            fresh.dispose()
    assert seen - lead_templates <= set(texts.current()["notifications"].entries)
    assert {"pack-ordered", "pack-renewed", "credit-granted", "topped-up-debt-repaid", "friend-credit-request"} <= seen


def test_worker_jobs_take_the_core_and_return_counts(core):
    for job in (run_pack_renewals, run_pack_expiries, run_friend_request_lapses):
        assert job(core) == 0


def test_a_failed_renewal_says_until_when_the_rest_is_usable_from_the_data(core):
    from billing.outbox import Outgoing
    from texts import notifications

    message = Outgoing("k", "+994501234567", "en", "pack-renewal-failed", {
        "pack": "1gb", "volume_mb": 1024, "expires": "2026-12-22", "leftover_until": "2026-12-23T12:00",
        "retry_until": "2027-03-22", "reason": "balance"})
    assert notifications.render(texts.current(), message, core.tariffs, core.offers) == (
        "Your 1 GB pack was not renewed. The rest works until December 23, 2026 12:00. Retry until March 22, 2027.")


def test_a_line_with_four_packs_gets_its_status_in_pages_not_cut(core):
    open_prepaid(core, balance="100.00", language="ru")
    for number in (1, 2, 3, 4):
        dial(core, f"*100*{number}#")
    first = ussd_command(core, PRE, "*100#", "2", session="pages")
    second = ussd_command(core, PRE, "*100#", "2*0", session="pages")
    assert first == ("CON 1 ГБ: осталось 1024 МБ, до 22 декабря 2026, с продлением\n"
                     "3 ГБ: осталось 3072 МБ, до 22 декабря 2026, с продлением\n"
                     "10 ГБ: осталось 10240 МБ, до 22 декабря 2026, с продлением\n0 Далее")
    assert second == "END 50 ГБ: осталось 51200 МБ, до 22 декабря 2026, с продлением"
    assert all(len(screen) - 4 <= 182 for screen in (first, second))
    assert ussd_command(core, PRE, "*100#", "2*0*0", session="pages") == second  # past the end: the last page
    assert ussd_command(core, PRE, "*100#", "2*5", session="pages").startswith("END Неизвестный код.")


def test_questions_never_wait_for_the_write_lock(core):
    import threading

    open_prepaid(core, balance="1.00", language="en")
    answers = []
    with core.uow() as uow, uow.atomic():
        services.charge_sms(uow, PRE, "2112", "held")  # BEGIN IMMEDIATE: the write lock is held to the block's end
        asker = threading.Thread(target=lambda: answers.append(dial(core, "*700#150#")))
        asker.start()
        asker.join(10)
        held_while_answered = asker.is_alive() is False
    asker.join(30)
    assert held_while_answered and answers == ["END Your Nar Credit debt: 0.00 AZN."]


# -- *104*PIN#: top up with a scratch card (ours) ------------------------------------------------

CARD_PIN = "12345678901234"


def card(core, serial="1000000001", pin=CARD_PIN, value="5.00"):
    with core.uow() as uow:
        services.add_card(uow, serial, pin, value)


@pytest.mark.parametrize("code, action, arg", [
    ("*104*12345678901234#", "card-redeem", "12345678901234"), ("*104*1234#", "card-redeem", "1234"),
    ("*104*12#", "card-redeem", "12"), ("*104#", "card-help", None),
])
def test_the_card_code_parses_with_and_without_the_call_key(code, action, arg):
    assert parse(code) == parse(code + "YES") == parse(f" {code} yes ")
    assert (parse(code).action, parse(code).arg) == (action, arg)


@pytest.mark.parametrize("code", ["*104*#", "*104*12a4#", "*104*1234", "*104*1234*5678#", "*1041234#"])
def test_malformed_card_codes_parse_to_help(code):
    assert parse(code).action == "help"


def test_the_card_code_cannot_collide_with_the_seed_codes():
    for n in ("1", "4", "9", "99", "0", "00"):
        assert not parse(f"*100*{n}#").action.startswith("card")
    for pin in ("1000", "0000", "00", "0", "1234567890123456"):
        assert parse(f"*104*{pin}#").action == "card-redeem"
        assert not parse(f"*100*{pin}#").action.startswith("card")
    seed_codes = ["*111*1*7#", "*650#", "*100#", "*100*0#", "*100*00#", "*700#", "*700#05#", "*700#150#", "*711#",
                  "*711#150#", "*700*01*0502223344#", "*700*1*0502223344#", "*700*1#"]
    assert not any(parse(code).action.startswith("card") for code in seed_codes)


def test_star_104_pin_tops_up_and_says_the_amount_and_the_new_balance(core):
    open_prepaid(core, balance="2.00", language="en")
    card(core)
    assert dial(core, f"*104*{CARD_PIN}#YES") == "END Card top-up of 5.00 AZN done. Your balance: 7.00 AZN."
    assert report(core).balance == D("7.00")
    assert template_names(core) == ["balance-changed"]
    assert_audit_clean(core)


def test_star_104_texts_in_azerbaijani_and_russian(core):
    open_prepaid(core, balance="2.00", language="az")
    open_prepaid(core, FRIEND, balance="1.00", language="ru")
    card(core)
    assert dial(core, f"*104*{CARD_PIN}#") == "END Kartla balansa 5.00 AZN əlavə olundu. Balansınız: 7.00 AZN."
    assert dial(core, "*104*11112222333344#", FRIEND) == (
        "END Неверный PIN-код: баланс не пополнен. Осталось попыток: 4.")
    assert dial(core, f"*104*{CARD_PIN}#", FRIEND) == "END Эта карта уже использована: 22 ноября 2026 12:00."
    assert dial(core, "*104#") == ("END Kartla balansı artırmaq üçün *104*PIN# yığın. "
                                   "PIN kartın qoruyucu təbəqəsinin altındadır.")


def test_star_104_refusals_are_counted_by_their_text_and_a_retry_is_not_counted_again(core, client):
    from prometheus_client import REGISTRY

    def refusals():
        return [REGISTRY.get_sample_value("selfcare_refusals_total",
                                          dict(channel="ussd", service="card-redeem", reason=r)) or 0.0
                for r in ("card-pin-invalid", "card-pin-wrong", "card-used")]

    open_prepaid(core, balance="2.00", language="en")
    open_prepaid(core, FRIEND, balance="1.00", language="en")
    card(core)
    before = refusals()
    dial(core, f"*104*{CARD_PIN}#")  # topped up
    dial(core, f"*104*{CARD_PIN}#", FRIEND)
    dial(core, "*104*12#")
    post(client, "", session="wrong-1", code="*104*11112222333344#")
    post(client, "", session="wrong-1", code="*104*11112222333344#")  # the gateway's retry: answered from memory
    assert [after - b for after, b in zip(refusals(), before)] == [1, 1, 1]


def test_star_104_on_a_postpaid_line_pays_the_bill_first(core):
    open_postpaid(core, billed=D("3.00"), current=D("1.00"), language="en")
    card(core)
    assert dial(core, f"*104*{CARD_PIN}#", POST) == (
        "END Card payment of 5.00 AZN done. Billed: 0.00 AZN, advance: 2.00 AZN.")
    assert_audit_clean(core)


def test_wrong_pins_by_ussd_change_nothing_and_the_sixth_try_is_refused_until_when(core, clock):
    open_prepaid(core, balance="2.00", language="en")
    card(core)
    answers = []
    for _ in range(5):
        answers.append(dial(core, "*104*11112222333344#"))
        clock.advance(timedelta(minutes=1))
    assert answers[0] == "END Wrong PIN: nothing was topped up. Tries left: 4."
    assert answers[-1] == "END Wrong PIN: nothing was topped up. Tries left: 0."
    assert dial(core, f"*104*{CARD_PIN}#") == (
        "END Too many wrong PINs from this number. Card top-ups are possible again after November 22, 2026 13:00.")
    assert dial(core, "*104*12#") == "END A card PIN has 4 to 16 digits. Dial *104*PIN#."
    assert report(core).balance == D("2.00") and template_names(core) == []
    clock.advance(timedelta(minutes=55))  # 12:60: the first wrong PIN is an hour old
    assert dial(core, f"*104*{CARD_PIN}#") == "END Card top-up of 5.00 AZN done. Your balance: 7.00 AZN."
    assert_audit_clean(core)


def test_the_gateway_retrying_star_104_tops_up_once_and_counts_a_wrong_pin_once(core, client):
    from billing.cards import wrong_pins

    open_prepaid(core, balance="2.00", language="en")
    card(core)
    wrong = post(client, "", session="card-1", code="*104*11112222333344#").get_data(as_text=True)
    assert post(client, "", session="card-1", code="*104*11112222333344#").get_data(as_text=True) == wrong
    assert wrong == "END Wrong PIN: nothing was topped up. Tries left: 4."
    with core.reader() as uow:
        assert wrong_pins(uow, PRE) == 1
    done = post(client, "", session="card-2", code=f"*104*{CARD_PIN}#").get_data(as_text=True)
    assert done == "END Card top-up of 5.00 AZN done. Your balance: 7.00 AZN."
    assert post(client, "", session="card-2", code=f"*104*{CARD_PIN}#").get_data(as_text=True) == done
    assert report(core).balance == D("7.00")
    used = post(client, "", session="card-3", code=f"*104*{CARD_PIN}#").get_data(as_text=True)
    assert used == "END This card was already used on November 22, 2026 12:00."
    assert_audit_clean(core)


def test_every_credit_refusal_says_the_real_reason_and_what_is_still_possible(core, clock):
    credit_ready_line(core, clock)  # a 3.00 AZN Nar Credit limit
    assert dial(core, "*700#01#").startswith("END 1.00 AZN Nar Credit added.")
    assert dial(core, "*700#05#").startswith("END 0.50 AZN Nar Credit added.")
    # 1.50 left: not "limit reached" (a smaller amount still fits), and SOS agrees with it
    assert dial(core, "*700#02#") == "END 2.00 AZN is more than the 1.50 AZN of Nar Credit left. For 1.00 AZN dial *700#01#."
    assert dial(core, "*711#") == ("END SOS Credit is only for lines that reached their Nar Credit limit. "
                                  "You can still take 1.00 AZN Nar Credit: *700#.")
    assert dial(core, "*700#").startswith("END 1.00 AZN Nar Credit added.")
    assert_audit_clean(core)


def test_a_friend_whose_own_limit_is_reached_is_told_so_instead_of_offered_credit(core, clock):
    credit_ready_line(core, clock, FRIEND)
    open_prepaid(core, PRE, language="en")
    with core.uow() as uow:
        services.take_nar_credit(uow, FRIEND, "friend-own", "03")  # the friend's whole 3.00 limit
    with core.uow() as uow:
        services.ask_friend_for_credit(uow, PRE, FRIEND, "ask-1")
    assert ussd_command(core, FRIEND, "*700*1#") == "END Your Nar Credit limit is reached. Debt: *700#150#."


def test_pack_status_on_a_one_way_suspended_postpaid_line_says_it_is_not_used(core):
    open_postpaid(core, language="en")
    dial(core, "*100*2#", POST)
    with core.uow() as uow:
        services.set_status(uow, POST, "suspended-one-way")
    assert ussd_command(core, POST, "*100#", "2") == (
        "END 3 GB: 3072 MB, until December 22, 2026; not usable while the line is suspended, data by tariff")


def _renewal_texts(core):
    import json

    from billing.outbox import Outgoing, pending
    from texts import notifications

    with core.uow() as uow:
        waiting = [Outgoing(m.key, m.msisdn, m.language, m.template, json.loads(m.params)) for m in pending(uow)]
    return [notifications.render(texts.current(), m, core.tariffs, core.offers) for m in waiting
            if m.template.startswith("pack-renewal")]


def test_a_renewal_held_by_a_suspension_says_so_and_one_at_will_asks_for_a_payment(core, clock):
    open_postpaid(core, language="en")
    open_prepaid(core, balance="10.00", language="en")
    dial(core, "*100*1#", POST)
    dial(core, "*100*1#", PRE)
    with core.uow() as uow:
        services.set_status(uow, PRE, "suspended-two-way")
        services.suspend_at_will(uow, POST)
    clock.advance(timedelta(days=30))
    run_pack_renewals(core)
    assert sorted(_renewal_texts(core)) == [
        "Your 1 GB pack was not renewed while your line is suspended at your request. Reactivate it and make a payment.",
        "Your 1 GB pack was not renewed: your line is suspended. It renews if the line is active by March 22, 2027.",
    ]


def test_the_same_session_and_step_with_another_code_is_a_new_request(core, clock):
    credit_ready_line(core, clock)
    first = ussd_command(core, PRE, "*700#05#", session="same")
    other = ussd_command(core, PRE, "*700#01#", session="same")
    retry = ussd_command(core, PRE, "*700#05#YES", session="same")  # the same question again: from memory
    assert first.startswith("END 0.50 AZN Nar Credit added.") and other.startswith("END 1.00 AZN Nar Credit added.")
    assert retry == first
    assert dial(core, "*700#150#") == "END Your Nar Credit debt: 1.80 AZN."  # 0.50 + 1.00 and their fees


def test_no_request_key_holds_a_plain_digest_of_a_pin(core, client):
    import hashlib

    from sqlalchemy import select

    from billing.models import CardPinFailure, Operation

    open_prepaid(core, balance="2.00", language="en")
    card(core)
    for session, pin in (("k-1", "11112222333344"), ("k-2", CARD_PIN)):
        post(client, "", session=session, code=f"*104*{pin}#")
    with core.reader() as uow:
        keys = uow.session.scalars(select(Operation.key)).all() + uow.session.scalars(select(CardPinFailure.key)).all()
    assert any(key.startswith("ussd:k-2:") for key in keys) and any(key.startswith("ussd:k-1:") for key in keys)
    for pin in ("11112222333344", CARD_PIN):
        plain = hashlib.sha256(f"*104*{pin}#|".encode()).hexdigest()[:16]
        assert not any(plain in key or pin in key for key in keys)
