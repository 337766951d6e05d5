"""A statement's rendered text and conversions are those of the dialect asked for, even when an
earlier dialect, freed with its engine, left that dialect its id (the caches are keyed by id)."""
from datetime import datetime

from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.dialects.sqlite.pysqlite import dialect as pysqlite_dialect

from billing.driver_sql import DriverStatement, RowsStatement
from billing.models import Operation

STAMP = {"created_at": Operation.__table__.c.created_at.type}


def test_a_statement_rendered_for_sqlite_is_rendered_again_for_postgresql_that_inherits_its_id():
    statement = DriverStatement("SELECT id FROM operation WHERE key = :key AND created_at < :created_at", binds=STAMP)
    sqlite, postgres = pysqlite_dialect(), psycopg_dialect()
    statement.rendered(sqlite)
    statement._rendered[id(postgres)] = statement._rendered.pop(id(sqlite))  # as if the id were reused
    rendered = statement.rendered(postgres)
    assert rendered.sql == "SELECT id FROM operation WHERE key = %(key)s AND created_at < %(created_at)s"
    when = datetime(2026, 12, 4, 1, 2, 3)
    assert rendered.params({"key": "a", "created_at": when}) == {"key": "a", "created_at": when}


def test_rows_converted_for_sqlite_are_converted_again_for_a_dialect_that_inherits_its_id():
    statement = RowsStatement("INSERT INTO operation (key, created_at) SELECT key, created_at FROM {rows}",
                              ("key", "created_at"), binds=STAMP)
    first, second = pysqlite_dialect(), psycopg_dialect()  # psycopg takes a datetime as it is
    when = datetime(2026, 12, 4, 1, 2, 3)
    assert statement.values([{"key": "a", "created_at": when}], first) == ["a", "2026-12-04 01:02:03.000000"]
    statement._converters[id(second)] = statement._converters.pop(id(first))
    assert statement.values([{"key": "a", "created_at": when}], second) == ["a", when]
