"""The call controllers for 2112 (prepaid) and 650 (postpaid).

What the caller hears, in order:

    welcome-2112 | welcome-650                  in the caller's saved language
    line-closed                                  a closed number (its subscription ended): the call ends
    line-suspended                               only when the line is not active (balance expired too)
    2112: your-balance-is <amount> your-tariff-is tariff-<name>
          balance-expires-on <date> subscription-ends-on <date>
          (balance expired: balance-expired-on <date> topup-to-reactivate subscription-ends-on <date>)
    650:  billed-amount-is <amount> current-amount-is <amount> advance-payment-is <amount>
    menu-main (2112) | menu-main-650
                1 repeat the figures
                2 language      -> menu-language 1 az, 2 en, 3 ru -> language-saved
                3 balance-change SMS off/on -> notifications-off | notifications-on
                4 safety advice -> fraud-advice
                5 (2112 only) top up with a scratch card -> card-enter-pin (GET DATA: the PIN, then #)
                    -> card-topped-up <amount> your-new-balance-is <balance>
                     | card-pin-wrong | card-already-used <date> | card-locked <minutes> | card-pin-invalid
                    (3 tries at the PIN, then back to the menu)
                9 goodbye
    (3 tries, then goodbye; every choice but 9 comes back to the main menu)

An unknown or withheld caller hears unknown-caller and the call ends; a postpaid caller on 2112
hears use-650 (a prepaid one on 650, use-2112). A billing failure plays service-unavailable.
Every figure comes from billing.services.balance_report, the function SMS and USSD use too.

The flow is a state machine (CallController) that touches no channel: each turn says what to play
(a digit may interrupt the figures, the error prompts and the menu prompt: barge-in) and what to
wait for; the answer comes back with `resume`. `run_on_channel` runs it synchronously on a Channel
(FastAGI, classic AGI, `selfcare call`); ivr.twilio_voice runs it one Twilio webhook per turn.
"""
from __future__ import annotations

import json
import logging
import math
import uuid
from dataclasses import asdict, dataclass
from typing import Callable

from billing import services
from billing.errors import BillingError, CardAlreadyUsed, InvalidPin, TooManyWrongPins, WrongPin, WrongPlan
from billing.msisdn import mask, normalize
from selfcare import metrics

from .agi_shim import Hangup
from .channel import Channel
from .menu import (ENTERED, EXHAUSTED, DigitEntry, EntryState, Kind, Menu, MenuState, Script, Turn, check_prompts,
                   log_outcome, take_turn)
from .say import say_amount, say_date, say_minutes

log = logging.getLogger(__name__)

DEFAULT_LANGUAGE = "az"  # for callers we cannot look up: the operator's language
WITHHELD_CALLER_IDS = {"", "unknown", "anonymous", "restricted", "private"}
MAX_STEPS_PER_CALL = 200  # a caller may press 1 (repeat) many times, a bug may not loop forever

MAIN_MENU = Menu(  # 2112: prepaid lines, who may top up with a scratch card (5)
    name="main",
    prompts=("menu-main",),
    options={"1": "repeat", "2": "language", "3": "notifications", "4": "safety", "5": "card", "9": "goodbye"},
    tries=3,
    first_digit_timeout_ms=5000,
    invalid_prompt="invalid-choice",
    no_input_prompt="no-input",
)

POSTPAID_MAIN_MENU = Menu(  # 650: no card option (docs/rules.md: postpaid pays by card on *104*PIN#)
    name="main-650",
    prompts=("menu-main-650",),
    options={"1": "repeat", "2": "language", "3": "notifications", "4": "safety", "9": "goodbye"},
    tries=3,
    first_digit_timeout_ms=5000,
    invalid_prompt="invalid-choice",
    no_input_prompt="no-input",
)

CARD_PIN_ENTRY = DigitEntry(  # the PIN under the scratch panel, as billing.cards takes it (4-16 digits)
    name="card-pin",
    prompts=("card-enter-pin",),
    min_digits=4,
    max_digits=16,
    digit_timeout_ms=6000,  # GET DATA: before the first digit and between digits
    tries=3,
    invalid_prompt="card-pin-invalid",
    no_input_prompt="no-input",
)

LANGUAGE_MENU = Menu(
    name="language",
    prompts=("menu-language",),
    options={"1": "az", "2": "en", "3": "ru"},
    tries=3,
    first_digit_timeout_ms=5000,
    invalid_prompt="invalid-choice",
    no_input_prompt="no-input",
)

MENUS = (MAIN_MENU, POSTPAID_MAIN_MENU, LANGUAGE_MENU, CARD_PIN_ENTRY)

# menu key -> next step. Every key a menu can return is here, `exhausted` included.
AFTER_MAIN_MENU = {
    "repeat": "announce",
    "language": "language_menu",
    "notifications": "toggle_notifications",
    "safety": "safety_advice",
    "card": "card_pin",
    "goodbye": "goodbye",
    EXHAUSTED: "give_up",
}
AFTER_LANGUAGE_MENU = {"az": "save_language", "en": "save_language", "ru": "save_language", EXHAUSTED: "give_up"}
AFTER_CARD_PIN = {ENTERED: "redeem_card", EXHAUSTED: "main_menu"}


def card_topped_up(topped, language: str) -> list[str]:
    return ["card-topped-up", *say_amount(topped.amount, language),
            "your-new-balance-is", *say_amount(topped.report.shown.balance, language)]


def minutes_until(until, now) -> int:
    """Whole minutes left, rounded up: a caller told "one minute" may try in one minute."""
    return max(1, math.ceil((until - now).total_seconds() / 60))


# A refused card top-up -> what the caller hears (every refusal billing.cards.redeem_card raises).
CARD_REFUSALS = {
    WrongPin: lambda error, now, language: ["card-pin-wrong"],
    InvalidPin: lambda error, now, language: ["card-pin-invalid"],
    CardAlreadyUsed: lambda error, now, language: ["card-already-used", *say_date(error.used_at, language)],
    TooManyWrongPins: lambda error, now, language: ["card-locked",
                                                    *say_minutes(minutes_until(error.until, now), language)],
}

# Outcomes of a call (what run_call returns), a short fixed list.
COMPLETED = "completed"  # the caller chose goodbye
GAVE_UP = "exhausted"  # tries ran out in a menu
UNKNOWN_CALLER = "unknown-caller"
WRONG_PLAN = "wrong-plan"
LINE_CLOSED = "line-closed"  # the number's subscription ended: it is no longer served
HUNG_UP = "hangup"
UNAVAILABLE = "service-unavailable"


def prepaid_figures(report, language: str) -> list[str]:
    prompts = ["your-balance-is", *say_amount(report.shown.balance, language)]
    prompts += ["your-tariff-is", f"tariff-{report.tariff.name}"]
    if report.balance_expired:  # never "expires on" a date gone by
        prompts += ["balance-expired-on", *say_date(report.balance_expires, language), "topup-to-reactivate"]
    elif report.balance_expires is not None:
        prompts += ["balance-expires-on", *say_date(report.balance_expires, language)]
    if report.subscription_ends is not None:
        prompts += ["subscription-ends-on", *say_date(report.subscription_ends, language)]
    return prompts


def postpaid_figures(report, language: str) -> list[str]:
    return [
        "billed-amount-is", *say_amount(report.shown.billed, language),
        "current-amount-is", *say_amount(report.shown.current, language),
        "advance-payment-is", *say_amount(report.shown.advance, language),
    ]


@dataclass(frozen=True)
class Service:
    number: str  # the balance number; which plan it serves is billing's rule (services.plan_served_by)
    welcome: str
    figures: Callable[[object, str], list[str]]
    main_menu: Menu


SERVICES = {
    "2112": Service("2112", "welcome-2112", prepaid_figures, MAIN_MENU),
    "650": Service("650", "welcome-650", postpaid_figures, POSTPAID_MAIN_MENU),
}

FLOW_PROMPTS = {
    "welcome-2112", "welcome-650", "unknown-caller", "use-650", "use-2112", "line-suspended", "line-closed",
    "your-balance-is", "balance-expires-on", "balance-expired-on", "topup-to-reactivate", "subscription-ends-on",
    "your-tariff-is",
    "billed-amount-is", "current-amount-is", "advance-payment-is", "menu-main", "menu-main-650",
    "menu-language", "language-saved", "notifications-off", "notifications-on", "fraud-advice",
    "invalid-choice", "no-input", "goodbye", "service-unavailable",
    "card-enter-pin", "card-pin-invalid", "card-topped-up", "your-new-balance-is", "card-pin-wrong",
    "card-already-used", "card-locked",
}


class UnknownService(ValueError):
    pass


def service_for(name: str):
    """The balance line (2112, 650) or an outgoing-call route (ivr.outgoing: outgoing, outgoing-hangup)."""
    from . import outgoing

    try:
        return SERVICES.get(name) or outgoing.SERVICES[name]
    except KeyError:
        known = [*SERVICES, *outgoing.SERVICES]
        raise UnknownService(f"no IVR service {name!r} (known: {', '.join(known)})") from None


def static_prompt_ids(tariff_names=()) -> set[str]:
    """Every prompt id the flows can play apart from the spoken numbers and dates (ivr.say)."""
    from .outgoing import OUTGOING_PROMPTS, WANGIRI_CONFIRM

    ids = set(FLOW_PROMPTS) | OUTGOING_PROMPTS
    for menu in (*MENUS, WANGIRI_CONFIRM):
        ids |= menu.prompt_ids()
    ids |= {f"tariff-{name}" for name in tariff_names}
    return ids


def check_flow_prompts(known_prompt_ids: set[str], tariff_names=()) -> None:
    """Start-up check: a missing prompt stops the server with its name, it never surfaces mid-call."""
    from .outgoing import WANGIRI_CONFIRM

    check_prompts((*MENUS, WANGIRI_CONFIRM), known_prompt_ids)
    missing = sorted(static_prompt_ids(tariff_names) - known_prompt_ids)
    if missing:
        raise ValueError(f"prompts missing from the prompt catalogue: {', '.join(missing)}")


def _call_here(fn, *args):
    return fn(*args)


WAITING = object()  # a step that asked the caller something: the turn ends, the step resumes with the answer
ENDED = "ended"  # CallState.step once the last turn (no wait) was given


@dataclass
class CallState:
    """All a call's flow keeps between two turns, as plain values: the Twilio adapter stores it
    (`to_json`) between webhooks and any serving process takes the next one. Never a PIN: the
    digits of a card entry are redeemed in the turn that read them."""

    service: str
    caller: str
    call_id: str
    language: str = DEFAULT_LANGUAGE  # until the caller is known: what an unknown caller hears
    msisdn: str | None = None
    step: str = "greet"  # the next step to run, or the waiting step the next answer is for
    attempt: int = 0  # of the menu or entry being asked
    steps_taken: int = 0
    chosen_language: str | None = None
    outcome: str = HUNG_UP
    label: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "CallState":
        return cls(**json.loads(text))


class CallController:
    """One call's flow as a state machine that speaks to no channel: `start()` returns the first
    `Turn` (what to play and what to wait for), `resume(digits)` takes the caller's answer (None
    for silence) and returns the next one, until a turn has no wait (the call ends; `outcome`).

    Inside, the flow is a table of named steps; each returns the name of the next one, None (the
    call ends) or WAITING (it asked the caller; `answer_<step>` takes the answer). Every database
    touch goes through `blocking(fn, *args)`: called in place by default (classic AGI, simulated
    calls, Twilio webhooks); the FastAGI server passes one that runs it on its database threads,
    so a flow driven from its event loop never waits for the database on that loop."""

    def __init__(self, core, service: Service, state: CallState, *, blocking: Callable | None = None):
        self.core = core
        self.service = service
        self.state = state
        self.blocking = blocking or _call_here
        self.greeted_with = None  # the report read to greet the caller, announced right after
        self.entered_pin: str | None = None  # between the PIN entry and its redemption, never kept
        self.script = Script(state.language)
        if not state.label:
            state.label = f"{service.number} {mask(state.caller or '')}"

    @classmethod
    def new_call(cls, core, service: Service, caller: str, call_id: str = "", *, language: str = DEFAULT_LANGUAGE,
                 blocking: Callable | None = None) -> "CallController":
        call_id = call_id or f"nouid-{uuid.uuid4().hex}"
        return cls(core, service, CallState(service.number, caller or "", call_id, language), blocking=blocking)

    @property
    def outcome(self) -> str:
        return self.state.outcome

    @property
    def label(self) -> str:
        return self.state.label

    def start(self) -> Turn:
        return self._turn(lambda: self.state.step)

    def resume(self, digits: str | None) -> Turn:
        return self._turn(lambda: self._answer(digits))

    # -- the machine ---------------------------------------------------------------------------

    def _turn(self, first_step: Callable) -> Turn:
        state = self.state
        self.script = Script(state.language)
        asking = None
        try:
            step = first_step()
            while step is not None and step is not WAITING and state.steps_taken < MAX_STEPS_PER_CALL:
                following = getattr(self, f"step_{step}")()
                if following is WAITING:
                    state.step = step
                    break
                state.steps_taken += 1
                step = following
            else:
                if step is not None and step is not WAITING:
                    log.error("call %s: step limit reached, ending the call", self.label)
                    self.script.say(["goodbye"])
                    state.outcome = GAVE_UP
                    step = None
            if step is not None:
                asking = self._asking(state.step)
        except BillingError as error:
            log.error("call %s: billing refused %s: %s", self.label, type(error).__name__, error)
            self._unavailable()
        except Exception:
            log.exception("call %s: failed", self.label)
            self._unavailable()
        if asking is None:
            state.step = ENDED
            return self.script.turn(None)
        return self.script.turn(asking.wait())

    def _asking(self, step: str):
        """The menu or entry a waiting step asks, at the attempt it is at."""
        if step == "main_menu":
            return MenuState(self.service.main_menu, attempt=self.state.attempt)
        if step == "language_menu":
            return MenuState(LANGUAGE_MENU, attempt=self.state.attempt)
        if step == "card_pin":
            return EntryState(CARD_PIN_ENTRY, attempt=self.state.attempt)
        raise AssertionError(f"step {step!r} asks nothing")

    def _ask(self, step: str):
        self.state.attempt = 0
        self._asking(step).ask(self.script)
        return WAITING

    def _answer(self, given: str | None):
        """The caller's answer to the waiting step: its next step, or WAITING when it asks again."""
        state = self.state
        if state.step == ENDED:
            raise AssertionError(f"call {self.label}: an answer after the call ended")
        asking = self._asking(state.step)
        outcome = asking.feed(given)
        log_outcome(asking.menu if isinstance(asking, MenuState) else asking.entry, self.label, outcome, given)
        if outcome.kind in (Kind.INVALID, Kind.TIMEOUT):
            state.attempt = asking.attempt
            asking.after(outcome, self.script)
            return WAITING
        if outcome.kind is Kind.EXHAUSTED:
            asking.after(outcome, self.script)
        elif outcome.kind is not Kind.MATCHED:
            raise AssertionError(f"unhandled outcome {outcome!r}")
        following = getattr(self, f"answer_{state.step}")(outcome)
        state.steps_taken += 1
        return following

    def _speak_in(self, language: str) -> None:
        self.state.language = language
        self.script.set_language(language)

    def _unavailable(self) -> None:
        self.script.say(["service-unavailable"])
        self.state.outcome = UNAVAILABLE

    # -- steps -------------------------------------------------------------------------------

    def step_greet(self):
        report = self._identify_caller()
        if report is None:
            self._speak_in(DEFAULT_LANGUAGE)
            self.script.say(["unknown-caller"])
            self.state.outcome = UNKNOWN_CALLER
            return None
        self._speak_in(report.language)
        if report.closed:
            log.info("call %s: closed line, told so", self.label)
            self.script.say([self.service.welcome, "line-closed"])
            self.state.outcome = LINE_CLOSED
            return None
        try:
            services.require_served(report, self.service.number)
        except WrongPlan as wrong:
            told = f"use-{services.balance_number_for(wrong.plan)}"  # the number that serves this line
            log.info("call %s: %s line, told %s", self.label, wrong.plan, told)
            self.script.say([told])
            self.state.outcome = WRONG_PLAN
            return None
        greeting = [self.service.welcome]
        if report.status != "active":
            greeting.append("line-suspended")
        self.script.say(greeting)
        return "announce"

    def step_announce(self):
        # The first time, the figures read a moment ago to greet the caller; "repeat" reads afresh.
        report, self.greeted_with = self.greeted_with or self._report(), None
        log.info("call %s: figures told", self.label)
        self.script.ask(self.service.figures(report, self.state.language))  # the menu's answer may come during them
        return "main_menu"

    def step_main_menu(self):
        return self._ask("main_menu")

    def answer_main_menu(self, outcome):
        return AFTER_MAIN_MENU[outcome.key]

    def step_language_menu(self):
        return self._ask("language_menu")

    def answer_language_menu(self, outcome):
        self.state.chosen_language = outcome.key
        return AFTER_LANGUAGE_MENU[outcome.key]

    def step_save_language(self):
        language = self.state.chosen_language
        self.blocking(self._save_language, language)
        log.info("call %s: language set to %s", self.label, language)
        self._speak_in(language)
        self.script.say(["language-saved"])
        return "main_menu"

    def step_toggle_notifications(self):
        turn_on = not self._report().notify_balance
        self.blocking(self._save_notifications, turn_on)
        log.info("call %s: balance-change SMS %s", self.label, "on" if turn_on else "off")
        self.script.say(["notifications-on" if turn_on else "notifications-off"])
        return "main_menu"

    def step_card_pin(self):
        return self._ask("card_pin")

    def answer_card_pin(self, outcome):
        self.entered_pin = outcome.digits
        return AFTER_CARD_PIN[outcome.key]

    def step_redeem_card(self):
        pin, self.entered_pin = self.entered_pin, None
        key = f"ivr:{self.state.call_id}:{self.state.steps_taken}"  # the call's id + step: one request, one key
        language = self.state.language
        try:
            topped = self.blocking(self._redeem_card, pin, key)
        except tuple(CARD_REFUSALS) as refused:
            log.info("call %s: card top-up refused (%s)", self.label, refused.code)
            # billing's code names the reason: a short fixed list, as the other channels' refusals
            metrics.labelled(metrics.REFUSALS, channel="ivr", service=self.service.number, reason=refused.code).inc()
            self.script.say(CARD_REFUSALS[type(refused)](refused, self.core.clock.now(), language))
            return "main_menu"
        log.info("call %s: card %s topped up %s AZN", self.label, topped.serial, topped.amount)
        self.script.say(card_topped_up(topped, language))
        return "main_menu"

    def step_safety_advice(self):
        self.script.say(["fraud-advice"])
        return "main_menu"

    def step_goodbye(self):
        self.script.say(["goodbye"])
        self.state.outcome = COMPLETED
        return None

    def step_give_up(self):
        self.script.say(["goodbye"])
        self.state.outcome = GAVE_UP
        return None

    # -- helpers -----------------------------------------------------------------------------

    def _identify_caller(self):
        caller = (self.state.caller or "").strip()
        if caller.lower() in WITHHELD_CALLER_IDS:
            log.info("call %s: caller id withheld", self.label)
            return None
        try:
            self.state.msisdn = normalize(caller)
            report = self._report()
        except BillingError as error:  # InvalidMsisdn, UnknownSubscriber
            log.info("call %s: caller not served (%s)", self.label, error.code)
            return None
        self.state.label = f"{self.service.number} {mask(self.state.msisdn)}"
        self.greeted_with = report
        return report

    def _report(self):
        return self.blocking(self._read_report)

    # -- the database (run through self.blocking) ---------------------------------------------

    def _read_report(self):
        with self.core.reader() as uow:
            return services.balance_report(uow, self.state.msisdn)

    def _save_language(self, language: str) -> None:
        with self.core.uow() as uow:
            services.set_language(uow, self.state.msisdn, language)

    def _save_notifications(self, turn_on: bool) -> None:
        with self.core.uow() as uow:
            services.set_balance_notifications(uow, self.state.msisdn, turn_on)

    def _redeem_card(self, pin: str, key: str):
        with self.core.uow() as uow:
            return services.redeem_card(uow, self.state.msisdn, pin, key)


def run_on_channel(controller: CallController, channel: Channel) -> str:
    """The synchronous voice adapter (FastAGI, classic AGI, `selfcare call`): answer, then take the
    controller's turns on the channel one after another, then hang up. Returns the call's outcome."""
    try:
        channel.answer()
        turn = controller.start()
        while turn.wait is not None:
            turn = controller.resume(take_turn(channel, turn))
        take_turn(channel, turn)
        outcome = controller.outcome
    except Hangup as why:
        log.info("call %s: caller hung up (%s)", controller.label, why)
        return HUNG_UP
    except Exception:  # the channel failed (an AGI error): say so if it still can
        log.exception("call %s: failed", controller.label)
        outcome = _say_unavailable(channel)
    _hang_up(channel)
    return outcome


def _say_unavailable(channel: Channel) -> str:
    try:
        channel.play(["service-unavailable"])
    except Hangup:
        return HUNG_UP
    return UNAVAILABLE


def _hang_up(channel: Channel) -> None:
    try:
        channel.hangup()
    except Hangup:
        pass


def run_call(core, channel: Channel, service_name: str, *, blocking: Callable | None = None) -> str:
    """Run the 2112 or 650 flow (or an outgoing-call route) on a channel; returns the call's outcome.
    `blocking` runs the 2112/650 flows' database work (CallController)."""
    from . import outgoing

    if service_name in outgoing.SERVICES:
        return outgoing.run_outgoing(core, channel, service_name)
    controller = CallController.new_call(core, service_for(service_name), channel.caller,
                                         getattr(channel, "uniqueid", "") or "",
                                         language=channel.language or DEFAULT_LANGUAGE, blocking=blocking)
    return run_on_channel(controller, channel)


def check_startup(core=None) -> None:
    """Refuse to serve calls when a prompt the flows can play is not in the prompt catalogue.

    Tariff prompts are checked for every tariff of the core's tariff book. Raises with the missing
    ids named (InvalidMenu for a menu's prompt, ValueError for the others)."""
    from prompts import catalogue  # imported here: the catalogue is data the IVR checks at start-up

    tariff_names = list(core.tariffs.tariffs) if core is not None else ()
    check_flow_prompts(set(catalogue.load().ids()), tariff_names)
