"""Menus: the state machine without I/O, the loop on a simulated channel, and load-time checks."""
from __future__ import annotations

import pytest

from ivr.agi_shim import Hangup
from ivr.channel import SimulatedChannel
from ivr.menu import EXHAUSTED, InvalidMenu, Kind, Menu, MenuState, check_prompts, run_menu

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
