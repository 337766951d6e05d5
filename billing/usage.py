"""Data usage fed in from the network: drawn from packs first, the rest charged by the tariff.

The feed is a record of what was used, not a request: it is rated, never refused for the line's
state. A prepaid line that may not spend its balance (suspended, balance expired, closed) still
draws its packs, but nothing is taken from its balance: the rest is cut off. Seed 002: the smaller pack is used first; after the 50 GB pack's volume the line runs
throttled (128 kbit/s) and is not charged; without a usable pack each MB costs the tariff's
`data_price_per_mb`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation

from . import fraud, ledger, lines, outbox, validity
from .errors import InvalidInput
from .models import Subscriber
from .money import PLACES, ZERO, from_units, to_units
from .msisdn import mask
from .packs import KB_PER_MB, can_use_packs, is_usable, live_packs

log = logging.getLogger("billing.usage")

MAX_MB_PER_RECORD = Decimal(1024 * 1024)


@dataclass(frozen=True)
class DataUsage:
    mb: Decimal
    from_packs_mb: Decimal
    throttled_mb: Decimal
    charged_mb: Decimal
    charged: Decimal
    cut_off: bool = False  # the balance did not cover all of it: the network cuts the session
    duplicate: bool = False
    barred: str | None = None  # why the balance paid nothing (an error code: balance-expired, ...)


def parse_mb(value) -> Decimal:
    try:
        mb = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"not a data volume in MB: {value!r}") from None
    if not mb.is_finite() or mb <= 0 or mb > MAX_MB_PER_RECORD:
        raise InvalidInput(f"data volume must be above 0 and at most {MAX_MB_PER_RECORD} MB, not {value}")
    return mb


def _kb(mb: Decimal) -> int:
    return int((mb * KB_PER_MB).to_integral_value(rounding=ROUND_CEILING))


def _draw_from_packs(uow, line: Subscriber, kb: int) -> tuple[int, int]:
    """(KB drawn from packs, KB run throttled on an exhausted throttling pack)."""
    if not can_use_packs(line):
        return 0, 0
    now = uow.clock.now()
    usable = [s for s in live_packs(uow, line, lock=True) if is_usable(s, now)]
    drawn = 0
    for sub in usable:  # smallest volume first (seed 002)
        take = min(sub.remaining_kb, kb - drawn)
        sub.remaining_kb -= take
        drawn += take
    throttled = kb - drawn if any(s.throttle_kbps for s in usable) else 0
    return drawn, throttled


def _price(uow, line: Subscriber, kb: int) -> Decimal:
    per_mb = uow.tariffs.get(line.tariff).data_price_per_mb
    return (per_mb * kb / KB_PER_MB).quantize(PLACES, rounding=ROUND_CEILING)


def record_data_usage(uow, msisdn: str, mb, key: str) -> DataUsage:
    volume = parse_mb(mb)
    line = lines.find(uow, msisdn, lock=True)
    op = ledger.open_operation(uow, key, "data", line)
    if op is None:
        return DataUsage(volume, ZERO, ZERO, ZERO, ledger.amount_of(uow, key), duplicate=True)
    kb = _kb(volume)
    drawn, throttled = _draw_from_packs(uow, line, kb)
    rest = kb - drawn - throttled
    price = _price(uow, line, rest) if rest else ZERO
    cut_off, barred = False, None
    refusal = validity.spend_refusal(line, uow.clock.now().date()) if line.plan == "prepaid" else None
    if refusal is not None and price:
        price, cut_off, barred = ZERO, True, refusal.code
    elif line.plan == "prepaid" and to_units(price) > line.balance_units:
        price, cut_off = from_units(max(line.balance_units, 0)), True
    if price:
        ledger.charge(uow, line, price, op, "data")
        outbox.notify_balance_change(uow, line, op, "data")
        fraud.check_unusual_deductions(uow, line.msisdn, key)  # seed 001: the cloned-SIM sign
    uow.commit()
    result = DataUsage(volume, Decimal(drawn) / KB_PER_MB, Decimal(throttled) / KB_PER_MB,
                       Decimal(rest) / KB_PER_MB, price, cut_off, barred=barred)
    log.info("data %s MB for %s: packs %s MB, throttled %s MB, charged %s AZN%s", volume, mask(line.msisdn),
             result.from_packs_mb, result.throttled_mb, price, f" (cut off: {barred or 'balance'})" if cut_off else "")
    return result


def usage_command(core, msisdn: str, mb, key: str | None = None) -> str:
    """`selfcare usage MSISDN MB`: feed one usage record and say how it was rated (one line)."""
    import uuid

    with core.uow() as uow:
        r = record_data_usage(uow, msisdn, mb, key or f"cli:usage:{uuid.uuid4()}")
    note = (" (already recorded)" if r.duplicate else f" (cut off: {r.barred}, nothing taken from the balance)"
            if r.barred else " (cut off: balance used up)" if r.cut_off else "")
    return (f"{r.mb} MB: {r.from_packs_mb} MB from packs, {r.throttled_mb} MB throttled, "
            f"{r.charged_mb} MB charged {r.charged:.4f} AZN{note}")
