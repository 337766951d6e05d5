"""The real-Asterisk harness itself, proven against its own tiny FastAGI responder (not our IVR).

If these fail, the IVR tests in test_ivr_asterisk.py cannot be trusted either way.
"""
from __future__ import annotations

import pytest

from tests.peers.audio import audio_stats
from tests.peers.baresip import sip_call

pytestmark = pytest.mark.asterisk

WITH_MISSING_FILE = ["ANSWER", 'STREAM FILE no-such-prompt-anywhere ""', 'STREAM FILE hello-world ""', "HANGUP"]


def test_local_call_reaches_the_fastagi_server_with_caller_id_script_and_dtmf(tiny_asterisk):
    pbx, responder = tiny_asterisk

    call = pbx.originate("+994501234567", "2112", dtmf="5")
    call.wait_ended(60)

    [session] = responder.sessions
    assert session["env"]["agi_network_script"] == "2112"
    assert session["env"]["agi_callerid"] == "+994501234567"
    assert call.environment()["agi_request"].endswith("/2112")  # the log's view of the same call
    assert call.commands() == ["ANSWER", 'STREAM FILE hello-world ""', "GET DATA beep 8000 1",
                               'STREAM FILE hello-world ""', "HANGUP"]
    assert ("GET DATA beep 8000 1", "200 result=5") in session["replies"]
    assert session["closed"]
    assert pbx.missing_sound_lines() == []


def test_what_the_local_caller_heard_is_recorded_and_is_speech(tiny_asterisk):
    pbx, _ = tiny_asterisk

    call = pbx.originate("+994501234567", "650", dtmf="1")
    call.wait_ended(60)

    heard = audio_stats(call.heard_wav)
    assert heard.looks_like_speech(), heard


def test_caller_hanging_up_is_seen_by_the_server_and_the_call_ends(tiny_asterisk):
    pbx, responder = tiny_asterisk

    call = pbx.originate("+994551234567", "650", dtmf="h")
    call.wait_ended(30)

    [session] = responder.sessions
    command, reply = session["replies"][-1]
    assert command == "GET DATA beep 8000 1"
    assert reply.startswith(("200 result=-1", "HANGUP")), reply
    assert session["closed"]
    assert pbx.agi_script_completions() == 1


@pytest.mark.parametrize("tiny_asterisk", [WITH_MISSING_FILE], indirect=True)
def test_a_sound_that_does_not_exist_shows_in_the_log_check(tiny_asterisk):
    pbx, _ = tiny_asterisk

    call = pbx.originate("+994501234567", "2112")
    call.wait_ended(30)

    missing = pbx.missing_sound_lines()
    assert len(missing) == 1 and "no-such-prompt-anywhere" in missing[0], missing


def test_sip_call_from_baresip_carries_caller_id_and_dtmf_and_records_speech(tiny_asterisk):
    pbx, responder = tiny_asterisk

    result = sip_call(pbx, "+994501234567", "2112", dtmf="7")

    assert result.environment["agi_type"] == "PJSIP"
    assert result.environment["agi_callerid"] == "+994501234567"
    assert result.environment["agi_dnid"] == "2112"
    assert ("GET DATA beep 8000 1", "200 result=7") in responder.sessions[-1]["replies"]
    heard = audio_stats(result.heard_wav)
    assert heard.looks_like_speech(), heard
