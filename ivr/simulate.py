"""`selfcare call FROM TO [--press DIGITS]`: the real call flow on a simulated channel.

The flow, the menus and the billing calls are the ones a real call runs; only the channel is
scripted. `press` is what the caller keys at each menu, in order (a space = lets the menu time out);
when it runs out the caller hangs up.
"""
from __future__ import annotations

from prompts import catalogue

from .channel import SimulatedChannel
from .flows import check_startup, run_call, service_for


def simulate_call_with_outcome(core, from_msisdn: str, to: str, press: str = "") -> tuple[list[tuple[str, str]], str]:
    """Like simulate_call, also returning the call's outcome (completed, exhausted, hangup, ...)."""
    service = service_for(to.strip().lstrip("+"))
    check_startup(core)  # a prompt missing from the catalogue fails here, naming it, as at start-up
    channel = SimulatedChannel(from_msisdn, press)
    outcome = run_call(core, channel, service.number)
    heard = [(p.prompt_id, catalogue.text(p.prompt_id, p.language)) for p in channel.played]
    return heard, outcome


def simulate_call(core, from_msisdn: str, to: str, press: str = "") -> list[tuple[str, str]]:
    """Every prompt the caller heard, in order: (prompt id, its text in the language it played in).

    Raises flows.UnknownService (a ValueError) when `to` is not 2112 or 650; an unknown caller is not
    an error: they hear `unknown-caller` like on a real call."""
    heard, _ = simulate_call_with_outcome(core, from_msisdn, to, press)
    return heard
