"""Throwaway databases on the real PostgreSQL that scripts/test-postgres starts and names.

Each test or benchmark run gets a fresh database, made through the admin URL (a role that may
CREATE DATABASE) and dropped after, so runs never see each other's rows and nothing is left behind.
"""
from __future__ import annotations

import os
import uuid

import psycopg
from sqlalchemy.engine import make_url

ADMIN_URL_VARIABLE = "SELFCARE_TEST_PG"  # set by scripts/run-tests from `scripts/test-postgres | tail -1`


def admin_url() -> str | None:
    return os.environ.get(ADMIN_URL_VARIABLE) or None


class ThrowawayDatabases:
    """Fresh databases on one server, each dropped by `drop_all()` (call it in `finally`)."""

    def __init__(self, admin_url: str, prefix: str = "selfcare_test"):
        self.admin_url = make_url(admin_url)
        self.prefix = prefix
        self.made: list[str] = []

    def _admin(self, sql: str) -> None:
        # CREATE/DROP DATABASE cannot run inside a transaction
        conninfo = self.admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(sql)

    def create(self) -> str:
        """The URL of a new empty database (same server, role and driver as the admin URL)."""
        name = f"{self.prefix}_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        # FORCE: connections the code under test left open must not keep the database from going
        for name in self.made:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.made.clear()
