"""Charging: the per-SMS fees of the self-care numbers and rated calls, both from tariff data."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from . import ledger, lines, outbox, validity
from .errors import InvalidInput
from .msisdn import mask
from .reports import BalanceReport, report_for
from .money import from_units, to_units

log = logging.getLogger("billing.charging")


@dataclass(frozen=True)
class Charge:
    fee: Decimal
    duplicate: bool = False
    report: BalanceReport | None = None  # the line's figures right after this charge
    cut_off: bool = False  # a call dearer than the balance left: the rest of the balance was taken


def charge_sms(uow, msisdn: str, short_number: str, key: str) -> Charge:
    """The fee for an SMS to a self-care number. No balance-change SMS follows: the reply itself
    carries the figures. A prepaid line that may not spend its balance (suspended, balance
    expired, closed) is refused with the reason; the channel answers it free. (A postpaid line's
    fee is usage on its bill, as before.)"""
    line = lines.snapshot(uow, msisdn, lock=True)
    fee = uow.tariffs.info_sms_fee(short_number)
    kind = f"sms:{short_number}"
    if line.plan == "prepaid":
        validity.require_may_spend(line, uow.clock.now().date())
    if ledger.claim_and_charge(uow, key, kind, line, fee, kind, may_hold=True) is None:
        return Charge(ledger.amount_of(uow, key), duplicate=True)
    report = report_for(uow, line)
    uow.commit()
    log.info("sms fee %s AZN to %s for %s", fee, short_number, mask(line.msisdn))
    return Charge(fee, report=report)


def call_price(uow, tariff_name: str, seconds: int, kind: str) -> Decimal:
    """The price of `seconds` at one rate class of the tariff (standard, off_net, short_number,
    roaming, ...: billing/tariffs.toml; which class a number pays is billing.rating's)."""
    tariff = uow.tariffs.get(tariff_name)
    if kind not in tariff.calls:
        raise InvalidInput(f"call kind must be one of {', '.join(sorted(tariff.calls))}, not {kind!r}")
    if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0:
        raise InvalidInput(f"call duration must be a whole number of seconds >= 0, not {seconds!r}")
    return tariff.calls[kind].price(seconds)


def charge_call(uow, msisdn: str, seconds: int, kind: str, key: str, *, rated: bool = False) -> Charge:
    """A finished call, rated by the line's tariff.

    `rated=False` (a caller that knows only the class): a roaming line pays roaming rates.
    `rated=True`: `kind` is already the class billing.rating chose, roaming included.
    A prepaid call is a record of what the network carried: when its price is more than the
    balance left (the PBX cut it a margin short, a clock drifted), the rest of the balance is
    taken and the charge says `cut_off`; the balance never goes below zero."""
    line = lines.find(uow, msisdn, lock=True)
    validity.require_may_spend(line, uow.clock.now().date())  # suspended, balance expired or closed: barred
    if not rated and line.roaming:
        kind = "roaming"
    price = call_price(uow, line.tariff, seconds, kind)
    op = ledger.open_operation(uow, key, f"call:{kind}", line)
    if op is None:
        return Charge(ledger.amount_of(uow, key), duplicate=True)
    taken, cut_off = price, False
    if line.plan == "prepaid" and to_units(price) > line.balance_units:
        taken, cut_off = from_units(line.balance_units), True
    if taken:
        ledger.charge(uow, line, taken, op, f"call:{kind}")
        outbox.notify_balance_change(uow, line, op, "call")
    report = report_for(uow, line)
    uow.commit()
    log.info("call %ss %s = %s AZN%s for %s", seconds, kind, taken, " (cut off)" if cut_off else "", mask(line.msisdn))
    return Charge(taken, report=report, cut_off=cut_off)
