"""The friend asked for Nar Credit gets an SMS saying by when to answer. Found by the two-worker
drill: the notice declared its HH:MM as a date, failed to render on every attempt, and was never sent."""
from __future__ import annotations

from decimal import Decimal

from billing import services
from billing.friend_credit import ask_friend_for_credit
from sms.dispatch import Dispatcher, LogTransport

ASKS, FRIEND = "+994553000000", "+994553000001"


def test_the_friend_asked_for_credit_is_told_by_sms_until_when(core):
    with core.uow() as uow:
        services.add_subscriber(uow, ASKS, "prepaid", balance=Decimal("20.00"), language="en")
        services.add_subscriber(uow, FRIEND, "prepaid", balance=Decimal("20.00"), language="en")
        uow.commit()
    with core.uow() as uow:
        ask_friend_for_credit(uow, ASKS, FRIEND, "test-ask-1")
    transport = LogTransport()

    assert Dispatcher(transport).run(core) == 2
    assert (FRIEND, "0553000000 asks you for Nar Credit. Dial *700*1# or reply YES by 12:30.") in transport.sent
