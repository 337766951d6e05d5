"""One USSD request -> one answer: the code path shared by `POST /ussd` and `selfcare ussd`.

Parse the code (or walk the session menu), call one billing service, render the reply in the
subscriber's language. Requests that change something are idempotent on their key (gateway
sessionId + step): a retry gets the stored answer and changes nothing twice.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from billing import lines, services
from billing.credit import CreditRefused
from billing.errors import (
    BillingError,
    InsufficientBalance,
    InvalidMsisdn,
    LineNotActive,
    UnknownSubscriber,
)
from billing.friend_credit import FriendRequestExpired, NoFriendRequest
from billing.money import fmt_azn
from billing.msisdn import mask, normalize
from billing.offers import offers
from billing.packs import NoPacks, UnknownPack

from . import texts
from .codes import Request, parse
from .menus import MenuContext, walk

log = logging.getLogger("ussd.service")

MAX_CHARS = 182


@dataclass(frozen=True)
class Reply:
    text: str
    final: bool = True

    @property
    def wire(self) -> str:
        """The gateway's form: `CON …` continues the session, `END …` closes it."""
        return ("END " if self.final else "CON ") + fit(self.text)


def fit(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"


def answer(core, phone: str, service_code: str, text: str, key: str) -> Reply:
    """`service_code` is what was dialled, `text` the menu inputs so far joined by `*`."""
    try:
        msisdn = normalize(phone)
        with core.uow() as uow:
            lang = lines.find(uow, msisdn).language
    except (InvalidMsisdn, UnknownSubscriber):
        return Reply(texts.reply("unknown-subscriber", "az"))
    request = parse(service_code)
    inputs = text.split("*") if text else []
    log.info("ussd %s from %s, %d inputs", request.action, mask(msisdn), len(inputs))
    if not request.is_menu:
        if inputs:
            return Reply(texts.reply("help", lang))
        return Reply(act(core, msisdn, lang, request, f"{key}:0"))
    ctx = _menu_context(core, msisdn, lang, request)
    if ctx is None:
        return Reply(texts.reply("friend-none", lang))
    outcome = walk(request.action, inputs, ctx)
    if outcome.kind == "menu":
        return Reply(outcome.text, final=False)
    if outcome.kind == "exhausted":
        return Reply(outcome.text)
    return Reply(act(core, msisdn, lang, outcome.action, f"{key}:{len(inputs)}"))


def _menu_context(core, msisdn: str, lang: str, request: Request) -> MenuContext | None:
    rules = offers().packs
    if request.action != "friend-requests":
        return MenuContext(lang, rules.catalogue, rules.validity_days)
    with core.uow() as uow:
        waiting = services.pending_requests(uow, msisdn)
        if not waiting:
            return None
        try:
            amount = services.available_nar_credit(uow, msisdn)
        except CreditRefused:
            amount = offers().credit.ussd_max
    first = waiting[0]
    return MenuContext(lang, friend_request=(first.id, first.requester, fmt_azn(amount)))


# -- actions -----------------------------------------------------------------------------------

def act(core, msisdn: str, lang: str, request: Request, key: str) -> str:
    handler = READS.get(request.action)
    if handler is not None:
        return _safely(lambda: _in_uow(core, lambda uow: handler(uow, msisdn, lang, request.arg)), lang)
    handler = CHANGES[request.action]
    with core.uow() as uow:
        earlier = services.recall_reply(uow, key)
    if earlier is not None:
        return earlier
    reply = _safely(lambda: _in_uow(core, lambda uow: handler(uow, msisdn, lang, request.arg, key)), lang)
    with core.uow() as uow:
        services.remember_reply(uow, key, reply)
    return reply


def _in_uow(core, fn):
    with core.uow() as uow:
        return fn(uow)


def _safely(fn, lang: str) -> str:
    try:
        return fn()
    except CreditRefused as exc:
        return refusal(exc, lang)
    except BillingError as exc:
        key = ERROR_TEXTS.get(type(exc), "service-error")
        if key == "service-error":
            log.warning("ussd request failed: %s", exc)
        return texts.reply(key, lang)
    except Exception:
        log.exception("ussd request failed")
        return texts.reply("service-error", lang)


ERROR_TEXTS = {
    InsufficientBalance: "insufficient-balance",
    LineNotActive: "line-not-active",
    UnknownPack: "unknown-pack",
    NoPacks: "no-packs",
    UnknownSubscriber: "invalid-number",
    InvalidMsisdn: "invalid-number",
    NoFriendRequest: "friend-none",
}


def refusal(exc: CreditRefused, lang: str) -> str:
    rules = offers().credit
    params = {
        "too-new": {"days": rules.min_days_in_network},
        "first-week": {"days": rules.first_week_days, "amount": fmt_azn(rules.first_week_min_topup)},
        "sos-limit": {"amount": fmt_azn(rules.sos_max_outstanding)},
    }.get(exc.reason, {})
    key = f"refused-{exc.reason}"
    if key not in texts.replies():
        return texts.reply("help", lang)
    return texts.reply(key, lang, **params)


def _dates(uow, msisdn, lang, _arg) -> str:
    r = services.balance_report(uow, msisdn)
    if r.plan != "prepaid":
        return texts.reply("dates-for-prepaid", lang)
    return texts.reply("dates", lang, balance=fmt_azn(r.balance), expires=texts.show_date(r.balance_expires),
                       ends=texts.show_date(r.subscription_ends))


def _postpaid_balance(uow, msisdn, lang, _arg) -> str:
    r = services.balance_report(uow, msisdn)
    if r.plan != "postpaid":
        return texts.reply("postpaid-only", lang)
    return texts.reply("postpaid-balance", lang, billed=fmt_azn(r.billed), current=fmt_azn(r.current),
                       advance=fmt_azn(r.advance), bill_day=r.bill_day)


def _pack_line(state, lang: str) -> str:
    title, expires = state.pack.title[lang], texts.show_date(state.expires)
    if state.throttled:
        return texts.reply("pack-state-throttled", lang, title=title, speed=state.speed_kbps, expires=expires)
    renew = ("pack-state-awaiting" if state.status == "awaiting-renewal" else
             "pack-state-renews" if state.auto_renew else None)
    return texts.reply("pack-state", lang, title=title, remaining=f"{state.remaining_mb:.0f}", expires=expires,
                       renew=texts.reply(renew, lang) if renew else "")


def _pack_status(uow, msisdn, lang, _arg) -> str:
    states = services.pack_status(uow, msisdn)
    if not states:
        return texts.reply("no-packs", lang)
    return fit("\n".join(_pack_line(s, lang) for s in states))


def _debt(kind: str):
    def read(uow, msisdn, lang, _arg) -> str:
        debt = services.credit_debt(uow, msisdn)
        return texts.reply(f"{kind}-debt", lang, debt=fmt_azn(getattr(debt, kind)))
    return read


READS = {
    "help": lambda uow, msisdn, lang, arg: texts.reply("help", lang),
    "cancel": lambda uow, msisdn, lang, arg: texts.reply("cancelled", lang),
    "dates": _dates,
    "postpaid-balance": _postpaid_balance,
    "pack-status": _pack_status,
    "nar-debt": _debt("nar"),
    "sos-debt": _debt("sos"),
}


def _order(uow, msisdn, lang, arg, key) -> str:
    order = services.order_pack(uow, msisdn, int(arg), key)
    if order.duplicate:
        return texts.reply("already-done", lang)
    return texts.reply("pack-ordered", lang, title=order.pack.title[lang], price=fmt_azn(order.pack.price),
                       expires=texts.show_date(order.expires))


def _deactivate(uow, msisdn, lang, _arg, key) -> str:
    return texts.reply("packs-deactivated", lang, count=services.deactivate_packs(uow, msisdn, key))


def _stop_renewal(uow, msisdn, lang, _arg, key) -> str:
    return texts.reply("renewal-stopped", lang, count=services.stop_pack_renewal(uow, msisdn, key))


def _granted(result, lang: str, template: str, **extra) -> str:
    if result.duplicate:
        return texts.reply("already-done", lang)
    return texts.reply(template, lang, amount=fmt_azn(result.amount), fee=fmt_azn(result.fee),
                       request_fee=fmt_azn(result.request_fee), debt=fmt_azn(result.debt), **extra)


def _nar(uow, msisdn, lang, arg, key) -> str:
    return _granted(services.take_nar_credit(uow, msisdn, key, arg), lang, "credit-granted")


def _sos(uow, msisdn, lang, _arg, key) -> str:
    return _granted(services.take_sos_credit(uow, msisdn, key), lang, "sos-granted")


def _for_friend(uow, msisdn, lang, arg, key) -> str:
    friend = normalize(arg)
    result = services.credit_for_friend(uow, msisdn, friend, key)
    return _granted(result, lang, "credit-for-friend-sent", friend=friend)


def _ask_friend(uow, msisdn, lang, arg, key) -> str:
    request = services.ask_friend_for_credit(uow, msisdn, normalize(arg), key)
    return texts.reply("friend-asked", lang, friend=request.friend, minutes=offers().credit.friend_confirm_minutes)


def _friend_answer(accept: bool):
    def answer_request(uow, msisdn, lang, arg, key) -> str:
        try:
            waiting = {r.id: r.requester for r in services.pending_requests(uow, msisdn)}
            result = services.answer_friend_request(uow, msisdn, accept, key, request_id=int(arg))
        except FriendRequestExpired:
            return texts.reply("friend-expired", lang, minutes=offers().credit.friend_confirm_minutes)
        if not accept:
            return texts.reply("friend-declined", lang)
        return _granted(result, lang, "friend-confirmed", requester=waiting.get(int(arg), ""))
    return answer_request


CHANGES = {
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
