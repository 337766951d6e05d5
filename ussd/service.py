"""One USSD request -> one answer: the code path shared by `POST /ussd` and `selfcare ussd`.

Parse the code (or walk the session menu), call one billing service, word the answer from the
`ussd` section of the text catalogue. Questions run on a reader (they never wait for the write
lock); requests that change something are answered once per key (gateway sessionId + step): a retry
gets the kept answer and changes nothing twice. An answer longer than one screen is paged.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import texts
from billing import services
from billing.errors import (BalanceExpired, BillingError, CardAlreadyUsed, CreditRefused, FriendRequestExpired,
                            InsufficientBalance, InvalidMsisdn, InvalidPin, LineClosed, LineNotActive, NoFriendRequest,
                            NoPacks, TooManyWrongPins, UnknownPack, UnknownSubscriber, WrongPin, WrongPlan)
from billing.money import held, owed
from billing.msisdn import mask, normalize
from selfcare import metrics

from .codes import Request, key_form, parse
from .menus import MenuContext, walk
from .paging import page

log = logging.getLogger("ussd.service")


@dataclass(frozen=True)
class Reply:
    text: str
    final: bool = True
    failed: bool = False  # answered "service-error" because something broke (the database, a bug)

    @property
    def wire(self) -> str:
        """The gateway's form: `CON …` continues the session, `END …` closes it."""
        return ("END " if self.final else "CON ") + self.text


def _texts() -> texts.Section:
    return texts.current()["ussd"]


def answer(core, phone: str, service_code: str, text: str, key: str) -> Reply:
    """`service_code` is what was dialled, `text` the menu inputs so far joined by `*`.

    Never raises: a failure (the database down, a bug) is answered "service-error" with `failed`
    set, in the line's language once it is known, so the gateway ends the session with words
    instead of a 500 and /metrics counts it. Nothing failed is kept: the retry is handled afresh."""
    try:
        msisdn = normalize(phone)
        with core.reader() as uow:
            line = services.balance_report(uow, msisdn)
    except (InvalidMsisdn, UnknownSubscriber):
        return Reply(_texts().render("unknown-subscriber", texts.DEFAULT_LANGUAGE))
    except Exception:
        log.exception("ussd from %s failed before its line was read", mask(phone))
        return _failed(texts.DEFAULT_LANGUAGE)
    try:
        return _answer_line(core, msisdn, line, service_code, text, key)
    except Exception:
        log.exception("ussd from %s failed", mask(msisdn))  # not the code: it may carry a PIN
        return _failed(line.language)


def _failed(lang: str) -> Reply:
    return Reply(_texts().render("service-error", lang), failed=True)


def _answer_line(core, msisdn: str, line, service_code: str, text: str, key: str) -> Reply:
    lang = line.language
    if line.closed:  # the number is no longer served: one answer to every code
        log.info("ussd from closed line %s", mask(msisdn))
        return Reply(_texts().render("line-closed", lang, ends=line.subscription_ends))
    request = parse(service_code)
    inputs = text.split("*") if text else []
    log.info("ussd %s from %s, %d inputs", request.action, mask(msisdn), len(inputs))
    consumed = 0
    if request.is_menu:
        ctx = _menu_context(core, msisdn, lang, request)
        if isinstance(ctx, str):  # nothing to choose: no request waits, or the friend cannot lend now
            return Reply(ctx)
        outcome = walk(request.action, inputs, ctx)
        if outcome.kind == "menu":
            return Reply(outcome.text, final=False)
        if outcome.kind == "exhausted":
            return Reply(outcome.text)
        request, consumed = outcome.action, outcome.consumed
    screen = page(act(core, msisdn, lang, request, f"{key}:{_asked(service_code, inputs[:consumed])}"),
                  inputs[consumed:], lang)
    if screen is None:  # inputs after an answer that were not "more"
        return Reply(_texts().render("help", lang))
    return Reply(screen.text, final=screen.last)


def _asked(service_code: str, inputs: list[str]) -> str:
    """What the request asked, in its key: a gateway's retry asks the same and is answered from
    memory; another code or other inputs in the same session and step are a new request. A digest,
    since a code can carry a friend's number and keys reach logs."""
    asked = key_form(service_code) + "|" + "*".join(token.strip() for token in inputs)
    return f"{len(inputs)}:{hashlib.sha256(asked.encode()).hexdigest()[:16]}"


def _menu_context(core, msisdn: str, lang: str, request: Request) -> MenuContext | str:
    """The menu's context, or the answer that ends the session before a menu (a text)."""
    rules = core.offers.packs
    if request.action != "friend-requests":
        return MenuContext(lang, rules.catalogue, rules.validity_days)
    with core.reader() as uow:
        waiting = services.pending_requests(uow, msisdn)
        if not waiting:
            return _texts().render("friend-none", lang)
        try:
            amount = services.available_nar_credit(uow, msisdn)
        except CreditRefused as refused:  # the friend's own credit cannot cover it: say why, offer nothing
            return refusal(refused, lang, core.offers.credit)
    first = waiting[0]
    return MenuContext(lang, friend_request=(first.id, first.requester, amount))


# -- actions -----------------------------------------------------------------------------------

def act(core, msisdn: str, lang: str, request: Request, key: str) -> str:
    """The answer's text. An exception (answered by `answer`) leaves nothing kept under `key`."""
    read = READS.get(request.action)
    if read is not None:
        with core.reader() as uow:
            return _refusal_or(lambda: read(uow, msisdn, lang, request.arg), lang, core.offers.credit,
                               request.action)
    change = CHANGES[request.action]

    def compute(uow) -> dict:
        def attempt():
            with uow.atomic():  # a refusal undoes the attempt; the refusal itself is kept
                return change(uow, msisdn, lang, request.arg, key)
        return {"text": _refusal_or(attempt, lang, core.offers.credit, request.action)}

    return services.answer_once(core, key, compute, line=msisdn)[0]["text"]


def _refusal_or(fn, lang: str, credit_rules, action: str) -> str:
    """What `fn` answers, or the words for the domain error that refused it (counted for /metrics)."""
    try:
        return fn()
    except CreditRefused as exc:
        metrics.labelled(metrics.REFUSALS, channel="ussd", service=action, reason=f"credit-{exc.reason}").inc()
        return refusal(exc, lang, credit_rules)
    except BillingError as exc:
        key = ERROR_TEXTS.get(type(exc))
        if key is None:
            raise
        metrics.labelled(metrics.REFUSALS, channel="ussd", service=action, reason=key).inc()
        return _texts().render(key, lang)


ERROR_TEXTS = {
    InsufficientBalance: "insufficient-balance",
    LineNotActive: "line-not-active",
    BalanceExpired: "balance-expired",
    LineClosed: "line-not-active",  # closed between the first look and this step
    UnknownPack: "unknown-pack",
    NoPacks: "no-packs",
    UnknownSubscriber: "invalid-number",
    InvalidMsisdn: "invalid-number",
    NoFriendRequest: "friend-none",
}


def refusal(exc: CreditRefused, lang: str, rules) -> str:
    """The words for a refused credit; `rules` are the offers' credit rules it quotes."""
    key = f"refused-{exc.reason}"
    if key not in _texts():
        return _texts().render("help", lang)
    params = {
        "too-new": lambda r: {"days": r.min_days_in_network},
        "first-week": lambda r: {"days": r.first_week_days, "amount": r.first_week_min_topup},
        "sos-limit": lambda r: {"amount": r.sos_max_outstanding},
    }.get(exc.reason, lambda r: {})(rules)
    figures = {**exc.details, "available": held(exc.details["available"])} if "available" in exc.details else exc.details
    return _texts().render_from(key, lang, {**params, **figures})


def _dates(uow, msisdn, lang, _arg) -> str:
    try:
        r = services.require_served(services.balance_report(uow, msisdn), "2112")
    except WrongPlan:
        return _texts().render("dates-for-prepaid", lang)
    template = "dates-expired" if r.balance_expired else "dates"
    return _texts().render(template, lang, balance=r.shown.balance, expires=r.balance_expires, ends=r.subscription_ends)


def _postpaid_balance(uow, msisdn, lang, _arg) -> str:
    try:
        r = services.require_served(services.balance_report(uow, msisdn), "650")
    except WrongPlan:
        return _texts().render("postpaid-only", lang)
    shown = r.shown
    return _texts().render("postpaid-balance", lang, billed=shown.billed, current=shown.current,
                           advance=shown.advance, bill_day=r.bill_day)


def _pack_line(state, lang: str) -> str:
    title = state.pack.title[lang]
    if state.paused:  # the line may not use it now (seed 002)
        return _texts().render("pack-state-paused", lang, title=title, remaining=f"{state.remaining_mb:.0f}",
                               expires=state.expires)
    if state.throttled:
        return _texts().render("pack-state-throttled", lang, title=title, speed=state.speed_kbps, expires=state.expires)
    renew = ("pack-state-awaiting" if state.status == "awaiting-renewal" else
             "pack-state-renews" if state.auto_renew else "")
    return _texts().render("pack-state", lang, title=title, remaining=f"{state.remaining_mb:.0f}",
                           expires=state.expires, renew=renew)


def _pack_status(uow, msisdn, lang, _arg) -> str:
    states = services.pack_status(uow, msisdn)
    if not states:
        return _texts().render("no-packs", lang)
    return "\n".join(_pack_line(s, lang) for s in states)  # one line a pack: paged, never cut


def _debt(kind: str):
    def read(uow, msisdn, lang, _arg) -> str:
        debt = services.credit_debt(uow, msisdn)
        return _texts().render(f"{kind}-debt", lang, debt=owed(getattr(debt, kind)))
    return read


READS = {
    "help": lambda uow, msisdn, lang, arg: _texts().render("help", lang),
    "cancel": lambda uow, msisdn, lang, arg: _texts().render("cancelled", lang),
    "dates": _dates,
    "postpaid-balance": _postpaid_balance,
    "pack-status": _pack_status,
    "nar-debt": _debt("nar"),
    "sos-debt": _debt("sos"),
    "card-help": lambda uow, msisdn, lang, arg: _texts().render("card-help", lang),
}


def _order(uow, msisdn, lang, arg, key) -> str:
    order = services.order_pack(uow, msisdn, int(arg), key)
    if order.duplicate:
        return _texts().render("already-done", lang)
    _count_charge("pack-order", order.pack.price)
    return _texts().render("pack-ordered", lang, title=order.pack.title[lang], price=order.pack.price,
                           expires=order.expires)


def _deactivate(uow, msisdn, lang, _arg, key) -> str:
    return _texts().render("packs-deactivated", lang, count=services.deactivate_packs(uow, msisdn, key))


def _stop_renewal(uow, msisdn, lang, _arg, key) -> str:
    return _texts().render("renewal-stopped", lang, count=services.stop_pack_renewal(uow, msisdn, key))


def _count_charge(action: str, amount) -> None:
    """For /metrics: a request that took money now (a pack's price, a credit's request fee)."""
    if amount:
        metrics.labelled(metrics.CHARGES, channel="ussd", service=action).inc()
        metrics.labelled(metrics.CHARGED_AZN, channel="ussd", service=action).inc(float(amount))


def _granted(result, lang: str, template: str, action: str, **extra) -> str:
    if result.duplicate:
        return _texts().render("already-done", lang)
    if not result.request_fee_deferred:  # a deferred fee is taken at the next top-up
        _count_charge(action, result.request_fee)
    figures = {"amount": result.amount, "fee": result.fee, "request_fee": result.request_fee, "debt": owed(result.debt)}
    return _texts().render_from(template, lang, {**figures, **extra})


def _nar(uow, msisdn, lang, arg, key) -> str:
    return _granted(services.take_nar_credit(uow, msisdn, key, arg), lang, "credit-granted", "nar")


def _sos(uow, msisdn, lang, _arg, key) -> str:
    return _granted(services.take_sos_credit(uow, msisdn, key), lang, "sos-granted", "sos")


def _for_friend(uow, msisdn, lang, arg, key) -> str:
    friend = normalize(arg)
    result = services.credit_for_friend(uow, msisdn, friend, key)
    return _granted(result, lang, "credit-for-friend-sent", "credit-for-friend", friend=friend)


def _ask_friend(uow, msisdn, lang, arg, key) -> str:
    request = services.ask_friend_for_credit(uow, msisdn, normalize(arg), key)
    return _texts().render("friend-asked", lang, friend=request.friend, minutes=uow.offers.credit.friend_confirm_minutes)


def _friend_answer(accept: bool):
    def answer_request(uow, msisdn, lang, arg, key) -> str:
        try:
            waiting = {r.id: r.requester for r in services.pending_requests(uow, msisdn)}
            result = services.answer_friend_request(uow, msisdn, accept, key, request_id=int(arg))
        except FriendRequestExpired:
            return _texts().render("friend-expired", lang, minutes=uow.offers.credit.friend_confirm_minutes)
        if not accept:
            return _texts().render("friend-declined", lang)
        return _granted(result, lang, "friend-confirmed", "friend-confirm", requester=waiting.get(int(arg), ""))
    return answer_request


def _card(uow, msisdn, lang, pin, key) -> str:
    """`*104*PIN#`. The refusals are answered here, inside the request's savepoint, so a wrong PIN
    stays counted (billing.cards records it in this transaction) while nothing else changes."""
    try:
        topped = services.redeem_card(uow, msisdn, pin, key)
    except InvalidPin:
        return _card_refusal("card-pin-invalid", lang)
    except WrongPin as wrong:
        return _card_refusal("card-pin-wrong", lang, count=wrong.tries_left)
    except TooManyWrongPins as locked:
        return _card_refusal("card-locked", lang, until=locked.until)
    except CardAlreadyUsed as used:
        return _card_refusal("card-used", lang, when=used.used_at)
    if topped.duplicate:
        return _texts().render("already-done", lang)
    shown = topped.report.shown
    if topped.report.plan == "prepaid":
        return _texts().render("card-topped-up", lang, amount=topped.amount, balance=shown.balance)
    return _texts().render("card-paid", lang, amount=topped.amount, billed=shown.billed, advance=shown.advance)


def _card_refusal(key: str, lang: str, **figures) -> str:
    metrics.labelled(metrics.REFUSALS, channel="ussd", service="card-redeem", reason=key).inc()
    return _texts().render(key, lang, **figures)


CHANGES = {
    "card-redeem": _card,
    "pack-order": _order,
    "pack-deactivate": _deactivate,
    "pack-stop-renewal": _stop_renewal,
    "nar-max": _nar,
    "nar": _nar,
    "sos": _sos,
    "credit-for-friend": _for_friend,
    "ask-friend": _ask_friend,
    "friend-accept": _friend_answer(True),
    "friend-decline": _friend_answer(False),
}
