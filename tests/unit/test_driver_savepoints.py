"""What `DriverConnection` sends to PostgreSQL for the savepoints a unit of work opens and closes:
held back until something is written, one savepoint standing in for those opened right inside it,
and every undo still going back to the state its block began in. (Against a real PostgreSQL the
same paths run in tests/integration/test_group_commit.py and test_hot_path.py.)"""
from types import SimpleNamespace

from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect

from billing.driver_sql import DriverConnection, DriverStatement

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
