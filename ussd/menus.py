"""Session menus as data and a small state machine over the gateway's `text` (no I/O).

A gateway sends every input so far joined by `*`, so the state is recomputed from that history
on each request: the same `text` always gives the same screen. Each menu maps an input to the
next menu or to an action; an input no option matches is an error that re-shows the menu with
"Invalid choice", and after `TRIES` errors the session ends.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import texts
from billing.offers import Pack

from .codes import Request

TRIES = 3


@dataclass(frozen=True)
class MenuContext:
    lang: str
    packs: tuple[Pack, ...] = ()
    validity_days: int | None = None  # from the offers data, when the screen lists packs
    friend_request: tuple[int, str, object] | None = None  # (id, requester, amount offered)


@dataclass(frozen=True)
class Screen:
    text: str
    options: dict[str, str] = field(default_factory=dict)  # input -> "menu:NAME[:ARG]" | "action:NAME[:ARG]"


@dataclass(frozen=True)
class Outcome:
    kind: str  # "menu" (CON text) | "action" (run it, END) | "exhausted" (END)
    text: str | None = None
    action: Request | None = None
    consumed: int = 0  # inputs taken to reach the action (later ones page its answer)


def _reply(key: str, lang: str, **values) -> str:
    return texts.current()["ussd"].render(key, lang, **values)


def _pack_root(ctx: MenuContext, _arg) -> Screen:
    return Screen(_reply("pack-root", ctx.lang), {
        "1": "menu:pack-list", "2": "action:pack-status",
        "3": "menu:confirm-stop", "4": "menu:confirm-deactivate"})


def _pack_list(ctx: MenuContext, _arg) -> Screen:
    lines = [_reply("pack-list", ctx.lang, days=ctx.validity_days)]
    lines += [_reply("pack-item", ctx.lang, number=p.number, title=p.title[ctx.lang], price=p.price)
              for p in ctx.packs]
    return Screen("\n".join(lines), {str(p.number): f"menu:pack-confirm:{p.number}" for p in ctx.packs})


def _pack_confirm(ctx: MenuContext, arg) -> Screen:
    pack = next(p for p in ctx.packs if str(p.number) == arg)
    text = _reply("pack-confirm", ctx.lang, title=pack.title[ctx.lang], price=pack.price,
                       days=ctx.validity_days)
    return Screen(text, {"1": f"action:pack-order:{arg}", "2": "action:cancel"})


def _confirm(key: str, action: str):
    def screen(ctx: MenuContext, _arg) -> Screen:
        return Screen(_reply(key, ctx.lang), {"1": f"action:{action}", "2": "action:cancel"})
    return screen


def _friend_root(ctx: MenuContext, _arg) -> Screen:
    req_id, requester, amount = ctx.friend_request
    text = _reply("friend-request-menu", ctx.lang, requester=requester, amount=amount)
    return Screen(text, {"1": f"action:friend-accept:{req_id}", "2": f"action:friend-decline:{req_id}"})


MENUS = {
    "pack-menu": _pack_root,
    "pack-list": _pack_list,
    "pack-confirm": _pack_confirm,
    "confirm-stop": _confirm("confirm-stop-renewal", "pack-stop-renewal"),
    "confirm-deactivate": _confirm("confirm-deactivate", "pack-deactivate"),
    "friend-requests": _friend_root,
}


def _target(target: str) -> tuple[str, str, str | None]:
    kind, name, *rest = target.split(":", 2)
    return kind, name, rest[0] if rest else None


def walk(root: str, inputs: list[str], ctx: MenuContext) -> Outcome:
    state: tuple[str, str | None] = (root, None)
    errors, last_invalid = 0, False
    for taken, token in enumerate(inputs, start=1):
        screen = MENUS[state[0]](ctx, state[1])
        target = screen.options.get(token.strip())
        if target is None:
            errors += 1
            last_invalid = True
            if errors >= TRIES:
                return Outcome("exhausted", _reply("too-many-tries", ctx.lang))
            continue
        last_invalid = False
        kind, name, arg = _target(target)
        if kind == "action":
            return Outcome("action", action=Request(name, arg), consumed=taken)
        state = (name, arg)
    screen = MENUS[state[0]](ctx, state[1])
    prefix = _reply("invalid-choice", ctx.lang) + "\n" if last_invalid else ""
    return Outcome("menu", prefix + screen.text)


def check_screens(offers) -> None:
    """Menu screens are not paged: each, with the offers' real packs, must fit one USSD screen.
    Checked at start-up, so a longer pack list stops the process instead of reaching a handset."""
    rules = offers.packs
    for lang in texts.LANGUAGES:
        ctx = MenuContext(lang, rules.catalogue, rules.validity_days)
        screens = [_pack_root(ctx, None), _pack_list(ctx, None)]
        screens += [_pack_confirm(ctx, str(p.number)) for p in rules.catalogue]
        for screen in screens:
            longest = len(_reply("invalid-choice", lang)) + 1 + len(screen.text)
            if longest > texts.USSD_MAX_CHARS:
                raise texts.InvalidTexts(f"ussd menu screen in {lang} takes {longest} characters with its "
                                         f"error line, more than {texts.USSD_MAX_CHARS}: {screen.text[:40]!r}...")
