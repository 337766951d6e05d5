"""Statements run straight on the database driver's connection, for the paths that run thousands of
times a second (a charge, recalling a kept answer).

SQLAlchemy's per-statement machinery (compiled-cache lookup, execution context, result object) costs
more than the SQL of a charge on SQLite. A `DriverStatement` is written once as plain SQL with
`:name` parameters, rendered once per dialect in the driver's own parameter style, and run on the
unit of work's transaction (`uow.driver()`), so it sees and is part of everything else the unit of
work does. Values still go through the column types' own SQLAlchemy processors, so a date or a
timestamp is stored and read exactly as the ORM stores and reads it.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Callable, Iterable, Mapping

from sqlalchemy import Column, DateTime, event
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")


class DriverStatement:
    """One SQL statement; `binds` names the parameters that need their type's conversion (dates and
    timestamps on SQLite), `columns` the table columns a row comes back as (in the order selected)."""

    def __init__(self, sql: str, *, binds: Mapping[str, TypeEngine] | None = None,
                 columns: Iterable[Column] | None = None, for_update: bool = False,
                 changes_line: str | None = None):
        self.sql = " ".join(sql.split())
        # Row locks where the database has them; SQLite has one writer at a time instead. A locked
        # read's first column is the id of the line (subscriber row) it locks.
        self.for_update = for_update
        # A write that changes no line but the one whose id is this parameter (or those whose ids it
        # lists), and no kept answer: the locked reads of other lines stay good after it.
        self.changes_line = changes_line
        # A plain SELECT changes nothing, so the savepoints held back before it need not be open yet.
        self.reads_only = self.sql[:7].upper() == "SELECT "
        self.binds = dict(binds or {})
        self.columns = tuple(columns or ())
        self.names = tuple(column.name for column in self.columns)
        self._rendered: dict[int, tuple[Dialect, _Rendered]] = {}

    def rendered(self, dialect: Dialect) -> "_Rendered":
        return _for_dialect(self._rendered, dialect, lambda: _Rendered(self, dialect))

    # -- running it on a unit of work's transaction ----------------------------------------------

    def rows(self, uow, params: dict) -> list[tuple]:
        """Every row, each value converted by its column's type."""
        return uow.driver().rows(self, params)

    def row(self, uow, params: dict) -> tuple | None:
        rows = self.rows(uow, params)
        return rows[0] if rows else None

    def mapping(self, uow, params: dict) -> dict | None:
        """The first row as {column name: value}."""
        row = self.row(uow, params)
        return None if row is None else dict(zip(self.names, row))

    def scalar(self, uow, params: dict):
        row = self.row(uow, params)
        return None if row is None else row[0]

    def run(self, uow, params: dict) -> int:
        """For statements that return no rows: how many rows they changed."""
        return uow.driver().run(self, params)


class RowsStatement:
    """SQLite: a write over the rows of a batch in one statement, where `executemany` runs it once a
    row (binding, stepping and resetting each time; 2-3% of a charge in a batch of 16,
    bench/README.md). `{rows}` in the SQL stands for the rows as a table of `columns`; the text is
    rendered once for each count of rows (`VALUES (?, ?), (?, ?), ...`). `binds` and `changes_line`
    are `DriverStatement`'s."""

    def __init__(self, sql: str, columns: Iterable[str], *, binds: Mapping[str, TypeEngine] | None = None,
                 changes_line: str | None = None):
        self.sql = " ".join(sql.split())
        if "{rows}" not in self.sql:
            raise ValueError("a RowsStatement names its rows as {rows}")
        self.columns = tuple(columns)
        self.binds = dict(binds or {})
        self.changes_line = changes_line
        self._by_count: dict[int, str] = {}
        self._converters: dict[int, tuple[Dialect, tuple]] = {}

    def rendered(self, count: int) -> str:
        sql = self._by_count.get(count)
        if sql is None:
            names = ", ".join(f"column{index} AS {name}" for index, name in enumerate(self.columns, 1))
            row = "(" + ", ".join("?" * len(self.columns)) + ")"
            sql = self._by_count[count] = self.sql.replace(
                "{rows}", f"(SELECT {names} FROM (VALUES {', '.join([row] * count)}))")
        return sql

    def values(self, rows: list[dict], dialect: Dialect) -> list:
        """The rows' values in the order of the rendered text's parameters, converted by their types."""
        pairs = _for_dialect(self._converters, dialect, lambda: tuple(
            (name, _bind_processor(self.binds[name], dialect) if name in self.binds else None)
            for name in self.columns))
        return [row[name] if convert is None else convert(row[name]) for row in rows for name, convert in pairs]

    def run(self, uow, rows: list[dict]) -> int:
        """How many rows it changed."""
        return uow.driver().run_rows(self, rows)


class _Rendered:
    """A statement in one dialect: its SQL in the driver's parameter style and its conversions."""

    def __init__(self, statement: DriverStatement, dialect: Dialect):
        sql = statement.sql + (" FOR UPDATE" if statement.for_update and dialect.name != "sqlite" else "")
        if dialect.paramstyle in ("pyformat", "format"):
            self.sql = _PARAMETER.sub(r"%(\1)s", sql.replace("%", "%%"))
        elif dialect.paramstyle in ("named", "qmark"):
            # sqlite3 takes :name itself; qmark is only what SQLAlchemy renders for it
            self.sql = sql
        else:
            raise NotImplementedError(f"driver parameter style {dialect.paramstyle!r}")
        self.bind = tuple((name, processor) for name, kind in statement.binds.items()
                          if (processor := _bind_processor(kind, dialect)) is not None)
        processors = [column.type.dialect_impl(dialect).result_processor(dialect, None)
                      for column in statement.columns]
        self.convert = tuple((index, processor) for index, processor in enumerate(processors) if processor)

    def params(self, params: dict) -> dict:
        if self.bind:
            params = dict(params)
            for name, processor in self.bind:
                params[name] = processor(params[name])
        return params

    def result(self, rows: list) -> list[tuple]:
        if not self.convert:
            return rows
        converted = []
        for row in rows:
            values = list(row)
            for index, processor in self.convert:
                values[index] = processor(values[index])
            converted.append(tuple(values))
        return converted


_INFO_KEY = "billing.driver_sql"


def driver_for(connection) -> "DriverConnection":
    """The driver connection under a SQLAlchemy connection that has begun its transaction. Kept with
    the pooled connection, so its cursor (and PostgreSQL's prepared statements) outlive one checkout."""
    record = connection.connection
    driver = record.info.get(_INFO_KEY)
    if driver is None or driver._raw is not record.driver_connection:
        driver = record.info[_INFO_KEY] = DriverConnection(record.driver_connection, connection.dialect)
    driver.forget_deferred()  # nothing held back from an earlier transaction counts
    return driver


def watch_other_statements(engine) -> None:
    """Install on every engine: whatever SQLAlchemy or the ORM runs on a connection goes after the
    statements its driver connection held back, so it lands inside the savepoint it was meant for,
    and makes a locked row read before it stale (it may have changed that row)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(connection, _cursor, _statement, _parameters, _context, _executemany):
        driver = connection.connection.info.get(_INFO_KEY)
        if driver is not None:
            driver.forget_locked()
            if driver.before_statement is not None:
                driver.write_held_first()
            if driver._deferred:
                driver.send_deferred()
            if driver._elided and _statement.lstrip()[:7].upper() != "SELECT ":
                driver.before_write()


def _for_dialect(cache: dict, dialect: Dialect, make: Callable[[], object]):
    """What `make()` gave for this dialect, made once. The cache is keyed by id() and keeps the
    dialect beside it, compared: a dialect freed with its engine could leave its id to the next
    engine's, of another database (SQLite's `:name` text went to PostgreSQL once, in the suite)."""
    cached = cache.get(id(dialect))
    if cached is None or cached[0] is not dialect:
        cached = cache[id(dialect)] = (dialect, make())
    return cached[1]


def _bind_processor(kind: TypeEngine, dialect: Dialect):
    """How a value of `kind` goes to this dialect's driver; None when as it is."""
    processor = kind.dialect_impl(dialect).bind_processor(dialect)
    return None if processor is None else _faster(kind, dialect, processor)


def _faster(kind: TypeEngine, dialect: Dialect, processor):
    """SQLite stores a timestamp as text in SQLAlchemy's format (YYYY-MM-DD HH:MM:SS.ffffff); for a
    plain datetime `isoformat` writes the same text at half the cost, and SQLAlchemy does the rest."""
    if dialect.name != "sqlite" or not isinstance(kind, DateTime) or \
            getattr(kind.dialect_impl(dialect), "_storage_format", None) != _SQLITE_DATETIME:
        return processor

    def process(value):
        if type(value) is datetime and value.tzinfo is None and value.year >= 1000:
            return value.isoformat(" ", "microseconds")
        return processor(value)
    return process


_SQLITE_DATETIME = "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"


class DriverConnection:
    """The driver connection of one transaction, with one reused cursor.

    On PostgreSQL each statement is a round trip, so the savepoint statements a unit of work opens
    and releases around every caller of a shared transaction are held back (`command`) and sent
    together just before the next statement that changes something: `RELEASE SAVEPOINT a; SAVEPOINT
    a` is one round trip instead of two, a savepoint with nothing run inside it is never sent, and
    one with only reads inside it neither (undoing reads undoes nothing). Held-back statements take
    no parameters, and a commit or a rollback makes them moot.

    A transaction that can be run again from the start when one of its savepoints has to be undone
    (a batch of group commit: nobody has heard its outcome yet) may *elide* its savepoints
    (`elide = True`): none is sent at all, only counted, noting which ones saw a write. A block undone
    with nothing written inside costs nothing as before (a refusal comes before the charge's write);
    undoing one that did write raises `SavepointElided`, the transaction must not commit, and its
    owner runs it again with savepoints. On PostgreSQL a subtransaction per batch member costs the
    server more than the member's own statements (bench/README.md).

    A locked read of a line is answered again from its rows while nothing of ours can have changed
    that line: the row is locked by this transaction, so nobody else can have. A write that names
    the one line it changes (`changes_line`) forgets that line's reads, any other write (and any
    statement of SQLAlchemy's) all of them, and undoing a savepoint those read since the batch's
    start (`answer_locked(..., kept=True)`: rows read before any savepoint, so no undo reaches
    back past them). So the report's read and the charge's read of one line are one, and the lines
    a batch of group commit locks at its start are not read again by each member.
    """

    def __init__(self, dbapi_connection, dialect: Dialect):
        self.dialect = dialect
        self._raw = dbapi_connection
        self._cursor = dbapi_connection.cursor()
        self._defers = dialect.name == "postgresql"
        self._deferred: list[str] = []
        self._same_as: dict[str, str] = {}  # savepoint -> the outer one that stands in for it (`command`)
        # (statement, its parameters) -> (the line's id, kept through undos, rows): locked reads.
        self._locked: dict[tuple, tuple[int, bool, list]] = {}
        self.elide = False  # savepoints not sent at all (set by the unit of work per transaction)
        # Writes the transaction holds back that any statement must see (a batch's claims,
        # `UnitOfWork.hold(..., seen_by_statements=True)`): made before the next statement is sent.
        self.before_statement: Callable[[], None] | None = None
        self._elided: list[str] = []  # savepoints open but never sent, outermost first
        self._clean_from = 0  # those from this index on saw no write

    def rows(self, statement: DriverStatement, params: dict) -> list[tuple]:
        if statement.for_update and self._locked:
            held = self._locked.get((statement, frozenset(params.items())))
            if held is not None:
                return held[2]
        if self.before_statement is not None:
            self.write_held_first()
        rendered = statement.rendered(self.dialect)
        cursor = self._cursor
        if not statement.reads_only:
            self.before_write(statement, params)
        cursor.execute(rendered.sql, rendered.params(params))
        # fetchall steps the statement to its end: nothing is left half-read on the shared cursor.
        rows = rendered.result(cursor.fetchall())
        if statement.for_update and rows:
            self._locked[(statement, frozenset(params.items()))] = (rows[0][0], False, rows)
        return rows

    def answer_locked(self, statement: DriverStatement, params: dict, rows: list[tuple], *,
                      kept: bool = False) -> None:
        """A locked read already run also read what `statement` with `params` would (a wider
        statement over the same rows, same lock): answer it from `rows`. `kept`: read before any
        savepoint was opened, so good even after one is undone."""
        if rows:
            self._locked[(statement, frozenset(params.items()))] = (rows[0][0], kept, rows)

    def forget_lines(self, line_ids) -> None:
        """What was read of these lines may have changed (a write of ours, sent or held)."""
        locked, changed = self._locked, set(line_ids)
        for key in [key for key, (held_id, _, _) in locked.items() if held_id in changed]:
            del locked[key]

    def forget_locked(self) -> None:
        """Something we cannot see into ran (SQLAlchemy's statements): read every line again."""
        self._locked.clear()

    def write_held_first(self) -> None:
        """A statement is about to be sent: the writes held for it go first."""
        write, self.before_statement = self.before_statement, None
        if write is not None:
            write()

    def run(self, statement: DriverStatement, params: dict) -> int:
        if self.before_statement is not None:
            self.write_held_first()
        rendered = statement.rendered(self.dialect)
        self.before_write(statement, params)
        self._cursor.execute(rendered.sql, rendered.params(params))
        return self._cursor.rowcount

    def run_rows(self, statement: RowsStatement, rows: list[dict]) -> int:
        if self.dialect.name != "sqlite":
            raise NotImplementedError("RowsStatement is SQLite's")
        if self.before_statement is not None:
            self.write_held_first()
        line = statement.changes_line
        self.before_write(statement, {line: [row[line] for row in rows]} if line is not None else None)
        self._cursor.execute(statement.rendered(len(rows)), statement.values(rows, self.dialect))
        return self._cursor.rowcount

    def before_write(self, statement: "DriverStatement | RowsStatement | None" = None,
                     params: dict | None = None) -> None:
        """A statement that may change something is about to run: the savepoints it belongs in are
        sent first, or, elided, noted as holding a write; the locked reads it may change are
        forgotten (`statement` with `params`, if it names the one line it changes)."""
        locked = self._locked
        if locked:
            line = statement.changes_line if statement is not None else None
            if line is None:
                locked.clear()
            else:
                changed = params[line]
                self.forget_lines(changed if isinstance(changed, list) else [changed])
        if self._deferred:
            self.send_deferred()
        if self._elided:
            self._clean_from = len(self._elided)

    @property
    def clean_from(self) -> int:
        return self._clean_from

    def wrote_inside(self, clean_from: int, containing: int, open_savepoints: int) -> None:
        """What was just written (held writes, sent) belongs to the `containing` outermost of the
        `open_savepoints` open, not to the others: only those are marked as holding a write, on top
        of `clean_from`, the mark before it was sent. Savepoints this does not count (an ORM
        session's) leave every open one marked."""
        if self.elide and len(self._elided) == open_savepoints:
            self._clean_from = max(clean_from, containing)

    def command(self, sql: str) -> None:
        """A savepoint statement (no parameters): held back on PostgreSQL, run now elsewhere (not at
        all when elided)."""
        if self.elide:
            self._elide(sql)
            return
        if not self._defers:
            self._cursor.execute(sql)
            return
        deferred = self._deferred
        if sql.startswith("SAVEPOINT "):
            if deferred and deferred[-1].startswith("SAVEPOINT "):
                # Opened right inside one not sent yet, with nothing changed in between: both would
                # undo to the same state, so the outer one serves for both (a batch member, its
                # handler and its fee are three savepoints deep: one subtransaction instead of three).
                self._same_as[sql[10:]] = deferred[-1][10:]
                return
            deferred.append(sql)
            return
        name = sql[18:]  # RELEASE SAVEPOINT <name>
        if self._same_as.pop(name, None) is not None:
            return
        if deferred and deferred[-1] == "SAVEPOINT " + name:
            deferred.pop()  # opened and released with nothing in between: neither needs sending
            return
        deferred.append(sql)

    def _elide(self, sql: str) -> None:
        elided = self._elided
        if sql.startswith("SAVEPOINT "):
            elided.append(sql[10:])
            return
        name = sql[18:]  # RELEASE SAVEPOINT <name>
        if not elided or elided[-1] != name:
            raise RuntimeError(f"savepoint {name} released out of order")
        elided.pop()
        self._clean_from = min(self._clean_from, len(elided))

    def rollback_to(self, name: str) -> None:
        """Undo everything since SAVEPOINT `name` and drop the savepoint."""
        locked = self._locked
        if locked:  # a line read after a write inside the savepoint may be read as it was before
            for key in [key for key, (_, kept, _) in locked.items() if not kept]:
                del locked[key]
        if self.elide:
            elided = self._elided
            if not elided or elided[-1] != name:
                raise RuntimeError(f"savepoint {name} undone out of order")
            elided.pop()
            wrote = self._clean_from > len(elided)
            self._clean_from = min(self._clean_from, len(elided))
            if wrote:
                raise SavepointElided(f"savepoint {name} was never sent and something was written inside it")
            if self._defers and self._raw.info.transaction_status == _IN_ERROR:
                raise TransactionFailed(f"a statement failed inside savepoint {name}, which was never sent")
            return
        deferred = self._deferred
        served_by = self._same_as.pop(name, None)  # the outer savepoint standing in for this one
        target = served_by or name
        if deferred and deferred[-1] == f"SAVEPOINT {target}":
            if served_by is None:
                deferred.pop()  # never sent: nothing that changed anything ran inside it
            if self._defers and self._raw.info.transaction_status == _IN_ERROR:
                # A read inside it failed, and with no savepoint to go back to, PostgreSQL has given
                # up the whole transaction: nothing of it may be reported as done.
                raise TransactionFailed(f"a statement failed inside savepoint {name} before it was sent")
            return
        if self._defers:
            deferred.append(f"ROLLBACK TO SAVEPOINT {target}")
            if served_by is None:
                deferred.append(f"RELEASE SAVEPOINT {target}")  # the outer one stays open for its own block
            self.send_deferred()  # now: a failure to undo must surface here, not at a later statement
        else:
            self._cursor.execute(f"ROLLBACK TO SAVEPOINT {name}")
            self._cursor.execute(f"RELEASE SAVEPOINT {name}")

    def send_deferred(self) -> None:
        """Send what was held back, before a statement that is not ours (SQLAlchemy's, the ORM's)."""
        if self._deferred:
            # psycopg runs several statements in one string when none of them takes parameters.
            sql = "; ".join(self._deferred)
            self._deferred.clear()
            self._cursor.execute(sql)

    def forget_deferred(self) -> None:
        """The transaction ends: held-back savepoint statements no longer matter."""
        self._deferred.clear()
        self._same_as.clear()
        self._elided.clear()
        self._clean_from = 0
        self._locked.clear()
        self.before_statement = None


class TransactionFailed(RuntimeError):
    """PostgreSQL aborted the transaction and no savepoint can bring it back."""


class SavepointElided(RuntimeError):
    """A block that wrote must be undone, and its savepoint was elided: the transaction must not
    commit; run it again with savepoints."""


_IN_ERROR = 3  # psycopg.pq.TransactionStatus.INERROR, without importing the driver on SQLite
