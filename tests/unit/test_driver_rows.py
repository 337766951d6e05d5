"""`RowsStatement`: a batch's write over many rows as one SQLite statement, rendered once for each
count of rows, its values converted as the column types convert them."""
import sqlite3
from datetime import datetime

import pytest
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.dialects.sqlite.pysqlite import dialect as pysqlite_dialect

from billing.driver_sql import DriverConnection, RowsStatement
from billing.models import Operation

CLAIMS = RowsStatement(
    "INSERT INTO operation (key, kind, created_at) SELECT key, kind, created_at FROM {rows} WHERE true "
    "ON CONFLICT (key) DO NOTHING", ("key", "kind", "created_at"),
    binds={"created_at": Operation.__table__.c.created_at.type})
SQLITE = pysqlite_dialect()


def test_the_text_is_rendered_for_the_count_of_rows():
    assert CLAIMS.rendered(2) == (
        "INSERT INTO operation (key, kind, created_at) SELECT key, kind, created_at FROM "
        "(SELECT column1 AS key, column2 AS kind, column3 AS created_at FROM (VALUES (?, ?, ?), (?, ?, ?))) "
        "WHERE true ON CONFLICT (key) DO NOTHING")
    assert CLAIMS.rendered(1).count("(?, ?, ?)") == 1


def test_the_values_come_row_by_row_in_the_order_of_the_columns_timestamps_as_sqlalchemy_stores_them():
    rows = [{"key": "a", "kind": "sms:2112", "created_at": datetime(2026, 12, 4, 1, 2, 3)},
            {"key": "b", "kind": "sms:650", "created_at": datetime(2026, 12, 4, 1, 2, 3, 45)}]
    assert CLAIMS.values(rows, SQLITE) == ["a", "sms:2112", "2026-12-04 01:02:03.000000",
                                           "b", "sms:650", "2026-12-04 01:02:03.000045"]


def test_one_statement_claims_the_new_keys_and_counts_only_those():
    raw = sqlite3.connect(":memory:", isolation_level=None)
    raw.execute("CREATE TABLE operation (id INTEGER PRIMARY KEY, key TEXT UNIQUE, kind TEXT, created_at TEXT)")
    raw.execute("INSERT INTO operation (key, kind, created_at) VALUES ('b', 'sms:2112', '2026-12-01 00:00:00')")
    driver = DriverConnection(raw, SQLITE)
    sent = []
    raw.set_trace_callback(sent.append)
    now = datetime(2026, 12, 4)
    made = driver.run_rows(CLAIMS, [{"key": key, "kind": "sms:2112", "created_at": now} for key in "abc"])
    assert made == 2  # 'b' was taken
    assert len(sent) == 1
    assert raw.execute("SELECT key, created_at FROM operation ORDER BY key").fetchall() == [
        ("a", "2026-12-04 00:00:00.000000"), ("b", "2026-12-01 00:00:00"), ("c", "2026-12-04 00:00:00.000000")]


def test_it_is_sqlites_only():
    class Connection:
        def cursor(self):
            return None

    with pytest.raises(NotImplementedError):
        DriverConnection(Connection(), psycopg_dialect()).run_rows(CLAIMS, [{"key": "a"}])


def test_a_statement_without_its_rows_is_refused():
    with pytest.raises(ValueError):
        RowsStatement("INSERT INTO operation (key) VALUES (:key)", ("key",))
