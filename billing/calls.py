"""Calls that cost money: may this line make this call, for how long, and what a finished call
costs (docs/rules.md, "Calls"). The PBX asks `authorize_call` before it dials and reports the
answered seconds to `charge_finished_call` at hangup; the CDR import reports the same call again
under the same key, so a call is charged once whichever report comes first.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from . import charging, lines, validity
from .charging import Charge
from .errors import InsufficientBalance
from .money import from_units
from .msisdn import mask
from .rating import RatedCall, longest_paid_seconds, rate_call

log = logging.getLogger("billing.calls")


def call_key(call_id: str) -> str:
    """The idempotency key of a call: Asterisk's `uniqueid` of the caller's channel (the hangup
    handler's `${UNIQUEID}`, the `uniqueid` column of Master.csv)."""
    return f"call:{call_id}"


@dataclass(frozen=True)
class CallAuthorization:
    msisdn: str
    plan: str
    language: str
    rated: RatedCall
    max_seconds: int | None  # the PBX cuts the call here (Dial L()); None: not cut (postpaid, free)
    warning_seconds: int | None  # before the cut, a warning prompt plays this long ahead
    suspect: bool = False  # the number is a suspected wangiri caller (billing.fraud)


def _rated(uow, line, dialled: str) -> RatedCall:
    return rate_call(uow.tariffs.destinations, uow.tariffs.get(line.tariff), line.roaming, dialled)


def authorize_call(uow, msisdn: str, dialled: str) -> CallAuthorization:
    """May `msisdn` call `dialled` now, and for how long. Raises UnknownSubscriber, InvalidMsisdn,
    InvalidDestination, LineNotActive (BalanceExpired, LineClosed) or InsufficientBalance (a
    prepaid balance that does not pay for one interval). Free numbers (self-care, care, emergency)
    are never refused for the line's status or balance."""
    from . import fraud  # the fraud rules read calls' records; imported here to keep the graph flat

    line = lines.find(uow, msisdn)
    rated = _rated(uow, line, dialled)
    control = uow.tariffs.call_control
    max_seconds = warning = None
    if not rated.free:
        validity.require_may_spend(line, uow.clock.now().date())
        if line.plan == "prepaid":
            balance = from_units(line.balance_units)
            paid = longest_paid_seconds(rated.rate, balance)
            if not paid:
                raise InsufficientBalance(f"balance {balance} AZN does not pay for one {rated.rate_class} interval "
                                          f"({rated.rate.price_per_interval} AZN)")
            max_seconds = max(1, paid - control.limit_margin_seconds)
            warning = min(control.warning_before_seconds, max_seconds - 1) or None
    suspect = fraud.is_suspect_number(uow, rated.destination.number)
    log.info("call from %s to a %s number (%s): %s", mask(line.msisdn), rated.destination.kind, rated.rate_class,
             f"up to {max_seconds}s" if max_seconds else "not limited")
    return CallAuthorization(line.msisdn, line.plan, line.language, rated, max_seconds, warning, suspect)


@dataclass(frozen=True)
class FinishedCall:
    charge: Charge
    rated: RatedCall
    seconds: int


def charge_finished_call(uow, msisdn: str, dialled: str, seconds: int, call_id: str) -> FinishedCall:
    """Charge an answered call of `seconds` (Asterisk's billsec) once, keyed by the call's id.
    Prepaid: the balance falls (never below zero); postpaid: `current` grows. The balance-change
    SMS follows unless switched off; the unusual-deductions rule looks at the line afterwards."""
    from . import fraud

    line = lines.find(uow, msisdn)
    rated = _rated(uow, line, dialled)
    key = call_key(call_id)
    if rated.free:
        return FinishedCall(Charge(Decimal(0)), rated, seconds)
    with uow.atomic():
        charge = charging.charge_call(uow, line.msisdn, seconds, rated.rate_class, key, rated=True)
        if not charge.duplicate and charge.fee:
            fraud.check_unusual_deductions(uow, line.msisdn, key)
    return FinishedCall(charge, rated, seconds)
