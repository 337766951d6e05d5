"""Drill: the SMS transport down for a minute. The worker keeps ticking (every 5 s of the injected
clock, as `selfcare worker` does); while smsbox does not answer each notification is retried with
back-off, and once it answers again every one is delivered through the real Kannel, exactly once.

"Down" is smsbox's sendsms unreachable (connection refused, what a stopped smsbox gives): the
transport points at a closed port for the minute, then at the real smsbox."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing import services
from billing.models import OutboxMessage
from sms.dispatch import Dispatcher, KannelTransport
from tests.peers.ports import free_port

pytestmark = pytest.mark.kannel

NOTIFIED = [f"+99450777{n:04d}" for n in range(20)]
DOWN = timedelta(minutes=1)
TICK = timedelta(seconds=5)  # selfcare.worker.run_forever's tick


def rows(core, numbers):
    with core.reader() as uow:
        return uow.session.scalars(select(OutboxMessage).where(OutboxMessage.msisdn.in_(numbers))
                                   .order_by(OutboxMessage.id)).all()


def test_a_minute_without_smsbox_is_retried_with_back_off_and_each_message_delivered_once(kannel_world):
    core, clock, peer = kannel_world.core, kannel_world.clock, kannel_world.peer
    for number in NOTIFIED:
        with core.uow() as uow:
            services.add_subscriber(uow, number, "prepaid", balance=Decimal("1.00"), language="en")
        with core.uow() as uow:
            services.topup(uow, number, Decimal("5.00"), key=f"drill:topup:{number}")  # queues a notification
    down = KannelTransport(f"http://127.0.0.1:{free_port()}/cgi-bin/sendsms", peer.sendsms_user,
                           peer.sendsms_password, timeout_s=2)
    up = KannelTransport(peer.sendsms_url, peer.sendsms_user, peer.sendsms_password, sender="2112")

    went_down = clock.now()
    while clock.now() - went_down < DOWN:
        assert Dispatcher(down).run(core) == 0
        clock.advance(TICK)
    waiting = rows(core, NOTIFIED)
    assert all(r.sent_at is None for r in waiting)
    attempts_while_down = sorted({r.attempts for r in waiting})
    gaps = sorted({(r.next_attempt_at - went_down).total_seconds() for r in waiting})
    # back-off 5 s x 2^attempts (billing/outbox.py): tried at 0, 10 and 30 s, next at 70 s
    assert (attempts_while_down, gaps) == ([3], [70.0])
    assert "kannel sendsms unreachable" in waiting[0].last_error

    back = clock.now()
    delivered_after = None
    while delivered_after is None and clock.now() - back < timedelta(minutes=5):
        Dispatcher(up).run(core)
        if all(r.sent_at is not None for r in rows(core, NOTIFIED)):
            delivered_after = clock.now() - back
        else:
            clock.advance(TICK)
    texts = {number: peer.expect(number).text for number in NOTIFIED}
    print(f"\nDRILL sms-transport-down: {len(NOTIFIED)} notifications, transport down {DOWN.total_seconds():.0f} s "
          f"(clock); attempts while down {attempts_while_down}, next attempt at +{gaps[0]:.0f} s; "
          f"all delivered {delivered_after.total_seconds():.0f} s after it came back")
    assert delivered_after == timedelta(seconds=10)  # at the next attempt after it came back
    assert {r.attempts for r in rows(core, NOTIFIED)} == {4}
    assert texts[NOTIFIED[0]] == ("Balance topped up (top-up): +5.00 AZN. New balance: 6.00 AZN. "
                                  "We never ask you to send money back.")
    assert Dispatcher(up).run(core) == 0  # nothing twice
    with pytest.raises(Exception):
        peer.expect(NOTIFIED[0], timeout_s=1)  # and Kannel got each one once
