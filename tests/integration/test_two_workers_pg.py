"""Two workers on one PostgreSQL (two serving boxes each run one) at the same moment: every job of
`selfcare worker` (bill runs, line expiries, reminders, pack renewals and expiries, friend-request
lapses, the outbox) does exactly what one worker alone does: nothing billed, renewed, lapsed or
notified twice, nothing sent twice, no job failing on the other's rows."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from billing import services
from billing.clock import FixedClock
from billing.core import Core
from billing.friend_credit import ask_friend_for_credit
from billing.locks import locked
from billing.models import FriendCreditRequest, LedgerEntry, OutboxMessage, PackSubscription, Subscriber
from selfcare import worker
from sms import dispatch
from tests.conftest import make_core

pytestmark = pytest.mark.postgres

SET_UP = datetime(2026, 10, 1, 10, 0)
RUN_AT = datetime(2026, 11, 22, 12, 0)  # after bill day 10, a pack's 30 days, the friends' 30 minutes
POSTPAID, PACKS, ENDING_PACKS, FRIENDS = 120, 120, 40, 20
# prepaid lines whose dates the run meets (a top-up of 0.50 AZN lasts 7 days, of 20 AZN 90 days;
# the number closes 180 days after the balance expires; reminders 3 and 7 days ahead, from 10:00)
DATED = {  # kind: (lines, activated, balance)
    4: (20, date(2026, 10, 1), Decimal("0.50")),  # balance expired 10-08: suspended, told so
    5: (20, date(2026, 8, 26), Decimal("20.00")),  # balance expires 11-24: reminded
    6: (20, date(2026, 5, 1), Decimal("0.50")),  # number closed 11-04: closed, 0.50 forfeited, told so
    7: (20, date(2026, 5, 20), Decimal("0.50")),  # expired 05-27, closes 11-23: suspended and reminded
}


def number(kind: int, n: int) -> str:
    return f"+99455{kind}{n:06d}"


def set_up(url: str) -> None:
    core = make_core(url, FixedClock(SET_UP))
    try:
        with core.uow() as uow:
            for n in range(POSTPAID):
                services.add_subscriber(uow, number(1, n), "postpaid", activated=date(2026, 10, 1), bill_day=10,
                                        current=Decimal("5.37"))
            for n in range(PACKS + ENDING_PACKS):
                services.add_subscriber(uow, number(2, n), "prepaid", balance=Decimal("20.00"),
                                        activated=date(2026, 10, 1))
            for n in range(FRIENDS * 2):
                services.add_subscriber(uow, number(3, n), "prepaid", balance=Decimal("20.00"),
                                        activated=date(2026, 9, 1))
            for kind, (lines, activated, balance) in DATED.items():
                for n in range(lines):
                    services.add_subscriber(uow, number(kind, n), "prepaid", balance=balance, activated=activated)
            uow.commit()
        for n in range(PACKS + ENDING_PACKS):
            with core.uow() as uow:
                services.order_pack(uow, number(2, n), 1, f"setup-order-{n}")
            if n >= PACKS:
                with core.uow() as uow:
                    services.stop_pack_renewal(uow, number(2, n), f"setup-stop-{n}")
        for n in range(FRIENDS):
            with core.uow() as uow:
                ask_friend_for_credit(uow, number(3, 2 * n), number(3, 2 * n + 1), f"setup-ask-{n}")
    finally:
        core.dispose()


def summary(url: str) -> dict:
    core = Core(url)
    try:
        with core.reader() as uow:
            s = uow.session
            return {
                "ledger": sorted(s.execute(select(LedgerEntry.kind, LedgerEntry.account, func.count(),
                                                  func.sum(LedgerEntry.delta_units))
                                           .group_by(LedgerEntry.kind, LedgerEntry.account)).all()),
                "outbox": Counter(s.scalars(select(OutboxMessage.template))),
                "outbox_keys": sorted(s.scalars(select(OutboxMessage.key))),
                "unsent": s.scalar(select(func.count()).where(OutboxMessage.sent_at.is_(None))),
                "packs": Counter(s.scalars(select(PackSubscription.status))),
                "lines": Counter(s.scalars(select(Subscriber.status))),
                "friends": Counter(s.scalars(select(FriendCreditRequest.status))),
                "audit": services.audit(uow),
            }
    finally:
        core.dispose()


def run_workers(url: str, count: int, rounds: int = 2, jobs: list | None = None) -> list[tuple[str, str]]:
    """`count` workers, each its own core (engine and pool, as its own box has), every job run
    `rounds` times, all started together; returns every SMS the workers' transports sent. `jobs`
    gets each worker's counts (job -> what it did, over its rounds)."""
    cores = [Core(url, clock=FixedClock(RUN_AT)) for _ in range(count)]
    start = threading.Barrier(count, timeout=60)
    failed: list = []
    counts = [Counter() for _ in cores]

    def work(core, did: Counter) -> None:
        try:
            start.wait()
            for _ in range(rounds):
                done = worker.run_once(core)
                failed.extend(name for name, result in done.items() if result is None)
                did.update({name: result for name, result in done.items() if isinstance(result, int)})
            while dispatch.dispatch_outbox(core):  # the outbox job sends 100 a tick: drain the rest
                pass
        except BaseException as exc:  # reported by the test thread
            failed.append(exc)

    threads = [threading.Thread(target=work, args=(core, did), name=f"worker-{i}")
               for i, (core, did) in enumerate(zip(cores, counts))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(240)
            assert not thread.is_alive(), "a worker did not finish"
        assert failed == [], f"jobs failed: {failed}"
        if jobs is not None:
            jobs.extend(counts)
        return [sms for core in cores for sms in dispatch._dispatchers.pop(core).transport.sent]
    finally:
        for core in cores:
            core.dispose()


def test_two_workers_at_once_do_exactly_what_one_does(pg_url, monkeypatch):
    monkeypatch.delenv("SELFCARE_SMS_TRANSPORT", raising=False)  # the log transport, which records what it sends
    from tests.peers.postgres import ThrowawayDatabases, admin_url

    databases = ThrowawayDatabases(admin_url())
    try:
        alone_url = databases.create()
        set_up(alone_url)
        set_up(pg_url)
        sent_alone = run_workers(alone_url, 1)
        jobs: list[Counter] = []
        sent_together = run_workers(pg_url, 2, jobs=jobs)
        alone, together = summary(alone_url), summary(pg_url)
    finally:
        databases.drop_all()

    shared = ("bill-runs", "line-expiries", "expiry-reminders", "pack-renewals", "pack-expiries",
              "friend-request-lapses")
    print("\nDRILL two-workers: " + "; ".join(
        f"{job} {sum(did[job] for did in jobs)} ({' + '.join(str(did[job]) for did in jobs)})" for job in shared)
        + f"; {len(sent_together)} SMS sent, {len(set(sent_together))} distinct")
    assert together == alone
    assert together["audit"] == [] and together["unsent"] == 0
    # pinned: what the scenario makes the jobs do, once each, whichever worker did it
    assert [sum(did[job] for did in jobs) for job in shared] == [POSTPAID, 60, 40, PACKS, ENDING_PACKS, FRIENDS]
    by_the_jobs = {"bill-issued": POSTPAID, "balance-expired": 40, "line-closed": 20, "balance-expiring": 20,
                   "subscription-ending": 20, "friend-credit-lapsed": FRIENDS}
    assert {template: together["outbox"][template] for template in by_the_jobs} == by_the_jobs
    assert together["packs"] == Counter({"active": PACKS, "ended": ENDING_PACKS})
    assert together["friends"] == Counter({"lapsed": FRIENDS})
    lines = 2 * FRIENDS + PACKS + ENDING_PACKS + POSTPAID + 20  # the reminded balances stay active
    assert together["lines"] == Counter({"active": lines, "expired": 40, "deactivated": 20})
    assert sorted(sent_together) == sorted(sent_alone)
    assert len(sent_together) == len(together["outbox_keys"])  # every message sent, none twice
    assert max(Counter(sent_together).values()) == 1


def test_a_locked_row_is_read_as_the_lock_found_it_not_as_the_session_remembers(pg_url, clock):
    first, second = make_core(pg_url, clock), Core(pg_url, clock=clock)
    try:
        with first.uow() as uow:
            services.add_subscriber(uow, "+994501112233", "prepaid", balance=Decimal("10.00"))
        with first.uow() as job:  # a worker's long session: the line loaded once...
            line_id = job.session.scalar(select(Subscriber.id).where(Subscriber.msisdn == "+994501112233"))
            stale = job.session.get(Subscriber, line_id)
            job.commit()
            with second.uow() as request:  # ...then a request elsewhere spends from it
                services.topup(request, "+994501112233", "5", "other-box-topup")
            again = locked(job, Subscriber, line_id)
            assert again is stale and again.balance_units == 150000  # 15.00 AZN, not the 10.00 it had
    finally:
        first.dispose()
        second.dispose()
