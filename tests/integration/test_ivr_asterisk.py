"""The 2112/650 IVR (ivr.fastagi + ivr.flows) answering calls placed through a real Asterisk 22.

Asterisk runs our dialplan/ and our installed prompts; calls come in as Local channels (a scripted
caller that presses keys when the server asks for one) and, once, over SIP from baresip. What the
server sent is read from Asterisk's own AGI debug log, so these tests see the wire, not our code.
"""
from __future__ import annotations

import shlex
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from billing import services
from ivr.flows import postpaid_figures, prepaid_figures

from tests.integration.conftest import (
    ASTERISK_POSTPAID_AZ,
    ASTERISK_PREPAID_AZ,
    ASTERISK_PREPAID_FOR_LANGUAGE,
    call_threads,
)
from tests.peers.audio import audio_stats
from tests.peers.agi_trace import AgiTrace
from tests.peers.baresip import BaresipPhone, sip_call

pytestmark = pytest.mark.asterisk


def report_of(world, msisdn):
    with world.core.uow() as uow:
        return services.balance_report(uow, msisdn)


def streamed(call_or_commands) -> list[str]:
    """The prompt ids of every STREAM FILE, in order."""
    commands = call_or_commands if isinstance(call_or_commands, list) else call_or_commands.commands()
    return [command.split()[2] for command in commands if command.upper().startswith("STREAM FILE")]


def language_switches(commands: list[str]) -> list[tuple[int, str]]:
    """(index, language) of every SET VARIABLE CHANNEL(language) (pyst2 quotes its arguments)."""
    found = []
    for index, command in enumerate(commands):
        words = shlex.split(command)
        if words[:3] == ["SET", "VARIABLE", "CHANNEL(language)"]:
            found.append((index, words[3]))
    return found


def wait_until_no_live_calls(world, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while world.fastagi.live_calls():
        assert time.monotonic() < deadline, f"{world.fastagi.live_calls()} FastAGI calls still open"
        time.sleep(0.05)


def assert_every_sound_existed(world) -> None:
    assert world.pbx.missing_sound_lines() == []


def test_prepaid_caller_on_2112_hears_welcome_balance_tariff_and_dates_in_their_language(asterisk):
    call = asterisk.pbx.originate(ASTERISK_PREPAID_AZ, "2112", dtmf="9")
    call.wait_ended(120)

    report = report_of(asterisk, ASTERISK_PREPAID_AZ)
    commands = call.commands()
    assert commands[0] == "ANSWER"
    assert language_switches(commands)[0][1] == "az"
    played = streamed(call)
    figures = prepaid_figures(report, "az")
    assert played[0] == "welcome-2112"
    assert played[1:1 + len(figures)] == figures
    assert played[1 + len(figures)] == "menu-main"
    assert played[-1] == "goodbye"
    assert commands[-1] == "HANGUP"
    assert call.environment()["agi_request"].endswith("/2112")
    assert_every_sound_existed(asterisk)
    wait_until_no_live_calls(asterisk)


def test_postpaid_caller_on_650_hears_billed_current_and_advance(asterisk):
    call = asterisk.pbx.originate(ASTERISK_POSTPAID_AZ, "650", dtmf="9")
    call.wait_ended(120)

    report = report_of(asterisk, ASTERISK_POSTPAID_AZ)
    played = streamed(call)
    figures = postpaid_figures(report, "az")
    assert played[0] == "welcome-650"
    assert played[1:1 + len(figures)] == figures
    assert "billed-amount-is" in figures and "advance-payment-is" in figures
    assert played[-1] == "goodbye"
    assert_every_sound_existed(asterisk)
    wait_until_no_live_calls(asterisk)


def test_choosing_russian_in_the_language_menu_saves_it_for_every_channel(asterisk):
    assert report_of(asterisk, ASTERISK_PREPAID_FOR_LANGUAGE).language == "az"

    call = asterisk.pbx.originate(ASTERISK_PREPAID_FOR_LANGUAGE, "2112", dtmf="239")
    call.wait_ended(120)

    assert report_of(asterisk, ASTERISK_PREPAID_FOR_LANGUAGE).language == "ru"
    commands = call.commands()
    [switch] = [index for index, language in language_switches(commands) if language == "ru"]
    assert streamed(commands[switch:])[0] == "language-saved"  # now heard from sounds/ru/
    assert "menu-language" in streamed(commands[:switch])
    assert_every_sound_existed(asterisk)
    wait_until_no_live_calls(asterisk)


def test_caller_hanging_up_mid_flow_ends_the_server_call_and_its_thread(asterisk):
    threads_before = call_threads()
    completions_before = asterisk.pbx.agi_script_completions()

    call = asterisk.pbx.originate(ASTERISK_PREPAID_AZ, "2112")
    call.wait_for_command(r"^STREAM FILE your-balance-is\b")
    call.hangup()
    call.wait_ended(30)  # Asterisk keeps the AGI leg until *we* close the socket

    wait_until_no_live_calls(asterisk)
    assert asterisk.pbx.agi_script_completions() == completions_before + 1
    assert "menu-main" not in streamed(call)  # the flow stopped where the caller left
    deadline = time.monotonic() + 10
    while call_threads() - threads_before:
        assert time.monotonic() < deadline, f"threads left behind: {call_threads() - threads_before}"
        time.sleep(0.05)


def test_unknown_caller_hears_the_short_message_and_the_call_ends(asterisk):
    call = asterisk.pbx.originate("+994709998877", "2112")
    call.wait_ended(60)

    assert streamed(call) == ["unknown-caller"]
    assert call.commands()[-1] == "HANGUP"
    assert_every_sound_existed(asterisk)


def test_every_menu_branch_plays_only_sounds_that_exist(asterisk):
    # 2112: repeat, notifications off, safety advice, language -> English, goodbye; 650 alike.
    # The two callers run at once (each call lasts a minute of real prompts).
    with ThreadPoolExecutor(2) as callers:
        first_call = callers.submit(asterisk.pbx.originate, ASTERISK_PREPAID_AZ, "2112", dtmf="134229")
        second_call = callers.submit(asterisk.pbx.originate, ASTERISK_POSTPAID_AZ, "650", dtmf="1349")
        first, second = first_call.result(), second_call.result()
    first.wait_ended(120)
    second.wait_ended(120)

    for prompt in ("fraud-advice", "notifications-off", "language-saved", "goodbye"):
        assert prompt in streamed(first), prompt
    assert "fraud-advice" in streamed(second)
    assert_every_sound_existed(asterisk)
    # put the demo line back for the other tests
    with asterisk.core.uow() as uow:
        services.set_language(uow, ASTERISK_PREPAID_AZ, "az")
    with asterisk.core.uow() as uow:
        services.set_balance_notifications(uow, ASTERISK_PREPAID_AZ, True)


def an_english_caller_with_a_card(asterisk, caller: str, serial: str, pin: str) -> None:
    """A prepaid line with 3.05 AZN, and an unused 5 AZN card."""
    from decimal import Decimal

    with asterisk.core.uow() as uow:
        services.add_subscriber(uow, caller, "prepaid", balance=Decimal("3.05"), language="en")
    with asterisk.core.uow() as uow:
        services.add_card(uow, serial, pin, "5.00")


def test_a_caller_tops_up_with_a_scratch_card_pin_keyed_on_the_phone(asterisk):
    from decimal import Decimal

    from sqlalchemy import select

    from billing.models import Operation

    caller, pin = "+994501113355", "12345678901234"
    an_english_caller_with_a_card(asterisk, caller, "5000000001", pin)

    call = asterisk.pbx.originate(caller, "2112", dtmf=["5", f"{pin}#", "9"])
    call.wait_ended(120)

    commands = call.commands()
    assert "GET DATA card-enter-pin 6000 16" in commands  # the entry's timeout and digit count, on the wire
    played = streamed(call)
    start = played.index("card-topped-up")
    assert played[start:] == ["card-topped-up", "num/5", "cur/manat-5",
                              "your-new-balance-is", "num/8", "cur/manat-5", "word/and", "num/5", "cur/qepik-5",
                              "menu-main", "goodbye"]
    assert report_of(asterisk, caller).balance == Decimal("8.05")
    with asterisk.core.reader() as uow:
        [key] = uow.session.scalars(select(Operation.key).where(Operation.kind == "card")).all()
    assert key.startswith(f"ivr:{call.environment()['agi_uniqueid']}:")
    with asterisk.core.reader() as uow:
        assert services.audit(uow) == []
    assert_every_sound_existed(asterisk)
    wait_until_no_live_calls(asterisk)


def test_sip_caller_hears_speech_not_silence(asterisk):
    result = sip_call(asterisk.pbx, ASTERISK_PREPAID_AZ, "2112", dtmf="9")

    assert result.environment["agi_type"] == "PJSIP"
    assert result.environment["agi_callerid"] == ASTERISK_PREPAID_AZ
    assert streamed(result.commands)[0] == "welcome-2112"
    heard = audio_stats(result.heard_wav)
    assert heard.looks_like_speech(), heard
    assert heard.seconds > 5, heard
    assert_every_sound_existed(asterisk)


def what_the_no_input_prompt_met(trace: AgiTrace) -> tuple[str, list[str]]:
    """(Asterisk's reply to the call's one no-input prompt, the commands sent after it); the prompt
    itself must have been played with every digit as an escape digit."""
    lines = trace.lines()
    [asked] = [i for i, line in enumerate(lines) if line.direction == "Rx" and line.text.startswith("STREAM FILE no-input")]
    assert lines[asked].text == 'STREAM FILE no-input "0123456789*#" 0'
    reply = next(line.text for line in lines[asked + 1:] if line.direction == "Tx")
    return reply, [line.text for line in lines[asked + 1:] if line.direction == "Rx"]


def test_a_digit_sent_over_sip_during_the_no_input_prompt_is_taken_as_the_choice(asterisk):
    # The caller stays silent at the first menu, then presses 9 (goodbye) while no-input plays:
    # RFC 4733 from baresip, over PJSIP, into STREAM FILE with escape digits (barge-in, issue 13).
    trace = AgiTrace(asterisk.pbx, "PJSIP/caller-")
    with BaresipPhone(asterisk.pbx, ASTERISK_PREPAID_AZ) as phone:
        phone.dial("2112")
        closed = lambda: phone.has_event("CALL_CLOSED")  # noqa: E731
        trace.wait_for_command(r"^WAIT FOR DIGIT 5000$", 120, closed)  # silence: 5 s and it times out
        trace.wait_for_command(r"^STREAM FILE no-input ", 30, closed)
        phone.send_digit("9")
        phone.wait_event("CALL_CLOSED", 60)

    reply, after = what_the_no_input_prompt_met(trace)
    assert reply.startswith("200 result=57 "), reply  # '9' (ASCII 57) stopped the prompt and answered
    assert after == ['STREAM FILE goodbye "" 0', "HANGUP"]  # taken as the choice: no menu again
    commands = trace.commands()
    assert commands.count("WAIT FOR DIGIT 5000") == 1
    assert streamed(commands)[-3:] == ["menu-main", "no-input", "goodbye"]
    assert_every_sound_existed(asterisk)
    wait_until_no_live_calls(asterisk)


def test_a_pin_typed_over_sip_during_the_no_input_prompt_of_the_card_entry_keeps_its_first_digit(asterisk):
    # The caller chooses 5, stays silent at the PIN, then types it while no-input plays: the first
    # digit stops STREAM FILE (escape digits) and begins the entry, the others are read one by one.
    from decimal import Decimal

    caller, pin = "+994501113366", "24681357924680"
    an_english_caller_with_a_card(asterisk, caller, "5000000002", pin)
    trace = AgiTrace(asterisk.pbx, "PJSIP/caller-")
    with BaresipPhone(asterisk.pbx, caller) as phone:
        phone.dial("2112")
        closed = lambda: phone.has_event("CALL_CLOSED")  # noqa: E731
        trace.wait_for_command(r"^WAIT FOR DIGIT 5000$", 120, closed)
        phone.send_digit("5")
        trace.wait_digit_taken("5", 30, closed)
        trace.wait_for_command(r"^GET DATA card-enter-pin 6000 16$", 30, closed)  # silence: 6 s
        trace.wait_for_command(r"^STREAM FILE no-input ", 30, closed)
        for index, digit in enumerate(f"{pin}#"):
            if index:
                trace.wait_for_command(r"^WAIT FOR DIGIT 6000$", 30, closed)
            phone.send_digit(digit)
            trace.wait_digit_taken(digit, 30, closed)
        trace.wait_for_command(r"^WAIT FOR DIGIT 5000$", 120, closed)  # back at the menu
        phone.send_digit("9")
        phone.wait_event("CALL_CLOSED", 60)

    reply, after = what_the_no_input_prompt_met(trace)
    assert reply.startswith("200 result=50 "), reply  # '2' (ASCII 50), the PIN's first digit, stopped it
    assert after[:15] == ["WAIT FOR DIGIT 6000"] * 14 + ['STREAM FILE card-topped-up "" 0']
    assert report_of(asterisk, caller).balance == Decimal("8.05")
    assert_every_sound_existed(asterisk)
    wait_until_no_live_calls(asterisk)
