"""When `DriverConnection` answers a locked read of a line from rows it read before, and when it
reads the line again: only while nothing of ours can have changed that line. (Against a real
PostgreSQL: tests/integration/test_hot_path.py.)"""
from types import SimpleNamespace

from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect

from billing.driver_sql import DriverConnection, DriverStatement

LINE = DriverStatement("SELECT id, language FROM subscriber WHERE msisdn = :msisdn", for_update=True)
MOVE = DriverStatement("UPDATE subscriber SET balance_units = balance_units - 200 WHERE id = :line_id",
                       changes_line="line_id")
ANY_WRITE = DriverStatement("UPDATE subscriber SET language = 'ru'")


class LinesCursor:
    """Answers a line read with (id, language) of the line whose number ends in its id."""

    def __init__(self):
        self.sent = []
        self.rowcount = 1
        self._last = None

    def execute(self, sql, params=None):
        self.sent.append(sql)
        self._last = params

    def fetchall(self):
        if self._last and "msisdn" in self._last:
            return [(int(self._last["msisdn"][-1]), "az")]
        return []


def connection():
    cursor = LinesCursor()
    raw = SimpleNamespace(cursor=lambda: cursor, info=SimpleNamespace(transaction_status=2))
    return DriverConnection(raw, psycopg_dialect()), cursor


def reads(cursor):
    return sum(sql.startswith("SELECT") for sql in cursor.sent)


def test_a_line_read_locked_is_read_again_only_after_a_write_that_may_change_it():
    driver, cursor = connection()
    assert driver.rows(LINE, {"msisdn": "+994500000001"}) == [(1, "az")]
    driver.rows(LINE, {"msisdn": "+994500000002"})
    driver.run(MOVE, {"line_id": 2})  # changes line 2 only
    driver.rows(LINE, {"msisdn": "+994500000001"})
    assert reads(cursor) == 2  # line 1 answered from the first read
    driver.rows(LINE, {"msisdn": "+994500000002"})
    assert reads(cursor) == 3  # line 2 read again
    driver.run(ANY_WRITE, {})  # may have changed any line
    driver.rows(LINE, {"msisdn": "+994500000001"})
    assert reads(cursor) == 4


def test_lines_read_ahead_before_any_savepoint_outlive_an_undo_and_those_read_inside_do_not():
    driver, cursor = connection()
    driver.answer_locked(LINE, {"msisdn": "+994500000001"}, [(1, "az")], kept=True)  # a batch's read ahead
    driver.command("SAVEPOINT uow_1")
    driver.rows(LINE, {"msisdn": "+994500000002"})
    driver.run(MOVE, {"line_id": 2})
    driver.rows(LINE, {"msisdn": "+994500000002"})  # read after its write, inside the savepoint
    driver.rollback_to("uow_1")
    assert reads(cursor) == 2
    assert driver.rows(LINE, {"msisdn": "+994500000001"}) == [(1, "az")]
    assert reads(cursor) == 2  # read ahead, never written since: still good
    driver.rows(LINE, {"msisdn": "+994500000002"})
    assert reads(cursor) == 3  # the undo took its write back: read as it is now


def test_nothing_read_in_one_transaction_answers_a_read_in_the_next():
    driver, cursor = connection()
    driver.answer_locked(LINE, {"msisdn": "+994500000001"}, [(1, "az")], kept=True)
    driver.forget_deferred()  # the transaction ended
    driver.rows(LINE, {"msisdn": "+994500000001"})
    assert reads(cursor) == 1
