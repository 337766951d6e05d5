"""Twilio Voice: the 2112/650 call flows on a Twilio number, one webhook at a time.

The flow is ivr.flows.CallController, the machine the FastAGI server runs; here each of its turns
becomes a TwiML document and each answer a webhook:

    POST /voice/twilio?service=2112|650   the number's Voice URL: a call starts (turn 0)
    POST /voice/twilio/turn/<N>           the Nth answer: <Gather>'s action with `Digits`, or the
                                          <Redirect> after it, without, when the caller was silent
    POST /voice/twilio/status             the number's status callback: a call that ended is forgotten
    GET  /voice/prompts/<lang>/<id>.wav   our own prompts (8 kHz 16-bit mono WAV) for <Play>

A turn renders as <Play> for the prompts heard whole, then <Gather input="dtmf" numDigits=…
timeout=…> around the <Play>s a digit may interrupt (barge-in), then a <Redirect> to the same
action for silence; a turn with nothing to wait for ends in <Hangup/>. Every webhook is signed
(X-Twilio-Signature, as for SMS; 403 otherwise). The flow's state lives in the database between
two webhooks (billing.call_sessions, keyed by CallSid), so any serving process takes the next
one; each webhook is claimed by its turn number first, so a retry gets the answer already given
and changes nothing twice. A call whose state is gone (expired, ended) hears goodbye.
"""
from __future__ import annotations

import logging
import math
import re
from pathlib import Path

from flask import Response, request, send_from_directory
from twilio.twiml.voice_response import Gather, VoiceResponse

from billing import call_sessions, services
from billing.errors import BillingError
from billing.msisdn import mask, normalize
from selfcare import logs, metrics
from selfcare.twilio_signature import public_base, twilio_signature_ok

from .channel import PROMPT_ID
from .flows import DEFAULT_LANGUAGE, ENDED, HUNG_UP, SERVICES, CallController, CallState, service_for
from .menu import Turn

log = logging.getLogger(__name__)

SOUNDS_DIR = Path(__file__).resolve().parent.parent / "prompts" / "sounds"
LANGUAGES = ("az", "en", "ru")
TWIML = "application/xml; charset=utf-8"
PLAIN_UTF8 = "text/plain; charset=utf-8"
# Twilio's CallStatus values for a call that is over (its status callback sends one of them).
ENDED_STATUSES = {"completed", "busy", "failed", "no-answer", "canceled"}
# What Twilio puts in From for a withheld number: the word (inbound calls show "anonymous" since
# May 2023, Twilio's changelog) or, as before and still on some legs, the word spelt on a keypad
# (ANONYMOUS is +266696687). Both are told as a withheld number is on Asterisk; any other number
# that is not a line hears unknown-caller too.
TWILIO_WITHHELD = {"anonymous": "266696687", "restricted": "7378742833", "unavailable": "86282452253",
                   "blocked": "2562533", "unknown": "8656696"}
CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")


def register(app, core, settings, sounds_dir: Path | None = None) -> None:
    sounds = Path(sounds_dir or SOUNDS_DIR)
    app.add_url_rule("/voice/twilio", "voice_twilio", lambda: _webhook(call_started, core, settings),
                     methods=["POST"])
    app.add_url_rule("/voice/twilio/turn/<int:turn>", "voice_twilio_turn",
                     lambda turn: _webhook(caller_answered, core, settings, turn), methods=["POST"])
    app.add_url_rule("/voice/twilio/status", "voice_twilio_status", lambda: _webhook(call_status, core, settings),
                     methods=["POST"])
    app.add_url_rule("/voice/prompts/<language>/<path:name>", "voice_prompt",
                     lambda language, name: prompt_audio(sounds, language, name), methods=["GET", "HEAD"])


# -- the webhooks ------------------------------------------------------------------------------

def call_started(core, settings):
    refused = _refusal(settings)
    if refused is not None:
        return refused
    sid, caller = request.form["CallSid"], _caller(request.form.get("From", ""))
    service_name = request.args.get("service", "").strip().lstrip("+")
    if service_name not in SERVICES:
        log.warning("twilio voice call %s from %s: no service %r in the Voice URL", sid, mask(caller), service_name)
        return _twiml(_last_words(public_base(settings, request), _language_of(core, caller), "service-unavailable"))
    controller = CallController.new_call(core, service_for(service_name), caller, sid)
    with core.uow() as uow:
        call_sessions.drop_expired(uow)
    with core.uow() as uow:
        claim = call_sessions.begin(uow, sid, service_name, controller.state.to_json())
    if not claim.won:
        return _replay(core, settings, claim)
    return _answer(core, settings, controller, 0, controller.start())


def caller_answered(core, settings, turn: int):
    refused = _refusal(settings)
    if refused is not None:
        return refused
    sid = request.form["CallSid"]
    with core.uow() as uow:
        claim = call_sessions.claim(uow, sid, turn)
    if not claim.won:
        return _replay(core, settings, claim)
    state = CallState.from_json(claim.state)
    if state.step == ENDED:  # the last answer hung up: nothing may follow it
        return _twiml(_last_words(public_base(settings, request), state.language, "goodbye"))
    controller = CallController(core, service_for(state.service), state)
    digits = request.form.get("Digits") or None  # no Digits: the caller was silent
    return _answer(core, settings, controller, turn, controller.resume(digits))


def call_status(core, settings):
    refused = _refusal(settings)
    if refused is not None:
        return refused
    sid, status = request.form["CallSid"], request.form.get("CallStatus", "")
    if status in ENDED_STATUSES:
        with core.uow() as uow:
            dropped = call_sessions.drop(uow, sid)
        log.info("twilio voice call %s %s%s", sid, status, ", state dropped" if dropped else "")
        if dropped is not None:
            state = CallState.from_json(dropped)
            if state.step != ENDED:  # the caller hung up before the flow's last turn: counted here
                _count(state.service, HUNG_UP)
    return Response(status=204)


def prompt_audio(sounds: Path, language: str, name: str):
    prompt_id = name.removesuffix(".wav")
    if language not in LANGUAGES or not name.endswith(".wav") or not PROMPT_ID.match(prompt_id):
        return Response("no such prompt\n", status=404, content_type=PLAIN_UTF8)
    # send_from_directory refuses any path that leaves the folder; a prompt it lacks is a 404
    return send_from_directory(sounds / language, f"{prompt_id}.wav", mimetype="audio/wav", max_age=3600)


# -- what a turn sounds like in TwiML ----------------------------------------------------------

def render(turn: Turn, base: str, action_url: str) -> str:
    response = VoiceResponse()
    for prompt_id in turn.say:
        response.play(prompt_url(base, turn.language, prompt_id))
    wait = turn.wait
    if wait is None:
        response.hangup()
        return str(response)
    gather = Gather(input="dtmf", num_digits=wait.max_digits, timeout=math.ceil(wait.timeout_ms / 1000),
                    finish_on_key=wait.finish_on_key, action=action_url, method="POST")
    for prompt_id in turn.ask:
        gather.play(prompt_url(base, turn.language, prompt_id))
    response.append(gather)
    response.redirect(action_url, method="POST")  # silence: Twilio goes on past <Gather>, without Digits
    return str(response)


def prompt_url(base: str, language: str, prompt_id: str) -> str:
    return f"{base}/voice/prompts/{language}/{prompt_id}.wav"


def turn_url(base: str, turn: int) -> str:
    return f"{base}/voice/twilio/turn/{turn}"


# -- helpers -----------------------------------------------------------------------------------

def _webhook(webhook, core, settings, *args) -> Response:
    """Runs one webhook of a call. Its log lines carry the CallSid as the call id and the caller's
    number (masked), as a FastAGI call's do.

    A failure outside the flow (the call's state cannot be read or kept: the database is down) is
    told to the caller as on Asterisk, service-unavailable and a hangup, in the caller's language
    when it can still be read, never a 500 (Twilio would play its own error message). The flow's
    own failures it tells itself. The status callback is answered the same way: Twilio reads
    nothing of its answer, but a 500 would be an error in its debugger; a state that could not be
    dropped expires (call_sessions.IDLE_LIFETIME)."""
    sid, caller = request.form.get("CallSid", ""), _caller(request.form.get("From", ""))
    sid = sid if CALL_SID.match(sid) else ""  # not checked yet: no free text of a stranger's in the logs
    with logs.bound(call_id=sid, number=caller):
        try:
            return webhook(core, settings, *args)
        except Exception:
            log.exception("twilio voice call %s failed", sid or "?")
            language = _language_of(core, caller)
            return _twiml(_last_words(public_base(settings, request), language, "service-unavailable"))


def _refusal(settings) -> Response | None:
    if not twilio_signature_ok(settings, request):
        log.warning("twilio voice webhook from %s refused: signature missing or wrong", request.remote_addr)
        return Response("forbidden\n", status=403, content_type=PLAIN_UTF8)
    if not CALL_SID.match(request.form.get("CallSid", "")):
        return Response("CallSid is required\n", status=400, content_type=PLAIN_UTF8)
    return None


def _caller(given: str) -> str:
    """From as ivr.flows takes it: "" for a withheld number, whichever way Twilio wrote it."""
    given = given.strip()
    withheld = given.lower() in TWILIO_WITHHELD or given.removeprefix("+") in TWILIO_WITHHELD.values()
    return "" if withheld else given


def _answer(core, settings, controller: CallController, turn: int, next_turn: Turn) -> Response:
    base = public_base(settings, request)
    answer = render(next_turn, base, turn_url(base, turn + 1))
    with core.uow() as uow:
        call_sessions.keep_answer(uow, controller.state.call_id, turn, controller.state.to_json(), answer)
    if next_turn.wait is None:
        log.info("twilio voice call %s %s ended: %s", controller.state.call_id, controller.label, controller.outcome)
        _count(controller.state.service, controller.outcome)
    return _twiml(answer)


def _count(service: str, outcome: str) -> None:
    """A call counted once, when it ends, like a FastAGI call (a retried webhook replays, uncounted)."""
    metrics.labelled(metrics.REQUESTS, channel="ivr", service=service, outcome=outcome).inc()


def _replay(core, settings, claim: call_sessions.Claim) -> Response:
    """A webhook that may not do the work: a retry gets the answer kept for it; a twin that came
    while the first is being worked out comes back in a second; an unknown call hears goodbye."""
    if claim.answer is not None:
        return _twiml(claim.answer)
    if claim.working:
        response = VoiceResponse()
        response.pause(length=1)
        here = request.full_path if request.query_string else request.path
        response.redirect(public_base(settings, request) + here, method="POST")
        return _twiml(str(response))
    log.info("twilio voice call %s: no state (expired or ended), goodbye", request.form.get("CallSid"))
    language = _language_of(core, _caller(request.form.get("From", "")))
    return _twiml(_last_words(public_base(settings, request), language, "goodbye"))


def _last_words(base: str, language: str, prompt_id: str) -> str:
    response = VoiceResponse()
    response.play(prompt_url(base, language, prompt_id))
    response.hangup()
    return str(response)


def _language_of(core, caller: str) -> str:
    """The caller's own language for last words (goodbye, service-unavailable) when they are a line
    that can be read; the default for an unknown or withheld caller, or when the database fails
    (last words must not fail: they are what is said when something else did)."""
    if not caller:
        return DEFAULT_LANGUAGE
    try:
        with core.reader() as uow:
            return services.balance_report(uow, normalize(caller)).language
    except BillingError:  # not a line: InvalidMsisdn, UnknownSubscriber
        return DEFAULT_LANGUAGE
    except Exception as error:
        log.warning("twilio voice: the caller's language could not be read (%s), %s it is",
                    type(error).__name__, DEFAULT_LANGUAGE)
        return DEFAULT_LANGUAGE


def _twiml(text: str) -> Response:
    return Response(text, status=200, content_type=TWIML)
