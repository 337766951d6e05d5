"""The 2112 and 650 call flows on a simulated channel, over a real billing core on SQLite."""
from __future__ import annotations

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
    assert channel.prompt_ids == ["welcome-650", *figures, "menu-main", "goodbye"]
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
    assert [pid for pid, _ in heard][-1] == "menu-main"
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
