"""Property: whatever mix of requests (and retries of them) arrives, no money is lost or doubled."""
from datetime import datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import services
from billing.clock import FixedClock
from billing.core import Core
from billing.errors import InsufficientBalance

PRE, POST = "+994501234567", "+994551234567"

request = st.one_of(
    st.tuples(st.just("sms"), st.sampled_from([PRE, POST]), st.sampled_from(["2112", "650", "1005", "1003"])),
    st.tuples(st.just("call"), st.sampled_from([PRE, POST]), st.integers(min_value=0, max_value=600)),
    st.tuples(st.just("topup"), st.sampled_from([PRE, POST]),
              st.decimals(min_value=Decimal("0.01"), max_value=Decimal("50"), places=2)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=st.lists(st.tuples(request, st.integers(min_value=0, max_value=2)), max_size=25))
def test_balances_equal_the_ledger_and_retries_change_nothing(tmp_path_factory, requests):
    core = Core(f"sqlite:///{tmp_path_factory.mktemp('prop') / 'b.db'}", clock=FixedClock(datetime(2026, 11, 22, 12)))
    core.upgrade_schema()
    with core.uow() as uow:
        services.add_subscriber(uow, PRE, "prepaid", balance=Decimal("1"))
    with core.uow() as uow:
        services.add_subscriber(uow, POST, "postpaid", bill_day=10)
    # prepaid: the balance; postpaid: what is owed (usage and bill, less the advance payment)
    expected = {PRE: Decimal("1"), POST: Decimal("0")}

    for n, ((kind, msisdn, arg), retries) in enumerate(requests):
        for attempt in range(1 + retries):  # the same key again: a gateway's retry
            with core.uow() as uow:
                try:
                    if kind == "sms":
                        result = services.charge_sms(uow, msisdn, arg, key=f"r{n}")
                        change = -result.fee
                    elif kind == "call":
                        result = services.charge_call(uow, msisdn, arg, "standard", key=f"r{n}")
                        change = -result.fee
                    else:
                        result = services.topup(uow, msisdn, arg, key=f"r{n}")
                        change = result.amount
                except InsufficientBalance:
                    continue
            if attempt == 0:
                assert not result.duplicate
                expected[msisdn] += change if msisdn == PRE else -change  # a payment lowers what is owed
            else:
                assert result.duplicate

    with core.uow() as uow:
        assert services.audit(uow) == []
        pre, post = services.balance_report(uow, PRE), services.balance_report(uow, POST)
    assert pre.balance == expected[PRE]
    assert post.current + post.billed - post.advance == expected[POST]
    core.dispose()
