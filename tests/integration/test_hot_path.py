"""The round trips a blank SMS saves, and the rules that make saving them safe, on SQLite and a real
PostgreSQL: kept answers are written with the commit (all of a batch in one statement), savepoints
with only reads inside are never sent, and the line is locked and read once, with the recall, for
the report and the charge."""
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import select

from billing import lines, memo, services
from billing.charging import charge_sms
from billing.driver_sql import DriverStatement
from billing.errors import InsufficientBalance
from billing.models import Operation
from sms.service import handle_sms
from tests.integration.test_group_commit import OTHER, RICH, open_lines
from tests.unit.group_commit_support import in_one_batch


@pytest.fixture
def lines_open(any_core):
    open_lines(any_core)
    return any_core


def replies(core, *keys) -> dict:
    """The answers another connection sees committed, by key."""
    with core.reader() as uow:
        rows = uow.session.execute(select(Operation.key, Operation.reply).where(Operation.key.in_(keys)))
        return dict(rows.all())


def test_an_answer_is_written_when_its_transaction_commits_and_dropped_with_an_undone_savepoint(lines_open):
    core = lines_open
    with core.uow() as uow:
        with uow.atomic():
            memo.remember(uow, "kept", {"text": "first"})
            try:
                with uow.atomic():
                    memo.remember(uow, "undone", {"text": "never"})
                    raise InsufficientBalance("refused after answering")
            except InsufficientBalance:
                pass
            # Held, not yet written: this transaction finds it, nobody else does.
            assert memo.recall(uow, "kept") == {"text": "first"}
            assert memo.recall(uow, "undone") is None
            assert replies(core, "kept") == {}
    assert replies(core, "kept", "undone") == {"kept": '{"text": "first"}'}


def test_an_answer_kept_already_is_never_replaced(lines_open):
    core = lines_open
    with core.uow() as uow, uow.atomic():
        memo.remember(uow, "once", {"text": "first"})
    with core.uow() as uow, uow.atomic():  # a twin answered on another connection, after the first
        memo.remember(uow, "once", {"text": "second"})
    assert replies(core, "once") == {"once": '{"text": "first"}'}


def test_the_answers_of_a_batch_are_kept_together_with_their_charges(lines_open):
    core = lines_open

    def ask(msisdn, key):
        return lambda uow: handle_sms(core, msisdn, "2112", "", key)

    outcomes = in_one_batch(core, [ask(RICH, "b1"), ask(OTHER, "b2"), ask(RICH, "b3")])
    assert [o.error for o in outcomes] == [None, None, None]
    kept = replies(core, "b1", "b2", "b3")
    assert sorted(kept) == ["b1", "b2", "b3"]
    assert kept["b1"] == ('{"charged": "0.0200", "flash": true, "outcome": "prepaid-balance", "text": '
                          '"Balansınız: 9.98 AZN. Balans 20 fevral 2027 tarixinədək, abunəlik 19 avqust 2027 '
                          'tarixinədək qüvvədədir."}')
    assert "Balansınız: 9.96 AZN." in kept["b3"] and "Balansınız: 4.98 AZN." in kept["b2"]
    again = handle_sms(core, RICH, "2112", "", "b1")  # a retry: the answer it got, from memory
    assert again.duplicate and again.charged == Decimal(0) and "9.98" in again.text


def test_a_batch_reading_its_lines_ahead_answers_a_retry_from_memory_and_charges_one_line_twice(lines_open):
    core = lines_open
    first = handle_sms(core, RICH, "2112", "", "r1")

    def ask(msisdn, key):
        return lambda uow: handle_sms(core, msisdn, "2112", "", key)

    # Submitted as the SMS service does (by line and key), so on PostgreSQL the batch reads its
    # lines and the answers kept for its keys at its start.
    outcomes = in_one_batch(core, [ask(RICH, "r1"), ask(RICH, "r2"), ask(OTHER, "r3"), ask(RICH, "r4")],
                            lines=[RICH, RICH, OTHER, RICH], keys=["r1", "r2", "r3", "r4"])
    retry, second, other, third = (outcome.result for outcome in outcomes)
    assert [o.error for o in outcomes] == [None, None, None, None]
    assert retry.duplicate and retry.charged == Decimal(0) and retry.text == first.text
    assert "Balansınız: 9.96 AZN." in second.text and "Balansınız: 9.94 AZN." in third.text
    assert "Balansınız: 4.98 AZN." in other.text
    assert services.balance_report(core.reader(), RICH).balance == Decimal("9.94")
    assert sorted(replies(core, "r1", "r2", "r3", "r4")) == ["r1", "r2", "r3", "r4"]
    with core.reader() as uow:
        assert services.audit(uow) == []


def test_a_locked_line_read_again_after_any_other_statement_is_read_again(lines_open):
    core = lines_open
    with core.uow() as uow, uow.atomic():
        first = lines.snapshot(uow, RICH, lock=True)
        driver = uow.driver()
        sent, cursor = [], driver._cursor
        driver._cursor = _Recording(cursor, sent)
        assert lines.snapshot(uow, RICH, lock=True) == first
        assert sent == []  # nothing in between: answered from the first read
        driver._cursor = cursor
        services.set_language(uow, RICH, "ru")  # through the ORM
        assert lines.snapshot(uow, RICH, lock=True).language == "ru"
        uow.connection().exec_driver_sql(f"UPDATE subscriber SET roaming = true WHERE msisdn = '{RICH}'")
        assert lines.snapshot(uow, RICH, lock=True).roaming is True
        services.charge_sms(uow, RICH, "2112", "after-reads")  # through the driver
        assert lines.snapshot(uow, RICH, lock=True).balance_units == first.balance_units - 200
    assert services.balance_report(core.reader(), RICH).balance == Decimal("9.98")


class _Recording:
    """A driver cursor that notes each statement it is given."""

    def __init__(self, cursor, sent):
        self._cursor, self._sent = cursor, sent

    def execute(self, sql, *args, **kwargs):
        self._sent.append(sql)
        return self._cursor.execute(sql, *args, **kwargs)

    def executemany(self, sql, *args, **kwargs):
        self._sent.append(sql)
        return self._cursor.executemany(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._cursor, name)


def test_a_read_that_fails_in_a_batch_leaves_nobody_told_done_unless_committed(lines_open):
    # On PostgreSQL a savepoint with only reads inside is not sent yet, so a failing read aborts
    # the whole transaction: then every member must hear the failure, none a false "done".
    core = lines_open
    broken = DriverStatement("SELECT id FROM no_such_table")

    def failing_read(uow):
        with uow.atomic():
            broken.rows(uow, {})

    outcomes = in_one_batch(core, [lambda uow: services.charge_sms(uow, RICH, "2112", "before"), failing_read,
                                   lambda uow: services.charge_sms(uow, OTHER, "2112", "after")])
    assert outcomes[1].error is not None
    told_done = {key for key, outcome in zip(("before", "after"), (outcomes[0], outcomes[2]))
                 if outcome.error is None}
    assert set(replies(core, "before", "after")) == told_done
    if core.engine.dialect.name == "postgresql":
        assert told_done == set()
    else:  # a failed statement leaves SQLite's transaction usable: only the failing member is undone
        assert told_done == {"before", "after"}
    assert core.group_commit.submit(lambda uow: services.charge_sms(uow, RICH, "2112", "next")).fee == Decimal("0.02")


@pytest.mark.postgres
def test_a_blank_sms_on_postgresql_takes_four_statements_and_its_commit(pg_url, clock, monkeypatch):
    from tests.conftest import make_core

    core = make_core(pg_url, clock)
    try:
        with core.uow() as uow, uow.atomic():
            services.add_subscriber(uow, RICH, "prepaid", balance=Decimal("10.00"))
        handle_sms(core, RICH, "2112", "", "warm-up")  # the pool's connection, psycopg's prepared statements
        sent = []
        for method in ("execute", "executemany"):
            original = getattr(psycopg.Cursor, method)

            def counted(self, query, *args, _original=original, **kwargs):
                sent.append(" ".join(str(query).split())[:40])
                return _original(self, query, *args, **kwargs)
            monkeypatch.setattr(psycopg.Cursor, method, counted)
        reply = handle_sms(core, RICH, "2112", "", "counted")
        assert reply.charged == Decimal("0.02") and "9.96" in reply.text
        assert sent == [
            ";",  # the pool's ping at checkout
            "SELECT id, msisdn, plan, status, languag",  # the line locked, and an answer kept before?
            "SAVEPOINT uow_1",  # held back until something is written; one for its three blocks
            "WITH claimed AS (INSERT INTO operation (",  # claim + balance + ledger entry
            "INSERT INTO operation (key, kind, subscr",  # the answer, kept with the commit
        ]
    finally:
        core.dispose()


@pytest.mark.postgres
def test_a_batch_of_blank_sms_on_postgresql_is_three_statements(pg_url, clock, monkeypatch):
    from tests.conftest import make_core

    core = make_core(pg_url, clock)
    try:
        open_lines(core)
        handle_sms(core, RICH, "2112", "", "warm-up")
        sent = []
        original = psycopg.Cursor.execute

        def counted(self, query, *args, **kwargs):
            sent.append(" ".join(str(query).split())[:40])
            return original(self, query, *args, **kwargs)
        monkeypatch.setattr(psycopg.Cursor, "execute", counted)

        def ask(msisdn, key):
            return lambda uow: handle_sms(core, msisdn, "2112", "", key)

        outcomes = in_one_batch(core, [ask(RICH, "s1"), ask(OTHER, "s2")], lines=[RICH, OTHER], keys=["s1", "s2"])
        assert [o.error for o in outcomes] == [None, None]
        assert "Balansınız: 9.96 AZN." in outcomes[0].result.text
        assert "Balansınız: 4.98 AZN." in outcomes[1].result.text
        batch = sent[sent.index("WITH taken AS MATERIALIZED (SELECT id, m"):]
        assert batch == [
            # the batch's lines locked and read, unless held elsewhere, with the answers kept for its keys
            "WITH taken AS MATERIALIZED (SELECT id, m",
            "WITH input AS (SELECT * FROM json_to_rec",  # both members' claims, balances and entries
            "INSERT INTO operation (key, kind, subscr",  # both answers, kept with the commit
        ]
        assert core.group_commit.redone == 0
        assert services.balance_report(core.reader(), RICH).balance == Decimal("9.96")
        assert services.balance_report(core.reader(), OTHER).balance == Decimal("4.98")
        with core.reader() as uow:
            assert services.audit(uow) == []
    finally:
        core.dispose()


def test_a_batch_of_blank_sms_on_sqlite_is_four_statements_and_a_line_charged_twice_four_more(core, monkeypatch):
    import billing.uow

    open_lines(core)
    handle_sms(core, RICH, "2112", "", "warm-up")
    sent = []
    original = billing.uow.driver_for

    def recorded(connection):
        driver = original(connection)
        if not isinstance(driver._cursor, _Recording):
            driver._cursor = _Recording(driver._cursor, sent)
        return driver
    monkeypatch.setattr(billing.uow, "driver_for", recorded)

    def ask(msisdn, key):
        return lambda uow: handle_sms(core, msisdn, "2112", "", key)

    outcomes = in_one_batch(core, [ask(RICH, "s1"), ask(OTHER, "s2"), ask(RICH, "s3")],
                            lines=[RICH, OTHER, RICH], keys=["s1", "s2", "s3"])
    assert [o.error for o in outcomes] == [None, None, None]
    assert "Balansınız: 9.96 AZN." in outcomes[0].result.text
    assert "Balansınız: 4.98 AZN." in outcomes[1].result.text
    assert "Balansınız: 9.94 AZN." in outcomes[2].result.text
    start = next(i for i, sql in enumerate(sent) if sql.startswith("SELECT msisdn, id, msisdn"))
    claims = [  # each one statement over all the claims held so far (RowsStatement)
        "INSERT INTO operation (key, kind, subscr",  # the claims
        "UPDATE subscriber SET balance_units = ba",  # their lines' balances
        "INSERT INTO ledger_entry (operation_id, ",  # their entries
    ]
    assert [sql[:40] for sql in sent[start:]] == [
        "SELECT msisdn, id, msisdn, plan, status,",  # the batch's lines read, with the answers kept for its keys
        *claims,  # s1's and s2's: s3 reads its line again, after them
        "SELECT id, msisdn, plan, status, languag",
        *claims,  # s3's, with the commit
        "INSERT INTO operation (key, kind, subscr",  # the three answers
    ]  # no savepoint sent
    assert core.group_commit.redone == 0
    assert services.balance_report(core.reader(), RICH).balance == Decimal("9.94")
    assert services.balance_report(core.reader(), OTHER).balance == Decimal("4.98")
    assert set(replies(core, "s1", "s2", "s3")) == {"s1", "s2", "s3"}
    with core.reader() as uow:
        assert services.audit(uow) == []


def test_a_held_claim_whose_key_was_taken_runs_the_batch_again_and_charges_nobody_twice(lines_open):
    """A batch holds its SMS fees' claims until one statement makes them all; a key another
    transaction claimed meanwhile (here: before, with no answer kept, so the batch could not know)
    makes that statement claim fewer than it was given: the batch runs again one claim a charge."""
    core = lines_open
    with core.uow() as uow:
        uow.connection().exec_driver_sql(
            "INSERT INTO operation (key, kind, created_at) VALUES ('taken', 'elsewhere', CURRENT_TIMESTAMP)")
        uow.commit()
    outcomes = in_one_batch(core, [lambda uow: charge_sms(uow, RICH, "2112", "taken"),
                                   lambda uow: charge_sms(uow, OTHER, "2112", "free")], lines=[RICH, OTHER])
    assert [o.error for o in outcomes] == [None, None]
    assert outcomes[0].result.duplicate and outcomes[0].result.fee == Decimal("0")
    assert (outcomes[1].result.duplicate, outcomes[1].result.fee) == (False, Decimal("0.02"))
    assert core.group_commit.redone == 1
    assert services.balance_report(core.reader(), RICH).balance == Decimal("10.00")
    assert services.balance_report(core.reader(), OTHER).balance == Decimal("4.98")
    with core.reader() as uow:
        assert services.audit(uow) == []


def test_a_held_claim_goes_with_its_member_and_is_written_before_any_later_statement(lines_open):
    """A member that fails after its fee was held leaves nothing (no statement was sent for it, so
    the batch need not run again); a later member that reads the same line reads it after the
    claims held so far were written."""
    core = lines_open

    def charge_then_fail(uow):
        charge_sms(uow, RICH, "2112", "undone")
        raise ZeroDivisionError("after the fee")

    first, failed, other, second = in_one_batch(
        core, [lambda uow: charge_sms(uow, RICH, "2112", "first"), charge_then_fail,
               lambda uow: charge_sms(uow, OTHER, "2112", "other"), lambda uow: charge_sms(uow, RICH, "2112", "second")],
        lines=[RICH, RICH, OTHER, RICH])
    assert isinstance(failed.error, ZeroDivisionError)
    assert first.result.report.balance == Decimal("9.98") and second.result.report.balance == Decimal("9.96")
    assert other.result.report.balance == Decimal("4.98")
    assert core.group_commit.redone == 0
    assert services.balance_report(core.reader(), RICH).balance == Decimal("9.96")
    with core.reader() as uow:
        assert services.audit(uow) == []
        assert uow.session.execute(select(Operation.key).where(Operation.key == "undone")).first() is None
