"""The pyst2 shim against the reply forms of a real Asterisk 22 (fixtures/asterisk-22-fastagi-transcript.txt)."""
from __future__ import annotations

import io
import socket
import threading

import pytest
from asterisk import agi as pyst

from ivr.agi_shim import (
    AGIError,
    AGIInvalidCommand,
    AGIUsageError,
    AgiSession,
    DeadChannel,
    Hangup,
    PlaybackFailed,
    ResultHangup,
)

from tests.unit.ivr_support import transcript_env, transcript_replies

DEAD = "511 Command Not Permitted on a dead channel or intercept routine"


def session_with(*reply_lines: str, env: list[str] | None = None) -> tuple[AgiSession, io.StringIO]:
    env = transcript_env("1") if env is None else env
    stdin = io.StringIO("\n".join(env) + "\n\n" + "".join(f"{line}\n" for line in reply_lines))
    stdout = io.StringIO()
    return AgiSession(stdin, stdout), stdout


def sent(stdout: io.StringIO) -> list[str]:
    return stdout.getvalue().splitlines()


# -- environment ---------------------------------------------------------------------------------

def test_reads_the_22_line_environment_of_a_real_asterisk():
    session, _ = session_with()
    assert len(session.env) == 22
    assert session.env["agi_network_script"] == "balance?service=2112"
    assert session.env["agi_callerid"] == "+994501234567"
    assert session.env["agi_accountcode"] == ""


def test_eof_before_the_environment_ends_is_a_hangup_not_half_an_environment():
    stdin = io.StringIO("agi_network: yes\nagi_network_script: 2112\n")
    with pytest.raises(Hangup):
        AgiSession(stdin, io.StringIO())


def test_an_endless_environment_is_refused():
    stdin = io.StringIO("".join(f"agi_x{i}: {i}\n" for i in range(1000)))
    with pytest.raises(AGIError):
        AgiSession(stdin, io.StringIO())


def test_a_session_can_start_outside_the_main_thread():
    # pyst2's AGI() installs a SIGHUP handler, which raises ValueError in a worker thread.
    errors, sessions = [], []

    def start():
        try:
            sessions.append(session_with()[0])
        except Exception as error:  # noqa: BLE001 - the assertion below reports it
            errors.append(error)

    worker = threading.Thread(target=start)
    worker.start()
    worker.join(5)
    assert errors == [] and len(sessions) == 1


def test_pyst2_itself_fails_outside_the_main_thread_which_is_why_the_shim_exists():
    errors = []

    def start():
        try:
            pyst.AGI(io.StringIO("\n"), io.StringIO(), io.StringIO())
        except ValueError as error:
            errors.append(error)

    worker = threading.Thread(target=start)
    worker.start()
    worker.join(5)
    assert len(errors) == 1 and "signal" in str(errors[0])


# -- replies as a real Asterisk sends them --------------------------------------------------------

def test_get_data_returns_the_digits_pressed():
    session, stdout = session_with(*transcript_replies("1", "GET DATA beep 3000 1"))
    assert session.get_data("beep", 3000, 1) == "1"
    assert sent(stdout)[-1] == "GET DATA beep 3000 1"


def test_get_data_timeout_returns_no_digits():
    replies = transcript_replies("5", "GET DATA beep 2000 4")
    assert replies == ["200 result= (timeout)"]
    session, _ = session_with(*replies)
    assert session.get_data("beep", 2000, 4) == ""


def test_get_data_result_minus_one_is_a_hangup():
    replies = transcript_replies("3", "GET DATA beep 10000 4")
    assert replies == ["200 result=-1"]
    session, _ = session_with(*replies)
    with pytest.raises(ResultHangup):
        session.get_data("beep", 10000, 4)
    assert session.hung_up


def test_stream_file_interrupted_by_an_escape_digit_returns_it():
    session, stdout = session_with(*transcript_replies("5", 'STREAM FILE demo-congrats "0123456789*#"'))
    assert session.stream_file("demo-congrats", "0123456789*#") == "5"
    assert sent(stdout)[-1] == 'STREAM FILE demo-congrats "0123456789*#" 0'


def test_stream_file_played_to_the_end_returns_no_digit():
    session, _ = session_with(*transcript_replies("1", 'STREAM FILE hello-world ""'))
    assert session.stream_file("hello-world") == ""


def test_stream_file_of_a_missing_sound_is_a_playback_failure_not_a_hangup():
    replies = transcript_replies("6", 'STREAM FILE custom/az/foo ""')
    assert replies == ["200 result=-1 endpos=0"]
    session, _ = session_with(*replies, "200 result=0 endpos=4000")
    with pytest.raises(PlaybackFailed):
        session.stream_file("custom/az/foo")
    assert not session.hung_up
    assert session.stream_file("custom/az/bar") == ""


def test_wait_for_digit_returns_the_digit_and_empty_on_timeout():
    pressed = transcript_replies("5", "WAIT FOR DIGIT 5000")
    silent = transcript_replies("4", "WAIT FOR DIGIT 3000")
    session, _ = session_with(*pressed, *silent)
    assert session.wait_for_digit(5000) == "7"
    assert session.wait_for_digit(3000) == ""


def test_get_variable_returns_the_value_in_parentheses():
    session, _ = session_with(*transcript_replies("1", "GET VARIABLE CALLERID(num)"))
    assert session.get_variable("CALLERID(num)") == "+994501234567"


def test_510_is_an_agi_error_and_the_next_reply_stays_in_step():
    session, _ = session_with(*transcript_replies("5", "FOO BAR"), "200 result=0")
    with pytest.raises(AGIInvalidCommand) as raised:
        session.execute("FOO BAR")
    assert isinstance(raised.value, AGIError)
    assert session.execute("NOOP")["result"][0] == "0"


def test_520_usage_is_read_whole_and_the_next_reply_stays_in_step():
    usage = transcript_replies("5", "STREAM FILE")
    assert usage[0].startswith("520-") and usage[-1] == "520 End of proper usage." and len(usage) == 7
    session, _ = session_with(*usage, "200 result=1 (az)")
    with pytest.raises(AGIUsageError) as raised:
        session.execute("STREAM FILE")
    assert isinstance(raised.value, AGIError)
    assert "PLAYBACKSTATUS" in str(raised.value)
    assert session.get_variable("CHANNEL(language)") == "az"


def test_hangup_line_before_the_reply_raises_hangup_after_reading_the_reply():
    # transcript section 3: the bare HANGUP arrives, then the 511 answering the command in flight
    replies = transcript_replies("3", "GET DATA beep 10000 4", occurrence=1)
    assert replies == ["HANGUP", DEAD]
    session, _ = session_with(*replies, "200 result=1")
    with pytest.raises(Hangup):
        session.get_data("beep", 10000, 4)
    assert session.hung_up
    # the 511 was consumed with its command: what is left unread is the next command's reply
    assert session.stdin.read() == "200 result=1\n"


def test_hangup_line_after_a_complete_reply_is_consumed_and_raises():
    session, _ = session_with("HANGUP", "200 result=0 endpos=11360", "200 result=1 (x)")
    with pytest.raises(Hangup):
        session.stream_file("hello-world")
    # replies did not get out of step: only the next command's reply is left unread
    assert session.stdin.read() == "200 result=1 (x)\n"


def test_511_after_hangup_is_a_dead_channel_hangup():
    session, _ = session_with(*transcript_replies("1", 'STREAM FILE beep ""'))
    with pytest.raises(DeadChannel) as raised:
        session.stream_file("beep")
    assert isinstance(raised.value, Hangup)


def test_bare_hangup_line_after_our_hangup_command_then_eof_is_a_clean_hangup():
    session, _ = session_with(*transcript_replies("1", "HANGUP"))
    session.hangup()  # 200 result=1
    with pytest.raises(Hangup):
        session.execute("NOOP")  # reads the HANGUP line then EOF


def test_eof_while_waiting_for_a_reply_is_a_hangup_not_value_error():
    session, _ = session_with()
    with pytest.raises(Hangup):
        session.answer()


def test_eof_inside_a_520_usage_block_is_a_hangup_not_an_endless_loop():
    session, _ = session_with("520-Invalid command syntax.  Proper usage follows:", "Send the given file")
    with pytest.raises(Hangup):
        session.execute("STREAM FILE")


def test_works_over_a_socket_in_text_mode():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(("\n".join(transcript_env("5")) + "\n\n").encode())
        reader, writer = ours.makefile("r", encoding="utf-8"), ours.makefile("w", encoding="utf-8")
        session = AgiSession(reader, writer)
        theirs.sendall(b"200 result=1\n")
        session.set_variable("CHANNEL(language)", "az")
        assert theirs.recv(1000) == b'SET VARIABLE "CHANNEL(language)" "az"\n'
        theirs.close()
        with pytest.raises(Hangup):
            session.answer()


def test_a_peer_that_vanished_is_a_hangup_on_write():
    ours, theirs = socket.socketpair()
    with ours:
        theirs.sendall(("\n".join(transcript_env("5")) + "\n\n").encode())
        session = AgiSession(ours.makefile("r", encoding="utf-8"), ours.makefile("w", encoding="utf-8"))
        theirs.close()
        with pytest.raises(Hangup):
            for _ in range(3):  # the first write may still be buffered by the kernel
                session.answer()


def test_sighup_noted_by_the_classic_agi_handler_stops_the_next_command():
    session, stdout = session_with("200 result=0")
    session.note_sighup()
    with pytest.raises(Hangup):
        session.answer()
    assert sent(stdout) == []
