"""Menus: the state machine without I/O, the loop on a simulated channel, and load-time checks."""
from __future__ import annotations

import pytest

from ivr.agi_shim import Hangup
from ivr.channel import SimulatedChannel
from ivr.menu import (ENTERED, EXHAUSTED, DigitEntry, EntryState, InvalidMenu, Kind, Menu, MenuState, check_prompts,
                      run_entry, run_menu)

COLOURS = Menu(
    name="colours",
    prompts=("pick-colour", "pick-colour-again"),
    options={"1": "red", "2": "green"},
    tries=3,
    first_digit_timeout_ms=4000,
    invalid_prompt="invalid-choice",
    no_input_prompt="no-input",
)


# -- the state machine ---------------------------------------------------------------------------

def test_a_listed_digit_matches_its_key():
    outcome = MenuState(COLOURS).feed("2")
    assert (outcome.kind, outcome.key, outcome.error_prompt) == (Kind.MATCHED, "green", None)


def test_an_unlisted_digit_is_invalid_and_asks_for_the_invalid_prompt():
    outcome = MenuState(COLOURS).feed("7")
    assert (outcome.kind, outcome.key, outcome.error_prompt) == (Kind.INVALID, None, "invalid-choice")


def test_silence_is_a_timeout_and_asks_for_the_no_input_prompt():
    outcome = MenuState(COLOURS).feed(None)
    assert (outcome.kind, outcome.error_prompt) == (Kind.TIMEOUT, "no-input")


def test_three_failures_of_any_kind_exhaust_the_menu():
    state = MenuState(COLOURS)
    kinds = [state.feed(digit).kind for digit in ("7", None, "#")]
    assert kinds == [Kind.INVALID, Kind.TIMEOUT, Kind.EXHAUSTED]


def test_exhausted_outcome_carries_the_exhausted_key_and_the_last_error_prompt():
    state = MenuState(COLOURS)
    state.feed("7")
    state.feed("7")
    outcome = state.feed(None)
    assert (outcome.kind, outcome.key, outcome.error_prompt) == (Kind.EXHAUSTED, EXHAUSTED, "no-input")


def test_a_match_after_failures_still_matches():
    state = MenuState(COLOURS)
    state.feed(None)
    state.feed("9")
    assert state.feed("1").key == "red"


def test_re_prompts_escalate_and_the_last_prompt_is_reused():
    state = MenuState(COLOURS)
    heard = [state.prompts()]
    for _ in range(2):
        state.feed("9")
        heard.append(state.prompts())
    assert heard == [("pick-colour",), ("pick-colour-again",), ("pick-colour-again",)]


def test_one_try_menu_is_exhausted_by_the_first_failure():
    menu = Menu(name="once", prompts=("p",), options={"1": "x"}, tries=1)
    assert MenuState(menu).feed(None).kind is Kind.EXHAUSTED


def test_defaults_are_three_tries_and_a_five_second_first_digit_timeout():
    menu = Menu(name="plain", prompts=("p",), options={"1": "x"})
    assert (menu.tries, menu.first_digit_timeout_ms, menu.invalid_prompt, menu.no_input_prompt) == (
        3, 5000, "invalid-choice", "no-input")


# -- the loop on a channel -----------------------------------------------------------------------

def test_loop_returns_the_key_and_plays_the_menu_once_when_answered_at_once():
    channel = SimulatedChannel("+994501234567", "2")
    assert run_menu(channel, COLOURS) == "green"
    assert channel.prompt_ids == ["pick-colour"]
    assert channel.timeouts_ms == [4000]


def test_loop_plays_the_error_prompt_before_each_new_attempt():
    channel = SimulatedChannel("+994501234567", "9 1")
    assert run_menu(channel, COLOURS) == "red"
    assert channel.prompt_ids == ["pick-colour", "invalid-choice", "pick-colour-again", "no-input",
                                  "pick-colour-again"]


def test_loop_gives_up_after_three_tries_with_the_exhausted_key():
    channel = SimulatedChannel("+994501234567", "   ")
    assert run_menu(channel, COLOURS) == EXHAUSTED
    assert channel.prompt_ids.count("no-input") == 3
    assert len(channel.prompt_ids) == 6


def test_hangup_in_a_menu_raises_and_is_never_re_prompted():
    channel = SimulatedChannel("+994501234567", "9")  # one wrong digit, then the caller is gone
    with pytest.raises(Hangup):
        run_menu(channel, COLOURS)
    assert channel.prompt_ids == ["pick-colour", "invalid-choice", "pick-colour-again"]


# -- checks when menus load ----------------------------------------------------------------------

@pytest.mark.parametrize(
    "changes, named",
    [
        ({"options": {"12": "x"}}, "'12'"),
        ({"options": {"a": "x"}}, "'a'"),
        ({"options": {}}, "no option"),
        ({"prompts": ()}, "no prompt"),
        ({"tries": 0}, "tries=0"),
        ({"first_digit_timeout_ms": 5}, "first_digit_timeout_ms=5"),
        ({"options": {"1": EXHAUSTED}}, "reserved"),
    ],
)
def test_a_bad_menu_is_refused_when_it_loads_naming_the_bad_entry(changes, named):
    fields = dict(name="broken", prompts=("p",), options={"1": "x"}) | changes
    with pytest.raises(InvalidMenu) as raised:
        Menu(**fields)
    assert "'broken'" in str(raised.value) and named in str(raised.value)


def test_a_menu_prompt_missing_from_the_catalogue_is_named():
    with pytest.raises(InvalidMenu) as raised:
        check_prompts([COLOURS], {"pick-colour", "invalid-choice", "no-input"})
    assert "'colours'" in str(raised.value) and "'pick-colour-again'" in str(raised.value)


def test_the_ivr_menus_prompts_are_all_in_the_real_prompt_catalogue():
    from prompts import catalogue

    from ivr.flows import MENUS

    check_prompts(MENUS, set(catalogue.load().ids()))


# -- a digit entry (a card PIN) ------------------------------------------------------------------

PIN = DigitEntry(name="pin", prompts=("enter-pin",), min_digits=4, max_digits=8, digit_timeout_ms=6000,
                 invalid_prompt="bad-pin", no_input_prompt="no-input")


def test_an_entry_in_its_digit_counts_is_entered_with_its_digits():
    outcome = EntryState(PIN).feed("1234")
    assert (outcome.kind, outcome.key, outcome.digits) == (Kind.MATCHED, ENTERED, "1234")


@pytest.mark.parametrize("digits", ["123", "123456789", "12*4", "#"])
def test_an_entry_outside_its_digit_counts_or_with_a_star_is_invalid(digits):
    outcome = EntryState(PIN).feed(digits)
    assert (outcome.kind, outcome.error_prompt, outcome.digits) == (Kind.INVALID, "bad-pin", None)


def test_three_failed_entries_exhaust_it():
    state = EntryState(PIN)
    assert [state.feed(d).kind for d in (None, "12", "")] == [Kind.TIMEOUT, Kind.INVALID, Kind.EXHAUSTED]


def test_the_entry_loop_reads_with_its_timeout_and_max_digits_and_re_prompts():
    channel = SimulatedChannel("+994501234567", "12# 98765#")
    outcome = run_entry(channel, PIN)
    assert (outcome.key, outcome.digits) == (ENTERED, "98765")
    assert channel.prompt_ids == ["enter-pin", "bad-pin", "enter-pin", "no-input", "enter-pin"]
    assert channel.timeouts_ms == [6000, 6000, 6000]


def test_the_entry_stops_at_max_digits_and_leaves_the_rest_for_the_next_read():
    channel = SimulatedChannel("+994501234567", "1234567899")
    assert run_entry(channel, PIN).digits == "12345678"
    assert channel.read_digit(["next"], 5000) == "9"


@pytest.mark.parametrize("changes, named", [
    ({"min_digits": 0}, "min_digits=0"),
    ({"min_digits": 9}, "min_digits=9"),
    ({"max_digits": 33, "min_digits": 4}, "max_digits=33"),
    ({"digit_timeout_ms": 100}, "digit_timeout_ms=100"),
    ({"tries": 11}, "tries=11"),
    ({"prompts": ()}, "no prompt"),
])
def test_a_bad_digit_entry_is_refused_when_it_loads_naming_the_bad_entry(changes, named):
    fields = dict(name="broken", prompts=("p",), min_digits=4, max_digits=8) | changes
    with pytest.raises(InvalidMenu) as raised:
        DigitEntry(**fields)
    assert "'broken'" in str(raised.value) and named in str(raised.value)


# -- turns: what a voice adapter is asked to do at once --------------------------------------------

def test_after_an_invalid_digit_the_error_and_the_menu_are_asked_together_so_either_may_be_interrupted():
    from ivr.menu import Script, Wait

    state, script = MenuState(COLOURS), Script("en")
    state.after(state.feed("7"), script)
    turn = script.turn(state.wait())
    assert (turn.say, turn.ask, turn.wait) == ((), ("invalid-choice", "pick-colour-again"), Wait(1, 4000, ""))


def test_when_tries_run_out_the_error_prompt_is_heard_whole_and_nothing_is_waited_for():
    from ivr.menu import Script

    state, script = MenuState(COLOURS, attempt=2), Script("en")
    state.after(state.feed(None), script)
    turn = script.turn(None)
    assert (turn.say, turn.ask, turn.wait) == (("no-input",), (), None)


def test_an_entry_asks_again_with_its_error_prompt_interruptible_and_waits_for_digits_ended_by_hash():
    from ivr.menu import Script, Wait

    state, script = EntryState(PIN), Script("az")
    state.after(state.feed("12"), script)
    turn = script.turn(state.wait())
    # a PIN typed during "bad PIN" is not lost: its first digit stops the prompt and begins the entry
    assert (turn.say, turn.ask, turn.wait) == ((), ("bad-pin", "enter-pin"), Wait(8, 6000, "#"))


def test_when_an_entrys_tries_run_out_its_error_prompt_is_heard_whole():
    from ivr.menu import Script

    state, script = EntryState(PIN, attempt=2), Script("az")
    state.after(state.feed(None), script)
    assert (script.turn(None).say, script.turn(None).ask) == (("no-input",), ())


def test_a_prompt_heard_whole_after_asking_ones_makes_them_heard_whole_too():
    from ivr.menu import Script

    script = Script("en")
    script.ask(["figures"])
    script.say(["notice"])
    script.ask(["menu"])
    turn = script.turn(MenuState(COLOURS).wait())
    assert (turn.say, turn.ask) == (("figures", "notice"), ("menu",))


def test_the_language_changes_only_before_a_turns_first_prompt():
    from ivr.menu import Script

    script = Script("az")
    script.set_language("ru")
    script.say(["language-saved"])
    assert script.turn(None).language == "ru" and script.turn(None).set_language
    with pytest.raises(AssertionError):
        script.set_language("en")
