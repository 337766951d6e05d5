"""Outgoing-call control: the PBX asks before it dials (`agi://HOST:4573/outgoing,NUMBER`) and
reports the call at hangup (`agi://HOST:4573/outgoing-hangup,NUMBER,BILLSEC,DIALSTATUS`, from a
hangup handler: a "dead" AGI that reads, never plays). dialplan/extensions.conf does the rest.

Before the dial, what the caller hears and what the dialplan gets back:

    a known line that may call           nothing; SELFCARE_DIAL=yes and, for a prepaid line on a
                                         paid number, SELFCARE_LIMIT_MS / SELFCARE_WARNING_MS /
                                         LIMIT_WARNING_FILE=call-limit-warning for Dial's L()
    a suspected wangiri number           call-wangiri-warning: 1 goes on, anything else (tries and
                                         timeout: [fraud.wangiri]) -> goodbye and no dial
    unknown or withheld caller           unknown-caller
    closed number                        line-closed
    balance expired                      line-suspended topup-to-reactivate
    suspended line                       line-suspended
    balance below one interval           call-balance-too-low
    a number that cannot be called       call-invalid-number
    (a refusal sets SELFCARE_DIAL=no; the dialplan hangs up)

At hangup: an answered call's billsec is charged by billing.calls.charge_finished_call under the
call's `uniqueid`; nothing is played. No I/O here but the channel's.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from billing import calls
from billing.errors import (BalanceExpired, BillingError, InsufficientBalance, InvalidMsisdn, LineClosed,
                            LineNotActive, UnknownSubscriber)
from billing.msisdn import mask, normalize
from billing.rating import InvalidDestination

from .agi_shim import Hangup
from .channel import Channel
from .menu import EXHAUSTED, Menu, run_menu

log = logging.getLogger(__name__)

OUTGOING = "outgoing"  # before Dial
OUTGOING_HANGUP = "outgoing-hangup"  # the hangup handler
DEFAULT_LANGUAGE = "az"
WITHHELD_CALLER_IDS = {"", "unknown", "anonymous", "restricted", "private"}

WANGIRI_CONFIRM = Menu(  # seed 001: do not call back unknown international numbers that rang once
    name="wangiri-confirm",
    prompts=("call-wangiri-warning",),
    options={"1": "go-on"},
    tries=2,  # the defaults; the live tries and timeout are tariff data ([fraud.wangiri], wangiri_menu)
    first_digit_timeout_ms=6000,
    invalid_prompt="invalid-choice",
    no_input_prompt="no-input",
)
AFTER_WANGIRI_CONFIRM = {"go-on": "dial", EXHAUSTED: "not_dialled"}


def wangiri_menu(rule) -> Menu:
    """The warning menu with the tries and first-digit timeout of `[fraud.wangiri]` (checked when
    the tariff book loads; Menu checks the rest as it is built)."""
    return replace(WANGIRI_CONFIRM, tries=rule.confirm_tries, first_digit_timeout_ms=rule.confirm_timeout_ms)

# A refusal -> what the caller hears. The most specific class first (BalanceExpired is a LineNotActive).
REFUSALS = (
    (LineClosed, ["line-closed"]),
    (BalanceExpired, ["line-suspended", "topup-to-reactivate"]),
    (LineNotActive, ["line-suspended"]),
    (InsufficientBalance, ["call-balance-too-low"]),
    (InvalidDestination, ["call-invalid-number"]),
    ((UnknownSubscriber, InvalidMsisdn), ["unknown-caller"]),
)
LIMIT_WARNING = "call-limit-warning"
OUTGOING_PROMPTS = {"unknown-caller", "line-closed", "line-suspended", "topup-to-reactivate",
                    "call-balance-too-low", "call-invalid-number", LIMIT_WARNING, "goodbye",
                    *WANGIRI_CONFIRM.prompt_ids()}

# outcomes
DIALLED, REFUSED, NOT_DIALLED, CHARGED, NOT_ANSWERED, NOT_CHARGED, HUNG_UP = (
    "dial", "refused", "not-dialled", "charged", "not-answered", "not-charged", "hangup")


@dataclass(frozen=True)
class OutgoingService:
    number: str  # the route: "outgoing" or "outgoing-hangup"


SERVICES = {OUTGOING: OutgoingService(OUTGOING), OUTGOING_HANGUP: OutgoingService(OUTGOING_HANGUP)}


def refusal_prompts(error: BillingError) -> list[str]:
    for kinds, prompts in REFUSALS:
        if isinstance(error, kinds):
            return prompts
    raise error


class OutgoingCall:
    """Before the dial: identify, authorize, warn about a suspect number, hand over the limit."""

    def __init__(self, core, channel: Channel):
        self.core = core
        self.channel = channel
        self.dialled = (channel.arguments[0] if channel.arguments else "").strip()
        self.authorization: calls.CallAuthorization | None = None
        self.refused: BillingError | None = None
        self.label = f"outgoing {mask(channel.caller or '')}"
        self.outcome = HUNG_UP

    def run(self) -> str:
        step = "authorize"
        try:
            while step is not None:
                step = getattr(self, f"step_{step}")()
        except Hangup as why:
            log.info("call %s: caller hung up before the dial (%s)", self.label, why)
            self.outcome = HUNG_UP
        return self.outcome

    def step_authorize(self):
        caller = (self.channel.caller or "").strip()
        try:
            if caller.lower() in WITHHELD_CALLER_IDS:
                raise UnknownSubscriber("caller id withheld")
            msisdn = normalize(caller)
            self.label = f"outgoing {mask(msisdn)}"
            with self.core.reader() as uow:
                self.authorization = calls.authorize_call(uow, msisdn, self.dialled)
        except BillingError as error:
            self.refused = error
            return "refuse"
        return "warn" if self.authorization.suspect else "dial"

    def step_refuse(self):
        error = self.refused
        log.info("call %s: refused (%s)", self.label, error.code)
        language = self._language_of(error)
        self._speak(language)
        self.channel.play(refusal_prompts(error))
        self.channel.set_variable("SELFCARE_DIAL", "no")
        self.outcome = REFUSED
        return None

    def step_warn(self):
        self._speak(self.authorization.language)
        log.info("call %s: dialled a suspected wangiri number, warned", self.label)
        menu = wangiri_menu(self.core.tariffs.fraud.wangiri)
        step = AFTER_WANGIRI_CONFIRM[run_menu(self.channel, menu, caller_label=self.label)]
        log.info("call %s: %s after the wangiri warning", self.label,
                 "went on" if step == "dial" else "not dialled")
        return step

    def step_not_dialled(self):
        self.channel.play(["goodbye"])
        self.channel.set_variable("SELFCARE_DIAL", "no")
        self.outcome = NOT_DIALLED
        return None

    def step_dial(self):
        auth = self.authorization
        if auth.max_seconds is not None:
            self.channel.set_variable("SELFCARE_LIMIT_MS", str(auth.max_seconds * 1000))
            if auth.warning_seconds:
                self.channel.set_variable("SELFCARE_WARNING_MS", str(auth.warning_seconds * 1000))
                self.channel.set_variable("LIMIT_WARNING_FILE", self.channel.sound_name(LIMIT_WARNING))
        self.channel.set_language(auth.language)  # Dial's warning prompt plays in it
        self.channel.set_variable("SELFCARE_DIAL", "yes")
        self.outcome = DIALLED
        return None

    def _speak(self, language: str) -> None:
        self.channel.answer()
        self.channel.set_language(language)

    def _language_of(self, error: BillingError) -> str:
        if isinstance(error, (UnknownSubscriber, InvalidMsisdn)):
            return DEFAULT_LANGUAGE
        try:
            with self.core.reader() as uow:
                from billing import lines
                return lines.find(uow, normalize(self.channel.caller)).language
        except BillingError:
            return DEFAULT_LANGUAGE


def _seconds(text: str) -> int | None:
    text = (text or "").strip()
    return int(text) if text.isdigit() else None


def charge_at_hangup(core, channel: Channel) -> str:
    """The hangup handler: charge the answered seconds once. A report we cannot use (no billsec,
    an unknown caller) charges nothing and is logged: the CDR import charges the call later."""
    args = list(channel.arguments) + ["", "", ""]
    dialled, billsec, status = args[0].strip(), _seconds(args[1]), args[2].strip().upper()
    label = f"outgoing {mask(channel.caller or '')}"
    if billsec is None:
        log.warning("call %s: hangup report without billsec (%r); left to the CDR import", label, args[1])
        return NOT_CHARGED
    if billsec == 0 or (status and status != "ANSWER"):
        log.info("call %s: not answered (%s), nothing to charge", label, status or "0 s")
        return NOT_ANSWERED
    try:
        with core.uow() as uow:
            done = calls.charge_finished_call(uow, normalize(channel.caller), dialled, billsec, channel.uniqueid)
    except BillingError as error:
        log.warning("call %s: not charged at hangup (%s: %s)", label, error.code, error)
        return NOT_CHARGED
    log.info("call %s: %ss %s charged %s AZN%s", label, billsec, done.rated.rate_class, done.charge.fee,
             " (already charged)" if done.charge.duplicate else "")
    return CHARGED


def run_outgoing(core, channel: Channel, route: str) -> str:
    if route == OUTGOING_HANGUP:
        return charge_at_hangup(core, channel)
    return OutgoingCall(core, channel).run()
