"""Charging: the per-SMS fees of the self-care numbers and rated calls, both from tariff data."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from . import ledger, lines, outbox
from .errors import InvalidInput, LineNotActive
from .msisdn import mask
from .reports import BalanceReport, report_for
from .tariffs import CALL_KINDS

log = logging.getLogger("billing.charging")


@dataclass(frozen=True)
class Charge:
    fee: Decimal
    duplicate: bool = False
    report: BalanceReport | None = None  # the line's figures right after this charge


def charge_sms(uow, msisdn: str, short_number: str, key: str) -> Charge:
    """The fee for an SMS to a self-care number. No balance-change SMS follows: the reply itself
    carries the figures."""
    line = lines.snapshot(uow, msisdn, lock=True)
    fee = uow.tariffs.info_sms_fee(short_number)
    kind = f"sms:{short_number}"
    if ledger.claim_and_charge(uow, key, kind, line, fee, kind) is None:
        return Charge(ledger.amount_of(uow, key), duplicate=True)
    report = report_for(uow, line)
    uow.commit()
    log.info("sms fee %s AZN to %s for %s", fee, short_number, mask(line.msisdn))
    return Charge(fee, report=report)


def call_price(uow, tariff_name: str, seconds: int, kind: str) -> Decimal:
    if kind not in CALL_KINDS:
        raise InvalidInput(f"call kind must be one of {', '.join(CALL_KINDS)}, not {kind!r}")
    if not isinstance(seconds, int) or seconds < 0:
        raise InvalidInput(f"call duration must be a whole number of seconds >= 0, not {seconds!r}")
    return uow.tariffs.get(tariff_name).calls[kind].price(seconds)


def charge_call(uow, msisdn: str, seconds: int, kind: str, key: str) -> Charge:
    """A finished call, rated by the line's tariff; roaming lines pay roaming rates."""
    line = lines.find(uow, msisdn, lock=True)
    if line.status != "active":
        raise LineNotActive(f"{line.msisdn} is {line.status}: outgoing calls are barred")
    kind = "roaming" if line.roaming else kind
    price = call_price(uow, line.tariff, seconds, kind)
    op = ledger.open_operation(uow, key, f"call:{kind}", line)
    if op is None:
        return Charge(ledger.amount_of(uow, key), duplicate=True)
    if price:
        ledger.charge(uow, line, price, op, f"call:{kind}")
        outbox.notify_balance_change(uow, line, op, "call")
    uow.commit()
    log.info("call %ss %s = %s AZN for %s", seconds, kind, price, mask(line.msisdn))
    return Charge(price)
