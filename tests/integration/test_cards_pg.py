"""Scratch-card top-ups on a real PostgreSQL: migration 0004 up, down and up; one card raced for
by many lines lands once (row locks); wrong PINs counted across two serving processes' pools."""
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from billing.core import Core
from billing.errors import CardAlreadyUsed, TooManyWrongPins, WrongPin
from tests.conftest import make_core
from tests.unit.cards_support import PIN, WRONG_PIN, add_card, check_migration_0004, redeem
from tests.unit.packs_credit_scenarios import PRE, assert_audit_clean, open_prepaid, report

pytestmark = pytest.mark.postgres


def test_migration_0004_runs_up_down_and_up_on_postgresql(pg_url):
    check_migration_0004(pg_url)


def test_twenty_lines_racing_for_one_card_on_postgresql_top_up_once(pg_url, clock):
    core = make_core(pg_url, clock)
    try:
        lines = [f"+99450100{n:04d}" for n in range(20)]
        for msisdn in lines:
            open_prepaid(core, msisdn, balance="0")
        add_card(core, value="5.00")

        def take(msisdn):
            try:
                return redeem(core, msisdn, PIN, f"race-{msisdn}").amount
            except CardAlreadyUsed:
                return None

        with ThreadPoolExecutor(max_workers=20) as pool:
            landed = [amount for amount in pool.map(take, lines) if amount is not None]
        assert landed == [Decimal("5")]
        assert sum(report(core, m).balance for m in lines) == Decimal("5")
        assert_audit_clean(core)
    finally:
        core.dispose()


def test_wrong_pins_sent_at_once_through_two_processes_are_all_counted_on_postgresql(pg_url, clock):
    first = make_core(pg_url, clock)
    second = Core(pg_url, clock=clock)  # its own pool, as another serving process has
    try:
        open_prepaid(first, balance="1.00")
        add_card(first)

        def guess(n):
            try:
                redeem(first if n % 2 else second, PRE, WRONG_PIN, f"guess-{n}")
            except (WrongPin, TooManyWrongPins) as refused:
                return type(refused).__name__

        with ThreadPoolExecutor(max_workers=10) as pool:
            outcomes = list(pool.map(guess, range(10)))
        # the line's row lock serialises them: exactly five are checked, the rest refused unchecked
        assert sorted(outcomes) == ["TooManyWrongPins"] * 5 + ["WrongPin"] * 5
        with pytest.raises(TooManyWrongPins):
            redeem(second, PRE, PIN, "right")
    finally:
        second.dispose()
        first.dispose()
