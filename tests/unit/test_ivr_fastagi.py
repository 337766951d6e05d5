"""The FastAGI server over real TCP, against a mocked Asterisk replaying the Asterisk 22 reply forms."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from ivr import flows
from ivr.fastagi import FastAgiServer, service_from_script

from tests.unit.ivr_support import (
    POSTPAID_RU,
    PREPAID_AZ,
    MockAsterisk,
    ScriptedCaller,
    env_for,
    make_core,
    report,
    transcript_replies,
)

DEAD = "511 Command Not Permitted on a dead channel or intercept routine"
ALL_DIGITS = '"0123456789*#"'


@pytest.fixture
def core(tmp_path):
    core = make_core(tmp_path)
    try:
        yield core
    finally:
        core.dispose()


@pytest.fixture
def server(core):
    threads_before = set(threading.enumerate())
    server = FastAgiServer(core, "127.0.0.1", 0).start()
    try:
        yield server
    finally:
        server.stop()
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert leftover == [], f"threads left behind: {leftover}"


def place_call(server, caller=PREPAID_AZ, script="2112", keys="", overrides=None, env=None, **options):
    asterisk = MockAsterisk(ScriptedCaller(keys, overrides))
    return asterisk.call(server.address, env or env_for(script, caller), **options)


def wait_until_idle(server, timeout_s=5.0) -> int:
    deadline = time.monotonic() + timeout_s
    while server.live_calls() and time.monotonic() < deadline:
        time.sleep(0.01)
    return server.live_calls()


# -- a whole call ------------------------------------------------------------------------------

def test_a_2112_call_speaks_the_protocol_and_the_server_closes_the_socket(server, core):
    asterisk = place_call(server, keys="9")
    commands = asterisk.commands
    assert commands[:3] == ["ANSWER", 'SET VARIABLE "CHANNEL(language)" "az"', 'STREAM FILE welcome-2112 "" 0']
    assert commands[-4:] == [f"STREAM FILE menu-main {ALL_DIGITS} 0", "WAIT FOR DIGIT 5000",
                             'STREAM FILE goodbye "" 0', "HANGUP"]
    assert "tariff-klass" in asterisk.streamed()
    assert asterisk.closed_by_server
    assert wait_until_idle(server) == 0


@pytest.mark.parametrize("script", ["650", "/650", "balance?service=650", "ivr/650"])
def test_routes_on_agi_network_script_including_a_query_string(server, script):
    asterisk = place_call(server, caller=POSTPAID_RU, script=script, keys="9")
    assert asterisk.streamed()[0] == "welcome-650"
    assert asterisk.commands[1] == 'SET VARIABLE "CHANNEL(language)" "ru"'


def test_service_from_script_reads_path_or_query():
    assert [service_from_script(s) for s in ("2112", "/2112", "balance?service=650", "x/y/650")] == [
        "2112", "2112", "650", "650"]


def test_unknown_script_plays_service_unavailable_and_hangs_up(server):
    asterisk = place_call(server, script="balance?service=999")
    assert asterisk.commands == ['STREAM FILE service-unavailable "" 0', "HANGUP"]
    assert asterisk.closed_by_server


def test_a_language_chosen_by_dtmf_is_saved_and_set_on_the_channel(server, core):
    asterisk = place_call(server, keys="239")
    assert report(core, PREPAID_AZ).language == "ru"
    assert 'SET VARIABLE "CHANNEL(language)" "ru"' in asterisk.commands
    after = asterisk.commands[asterisk.commands.index('SET VARIABLE "CHANNEL(language)" "ru"') + 1]
    assert after == 'STREAM FILE language-saved "" 0'


def test_a_card_pin_is_read_with_get_data_and_keyed_on_the_agi_uniqueid(server, core):
    from decimal import Decimal

    from sqlalchemy import select

    from billing import services
    from billing.models import Operation

    with core.uow() as uow:
        services.add_card(uow, "1000000001", "12345678901234", "5.00")
    asterisk = place_call(server, keys="512345678901234#9")
    commands = asterisk.commands
    read = commands.index("GET DATA card-enter-pin 6000 16")  # the entry's timeout and digit count
    assert commands[read - 1] == "WAIT FOR DIGIT 5000"  # the menu took the 5
    assert asterisk.streamed()[asterisk.streamed().index("card-topped-up"):][:3] == [
        "card-topped-up", "num/5", "cur/manat-1"]
    assert report(core, PREPAID_AZ).balance == Decimal("17.48")
    with core.reader() as uow:
        [key] = uow.session.scalars(select(Operation.key).where(Operation.kind == "card")).all()
    assert key == "ivr:1795368681.11:4"  # transcript section 1's agi_uniqueid, and the step
    assert asterisk.closed_by_server


def test_a_pin_typed_during_the_no_input_prompt_of_the_card_entry_keeps_its_first_digit(server, core):
    from decimal import Decimal

    from billing import services

    with core.uow() as uow:
        services.add_card(uow, "1000000001", "12345678901234", "5.00")
    pressed_1 = ["200 result=49 endpos=4000"]  # STREAM FILE no-input stopped by '1' (ASCII 49)
    # silence at the PIN, then 1 during no-input, then the rest of the PIN and #
    asterisk = place_call(server, keys="5 2345678901234#9", overrides={"STREAM FILE no-input": pressed_1})
    commands = asterisk.commands
    no_input = commands.index(f"STREAM FILE no-input {ALL_DIGITS} 0")
    assert commands[no_input - 1] == "GET DATA card-enter-pin 6000 16"  # the silent first try
    # the '1' began the entry: the PIN prompt is not played again, the other 13 digits and the #
    # are read one by one with the entry's timeout, and the whole PIN is redeemed
    assert commands[no_input + 1:no_input + 15] == ["WAIT FOR DIGIT 6000"] * 14
    assert commands[no_input + 15] == 'STREAM FILE card-topped-up "" 0'
    assert commands.count("GET DATA card-enter-pin 6000 16") == 1
    assert report(core, PREPAID_AZ).balance == Decimal("17.48")


def test_a_pin_begun_during_card_pin_invalid_and_ended_by_silence_keeps_what_was_typed(server, core):
    pressed_9 = ["200 result=57 endpos=1000"]  # '9' during "that PIN is not valid"
    asterisk = place_call(server, keys="512#8765 9",
                          overrides={"STREAM FILE card-pin-invalid": pressed_9})
    commands = asterisk.commands
    invalid = commands.index(f"STREAM FILE card-pin-invalid {ALL_DIGITS} 0")
    # 9, then 8765 and 6 s of silence: "98765" is a PIN of the right length, tried as one
    assert commands[invalid + 1:invalid + 6] == ["WAIT FOR DIGIT 6000"] * 5
    assert commands[invalid + 6] == 'STREAM FILE card-pin-wrong "" 0'
    assert asterisk.streamed()[-2:] == ["menu-main", "goodbye"]


def test_a_hash_during_the_error_prompt_of_the_card_entry_is_an_empty_entry(server):
    pressed_hash = ["200 result=35 endpos=1000"]  # '#' (ASCII 35): the entry ended with nothing typed
    asterisk = place_call(server, keys="5 ", overrides={"STREAM FILE no-input": pressed_hash})
    commands = asterisk.commands
    no_input = commands.index(f"STREAM FILE no-input {ALL_DIGITS} 0")
    # as silence would (GET DATA answers a lone # with no digits too): no-input, and the PIN again
    assert commands[no_input + 1:no_input + 3] == [f"STREAM FILE no-input {ALL_DIGITS} 0",
                                                   "GET DATA card-enter-pin 6000 16"]


# -- reply forms from the transcript ------------------------------------------------------------

def test_escape_digit_during_the_menu_prompt_answers_the_menu(server):
    interrupted = transcript_replies("5", 'STREAM FILE demo-congrats "0123456789*#"')  # result=53 ('5')
    # on 650, where 5 is no option (on 2112 it tops up with a card)
    asterisk = place_call(server, POSTPAID_RU, "650", keys="9", overrides={"STREAM FILE menu-main-650": interrupted})
    first_menu = asterisk.commands.index(f"STREAM FILE menu-main-650 {ALL_DIGITS} 0")
    # '5' answered the menu at once (no WAIT FOR DIGIT); it is not an option, so invalid-choice,
    # which a digit may interrupt too (barge-in, issue 13)
    assert asterisk.commands[first_menu + 1] == f"STREAM FILE invalid-choice {ALL_DIGITS} 0"
    assert asterisk.streamed()[-1] == "goodbye"


def test_wait_for_digit_timeout_plays_no_input_then_re_prompts(server):
    asterisk = place_call(server, keys=" 9")
    assert asterisk.streamed()[-4:] == ["menu-main", "no-input", "menu-main", "goodbye"]


def test_510_mid_call_plays_service_unavailable_and_replies_stay_in_step(server):
    asterisk = place_call(server, overrides={"SET VARIABLE": transcript_replies("5", "FOO BAR")})
    assert asterisk.commands == ["ANSWER", 'SET VARIABLE "CHANNEL(language)" "az"',
                                 'STREAM FILE service-unavailable "" 0', "HANGUP"]
    assert asterisk.closed_by_server


def test_520_multi_line_usage_is_read_whole_and_replies_stay_in_step(server):
    usage = transcript_replies("5", "STREAM FILE")
    asterisk = place_call(server, overrides={"ANSWER": usage})
    # had the server read only the first 520 line, it would take usage text for later replies
    assert asterisk.commands == ["ANSWER", 'STREAM FILE service-unavailable "" 0', "HANGUP"]
    assert asterisk.closed_by_server


def test_hangup_line_mid_command_ends_the_call_and_the_server_closes(server):
    hangup_then_511 = transcript_replies("3", "GET DATA beep 10000 4", occurrence=1)  # HANGUP, 511
    asterisk = place_call(server, keys="9", overrides={"STREAM FILE your-balance-is": hangup_then_511})
    assert asterisk.commands[-1] == f"STREAM FILE your-balance-is {ALL_DIGITS} 0"  # the figures: barge-in
    assert asterisk.closed_by_server
    assert wait_until_idle(server) == 0


def test_hangup_line_after_a_complete_reply_ends_the_call(server):
    asterisk = place_call(server, keys="9",
                          overrides={"STREAM FILE welcome-2112": ["200 result=0 endpos=8000", "HANGUP"]})
    # the HANGUP line is read as the first line of the next reply; that reply is consumed too
    assert asterisk.commands[-1] == f"STREAM FILE your-balance-is {ALL_DIGITS} 0"
    assert "HANGUP" not in asterisk.commands
    assert asterisk.closed_by_server


def test_511_after_hangup_ends_the_call_without_more_commands(server):
    asterisk = place_call(server, keys="9", overrides={"WAIT FOR DIGIT": [DEAD]})
    assert asterisk.commands[-1] == "WAIT FOR DIGIT 5000"
    assert asterisk.closed_by_server


def test_result_minus_one_while_waiting_for_a_digit_is_a_hangup(server):
    asterisk = place_call(server, keys="")  # ScriptedCaller answers WAIT FOR DIGIT with result=-1
    assert asterisk.commands[-1] == "WAIT FOR DIGIT 5000"
    assert asterisk.closed_by_server


def test_eof_mid_call_ends_the_call_and_frees_its_thread(server):
    asterisk = place_call(server, keys="9", hang_up_after=4)
    assert asterisk.closed_by_server
    assert wait_until_idle(server) == 0


def test_a_missing_sound_file_does_not_end_the_call(server):
    missing = transcript_replies("6", 'STREAM FILE custom/az/foo ""')  # 200 result=-1 endpos=0
    asterisk = place_call(server, keys="9", overrides={"STREAM FILE welcome-2112": missing})
    assert asterisk.streamed()[:2] == ["welcome-2112", "your-balance-is"]
    assert asterisk.streamed()[-1] == "goodbye"


@pytest.mark.parametrize("sent", [b"", b"agi_network: yes\nagi_network_script: 2112\n", b"\xff\xfe garbage"])
def test_a_broken_environment_is_closed_cleanly(server, sent):
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(sent)
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(100) == b""
    assert wait_until_idle(server) == 0


# -- load and lifecycle --------------------------------------------------------------------------

def test_many_calls_at_once_all_complete(server):
    results: list[MockAsterisk] = []
    errors: list[BaseException] = []
    env = env_for("2112", PREPAID_AZ)

    def one_call():
        try:
            results.append(place_call(server, keys="9", env=env))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    callers = [threading.Thread(target=one_call) for _ in range(100)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(30)
    assert errors == []
    assert len(results) == 100
    assert all(r.streamed()[-1] == "goodbye" and r.closed_by_server for r in results)


def test_stop_cuts_calls_in_progress_and_leaves_no_thread(core):
    threads_before = set(threading.enumerate())
    server = FastAgiServer(core, "127.0.0.1", 0).start()
    held = socket.create_connection(server.address, timeout=5)
    try:
        held.sendall(("\n".join(env_for("2112", PREPAID_AZ)) + "\n\n").encode())
        assert held.recv(100) == b"ANSWER\n"  # the call is live; Asterisk never answers it
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 5
        assert held.recv(100) == b""
    finally:
        held.close()
    assert [t for t in threading.enumerate() if t not in threads_before and t.is_alive()] == []


def test_listen_backlog_is_large(core):
    with FastAgiServer(core, "127.0.0.1", 0) as server:
        assert server.listen_backlog >= 4096


def test_server_refuses_to_start_when_a_flow_prompt_is_missing():
    with pytest.raises(ValueError) as raised:
        flows.check_flow_prompts(flows.static_prompt_ids() - {"goodbye"})
    assert "goodbye" in str(raised.value)


# -- the accept path and the database threads ------------------------------------------------------

def _open_call(server, caller=PREPAID_AZ):
    """A call whose Asterisk stops answering after the environment: it waits on our first command."""
    sock = socket.create_connection(server.address, timeout=10)
    sock.sendall(("\n".join(env_for("2112", caller)) + "\n\n").encode())
    return sock


def test_calls_waiting_for_asterisk_hold_no_thread_each(core):
    threads_before = threading.active_count()
    with FastAgiServer(core, "127.0.0.1", 0, db_threads=2) as server:
        held = [_open_call(server) for _ in range(300)]
        try:
            for sock in held:
                assert sock.recv(100) == b"ANSWER\n"
            assert server.live_calls() == 300
            # the loop's thread and at most the two database threads, whatever the number of calls
            assert threading.active_count() <= threads_before + 3
        finally:
            for sock in held:
                sock.close()
        assert wait_until_idle(server) == 0


def test_a_new_call_is_answered_while_every_database_thread_is_busy(core, monkeypatch):
    release = threading.Event()
    original = flows.CallController._read_report

    def slow_report(controller):
        release.wait(10)  # the database is stuck (a lock, a slow commit)
        return original(controller)

    monkeypatch.setattr(flows.CallController, "_read_report", slow_report)
    with FastAgiServer(core, "127.0.0.1", 0, db_threads=1) as server:
        first = _open_call(server)
        second = _open_call(server)
        try:
            assert first.recv(100) == b"ANSWER\n"
            first.sendall(b"200 result=0\n")  # its flow now waits for the stuck database thread
            time.sleep(0.1)
            started = time.monotonic()
            assert second.recv(100) == b"ANSWER\n"  # accepted and answered all the same
            assert time.monotonic() - started < 2
            release.set()
            second.sendall(b"200 result=0\n")
            assert first.recv(100).startswith(b"SET VARIABLE")
        finally:
            release.set()
            first.close()
            second.close()


def test_an_endless_line_is_refused_and_the_call_closed(server):
    with socket.create_connection(server.address, timeout=5) as sock:
        try:
            sock.sendall(b"agi_network: yes\nagi_request: " + b"x" * 200_000)  # never a newline
        except OSError:
            pass  # the server may close while we are still sending
        sock.settimeout(5)
        try:
            assert sock.recv(100) == b""
        except ConnectionResetError:
            pass  # closed with our bytes unread: also closed
    assert wait_until_idle(server) == 0


def test_a_digit_pressed_during_the_no_input_prompt_answers_the_menu(server):
    pressed_9 = ["200 result=57 endpos=4000"]  # STREAM FILE interrupted by '9' (ASCII 57)
    asterisk = place_call(server, keys=" ", overrides={"STREAM FILE no-input": pressed_9})
    commands = asterisk.commands
    no_input = commands.index(f"STREAM FILE no-input {ALL_DIGITS} 0")
    # the 9 answered at once: no menu prompt again, no second WAIT FOR DIGIT, goodbye
    assert commands[no_input + 1:] == ['STREAM FILE goodbye "" 0', "HANGUP"]
    assert commands.count("WAIT FOR DIGIT 5000") == 1


def test_a_digit_pressed_during_the_figures_answers_the_menu(server, core):
    pressed_4 = ["200 result=52 endpos=2000"]  # '4': safety advice
    asterisk = place_call(server, keys="9", overrides={"STREAM FILE your-tariff-is": pressed_4})
    streamed = asterisk.streamed()
    assert streamed[streamed.index("your-tariff-is") + 1:] == ["fraud-advice", "menu-main", "goodbye"]
