"""The unit of work: one transaction, the clock and the data books (tariffs, offers), handed to
every service.

Services end with `uow.commit()`. Inside `with uow.atomic():` those commits only flush, and the
block commits once at its end, so several services compose into one transaction (a fee and the
action it pays for, a reply and what it reports). A nested `atomic()` is a savepoint: a domain
error raised inside it undoes that step only.

The transaction belongs to the unit of work's connection, not to an ORM session. The paths that run
thousands of times a second (a charge) run their statements on the driver connection
(`billing.driver_sql`) and never make a session; services that load objects get one on first use of
`uow.session`. That session rides on the transaction in a savepoint of its own, which is always
closed (kept or undone) before the block it was opened in ends, so the savepoint stack stays in order
and a refused step never leaves objects behind that the database has forgotten.

Writes nothing reads back before the commit (the answers kept for retries, `billing.memo`) are
held (`hold`) and written together just before COMMIT: a batch of group commit keeps its answers in
one statement instead of one each. A held write belongs to the savepoint it was made in and is
dropped if that savepoint is undone.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from .driver_sql import DriverConnection, SavepointElided, driver_for

log = logging.getLogger("billing.uow")

_THREAD = threading.local()  # .open_writers: writer transactions this thread has open


def open_writer_transactions() -> int:
    """How many writer transactions the calling thread holds open (row locks, SQLite's write lock)."""
    return getattr(_THREAD, "open_writers", 0)


class TransactionBroken(RuntimeError):
    """A savepoint could not be undone, so the transaction holds work nobody may keep."""


class HeldWriteRefused(TransactionBroken):
    """A write held back (`hold(..., seen_by_statements=True)`) could not be made as it was held
    (its key was claimed meanwhile): the transaction must not commit; its owner runs it again
    without holding (`may_hold_writes` false)."""


class UnitOfWork:
    def __init__(self, engine: Engine, session_factory, clock, tariffs, offers, *, writer: bool = True):
        self._engine = engine
        self._session_factory = session_factory
        self._writer = writer
        self.clock = clock
        self.tariffs = tariffs
        self.offers = offers
        self._connection: Connection | None = None
        self._driver: DriverConnection | None = None
        self._session: Session | None = None
        self._session_depth = 0  # the atomic() depth the session's savepoint was opened at
        self._depth = 0  # open atomic() blocks
        self._broken = False
        self._elide = False  # savepoints elided (`elide_savepoints`)
        self.needs_savepoints = False  # a block that wrote had to be undone with its savepoint elided
        self._held: list[tuple] = []  # (writer, item): writes held until the commit (`hold`)
        self._seen_writers: set = set()  # writers whose held items go before any statement sent
        self._marks: list[int] = []  # len(_held) when each open driver savepoint was opened, outermost first

    # -- the transaction's connection ------------------------------------------------------------

    def connection(self) -> Connection:
        """The transaction's connection, for SQLAlchemy Core statements (begins the transaction)."""
        connection = self._connection
        if connection is None:
            connection = self._open()
        return connection

    def driver(self) -> DriverConnection:
        """The transaction's driver connection, for `DriverStatement`s (begins the transaction)."""
        driver = self._driver
        if driver is None:
            driver = self._driver = driver_for(self.connection())
            driver.elide = self._elide
        return driver

    def elide_savepoints(self) -> None:
        """For a transaction its owner can run again from the start (a batch of group commit): its
        savepoints are not sent (`billing.driver_sql`). When a block that wrote has to
        be undone, `needs_savepoints` turns true and the transaction will not commit: run it again
        without this."""
        if self._connection is not None:
            raise RuntimeError("elide_savepoints() after the transaction began")
        self._elide = True

    def _open(self) -> Connection:
        connection = self._engine.connect()
        try:
            connection.begin()  # SQLite writers take the write lock here (billing.core)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        self._broken = False
        if self._writer:
            _THREAD.open_writers = open_writer_transactions() + 1
        return connection

    def _close(self) -> None:
        connection, self._connection, self._driver = self._connection, None, None
        if connection is None:
            return
        if self._writer:
            _THREAD.open_writers = open_writer_transactions() - 1
        # Back to the pool: a rollback if the transaction is still open, and SQLite's write lock let go.
        connection.close()

    # -- the ORM session, for services that load objects -----------------------------------------

    @property
    def session(self) -> Session:
        session = self._session
        if session is None:
            session = self._session = self._session_factory()
        if not session.in_transaction():
            session.bind = self.connection()
            session.begin()
            session.connection()  # its SAVEPOINT now, at this depth (see the module's docstring)
            self._session_depth = self._depth
        return session

    @property
    def session_opened(self) -> bool:
        """Whether this unit of work has made an ORM session (the hot paths never do)."""
        return self._session is not None

    def flush(self) -> None:
        """Pending ORM changes go to the database now (before a statement that must see them)."""
        session = self._session
        if session is not None and (session.in_transaction() or session.new or session.dirty or session.deleted):
            self.session.flush()

    def _end_session_above(self, depth: int, keep: bool) -> None:
        """Close the session's savepoint if it was opened deeper than `depth`."""
        session = self._session
        if session is not None and session.in_transaction() and self._session_depth > depth:
            if keep:
                session.commit()  # flush + RELEASE its savepoint; with expire_on_commit off objects stay loaded
            else:
                session.rollback()  # ROLLBACK TO its savepoint; the objects it touched are expired

    # -- writes held until the commit -------------------------------------------------------------

    @property
    def may_hold_writes(self) -> bool:
        """True for a transaction its owner runs again when a held write turns out impossible (a
        batch of group commit, savepoints elided): a claim may be held and made with the batch's
        others in one statement (`billing.ledger`)."""
        return self._elide

    def hold(self, writer: Callable[["UnitOfWork", list], None], item, *, seen_by_statements: bool = False) -> None:
        """Hold `item` back until this transaction commits, then `writer(uow, items)` writes all the
        items it was given at once (a batch of kept answers is one statement, not one each). An
        item held inside a savepoint that is undone is dropped with it. `seen_by_statements`: what
        it writes must be there for any statement of this transaction, so the items held so far
        are written before the next statement is sent, and before the other held writes."""
        self._held.append((writer, item))
        if seen_by_statements:
            self._seen_writers.add(writer)
            self.driver().before_statement = self._write_seen

    def held(self, writer: Callable[["UnitOfWork", list], None]) -> list:
        """The items held for `writer` so far and not yet written, oldest first."""
        return [item for held_by, item in self._held if held_by is writer]

    def _write_seen(self) -> None:
        """The items held `seen_by_statements`, written now; their places stay in the list (a
        savepoint undone drops what was held after its start), marked written."""
        if self._driver is not None:
            self._driver.before_statement = None
        if not self._seen_writers:
            return
        by_writer: dict = {}
        held, last = self._held, -1
        for index, (writer, item) in enumerate(held):
            if writer in self._seen_writers:
                by_writer.setdefault(writer, []).append(item)
                held[index] = (_written, None)
                last = index
        if last < 0:
            return
        driver = self.driver()
        clean_from = driver.clean_from
        for writer, items in by_writer.items():
            writer(self, items)
        # Written now, inside whatever savepoint is open; but an item belongs only to those open
        # when it was held: a member refused after an earlier member's claim was written undoes
        # nothing of its own, and the batch need not run again.
        driver.wrote_inside(clean_from, sum(1 for mark in self._marks if mark <= last), len(self._marks))

    def refuse_held(self, reason: str) -> None:
        """A held write cannot be made as held: this transaction must not commit."""
        self._broken = self.needs_savepoints = True
        raise HeldWriteRefused(reason)

    def _write_held(self) -> None:
        self._write_seen()
        held, self._held = self._held, []
        if not held:
            return
        self.flush()  # what the held writes name may still be an ORM object
        if self._driver is not None:
            self._driver.forget_deferred()  # the savepoints' RELEASEs: moot, it commits next
        by_writer: dict = {}
        for writer, item in held:
            if writer is not _written:
                by_writer.setdefault(writer, []).append(item)
        for writer, items in by_writer.items():
            writer(self, items)

    # -- the with-block and atomic() -------------------------------------------------------------

    def __enter__(self) -> "UnitOfWork":
        return self

    def __exit__(self, *exc) -> None:
        # Anything not committed explicitly is thrown away: a half-done request changes nothing.
        # The session is closed without expiring what was read, so results stay usable.
        self._depth = 0
        self._held.clear()
        if self._driver is not None:
            self._driver.forget_deferred()
        session, self._session = self._session, None
        try:
            if session is not None:
                session.close()
        finally:
            self._close()

    def atomic(self):
        """`with uow.atomic():` one transaction (or, inside another atomic block, one savepoint)."""
        return _Savepoint(self) if self._depth else _Outermost(self)

    def isolated(self):
        """Like `atomic()`, for one caller's work in a transaction shared with others (group
        commit): the objects it loaded are forgotten at its end, so no caller sees or flushes
        another's."""
        return _Savepoint(self, forget=True) if self._depth else _Outermost(self, forget=True)

    def _forget_objects(self) -> None:
        if self._session is not None and not self._session.in_transaction():
            self._session = None

    def _undo(self, rollback) -> None:
        try:
            rollback()
        except SavepointElided:
            self._broken = self.needs_savepoints = True  # its owner runs it again with savepoints
        except Exception:
            # The refused step's work may still be in the transaction: it must never be committed.
            log.exception("a savepoint could not be rolled back; the transaction will not commit")
            self._broken = True

    # -- ending the transaction ------------------------------------------------------------------

    def commit(self) -> None:
        if self._depth:
            self.flush()
            return
        if self._broken:
            raise TransactionBroken("a refused step could not be undone; nothing of this transaction is kept")
        session = self._session
        try:
            self._write_held()
            session = self._session  # the held writes may have needed one
            if session is not None and (session.in_transaction() or session.new or session.dirty or session.deleted):
                self.session.commit()
            if self._connection is not None:
                if self._driver is not None:
                    self._driver.forget_deferred()  # savepoint statements: moot once it commits
                self._connection.commit()
        except BaseException:
            # What the session holds was never committed: drop it rather than trust it.
            self._session = None
            try:
                if session is not None:
                    session.close()
                self._abandon()
            finally:
                self._close()
            raise
        self._close()

    def _abandon(self) -> None:
        """A COMMIT that failed may leave the transaction open (SQLite does, after a deferred
        constraint): roll it back on the driver itself, since SQLAlchemy counts it as finished and
        its pool would not."""
        if self._connection is not None:
            try:
                self._connection.connection.driver_connection.rollback()
            except Exception:
                log.exception("rollback after a failed commit failed; the connection is discarded")
                self._connection.invalidate()

    def rollback(self) -> None:
        if self._depth:
            raise RuntimeError("rollback inside an atomic block: raise a domain error instead")
        self._held.clear()
        session = self._session
        try:
            if session is not None and session.in_transaction():
                session.rollback()
            if self._connection is not None:
                if self._driver is not None:
                    self._driver.forget_deferred()
                self._connection.rollback()
        finally:
            self._close()


def _written(uow, items) -> None:
    """The place of a held item already written (`_write_seen`)."""


# atomic() as classes, not generator context managers: a batch of group commit enters two per caller.

class _Outermost:
    __slots__ = ("uow", "forget")

    def __init__(self, uow: UnitOfWork, forget: bool = False):
        self.uow, self.forget = uow, forget

    def __enter__(self) -> UnitOfWork:
        self.uow._depth = 1
        return self.uow

    def __exit__(self, error_type, error, traceback) -> bool:
        uow = self.uow
        uow._depth = 0
        try:
            if error_type is None:
                uow.commit()  # an error leaves the transaction to __exit__ of the unit of work
        finally:
            if self.forget:
                uow._forget_objects()
        return False


_SAVEPOINT = [f"SAVEPOINT uow_{depth}" for depth in range(16)]
_RELEASE = [f"RELEASE SAVEPOINT uow_{depth}" for depth in range(16)]


class _Savepoint:
    """A nested atomic() block. With ORM objects loaded the session makes the savepoint (undoing it
    also expires what it touched); otherwise it is a plain SAVEPOINT on the driver connection."""

    __slots__ = ("uow", "forget", "outer", "nested", "driver", "held")

    def __init__(self, uow: UnitOfWork, forget: bool = False):
        self.uow, self.forget = uow, forget

    def __enter__(self) -> UnitOfWork:
        uow = self.uow
        outer = self.outer = uow._depth
        self.held = len(uow._held)
        session = uow._session
        if session is not None and session.in_transaction():
            if uow._driver is not None:
                uow._driver.send_deferred()
            self.nested = session.begin_nested()
        else:
            self.nested = None
            self.driver = uow.driver()
            self.driver.command(_SAVEPOINT[outer] if outer < 16 else f"SAVEPOINT uow_{outer}")
            uow._marks.append(self.held)
        uow._depth = outer + 1
        return uow

    def __exit__(self, error_type, error, traceback) -> bool:
        uow, outer = self.uow, self.outer
        uow._depth = outer
        if self.nested is None:
            uow._marks.pop()
        try:
            if error_type is not None:
                uow._undo(self._rollback)
                return False
            try:
                if self.nested is not None:
                    self.nested.commit()
                else:
                    uow._end_session_above(outer, keep=True)
            except BaseException:
                uow._undo(self._rollback)
                raise
            if self.nested is None:
                self.driver.command(_RELEASE[outer] if outer < 16 else f"RELEASE SAVEPOINT uow_{outer}")
            return False
        finally:
            if self.forget:
                uow._forget_objects()

    def _rollback(self) -> None:
        del self.uow._held[self.held:]
        if self.nested is not None:
            if self.nested.is_active:
                self.nested.rollback()
            return
        self.uow._end_session_above(self.outer, keep=False)
        self.driver.rollback_to(f"uow_{self.outer}")
