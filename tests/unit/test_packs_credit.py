"""Seeds 002 (internet packs) and 003 (Nar/SOS credit) on SQLite, the clock moved, never slept."""
import pytest

from tests.unit import packs_credit_scenarios as scenarios


@pytest.mark.parametrize("scenario", scenarios.SCENARIOS, ids=lambda f: f.__name__)
def test_scenario_on_sqlite(core, clock, scenario):
    scenario(core, clock)
