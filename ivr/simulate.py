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


def simulate_outgoing_call(core, from_msisdn: str, number: str, seconds: int, press: str = "",
                           call_id: str | None = None):
    """`selfcare call FROM NUMBER --seconds S`: the outgoing flow on a simulated channel, then the
    network's part as the dialplan does it (the call lasts S seconds, cut at the limit Dial's L()
    would set, the warning prompt heard when the cut comes), then the hangup charging.

    Returns (prompts heard as (id, text), outcome, billsec, the charge or None)."""
    from billing import calls

    from .outgoing import DIALLED, LIMIT_WARNING, OUTGOING, OUTGOING_HANGUP

    check_startup(core)
    channel = SimulatedChannel(from_msisdn, press, arguments=[number], uniqueid=call_id)
    outcome = run_call(core, channel, OUTGOING)
    billsec, charge = 0, None
    if outcome == DIALLED:
        billsec = seconds
        limit_ms = channel.variables.get("SELFCARE_LIMIT_MS")
        if limit_ms is not None:
            limit = int(limit_ms) // 1000
            warning = int(channel.variables.get("SELFCARE_WARNING_MS", "0")) // 1000
            if warning and seconds >= limit - warning:
                channel.played.append(_played(LIMIT_WARNING, channel.language))
            billsec = min(seconds, limit)
        hangup = SimulatedChannel(from_msisdn, arguments=[number, str(billsec), "ANSWER"], uniqueid=channel.uniqueid)
        run_call(core, hangup, OUTGOING_HANGUP)
        with core.reader() as uow:
            from billing import ledger
            charge = ledger.amount_of(uow, calls.call_key(channel.uniqueid))
    heard = [(p.prompt_id, catalogue.text(p.prompt_id, p.language)) for p in channel.played]
    return heard, outcome, billsec, charge


def _played(prompt_id: str, language: str):
    from .channel import Played

    return Played(prompt_id, language)
