"""The 2112 and 650 call flows on a simulated channel, over a real billing core on SQLite."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from billing import services
from billing.core import Core
from ivr import flows
from ivr.channel import SimulatedChannel
from ivr.flows import run_call
from ivr.say import say_amount, say_date
from ivr.simulate import simulate_call, simulate_call_with_outcome

from tests.unit.ivr_support import POSTPAID_AZ, POSTPAID_RU, PREPAID_AZ, PREPAID_EN, make_core, report


@pytest.fixture
def core(tmp_path):
    core = make_core(tmp_path)
    try:
        yield core
    finally:
        core.dispose()


def call(core, caller, service, press="", **options):
    channel = SimulatedChannel(caller, press, **options)
    outcome = run_call(core, channel, service)
    return channel, outcome


def prepaid_figures(core, msisdn, lang):
    r = report(core, msisdn)
    return ["your-balance-is", *say_amount(r.balance, lang), "your-tariff-is", f"tariff-{r.tariff.name}",
            "balance-expires-on", *say_date(r.balance_expires, lang),
            "subscription-ends-on", *say_date(r.subscription_ends, lang)]


def postpaid_figures(core, msisdn, lang):
    r = report(core, msisdn)
    return ["billed-amount-is", *say_amount(r.billed, lang), "current-amount-is", *say_amount(r.current, lang),
            "advance-payment-is", *say_amount(r.advance, lang)]


# -- 2112 ------------------------------------------------------------------------------------------

def test_prepaid_caller_hears_welcome_figures_and_menu_in_their_language(core):
    channel, outcome = call(core, PREPAID_AZ, "2112", "9")
    figures = prepaid_figures(core, PREPAID_AZ, "az")
    assert channel.prompt_ids == ["welcome-2112", *figures, "menu-main", "goodbye"]
    assert {p.language for p in channel.played} == {"az"}
    assert outcome == flows.COMPLETED
    assert channel.answered and channel.hung_up


def test_prepaid_figures_are_the_balance_report_spoken(core):
    channel, _ = call(core, PREPAID_EN, "2112", "9")
    r = report(core, PREPAID_EN)
    assert "tariff-super" in channel.prompt_ids
    start = channel.prompt_ids.index("your-balance-is") + 1
    spoken = say_amount(r.balance, "en")
    assert channel.prompt_ids[start:start + len(spoken)] == spoken
    assert {p.language for p in channel.played} == {"en"}


def test_repeat_plays_the_figures_again(core):
    channel, outcome = call(core, PREPAID_AZ, "2112", "19")
    figures = prepaid_figures(core, PREPAID_AZ, "az")
    assert channel.prompt_ids == ["welcome-2112", *figures, "menu-main", *figures, "menu-main", "goodbye"]
    assert outcome == flows.COMPLETED


def test_language_change_is_saved_and_the_call_continues_in_it(core):
    channel, outcome = call(core, PREPAID_AZ, "2112", "239")
    assert report(core, PREPAID_AZ).language == "ru"
    after = channel.played[channel.prompt_ids.index("menu-language") + 1:]
    assert [p.prompt_id for p in after] == ["language-saved", "menu-main", "goodbye"]
    assert {p.language for p in after} == {"ru"}
    assert outcome == flows.COMPLETED


def test_the_next_call_greets_in_the_saved_language(core):
    call(core, PREPAID_AZ, "2112", "22")  # en
    channel, _ = call(core, PREPAID_AZ, "2112", "9")
    assert channel.played[0].language == "en"


def test_notifications_toggle_off_then_on(core):
    assert report(core, PREPAID_AZ).notify_balance is True
    channel, _ = call(core, PREPAID_AZ, "2112", "3")
    assert report(core, PREPAID_AZ).notify_balance is False
    assert channel.prompt_ids[-2:] == ["notifications-off", "menu-main"]
    channel, _ = call(core, PREPAID_AZ, "2112", "39")
    assert report(core, PREPAID_AZ).notify_balance is True
    assert channel.prompt_ids[-3:] == ["notifications-on", "menu-main", "goodbye"]


def test_safety_advice_then_back_to_the_menu(core):
    channel, _ = call(core, PREPAID_AZ, "2112", "49")
    assert channel.prompt_ids[-4:] == ["menu-main", "fraud-advice", "menu-main", "goodbye"]


def test_three_invalid_choices_end_the_call_with_goodbye(core):
    channel, outcome = call(core, PREPAID_AZ, "2112", "780")
    tail = channel.prompt_ids[channel.prompt_ids.index("menu-main"):]
    assert tail == ["menu-main", "invalid-choice"] * 3 + ["goodbye"]
    assert outcome == flows.GAVE_UP
    assert channel.hung_up


def test_three_silences_end_the_call_with_goodbye(core):
    channel, outcome = call(core, PREPAID_AZ, "2112", "   ")
    assert channel.prompt_ids.count("no-input") == 3 and channel.prompt_ids[-1] == "goodbye"
    assert channel.timeouts_ms == [flows.MAIN_MENU.first_digit_timeout_ms] * 3
    assert outcome == flows.GAVE_UP


def test_exhausted_language_menu_changes_nothing(core):
    channel, outcome = call(core, PREPAID_AZ, "2112", "2777")
    assert report(core, PREPAID_AZ).language == "az"
    assert channel.prompt_ids[-1] == "goodbye" and outcome == flows.GAVE_UP


def test_hangup_during_the_figures_ends_the_flow_quietly(core):
    channel, outcome = call(core, PREPAID_AZ, "2112", "9", hang_up_after_prompts=3)
    assert outcome == flows.HUNG_UP
    assert len(channel.prompt_ids) == 3 and "goodbye" not in channel.prompt_ids


def test_hangup_in_the_language_menu_leaves_the_language_unchanged(core):
    channel, outcome = call(core, PREPAID_AZ, "2112", "2")
    assert outcome == flows.HUNG_UP
    assert channel.prompt_ids[-1] == "menu-language"
    assert report(core, PREPAID_AZ).language == "az"


def test_suspended_line_is_told_so_before_its_figures(core):
    with core.uow() as uow:
        services.set_status(uow, PREPAID_AZ, "suspended-one-way")
    channel, _ = call(core, PREPAID_AZ, "2112", "9")
    assert channel.prompt_ids[:3] == ["welcome-2112", "line-suspended", "your-balance-is"]


def test_postpaid_caller_on_2112_is_told_to_call_650(core):
    channel, outcome = call(core, POSTPAID_AZ, "2112", "9")
    assert channel.prompt_ids == ["use-650"]
    assert outcome == flows.WRONG_PLAN and channel.hung_up


# -- 650 -------------------------------------------------------------------------------------------

def test_postpaid_caller_hears_billed_current_and_advance(core):
    channel, outcome = call(core, POSTPAID_RU, "650", "9")
    figures = postpaid_figures(core, POSTPAID_RU, "ru")
    assert channel.prompt_ids == ["welcome-650", *figures, "menu-main-650", "goodbye"]
    assert {p.language for p in channel.played} == {"ru"}
    assert outcome == flows.COMPLETED


def test_postpaid_menu_has_the_same_shape(core):
    channel, _ = call(core, POSTPAID_AZ, "650", "1229")
    figures = postpaid_figures(core, POSTPAID_AZ, "az")
    assert channel.prompt_ids.count(figures[0]) == 2
    assert report(core, POSTPAID_AZ).language == "en"
    assert channel.played[-1].language == "en"


def test_prepaid_caller_on_650_is_told_to_call_2112(core):
    channel, outcome = call(core, PREPAID_EN, "650")
    assert channel.prompt_ids == ["use-2112"] and channel.played[0].language == "en"
    assert outcome == flows.WRONG_PLAN


# -- who may not be served -----------------------------------------------------------------------

@pytest.mark.parametrize("caller", ["", "unknown", "anonymous", "Anonymous", "12345", "+994509999999"])
def test_unknown_or_withheld_caller_hears_unknown_caller_and_the_call_ends(core, caller):
    channel, outcome = call(core, caller, "2112", "9")
    assert channel.prompt_ids == ["unknown-caller"]
    assert channel.played[0].language == flows.DEFAULT_LANGUAGE
    assert outcome == flows.UNKNOWN_CALLER and channel.hung_up


def test_caller_id_in_national_form_is_recognised(core):
    channel, _ = call(core, "0501234567", "2112", "9")
    assert channel.prompt_ids[0] == "welcome-2112"


def test_billing_unavailable_plays_service_unavailable(tmp_path):
    broken = Core(f"sqlite:///{tmp_path / 'no-schema.db'}")  # no tables: every query fails
    try:
        channel, outcome = call(broken, PREPAID_AZ, "2112", "9")
    finally:
        broken.dispose()
    assert channel.prompt_ids == ["service-unavailable"]
    assert outcome == flows.UNAVAILABLE and channel.hung_up


# -- selfcare call ---------------------------------------------------------------------------------

def test_simulate_call_lists_each_prompt_with_its_text_in_the_callers_language(core):
    from prompts import catalogue

    heard = simulate_call(core, PREPAID_AZ, "2112", press="9")
    assert heard[0] == ("welcome-2112", catalogue.text("welcome-2112", "az"))
    assert heard[-1] == ("goodbye", catalogue.text("goodbye", "az"))
    assert all(text for _, text in heard)


def test_simulate_call_without_presses_ends_after_the_menu_prompt(core):
    heard, outcome = simulate_call_with_outcome(core, POSTPAID_AZ, "650")
    assert [pid for pid, _ in heard][-1] == "menu-main-650"
    assert outcome == flows.HUNG_UP


def test_simulate_call_to_an_unknown_service_is_refused(core):
    with pytest.raises(flows.UnknownService) as raised:
        simulate_call(core, PREPAID_AZ, "999")
    assert "2112" in str(raised.value) and "650" in str(raised.value)


def test_simulate_call_refuses_keys_that_are_not_dtmf(core):
    with pytest.raises(ValueError):
        simulate_call(core, PREPAID_AZ, "2112", press="1x")


def test_every_prompt_the_flows_can_play_is_in_the_catalogue(core):
    flows.check_startup(core)


def test_a_call_cannot_loop_forever(core):
    channel, outcome = call(core, PREPAID_AZ, "2112", "1" * (flows.MAX_STEPS_PER_CALL // 2 + 5))
    assert channel.prompt_ids[-1] == "goodbye"
    assert outcome == flows.GAVE_UP


# -- 2112 option 5: top up with a scratch card ----------------------------------------------------

CARD_PIN = "12345678901234"
WRONG_PIN = "11112222333344"


def add_card(core, serial="1000000001", pin=CARD_PIN, value="5.00"):
    with core.uow() as uow:
        services.add_card(uow, serial, pin, value)


def card_operations(core):
    from sqlalchemy import select

    from billing.models import CardPinFailure, Operation

    with core.reader() as uow:
        ops = uow.session.scalars(select(Operation.key).where(Operation.kind == "card")).all()
        wrong = uow.session.scalars(select(CardPinFailure.key)).all()
    return list(ops), list(wrong)


def test_option_5_tops_up_with_the_pin_and_says_the_amount_and_the_new_balance(core):
    add_card(core)
    figures = prepaid_figures(core, PREPAID_EN, "en")  # 3.05 AZN before the card
    channel, outcome = call(core, PREPAID_EN, "2112", f"5{CARD_PIN}#9", uniqueid="1795368681.11")
    assert channel.prompt_ids == [
        "welcome-2112", *figures, "menu-main", "card-enter-pin",
        "card-topped-up", "num/5", "cur/manat-5",
        "your-new-balance-is", "num/8", "cur/manat-5", "word/and", "num/5", "cur/qepik-5",
        "menu-main", "goodbye"]
    assert outcome == flows.COMPLETED
    assert report(core, PREPAID_EN).balance == Decimal("8.05")
    assert channel.timeouts_ms[1] == flows.CARD_PIN_ENTRY.digit_timeout_ms
    ops, _ = card_operations(core)
    assert ops == ["ivr:1795368681.11:4"]  # the call's id and the step: one request, one key
    with core.reader() as uow:
        assert services.audit(uow) == []


def test_option_5_texts_are_the_catalogues_in_the_callers_language(core):
    from prompts import catalogue

    add_card(core)
    heard = simulate_call(core, PREPAID_AZ, "2112", press=f"5{CARD_PIN}#9")
    ids = [pid for pid, _ in heard]
    start = ids.index("card-topped-up")
    assert heard[start:start + 3] == [("card-topped-up", "Kart qəbul olundu. Balansınıza əlavə olunan məbləğ:"),
                                      ("num/5", "beş"), ("cur/manat-1", "manat")]
    assert ("your-new-balance-is", catalogue.text("your-new-balance-is", "az")) in heard
    assert [pid for pid, _ in heard[start + 3:]] == ["your-new-balance-is", "num/17", "cur/manat-1", "num/40",
                                                    "num/8", "cur/qepik-1", "menu-main", "goodbye"]


def test_a_wrong_pin_changes_nothing_says_so_and_is_counted(core):
    add_card(core)
    before = report(core, PREPAID_AZ).balance
    channel, outcome = call(core, PREPAID_AZ, "2112", f"5{WRONG_PIN}#9")
    assert channel.prompt_ids[-4:] == ["card-enter-pin", "card-pin-wrong", "menu-main", "goodbye"]
    assert report(core, PREPAID_AZ).balance == before and outcome == flows.COMPLETED
    ops, wrong = card_operations(core)
    assert ops == [] and len(wrong) == 1


def test_five_wrong_pins_lock_the_line_and_the_caller_hears_the_minutes_left(core):
    add_card(core)
    with core.uow() as uow:
        services.set_language(uow, PREPAID_AZ, "ru")
    call(core, PREPAID_AZ, "2112", f"5{WRONG_PIN}#" * 5 + "9")
    core.clock.advance(timedelta(minutes=37))
    channel, _ = call(core, PREPAID_AZ, "2112", f"5{CARD_PIN}#9")  # the right PIN, refused unchecked
    assert channel.prompt_ids[-7:] == ["card-enter-pin", "card-locked", "num/20", "num/3", "time/minute-2",
                                       "menu-main", "goodbye"]  # 60 - 37 minutes: двадцать три минуты
    assert {p.language for p in channel.played} == {"ru"}
    assert report(core, PREPAID_AZ).balance == Decimal("12.48")


def test_a_used_card_says_on_which_date(core):
    add_card(core)
    call(core, PREPAID_EN, "2112", f"5{CARD_PIN}#9")
    channel, _ = call(core, PREPAID_AZ, "2112", f"5{CARD_PIN}#9")
    start = channel.prompt_ids.index("card-already-used")
    assert channel.prompt_ids[start:] == ["card-already-used", "day/22", "month/11", "num/2", "num/thousand-1",
                                          "num/20", "num/6", "menu-main", "goodbye"]
    assert report(core, PREPAID_AZ).balance == Decimal("12.48")


def test_each_refused_card_top_up_is_counted_by_billings_reason(core):
    from prometheus_client import REGISTRY

    def refusals():
        return [REGISTRY.get_sample_value("selfcare_refusals_total", dict(channel="ivr", service="2112", reason=r)) or 0.0
                for r in ("wrong-pin", "too-many-wrong-pins", "card-used")]

    add_card(core)
    before = refusals()
    call(core, PREPAID_EN, "2112", f"5{CARD_PIN}#9")  # topped up: not a refusal
    call(core, PREPAID_AZ, "2112", f"5{CARD_PIN}#9")  # the card is used now
    call(core, PREPAID_AZ, "2112", f"5{WRONG_PIN}#" * 6 + "9")  # five wrong, then locked
    assert [after - b for after, b in zip(refusals(), before)] == [5, 1, 1]


def test_a_short_pin_and_silence_use_up_the_pin_tries_and_return_to_the_menu(core):
    add_card(core)
    channel, outcome = call(core, PREPAID_AZ, "2112", "512#  9")
    tail = channel.prompt_ids[channel.prompt_ids.index("card-enter-pin"):]
    assert tail == ["card-enter-pin", "card-pin-invalid", "card-enter-pin", "no-input", "card-enter-pin",
                    "no-input", "menu-main", "goodbye"]
    assert outcome == flows.COMPLETED and card_operations(core) == ([], [])


def test_hanging_up_during_the_pin_changes_nothing(core):
    add_card(core)
    channel, outcome = call(core, PREPAID_AZ, "2112", "5")
    assert outcome == flows.HUNG_UP and channel.prompt_ids[-1] == "card-enter-pin"
    assert card_operations(core) == ([], [])


def test_650_has_no_card_option(core):
    add_card(core)
    channel, _ = call(core, POSTPAID_AZ, "650", f"5{CARD_PIN}#9")
    assert channel.prompt_ids[-3:-1] == ["menu-main-650", "invalid-choice"]
    assert "card-enter-pin" not in channel.prompt_ids and card_operations(core) == ([], [])


def test_a_card_on_2112_reactivates_a_line_whose_balance_expired(core):
    from datetime import datetime, time

    add_card(core)
    before = report(core, PREPAID_EN)
    core.clock.set(datetime.combine(before.balance_expires + timedelta(days=1), time(12, 0)))
    assert report(core, PREPAID_EN).balance_expired
    channel, _ = call(core, PREPAID_EN, "2112", f"5{CARD_PIN}#9")
    assert channel.prompt_ids[:2] == ["welcome-2112", "line-suspended"]
    assert "topup-to-reactivate" in channel.prompt_ids and "card-topped-up" in channel.prompt_ids
    after = report(core, PREPAID_EN)
    assert not after.balance_expired and after.status == "active" and after.balance_expires > before.balance_expires
    with core.reader() as uow:
        assert services.audit(uow) == []


# -- the machine itself, without a channel ----------------------------------------------------------

def test_the_flow_is_a_machine_of_turns_whose_state_survives_a_round_trip_through_json(core):
    from ivr.flows import CallController, CallState, service_for
    from ivr.menu import Wait

    controller = CallController.new_call(core, service_for("650"), POSTPAID_RU, "call-1")
    first = controller.start()
    assert first.say == ("welcome-650",) and first.language == "ru" and first.set_language
    assert first.ask[0] == "billed-amount-is" and first.ask[-1] == "menu-main-650"  # figures: barge-in
    assert first.wait == Wait(max_digits=1, timeout_ms=5000, finish_on_key="")

    resumed = CallController(core, service_for("650"), CallState.from_json(controller.state.to_json()))
    second = resumed.resume(None)  # silence
    assert (second.say, second.ask, second.wait) == ((), ("no-input", "menu-main-650"), first.wait)
    third = resumed.resume("2")
    assert (third.say, third.ask) == ((), ("menu-language",))
    again = CallController(core, service_for("650"), CallState.from_json(resumed.state.to_json()))
    invalid = again.resume("9")  # no option in the language menu
    assert (invalid.say, invalid.ask) == ((), ("invalid-choice", "menu-language"))
    saved = again.resume("2")
    assert (saved.say, saved.ask, saved.language, saved.set_language) == (
        ("language-saved",), ("menu-main-650",), "en", True)
    last = again.resume("9")
    assert (last.say, last.ask, last.wait, again.outcome) == (("goodbye",), (), None, flows.COMPLETED)
    assert report(core, POSTPAID_RU).language == "en"
