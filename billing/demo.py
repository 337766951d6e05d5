"""Demo subscribers, cards and figures, so the service answers something on a fresh install."""
from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import select

from . import cards, lines, payments
from .models import ScratchCard, Subscriber

PREPAID = (
    # msisdn, language, tariff, top-up today (AZN), days in network
    ("+994501234567", "az", "klass", "12.48", 400),
    ("+994502223344", "en", "super", "3.75", 120),
    ("+994503334455", "ru", "klass", "1.84", 45),
)
POSTPAID = (
    # msisdn, language, tariff, billed, current, advance, bill day
    ("+994551234567", "az", "biznes", "25.30", "7.15", "5.00", 10),
    ("+994552223344", "ru", "biznes", "0.00", "12.40", "0.00", 18),
)
HISTORY_TOPUP = Decimal("1.00")  # 30 days of balance, then 180 days of subscription
KEEP_ALIVE_DAYS = 200  # within those 210 days
CARDS = (
    ("1000000001", "12345678", "5.00"),
    ("1000000002", "87654321", "10.00"),
)


def _exists(uow, msisdn: str) -> bool:
    return uow.session.scalar(select(Subscriber.id).where(Subscriber.msisdn == msisdn)) is not None


def load_demo(core) -> list[str]:
    """Idempotent: what already exists is left as it is. Returns what was added."""
    added = []
    today = core.clock.now().date()
    for msisdn, lang, tariff, topup, days in PREPAID:
        with core.uow() as uow:
            if _exists(uow, msisdn):
                continue
            line_id = lines.add_subscriber(uow, msisdn, "prepaid", tariff=tariff, language=lang,
                                           activated=today - timedelta(days=days)).id
        # A first top-up in the line's first week (what makes a line eligible for Nar Credit), one
        # every KEEP_ALIVE_DAYS after it so an old line never reached its subscription end
        # (billing/validity.py), then today's, which sets the figures the demo shows.
        activated = datetime.combine(today - timedelta(days=days), time(10, 0))
        history = range(1, days, KEEP_ALIVE_DAYS)
        for day in history:
            with core.uow(at=activated + timedelta(days=day)) as uow:
                name = "first-topup" if day == 1 else f"topup-day-{day}"
                payments.topup(uow, msisdn, HISTORY_TOPUP, key=f"demo:{name}:{line_id}")
        with core.uow() as uow:
            payments.topup(uow, msisdn, Decimal(topup) - HISTORY_TOPUP * len(history), key=f"demo:topup:{line_id}")
        added.append(msisdn)
    for msisdn, lang, tariff, billed, current, advance, bill_day in POSTPAID:
        with core.uow() as uow:
            if _exists(uow, msisdn):
                continue
            lines.add_subscriber(uow, msisdn, "postpaid", tariff=tariff, language=lang,
                                 activated=today - timedelta(days=300), billed=Decimal(billed),
                                 current=Decimal(current), advance=Decimal(advance), bill_day=bill_day)
        added.append(msisdn)
    for serial, pin, value in CARDS:
        with core.uow() as uow:
            if uow.session.scalar(select(ScratchCard.id).where(ScratchCard.serial == serial)) is None:
                cards.add_card(uow, serial, pin, value)
                added.append(serial)
    return added
