"""Prepaid expiry (balance expiry date, subscription end) on SQLite, the clock moved, never slept."""
import pytest

from tests.unit import expiry_scenarios as scenarios


@pytest.mark.parametrize("scenario", scenarios.SCENARIOS, ids=lambda f: f.__name__)
def test_scenario_on_sqlite(core, clock, scenario):
    scenario(core, clock)
