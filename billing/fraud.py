"""The fraud guard of seed 001 (docs/rules.md, "Fraud"); every threshold is `[fraud]` in
billing/tariffs.toml, checked when the book loads.

- Wangiri: an inbound call from abroad that rang a line at most `max_ring_seconds` and dropped
  unanswered is recorded (`record_inbound_ring`, fed by `selfcare cdr import`). A number that rang
  `distinct_lines` different lines within `within_minutes` is suspect for `suspect_for_hours`
  after the last of those rings; a line that dials it back hears a warning first (ivr/outgoing.py).
- Unusual deductions (a cloned SIM, "unexpected systematic deductions"): after a charge, a line
  whose deductions today are above `daily_cap`, or above `median_multiple` times its usual day
  (the median of its last `median_days` days since activation, days without deductions counted
  as 0; 0 on the day it was activated) and at least
  `min_amount`, is flagged once a day and sent the `unusual-deductions` SMS naming the care number.
"""
from __future__ import annotations

import logging
import statistics
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import and_, or_, select, text

from .errors import InvalidTariffData
from .models import FraudFlag, InboundRing, LedgerEntry, Subscriber
from .money import from_units, parse_amount, to_units
from .msisdn import mask
from .rating import Destinations, e164, is_international

log = logging.getLogger("billing.fraud")

UNUSUAL_DEDUCTIONS = "unusual-deductions"  # the flag's rule and the SMS template


@dataclass(frozen=True)
class WangiriRule:
    max_ring_seconds: int  # an unanswered ring from abroad this short counts
    distinct_lines: int  # rings to this many different lines...
    within_minutes: int  # ...within this many minutes make the number suspect...
    suspect_for_hours: int  # ...for this long after the last of them
    confirm_tries: int  # the warning menu before a call back: attempts at "press 1"
    confirm_timeout_ms: int  # and the wait for the first digit of each


@dataclass(frozen=True)
class DeductionsRule:
    median_days: int
    median_multiple: Decimal
    min_amount: Decimal
    daily_cap: Decimal
    kinds: tuple[str, ...]  # ledger entry kinds that are deductions, by prefix


@dataclass(frozen=True)
class FraudRules:
    care_number: str  # named in the alert SMS
    wangiri: WangiriRule
    deductions: DeductionsRule


def _int(where: str, value, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidTariffData(f"{where}: must be a whole number from {low} to {high}, got {value!r}")
    return value


def _money(where: str, value) -> Decimal:
    try:
        amount = parse_amount(str(value))
    except Exception as exc:  # InvalidAmount and anything a bad value raises
        raise InvalidTariffData(f"{where}: {exc}") from None
    if amount <= 0:
        raise InvalidTariffData(f"{where}: must be more than 0, got {value!r}")
    return amount


def parse_fraud_rules(raw: dict, destinations: Destinations) -> FraudRules:
    care = str(raw.get("care_number", ""))
    if destinations.short_numbers.get(care) is None:
        raise InvalidTariffData(f"fraud.care_number: {care!r} is not one of [destinations.short_numbers]")
    w, d = raw.get("wangiri", {}), raw.get("deductions", {})
    wangiri = WangiriRule(
        max_ring_seconds=_int("fraud.wangiri.max_ring_seconds", w.get("max_ring_seconds"), 1, 60),
        distinct_lines=_int("fraud.wangiri.distinct_lines", w.get("distinct_lines"), 2, 1000),
        within_minutes=_int("fraud.wangiri.within_minutes", w.get("within_minutes"), 1, 24 * 60),
        suspect_for_hours=_int("fraud.wangiri.suspect_for_hours", w.get("suspect_for_hours"), 1, 24 * 90),
        confirm_tries=_int("fraud.wangiri.confirm_tries", w.get("confirm_tries"), 1, 10),
        confirm_timeout_ms=_int("fraud.wangiri.confirm_timeout_ms", w.get("confirm_timeout_ms"), 500, 60_000),
    )
    kinds = d.get("kinds")
    if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) and k for k in kinds):
        raise InvalidTariffData(f"fraud.deductions.kinds: must be a list of ledger kind prefixes, got {kinds!r}")
    deductions = DeductionsRule(
        median_days=_int("fraud.deductions.median_days", d.get("median_days"), 7, 365),
        median_multiple=_money("fraud.deductions.median_multiple", d.get("median_multiple")),
        min_amount=_money("fraud.deductions.min_amount", d.get("min_amount")),
        daily_cap=_money("fraud.deductions.daily_cap", d.get("daily_cap")),
        kinds=tuple(kinds),
    )
    if deductions.min_amount > deductions.daily_cap:
        raise InvalidTariffData("fraud.deductions.min_amount: must not be more than daily_cap")
    unknown = set(raw) - {"care_number", "wangiri", "deductions"}
    if unknown:
        raise InvalidTariffData(f"fraud: unknown key(s) {', '.join(sorted(unknown))}")
    return FraudRules(care, wangiri, deductions)


# --- wangiri -----------------------------------------------------------------------------------

_RECORD_RING = text(
    "INSERT INTO inbound_ring (key, caller, subscriber_id, ring_seconds, rang_at) "
    "VALUES (:key, :caller, :subscriber_id, :ring_seconds, :rang_at) ON CONFLICT (key) DO NOTHING RETURNING id"
)


def record_inbound_ring(uow, caller: str, subscriber: str, ring_seconds: int, key: str | None = None,
                        at: datetime | None = None) -> bool:
    """An inbound call that rang `subscriber` for `ring_seconds` and dropped unanswered. Recorded
    (True) when it came from abroad and rang no longer than the rule's `max_ring_seconds`; a
    report under a `key` seen before is not recorded twice. Raises UnknownSubscriber."""
    from . import lines

    rule = uow.tariffs.fraud.wangiri
    destinations = uow.tariffs.destinations
    line = lines.find(uow, subscriber)
    if not is_international(destinations, caller):
        log.info("ring to %s from %s: not from abroad, not recorded", mask(line.msisdn), mask(caller))
        return False
    if ring_seconds > rule.max_ring_seconds:
        log.info("ring to %s from %s: %ss, longer than %ss, not recorded", mask(line.msisdn), mask(caller),
                 ring_seconds, rule.max_ring_seconds)
        return False
    number = e164(caller, destinations.country_code)
    new = uow.connection().execute(_RECORD_RING, {
        "key": key or f"ring:{uuid.uuid4().hex}", "caller": number, "subscriber_id": line.id,
        "ring_seconds": ring_seconds, "rang_at": at or uow.clock.now()}).scalar()
    uow.commit()
    log.info("ring to %s from %s: %ss, %s", mask(line.msisdn), mask(number), ring_seconds,
             "recorded" if new else "already recorded")
    return new is not None


def _rings(uow, since: datetime, number: str | None = None) -> list:
    query = select(InboundRing.caller, InboundRing.subscriber_id, InboundRing.rang_at).where(
        InboundRing.rang_at >= since)
    if number is not None:
        query = query.where(InboundRing.caller == number)
    return list(uow.session.execute(query.order_by(InboundRing.caller, InboundRing.rang_at)))


def _burst_end(rings: list, rule: WangiriRule) -> datetime | None:
    """The time of the latest ring that completed `distinct_lines` lines within `within_minutes`."""
    window = timedelta(minutes=rule.within_minutes)
    found = None
    for i, ring in enumerate(rings):
        lines_rung = {r.subscriber_id for r in rings[: i + 1] if ring.rang_at - r.rang_at <= window}
        if len(lines_rung) >= rule.distinct_lines:
            found = ring.rang_at
    return found


def is_suspect_number(uow, number: str) -> bool:
    """Is `number` (E.164, as billing.rating gives a dialled number) a suspected wangiri caller now."""
    rule = uow.tariffs.fraud.wangiri
    if not number.startswith("+"):
        return False
    now = uow.clock.now()
    since = now - timedelta(hours=rule.suspect_for_hours, minutes=rule.within_minutes)
    end = _burst_end(_rings(uow, since, number), rule)
    return end is not None and now - end <= timedelta(hours=rule.suspect_for_hours)


@dataclass(frozen=True)
class SuspectNumber:
    number: str
    lines_rung: int  # distinct lines it rang in the period it stays suspect
    last_burst: datetime


def suspect_numbers(uow) -> list[SuspectNumber]:
    """Every number suspect now, for `selfcare fraud` and the care console."""
    rule = uow.tariffs.fraud.wangiri
    now = uow.clock.now()
    by_caller: dict[str, list] = {}
    for ring in _rings(uow, now - timedelta(hours=rule.suspect_for_hours, minutes=rule.within_minutes)):
        by_caller.setdefault(ring.caller, []).append(ring)
    found = []
    for number, rings in by_caller.items():
        end = _burst_end(rings, rule)
        if end is not None and now - end <= timedelta(hours=rule.suspect_for_hours):
            found.append(SuspectNumber(number, len({r.subscriber_id for r in rings}), end))
    return sorted(found, key=lambda s: s.last_burst, reverse=True)


# --- unusual deductions --------------------------------------------------------------------------

def _deductions_query(line, rule: DeductionsRule, since: datetime, until: datetime):
    spent = (and_(LedgerEntry.account == "balance", LedgerEntry.delta_units < 0) if line.plan == "prepaid"
             else and_(LedgerEntry.account == "current", LedgerEntry.delta_units > 0))
    return select(LedgerEntry.created_at, LedgerEntry.delta_units).where(
        LedgerEntry.subscriber_id == line.id, spent, LedgerEntry.created_at >= since,
        LedgerEntry.created_at < until, or_(*(LedgerEntry.kind.startswith(k) for k in rule.kinds)))


def _daily_totals(uow, line, rule: DeductionsRule, today: date) -> list[int]:
    """Deductions (units) of each of the `median_days` days before today (only the days since the
    line was activated, for a younger line), 0 for a day without; [0] for a line activated today."""
    days = min(rule.median_days, (today - line.activated_on).days)
    if days <= 0:
        return [0]
    start = datetime.combine(today - timedelta(days=days), time())
    totals = {today - timedelta(days=n): 0 for n in range(1, days + 1)}
    for at, units in uow.session.execute(_deductions_query(line, rule, start, datetime.combine(today, time()))):
        totals[at.date()] += abs(units)
    return list(totals.values())


def _flagged(uow, line, day: date) -> bool:
    return uow.session.scalar(select(FraudFlag.id).where(
        FraudFlag.subscriber_id == line.id, FraudFlag.day == day, FraudFlag.rule == UNUSUAL_DEDUCTIONS)) is not None


_FLAG = text(
    "INSERT INTO fraud_flag (subscriber_id, day, rule, amount_units, usual_units, created_at) "
    "VALUES (:subscriber_id, :day, :rule, :amount_units, :usual_units, :created_at) "
    "ON CONFLICT (subscriber_id, day, rule) DO NOTHING RETURNING id"
)


def check_unusual_deductions(uow, msisdn: str, key: str) -> bool:
    """After a charge (`key`): flag the line and queue the alert SMS when today's deductions are
    unusual for it. Once per line per day; True when this call flagged it. Runs inside the
    charge's transaction (the caller commits)."""
    from . import lines, outbox

    rule = uow.tariffs.fraud.deductions
    line = lines.find(uow, msisdn)
    now = uow.clock.now()
    today = now.date()
    if _flagged(uow, line, today):
        return False
    spent = sum(abs(u) for _, u in uow.session.execute(
        _deductions_query(line, rule, datetime.combine(today, time()), now + timedelta(seconds=1))))
    if spent <= to_units(min(rule.min_amount, rule.daily_cap)):
        return False
    usual = int(statistics.median(_daily_totals(uow, line, rule, today)))
    over_cap = spent > to_units(rule.daily_cap)
    over_usual = spent >= to_units(rule.min_amount) and spent > usual * rule.median_multiple
    if not (over_cap or over_usual):
        return False
    new = uow.connection().execute(_FLAG, {
        "subscriber_id": line.id, "day": today, "rule": UNUSUAL_DEDUCTIONS, "amount_units": spent,
        "usual_units": usual, "created_at": now}).scalar()
    if new is None:
        return False
    outbox.enqueue(uow, line, UNUSUAL_DEDUCTIONS,
                   {"amount": f"{from_units(spent):.4f}", "care": uow.tariffs.fraud.care_number},
                   key=f"fraud:{UNUSUAL_DEDUCTIONS}:{line.id}:{today.isoformat()}")
    log.warning("line %s flagged: deductions today %s AZN, usual day %s AZN (%s; after %s)", mask(line.msisdn),
                from_units(spent), from_units(usual), "over the daily cap" if over_cap else "over the usual",
                key.split(":")[0])
    return True


@dataclass(frozen=True)
class FlaggedLine:
    msisdn: str
    day: date
    rule: str
    amount: Decimal
    usual: Decimal


def flagged_lines(uow, since: date) -> list[FlaggedLine]:
    rows = uow.session.execute(
        select(Subscriber.msisdn, FraudFlag.day, FraudFlag.rule, FraudFlag.amount_units, FraudFlag.usual_units)
        .join(Subscriber, Subscriber.id == FraudFlag.subscriber_id)
        .where(FraudFlag.day >= since).order_by(FraudFlag.day.desc(), Subscriber.msisdn))
    return [FlaggedLine(m, d, r, from_units(a), from_units(u)) for m, d, r, a, u in rows]
