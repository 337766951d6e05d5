"""Shared fixtures: a clock, a billing core on SQLite, and a fresh database on a real PostgreSQL."""
from __future__ import annotations

import os
import uuid
from datetime import datetime

import pytest
from sqlalchemy import create_engine, text

from billing.clock import FixedClock
from billing.core import Core
from tests import peers

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


def _pg_admin_url() -> str | None:
    return os.environ.get("SELFCARE_TEST_PG")


@pytest.fixture
def pg_url():
    """A fresh database on the real PostgreSQL server the test command started."""
    admin_url = _pg_admin_url()
    if not admin_url:
        if peers.required():
            pytest.fail("SELFCARE_TEST_PG is not set but real peers are required (make test sets it)")
        pytest.skip("no PostgreSQL: set SELFCARE_TEST_PG (make test does)")
    name = f"selfcare_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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
