"""The same prepaid expiry scenarios on a real PostgreSQL (skipped when none is configured)."""
import pytest

from tests.conftest import make_core
from tests.unit import expiry_scenarios as scenarios

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("scenario", scenarios.SCENARIOS, ids=lambda f: f.__name__)
def test_scenario_on_postgresql(request, clock, scenario):
    core = make_core(request.getfixturevalue("pg_url"), clock)
    try:
        scenario(core, clock)
    finally:
        core.dispose()
