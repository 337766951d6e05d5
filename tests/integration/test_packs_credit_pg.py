"""The pack, credit and prepaid expiry scenarios on a real PostgreSQL (skipped when none is configured)."""
import pytest

from tests.conftest import make_core
from tests.unit import expiry_scenarios
from tests.unit import packs_credit_scenarios as scenarios

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("scenario", scenarios.SCENARIOS + expiry_scenarios.SCENARIOS, ids=lambda f: f.__name__)
def test_scenario_on_postgresql(request, clock, scenario):
    core = make_core(request.getfixturevalue("pg_url"), clock)
    try:
        scenario(core, clock)
    finally:
        core.dispose()


def test_ten_concurrent_star_700_requests_grant_one_credit_within_the_limit(any_core, clock):
    from concurrent.futures import ThreadPoolExecutor
    from decimal import Decimal

    from billing import services
    from billing.credit import CreditRefused

    scenarios.credit_ready_line(any_core, clock)  # limit 3 AZN: one *700# takes all of it

    def ask(i):
        try:
            with any_core.uow() as uow:
                return services.take_nar_credit(uow, scenarios.PRE, f"race-{i}").amount
        except CreditRefused:
            return None

    with ThreadPoolExecutor(max_workers=10) as pool:
        granted = [a for a in pool.map(ask, range(10)) if a is not None]
    assert granted == [Decimal("3.00")]
    assert scenarios.debt(any_core).nar == Decimal("3.60")
    scenarios.assert_audit_clean(any_core)
