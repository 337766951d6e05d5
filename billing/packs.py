"""Monthly internet packs (seed 002): ordering, deactivation, stopping renewal, and their status.

Renewal over time lives in `pack_renewal`, usage in `usage`, plan moves in `plan_change`.
Volumes are kept in KB so usage fed in fractions of a MB is drawn exactly.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from . import ledger, lines, outbox, validity
from .errors import NoPacks, UnknownPack
from .models import PackSubscription, Subscriber
from .money import fmt_exact
from .msisdn import mask
from .offers import Pack

log = logging.getLogger("billing.packs")

KB_PER_MB = 1024
LIVE = ("active", "awaiting-renewal")  # a pack that may still renew or be drawn from


@dataclass(frozen=True)
class PackOrder:
    pack: Pack
    expires: datetime | None
    duplicate: bool = False


@dataclass(frozen=True)
class PackState:
    pack: Pack
    status: str
    remaining_mb: Decimal
    expires: datetime
    auto_renew: bool
    usable: bool
    throttled: bool  # seed 002: the 50 GB pack after its volume runs at throttle_kbps
    paused: bool = False  # in its period, but the line may not use packs now (postpaid one-way suspended)

    @property
    def speed_kbps(self) -> int | None:
        return self.pack.throttle_kbps if self.throttled else None


def pack_of(rules, sub: PackSubscription) -> Pack:
    return rules.by_code(sub.pack_code) or Pack(
        0, sub.pack_code, sub.pack_group, sub.volume_mb, Decimal(0), {"az": sub.pack_code, "en": sub.pack_code,
                                                                     "ru": sub.pack_code}, sub.throttle_kbps)


def can_use_packs(line: Subscriber) -> bool:
    """Seed 002: a postpaid line suspended one-way cannot use its packs (usage goes by the tariff)."""
    return not (line.plan == "postpaid" and line.status == "suspended-one-way")


def is_usable(sub: PackSubscription, now: datetime) -> bool:
    """An active pack in its period, or the rest of a pack whose renewal failed, for leftover_hours."""
    if sub.status == "active":
        return now < sub.period_end
    return sub.status == "awaiting-renewal" and sub.leftover_until is not None and now < sub.leftover_until


def live_packs(uow, line: Subscriber, *, lock: bool = False) -> list[PackSubscription]:
    query = (select(PackSubscription)
             .where(PackSubscription.subscriber_id == line.id, PackSubscription.status.in_(LIVE))
             .order_by(PackSubscription.volume_mb, PackSubscription.id))
    if lock:
        query = query.with_for_update()
    return list(uow.session.scalars(query))


def start_period(rules, sub: PackSubscription, start: datetime) -> None:
    """A new 30-day period with the full volume: what was left of the last one is annulled."""
    sub.status = "active"
    sub.period_start = start
    sub.period_end = start + timedelta(days=rules.validity_days)
    sub.remaining_kb = sub.volume_mb * KB_PER_MB
    sub.leftover_until = sub.retry_until = sub.next_attempt_at = None
    sub.held_by_suspension = False


def end(sub: PackSubscription, status: str, now: datetime) -> None:
    sub.status = status
    sub.remaining_kb = 0
    sub.auto_renew = False
    sub.ended_at = now


def order_pack(uow, msisdn: str, number: int, key: str) -> PackOrder:
    pack = uow.offers.packs.by_number(number)
    if pack is None:
        raise UnknownPack(f"there is no pack {number}")
    line = lines.find(uow, msisdn, lock=True)
    validity.require_may_spend(line, uow.clock.now().date())  # suspended, balance expired or closed
    op = ledger.open_operation(uow, key, "pack-order", line)
    if op is None:
        return PackOrder(pack, None, duplicate=True)
    ledger.charge(uow, line, pack.price, op, f"pack:{pack.code}")
    now = uow.clock.now()
    sub = PackSubscription(subscriber_id=line.id, pack_code=pack.code, pack_group=pack.group,
                           volume_mb=pack.volume_mb, throttle_kbps=pack.throttle_kbps, auto_renew=True,
                           renew_after_payment=False, renewals=0, created_at=now, remaining_kb=0,
                           status="active", period_start=now, period_end=now)
    start_period(uow.offers.packs, sub, now)
    uow.session.add(sub)
    outbox.enqueue(uow, line, "pack-ordered", {"pack": pack.code, "volume_mb": pack.volume_mb,
                                                "price": fmt_exact(pack.price), "expires": f"{sub.period_end:%Y-%m-%d}"},
                   key=f"{key}:pack-ordered")
    outbox.notify_balance_change(uow, line, op, "pack")
    uow.commit()
    log.info("pack %s ordered by %s for %s AZN", pack.code, mask(line.msisdn), pack.price)
    return PackOrder(pack, sub.period_end)


def _change_live_packs(uow, msisdn: str, key: str, kind: str, change) -> tuple[int, Subscriber] | None:
    """Apply `change` to every live pack once per key; None for a retried key."""
    line = lines.find(uow, msisdn, lock=True)
    subs = live_packs(uow, line, lock=True)
    if not subs:
        raise NoPacks(f"{line.msisdn} has no internet pack")
    if ledger.open_operation(uow, key, kind, line) is None:
        return None
    for sub in subs:
        change(sub)
    return len(subs), line


def deactivate_packs(uow, msisdn: str, key: str) -> int:
    """*100*0#: every live pack ends now; the remaining MB are annulled (seed 002). No refund."""
    now = uow.clock.now()
    done = _change_live_packs(uow, msisdn, key, "pack-deactivate", lambda s: end(s, "annulled", now))
    if done is None:
        return 0
    count, line = done
    outbox.enqueue(uow, line, "pack-deactivated", {"count": count}, key=f"{key}:pack-deactivated")
    uow.commit()
    log.info("%d packs deactivated by %s", count, mask(line.msisdn))
    return count


def stop_pack_renewal(uow, msisdn: str, key: str) -> int:
    """*100*00#: the packs run to the end of their period and are not renewed."""
    def stop(sub: PackSubscription):
        sub.auto_renew = False

    done = _change_live_packs(uow, msisdn, key, "pack-stop-renewal", stop)
    if done is None:
        return 0
    count, line = done
    outbox.enqueue(uow, line, "pack-renewal-stopped", {"count": count}, key=f"{key}:pack-renewal-stopped")
    uow.commit()
    log.info("auto-renewal stopped on %d packs by %s", count, mask(line.msisdn))
    return count


def pack_status(uow, msisdn: str) -> list[PackState]:
    """The line's live packs, smallest first (the order usage draws them in)."""
    line = lines.find(uow, msisdn)
    now = uow.clock.now()
    states = []
    for sub in live_packs(uow, line):
        in_period, allowed = is_usable(sub, now), can_use_packs(line)
        usable = in_period and allowed
        throttled = bool(sub.throttle_kbps) and usable and sub.remaining_kb == 0
        states.append(PackState(pack_of(uow.offers.packs, sub), sub.status, Decimal(sub.remaining_kb) / KB_PER_MB,
                                sub.period_end, sub.auto_renew, usable, throttled, paused=in_period and not allowed))
    return states
