"""Test support for the two voice adapters: a caller who walks a call through the Twilio Voice
webhooks the way Twilio does, and the same caller on the FastAGI server (over real TCP, against
the mocked Asterisk of ivr_support), each returning the prompts heard, in order, with their language.

Twilio's part, as its documentation describes it: a signed form POST to the number's Voice URL
(`X-Twilio-Signature`, computed with the twilio library's RequestValidator over the URL and the
form), then the TwiML is carried out verb by verb: <Play> is heard; <Gather> plays its nested
<Play>s, then reads the caller's keys and POSTs its `action` with `Digits`; with no key pressed
Twilio goes on to the next verb, our <Redirect>, and POSTs it without `Digits`; <Hangup/> ends the
call, and the status callback is POSTed with CallStatus=completed. A key pressed during a <Play>
nested in <Gather> stops it and the <Play>s after it, and is the first key the <Gather> reads.

Each prompt is heard with whether a key could interrupt it: on Twilio, inside <Gather>; on
Asterisk, STREAM FILE with escape digits, or GET DATA's prompt.
"""
from __future__ import annotations

import shlex
import shutil
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from twilio.request_validator import RequestValidator

from billing import services
from billing.clock import FixedClock
from billing.core import Core
from selfcare.config import Settings

from tests.unit.ivr_support import TODAY, MockAsterisk, ScriptedCaller, env_for

AUTH_TOKEN = "twilio-voice-test-token"
TWILIO_NUMBER = "+15005550006"
BASE = "http://localhost"

# One line per kind and language (the figures are pinned in the tests): a prepaid line in good
# standing, one whose balance expired (suspended until a top-up), one whose subscription ended
# (closed); a postpaid line, and one suspended by the operator.
CALLERS = {
    ("prepaid", "az"): "+994501234567",
    ("prepaid", "en"): "+994502223344",
    ("prepaid", "ru"): "+994503334455",
    ("expired", "az"): "+994504440001",
    ("expired", "en"): "+994504440002",
    ("expired", "ru"): "+994504440003",
    ("closed", "az"): "+994505550001",
    ("closed", "en"): "+994505550002",
    ("closed", "ru"): "+994505550003",
    ("postpaid", "az"): "+994551234567",
    ("postpaid", "en"): "+994552223344",
    ("postpaid", "ru"): "+994553334455",
    ("suspended", "az"): "+994556660001",
    ("suspended", "en"): "+994556660002",
    ("suspended", "ru"): "+994556660003",
}
CARD_PIN = "12345678901234"
USED_CARD_PIN = "98765432109876"  # redeemed on USED_ON by a line not in CALLERS
USED_ON = datetime(2026, 11, 20, 9, 30)
WRONG_PIN = "11112222333344"
EXPIRED_ACTIVATED = date(2026, 9, 1)  # 3.00 AZN: 30 days, the balance expired on 2026-10-01
CLOSED_ACTIVATED = date(2025, 1, 1)  # the subscription ended on 2025-07-30


class Heard(NamedTuple):
    prompt_id: str
    language: str | None
    interruptible: bool  # a key pressed during it is taken (barge-in), not lost


def voice_settings(token: str | None = AUTH_TOKEN, public_url: str | None = None) -> Settings:
    return Settings(agi=("127.0.0.1", 0), http=("127.0.0.1", 0), twilio_auth_token=token,
                    twilio_public_url=public_url, kannel_secret=None, kannel_allow=())


def build_template(path: Path) -> Path:
    """A billing database with the callers and two scratch cards (one of them used), made once and
    copied per call."""
    core = Core(f"sqlite:///{path}", clock=FixedClock(TODAY))
    try:
        core.upgrade_schema()
        for (kind, language), msisdn in CALLERS.items():
            with core.uow() as uow:
                _add_line(uow, kind, msisdn, language)
        with core.uow() as uow:
            services.add_card(uow, "1000000001", CARD_PIN, "5.00")
            services.add_card(uow, "1000000002", USED_CARD_PIN, "5.00")
        core.clock.set(USED_ON)
        with core.uow() as uow:
            services.add_subscriber(uow, "+994507770000", "prepaid", tariff="klass", balance=Decimal("1.00"))
        with core.uow() as uow:
            services.redeem_card(uow, "+994507770000", USED_CARD_PIN, "template:used-card")
    finally:
        core.dispose()
    return path


def _add_line(uow, kind: str, msisdn: str, language: str) -> None:
    if kind == "prepaid":
        services.add_subscriber(uow, msisdn, "prepaid", tariff="klass", balance=Decimal("12.48"), language=language)
    elif kind in ("expired", "closed"):
        activated = EXPIRED_ACTIVATED if kind == "expired" else CLOSED_ACTIVATED
        services.add_subscriber(uow, msisdn, "prepaid", tariff="klass", balance=Decimal("3.00"), language=language,
                                activated=activated)
    else:
        services.add_subscriber(uow, msisdn, "postpaid", tariff="biznes", language=language, billed=Decimal("25.30"),
                                current=Decimal("7.15"), advance=Decimal("5.00"), bill_day=10,
                                status="suspended-one-way" if kind == "suspended" else "active")


def core_from(template: Path, where: Path) -> Core:
    shutil.copyfile(template, where)
    return Core(f"sqlite:///{where}", clock=FixedClock(TODAY))


# -- Twilio ----------------------------------------------------------------------------------------

@dataclass
class TwilioCall:
    heard: list[Heard] = field(default_factory=list)
    posts: list[tuple[str, dict]] = field(default_factory=list)  # (url, form) of every webhook
    answers: list[str] = field(default_factory=list)  # the TwiML of each
    hung_up_by: str = ""  # "server" (<Hangup/>) or "caller" (keys ran out)

    @property
    def prompt_ids(self) -> list[str]:
        return [heard.prompt_id for heard in self.heard]


def prompt_of(url: str) -> tuple[str, str]:
    """http://host/voice/prompts/<lang>/<id>.wav -> (id, lang)."""
    path = urlsplit(url).path
    assert "/voice/prompts/" in path and path.endswith(".wav"), url
    language, prompt_id = path.split("/voice/prompts/", 1)[1].removesuffix(".wav").split("/", 1)
    return prompt_id, language


class TwilioCaller:
    """Walks a call through the app's Twilio Voice webhooks with a Flask test client.

    `keys` and `during` as for ScriptedCaller: at each <Gather> the next key answers (a space:
    silence); a several-digit <Gather> takes keys up to a `#` (taken too), a space or its
    numDigits. The first time the prompt `during` plays the next key is pressed: inside <Gather>
    it stops the prompts and starts the answer; outside, it is lost."""

    def __init__(self, client, caller: str, keys: str = "", *, during: str | None = None,
                 call_sid: str = "CA" + "1" * 32, token: str = AUTH_TOKEN, base: str = BASE):
        self.client = client
        self.caller = caller
        self.keys = deque(keys)
        self.during = during
        self.call_sid = call_sid
        self.validator = RequestValidator(token)
        self.base = base

    def form(self, **extra) -> dict:
        return {"AccountSid": "AC" + "0" * 32, "CallSid": self.call_sid, "From": self.caller, "To": TWILIO_NUMBER,
                "CallStatus": "in-progress", "Direction": "inbound", **extra}

    def post(self, url: str, form: dict, *, signed: bool = True):
        """POST `url` (under `base`, the public URL Twilio signs) as the app sees it: behind a proxy
        that strips the public prefix, at its own path."""
        headers = {"X-Twilio-Signature": self.validator.compute_signature(url, form)} if signed else {}
        assert url.startswith(self.base), (url, self.base)
        return self.client.post(url[len(self.base):], data=form, headers=headers)

    def call(self, service: str, max_webhooks: int = 400) -> TwilioCall:
        call = TwilioCall()
        url, form = f"{self.base}/voice/twilio?service={service}", self.form()
        for _ in range(max_webhooks):
            response = self.post(url, form)
            assert response.status_code == 200, (url, response.status_code, response.get_data(as_text=True))
            assert response.content_type.startswith("application/xml"), response.content_type
            call.posts.append((url, form))
            call.answers.append(response.get_data(as_text=True))
            following = self.carry_out(ET.fromstring(response.get_data()), call)
            if following is None:
                self.post(f"{self.base}/voice/twilio/status", self.form(CallStatus="completed"))
                return call
            url, form = following
        raise AssertionError(f"more than {max_webhooks} webhooks: {call.prompt_ids[-10:]}")

    def carry_out(self, twiml: ET.Element, call: TwilioCall):
        """Play the document; the next webhook (url, form), or None when the call is over."""
        assert twiml.tag == "Response"
        for verb in twiml:
            if verb.tag == "Play":
                self.hear(verb, call, interruptible=False)
            elif verb.tag == "Gather":
                assert verb.get("input") == "dtmf" and verb.get("method") == "POST"
                for nested in verb:
                    assert nested.tag == "Play", nested.tag
                    if self.hear(nested, call, interruptible=True):
                        break  # a key stopped it: the rest of the <Gather>'s prompts are not heard
                if not self.keys:
                    call.hung_up_by = "caller"
                    return None
                digits = self.press(int(verb.get("numDigits")), verb.get("finishOnKey", "#"))
                if digits:
                    return verb.get("action"), self.form(Digits=digits)
                # no key: Twilio goes on to the next verb
            elif verb.tag == "Redirect":
                assert verb.get("method") == "POST"
                return verb.text, self.form()
            elif verb.tag == "Hangup":
                call.hung_up_by = "server"
                return None
            elif verb.tag == "Pause":
                continue
            else:
                raise AssertionError(f"unexpected TwiML verb {verb.tag}")
        raise AssertionError("a TwiML document that neither hangs up nor goes on")

    def hear(self, play: ET.Element, call: TwilioCall, *, interruptible: bool) -> bool:
        """Hear a <Play>; True when the caller pressed a key during it that Twilio takes."""
        prompt_id, language = prompt_of(play.text)
        call.heard.append(Heard(prompt_id, language, interruptible))
        if prompt_id != self.during or not self.keys or self.keys[0] == " ":  # silence presses nothing
            return False
        self.during = None
        if interruptible:
            return True  # the key is the <Gather>'s first: left for `press`
        self.keys.popleft()  # pressed while nothing listens: lost
        return False

    def press(self, most: int, finish_on_key: str) -> str:
        if most == 1:
            key = self.keys.popleft()
            return "" if key == " " else key
        digits = ""
        while self.keys and len(digits) < most:
            key = self.keys.popleft()
            if key == " " or (finish_on_key and key == finish_on_key):
                break
            digits += key
        return digits


# -- FastAGI ---------------------------------------------------------------------------------------

def fastagi_heard(server, caller: str, service: str, keys: str, during: str | None = None) -> list[Heard]:
    """The prompts the FastAGI server had Asterisk play, with the language the channel was set to
    (None before the flow set one: Asterisk's own, agi_language) and whether a key could stop it."""
    asterisk = MockAsterisk(ScriptedCaller(keys, during=during)).call(server.address, env_for(service, caller))
    heard, language = [], None
    for command in asterisk.commands:
        words = shlex.split(command)
        if words[:3] == ["SET", "VARIABLE", "CHANNEL(language)"]:
            language = words[3]
        elif words[:2] == ["STREAM", "FILE"]:
            heard.append(Heard(words[2], language, interruptible=words[3] != ""))
        elif words[:2] == ["GET", "DATA"]:  # its prompt stops at the first digit, which it reads
            heard.append(Heard(words[2], language, interruptible=True))
    return heard
