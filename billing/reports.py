"""The one place that computes what a subscriber is told about their money.

IVR, SMS, USSD and the CLI all call `balance_report`, so the same question gets the same figures.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from . import lines, validity
from .ledger import account_value
from .money import held, owed
from .models import Subscriber
from .tariffs import Tariff


@dataclass(frozen=True)
class BalanceReport:
    msisdn: str
    plan: str
    status: str  # as the dates make it today (billing.validity.status_now): expired, deactivated, ...
    language: str
    tariff: Tariff
    roaming: bool
    notify_balance: bool
    activated_on: date
    # prepaid
    balance: Decimal | None = None
    balance_expires: date | None = None
    subscription_ends: date | None = None
    nar_debt: Decimal | None = None  # Nar / SOS Credit owed, recovered at the next top-up
    sos_debt: Decimal | None = None
    balance_expired: bool = False  # past balance_expires: the balance is kept but may not be spent
    # postpaid
    billed: Decimal | None = None
    current: Decimal | None = None
    advance: Decimal | None = None
    bill_day: int | None = None

    @property
    def closed(self) -> bool:
        """Past the subscription end: the number is no longer served."""
        return self.status == validity.CLOSED


    @property
    def shown(self) -> "ShownFigures":
        """The figures as every channel shows or speaks them (to the qəpik, billing.money's rule)."""
        def maybe(rounding, value):
            return None if value is None else rounding(value)
        return ShownFigures(
            balance=maybe(held, self.balance), advance=maybe(held, self.advance),
            billed=maybe(owed, self.billed), current=maybe(owed, self.current),
            nar_debt=maybe(owed, self.nar_debt), sos_debt=maybe(owed, self.sos_debt))


@dataclass(frozen=True)
class ShownFigures:
    balance: Decimal | None
    advance: Decimal | None
    billed: Decimal | None
    current: Decimal | None
    nar_debt: Decimal | None
    sos_debt: Decimal | None


def report_for(uow, line: Subscriber) -> BalanceReport:
    today = uow.clock.now().date()
    common = dict(
        msisdn=line.msisdn,
        plan=line.plan,
        status=validity.status_now(line, today),
        language=line.language,
        tariff=uow.tariffs.get(line.tariff),
        roaming=line.roaming,
        notify_balance=line.notify_balance,
        activated_on=line.activated_on,
    )
    if line.plan == "prepaid":
        return BalanceReport(
            **common,
            balance=account_value(line, "balance"),
            balance_expires=line.balance_expires,
            subscription_ends=line.subscription_ends,
            nar_debt=account_value(line, "nar_debt"),
            sos_debt=account_value(line, "sos_debt"),
            balance_expired=validity.balance_expired(line, today),
        )
    return BalanceReport(
        **common,
        billed=account_value(line, "billed"),
        current=account_value(line, "current"),
        advance=account_value(line, "advance"),
        bill_day=line.bill_day,
    )


def balance_report(uow, msisdn: str, *, lock: bool = False) -> BalanceReport:
    """`lock`: the line's row stays locked to the end of the transaction (a request that may charge
    it next reads it locked from the first, so it is told the figures it is charged on)."""
    return report_for(uow, lines.snapshot(uow, msisdn, lock=lock))
