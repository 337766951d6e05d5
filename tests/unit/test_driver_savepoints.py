"""What `DriverConnection` sends to PostgreSQL for the savepoints a unit of work opens and closes:
held back until something is written, one savepoint standing in for those opened right inside it,
and every undo still going back to the state its block began in. (Against a real PostgreSQL the
same paths run in tests/integration/test_group_commit.py and test_hot_path.py.)"""
from types import SimpleNamespace

import pytest
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect

from billing.driver_sql import DriverConnection, DriverStatement, SavepointElided

WRITE = DriverStatement("UPDATE subscriber SET language = :language WHERE id = 1")
READ = DriverStatement("SELECT language FROM subscriber WHERE id = 1")


class RecordingCursor:
    def __init__(self):
        self.sent = []
        self.rowcount = 1

    def execute(self, sql, params=None):
        self.sent.append(f"{sql} {params}" if params else sql)

    def fetchall(self):
        return [("az",)]


def connection():
    cursor = RecordingCursor()
    raw = SimpleNamespace(cursor=lambda: cursor, info=SimpleNamespace(transaction_status=2))
    return DriverConnection(raw, psycopg_dialect()), cursor


def test_three_savepoints_opened_together_are_one_and_nothing_is_sent_for_reads():
    driver, cursor = connection()
    for depth in (1, 2, 3):
        driver.command(f"SAVEPOINT uow_{depth}")
    driver.rows(READ, {})
    driver.run(WRITE, {"language": "ru"})
    for depth in (3, 2, 1):
        driver.command(f"RELEASE SAVEPOINT uow_{depth}")
    driver.run(WRITE, {"language": "en"})
    assert cursor.sent == [
        "SELECT language FROM subscriber WHERE id = 1",
        "SAVEPOINT uow_1",
        "UPDATE subscriber SET language = %(language)s WHERE id = 1 {'language': 'ru'}",
        "RELEASE SAVEPOINT uow_1",
        "UPDATE subscriber SET language = %(language)s WHERE id = 1 {'language': 'en'}",
    ]


def test_undoing_an_inner_block_goes_back_to_the_outer_savepoint_and_keeps_it_open():
    driver, cursor = connection()
    driver.command("SAVEPOINT uow_1")
    driver.command("SAVEPOINT uow_2")  # served by uow_1
    driver.run(WRITE, {"language": "ru"})
    driver.rollback_to("uow_2")  # the inner block refused: back to where both began
    driver.run(WRITE, {"language": "en"})  # the outer block goes on
    driver.rollback_to("uow_1")  # and is refused too
    assert cursor.sent == [
        "SAVEPOINT uow_1",
        "UPDATE subscriber SET language = %(language)s WHERE id = 1 {'language': 'ru'}",
        "ROLLBACK TO SAVEPOINT uow_1",
        "UPDATE subscriber SET language = %(language)s WHERE id = 1 {'language': 'en'}",
        "ROLLBACK TO SAVEPOINT uow_1; RELEASE SAVEPOINT uow_1",
    ]


def test_a_savepoint_opened_after_a_write_is_a_savepoint_of_its_own():
    driver, cursor = connection()
    driver.command("SAVEPOINT uow_1")
    driver.run(WRITE, {"language": "ru"})
    driver.command("SAVEPOINT uow_2")  # something changed since uow_1: its own state to go back to
    driver.run(WRITE, {"language": "en"})
    driver.rollback_to("uow_2")
    driver.command("RELEASE SAVEPOINT uow_1")
    driver.run(WRITE, {"language": "az"})
    assert cursor.sent == [
        "SAVEPOINT uow_1",
        "UPDATE subscriber SET language = %(language)s WHERE id = 1 {'language': 'ru'}",
        "SAVEPOINT uow_2",
        "UPDATE subscriber SET language = %(language)s WHERE id = 1 {'language': 'en'}",
        "ROLLBACK TO SAVEPOINT uow_2; RELEASE SAVEPOINT uow_2",
        "RELEASE SAVEPOINT uow_1",
        "UPDATE subscriber SET language = %(language)s WHERE id = 1 {'language': 'az'}",
    ]


def test_a_block_refused_before_it_wrote_anything_sends_nothing():
    driver, cursor = connection()
    driver.command("SAVEPOINT uow_1")
    driver.command("SAVEPOINT uow_2")
    driver.rows(READ, {})
    driver.rollback_to("uow_2")
    driver.rollback_to("uow_1")
    driver.run(WRITE, {"language": "ru"})
    assert cursor.sent == [
        "SELECT language FROM subscriber WHERE id = 1",
        "UPDATE subscriber SET language = %(language)s WHERE id = 1 {'language': 'ru'}",
    ]


def eliding():
    driver, cursor = connection()
    driver.elide = True
    return driver, cursor


def test_elided_savepoints_are_never_sent_and_undoing_a_block_that_only_read_costs_nothing():
    driver, cursor = eliding()
    driver.command("SAVEPOINT uow_1")
    driver.run(WRITE, {"language": "ru"})  # the first member writes and is kept
    driver.command("RELEASE SAVEPOINT uow_1")
    driver.command("SAVEPOINT uow_1")
    driver.command("SAVEPOINT uow_2")
    driver.rows(READ, {})
    driver.rollback_to("uow_2")  # refused after reading only
    driver.command("RELEASE SAVEPOINT uow_1")
    assert cursor.sent == [
        "UPDATE subscriber SET language = %(language)s WHERE id = 1 {'language': 'ru'}",
        "SELECT language FROM subscriber WHERE id = 1",
    ]


def test_undoing_an_elided_block_that_wrote_says_the_transaction_must_run_again_with_savepoints():
    driver, cursor = eliding()
    driver.command("SAVEPOINT uow_1")
    driver.run(WRITE, {"language": "ru"})
    driver.command("SAVEPOINT uow_2")  # opened after the write: only it is clean
    driver.rows(READ, {})
    driver.rollback_to("uow_2")
    with pytest.raises(SavepointElided):
        driver.rollback_to("uow_1")  # the write inside it cannot be undone alone
    assert not any("SAVEPOINT" in sql for sql in cursor.sent)


def test_an_elided_block_that_wrote_inside_an_inner_block_is_not_clean_either():
    driver, _ = eliding()
    driver.command("SAVEPOINT uow_1")
    driver.command("SAVEPOINT uow_2")
    driver.run(WRITE, {"language": "ru"})
    driver.command("RELEASE SAVEPOINT uow_2")  # kept, inside uow_1
    with pytest.raises(SavepointElided):
        driver.rollback_to("uow_1")


def test_a_new_transaction_starts_with_no_elided_savepoint():
    driver, _ = eliding()
    driver.command("SAVEPOINT uow_1")
    driver.run(WRITE, {"language": "ru"})
    driver.forget_deferred()  # committed or rolled back
    driver.command("SAVEPOINT uow_1")
    driver.rollback_to("uow_1")  # nothing written in this one
