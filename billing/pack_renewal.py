"""What time does to packs (seed 002): renewal at the end of each 30-day period, retries for 90
days, the 24-hour leftover, lapses, and the suspension rules. Worker jobs take the core.

Our reading of the seed (docs/rules.md):
- at period end an auto-renewing pack is renewed when the balance covers its price; the unused
  volume of the old period is annulled (a fresh period starts with the full volume);
- when it cannot be renewed, the unused rest stays usable for `leftover_hours` (24 h) after the
  expiry and renewal is retried every `retry_every_hours` and at every top-up, for 90 days;
  after 90 days the pack lapses and data is charged by the tariff;
- a suspended line is not renewed (a prepaid line whose balance expired is one-way suspended:
  billing.validity); reactivated within the 90 days (by a top-up, for an expired balance) it gets
  one renewal attempt: paid -> renewed, not paid -> cancelled (SMS), data then by the tariff;
- a postpaid line suspended at will renews only after a payment made once it is active again.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select

from . import ledger, lines, outbox, validity
from .locks import locked
from .models import PackSubscription, Subscriber
from .money import fmt_exact, to_units
from .msisdn import mask
from .packs import end, live_packs, pack_of, start_period

log = logging.getLogger("billing.pack_renewal")


RENEWAL_FAILED = {"balance": "pack-renewal-failed", "suspended": "pack-renewal-held",
                  "payment-needed": "pack-renewal-needs-payment"}


def _notify(uow, line: Subscriber, sub: PackSubscription, template: str, key: str, **extra) -> None:
    params = {"pack": sub.pack_code, "volume_mb": sub.volume_mb, "expires": f"{sub.period_end:%Y-%m-%d}", **extra}
    outbox.enqueue(uow, line, template, params, key=f"{key}:{template}")


def try_renew(uow, line: Subscriber, sub: PackSubscription, start: datetime, key: str) -> bool:
    """Charge the pack's current price and start a new period; False when the balance is short."""
    pack = pack_of(uow.offers.packs, sub)
    if not _may_spend(uow, line) or (line.plan == "prepaid" and line.balance_units < to_units(pack.price)):
        return False
    op = ledger.open_operation(uow, key, "pack-renewal", line)
    if op is None:
        return False
    ledger.charge(uow, line, pack.price, op, f"pack:{pack.code}")
    start_period(uow.offers.packs, sub, start)
    sub.renewals += 1
    _notify(uow, line, sub, "pack-renewed", key, price=fmt_exact(pack.price))
    outbox.notify_balance_change(uow, line, op, "pack")
    log.info("pack %s renewed for %s", sub.pack_code, mask(line.msisdn))
    return True


def _may_spend(uow, line: Subscriber) -> bool:
    return validity.may_spend(line, uow.clock.now().date())


def _await_renewal(rules, sub: PackSubscription, now: datetime) -> None:
    sub.status = "awaiting-renewal"
    sub.leftover_until = sub.period_end + timedelta(hours=rules.leftover_hours)
    sub.retry_until = sub.period_end + timedelta(days=rules.renewal_window_days)
    sub.next_attempt_at = now + timedelta(hours=rules.retry_every_hours)


def _at_period_end(uow, line: Subscriber, sub: PackSubscription, now: datetime) -> None:
    # A late worker must not start a period that is already over: renew from now then.
    late = now - sub.period_end >= timedelta(hours=uow.offers.packs.leftover_hours)
    start = now if late else sub.period_end
    key = f"pack-renewal:{sub.id}:{sub.period_end:%Y%m%dT%H%M%S}"
    if not sub.renew_after_payment and try_renew(uow, line, sub, start, key):
        return
    _await_renewal(uow.offers.packs, sub, now)
    suspended = not _may_spend(uow, line)
    if suspended:
        sub.held_by_suspension = True
        sub.next_attempt_at = now  # looked at on every run until the line is active again
    if sub.renew_after_payment:
        sub.next_attempt_at = None  # only a payment renews it
    # Why it was not renewed decides what the subscriber is asked to do (seed 002): wait for money
    # (we retry), reactivate the line, or make a payment after a suspension at will.
    reason = ("payment-needed" if sub.renew_after_payment else "suspended" if suspended else "balance")
    _notify(uow, line, sub, RENEWAL_FAILED[reason], key, retry_until=f"{sub.retry_until:%Y-%m-%d}",
            leftover_until=f"{sub.leftover_until:%Y-%m-%dT%H:%M}", reason=reason)
    log.info("pack %s of %s not renewed (status %s)", sub.pack_code, mask(line.msisdn),
             validity.status_now(line, now.date()))


def _retry(uow, line: Subscriber, sub: PackSubscription, now: datetime) -> None:
    key = f"pack-renewal:{sub.id}:{now:%Y%m%dT%H%M%S}"
    if not _may_spend(uow, line):
        sub.held_by_suspension = True
        sub.next_attempt_at = now
        return
    if sub.renew_after_payment:
        sub.next_attempt_at = None
        return
    if try_renew(uow, line, sub, now, key):
        return
    if sub.held_by_suspension:
        # Seed 002: reactivated within 90 days -> renewed if the balance suffices, else cancelled.
        end(sub, "cancelled", now)
        _notify(uow, line, sub, "pack-cancelled", key)
        log.info("pack %s of %s cancelled after reactivation", sub.pack_code, mask(line.msisdn))
        return
    sub.next_attempt_at = now + timedelta(hours=uow.offers.packs.retry_every_hours)


def _each_due(core, where, step) -> int:
    """Run the step for every pack matching `where`, one transaction each, line locked first."""
    done = 0
    with core.uow() as uow:
        now = uow.clock.now()
        ids = uow.session.execute(
            select(PackSubscription.id, PackSubscription.subscriber_id).where(where(now)).order_by(PackSubscription.id)
        ).all()
        for sub_id, line_id in ids:
            line = locked(uow, Subscriber, line_id)
            sub = locked(uow, PackSubscription, sub_id)
            if step(uow, line, sub, now):
                done += 1
            uow.commit()
    return done


def _renewal_step(uow, line, sub, now) -> bool:
    if sub.status == "active" and sub.auto_renew and sub.period_end <= now:
        _at_period_end(uow, line, sub, now)
        return True
    if sub.status == "awaiting-renewal" and now < sub.retry_until and sub.next_attempt_at is not None \
            and sub.next_attempt_at <= now:
        _retry(uow, line, sub, now)
        return sub.status == "active" or sub.status == "cancelled"
    return False


def run_pack_renewals(core) -> int:
    """Worker job: renew packs at period end and retry failed renewals. Returns packs handled."""
    return _each_due(core, lambda now: or_(
        and_(PackSubscription.status == "active", PackSubscription.auto_renew.is_(True),
             PackSubscription.period_end <= now),
        and_(PackSubscription.status == "awaiting-renewal", PackSubscription.next_attempt_at <= now,
             PackSubscription.retry_until > now),
    ), _renewal_step)


def _expiry_step(uow, line, sub, now) -> bool:
    if sub.status == "active" and not sub.auto_renew and sub.period_end <= now:
        end(sub, "ended", now)
        _notify(uow, line, sub, "pack-ended", f"pack-end:{sub.id}")
        return True
    if sub.status == "awaiting-renewal" and sub.retry_until <= now:
        end(sub, "lapsed", now)  # seed 002: after 90 days data is charged by the tariff
        _notify(uow, line, sub, "pack-lapsed", f"pack-lapse:{sub.id}")
        log.info("pack %s of %s lapsed after the renewal window", sub.pack_code, mask(line.msisdn))
        return True
    if sub.status == "awaiting-renewal" and sub.remaining_kb and sub.leftover_until <= now:
        sub.remaining_kb = 0  # the 24-hour leftover is over: the rest is annulled
        return True
    return False


def run_pack_expiries(core) -> int:
    """Worker job: end non-renewing packs, annul leftovers after 24 h, lapse packs after 90 days."""
    return _each_due(core, lambda now: or_(
        and_(PackSubscription.status == "active", PackSubscription.auto_renew.is_(False),
             PackSubscription.period_end <= now),
        and_(PackSubscription.status == "awaiting-renewal", PackSubscription.retry_until <= now),
        and_(PackSubscription.status == "awaiting-renewal", PackSubscription.remaining_kb > 0,
             PackSubscription.leftover_until <= now),
    ), _expiry_step)


def renew_after_topup(uow, line: Subscriber, op) -> None:
    """After a top-up: a payment renews what waits for money at once (after credit debt is recovered)."""
    if not _may_spend(uow, line):
        return
    now = uow.clock.now()
    for sub in live_packs(uow, line, lock=True):
        sub.renew_after_payment = False  # seed 002: the payment after reactivation
        if sub.status != "awaiting-renewal":
            continue
        try_renew(uow, line, sub, now, f"{op.key}:pack-renewal:{sub.id}")


def suspend_at_will(uow, msisdn: str) -> int:
    """The subscriber suspends the line (two-way). Postpaid packs then renew only after a payment."""
    line = lines.find(uow, msisdn, lock=True)
    line.status = "suspended-two-way"
    flagged = 0
    if line.plan == "postpaid":
        for sub in live_packs(uow, line, lock=True):
            if sub.auto_renew:
                sub.renew_after_payment = True
                flagged += 1
    uow.commit()
    log.info("%s suspended at will (%d packs wait for a payment)", mask(line.msisdn), flagged)
    return flagged

