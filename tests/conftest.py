"""Shared fixtures: a clock, a billing core on SQLite, and a fresh database on a real PostgreSQL."""
from __future__ import annotations

from datetime import datetime

import pytest

from billing.clock import FixedClock
from billing.core import Core
from tests import peers
from tests.peers.postgres import ThrowawayDatabases, admin_url

START = datetime(2026, 11, 22, 12, 0)


@pytest.fixture
def clock():
    return FixedClock(START)


def make_core(url: str, clock) -> Core:
    core = Core(url, clock=clock)
    core.upgrade_schema()
    return core


@pytest.fixture
def core(tmp_path, clock):
    core = make_core(f"sqlite:///{tmp_path / 'billing.db'}", clock)
    yield core
    core.dispose()


@pytest.fixture
def pg_url():
    """A fresh database on the real PostgreSQL server the test command started."""
    admin = admin_url()
    if not admin:
        if peers.required():
            pytest.fail("SELFCARE_TEST_PG is not set but real peers are required (make test sets it)")
        pytest.skip("no PostgreSQL: set SELFCARE_TEST_PG (make test does)")
    databases = ThrowawayDatabases(admin)
    try:
        yield databases.create()
    finally:
        databases.drop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_core(request, tmp_path, clock):
    """The same scenario on the embedded default and on the production database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'billing.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    core = make_core(url, clock)
    yield core
    core.dispose()


# -- a thread a test left behind must not hold the suite past its end ------------------------

_exit_status: list[int] = []


def pytest_sessionfinish(session, exitstatus):
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Python joins every non-daemon thread at exit, so one left blocked by a failed test (a barrier
    whose party died, a socket never answered) would keep the finished run alive until CI's own
    limit. Name them, and end with the status of the run."""
    import os
    import sys
    import threading

    left = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    for thread in left:
        thread.join(5)
    left = [t for t in left if t.is_alive()]
    if left and _exit_status:
        print(f"\nthreads still running after the tests, not waited for: {[t.name for t in left]}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status[-1])
