"""Wiring of the billing core: the database engine, the clock and the data books (tariffs, offers).

Channels hold one `Core` per process and open a unit of work per request.
"""
from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from .clock import FixedClock, SystemClock
from . import lines
from .driver_sql import watch_other_statements
from .group_commit import GroupCommitter
from .offers import Offers, load_offers
from .tariffs import TariffBook, load_tariffs
from .uow import UnitOfWork
from .writelock import SqliteWriteLock

DEFAULT_DB_PATH = Path("var") / "selfcare.db"


def default_db_url() -> str:
    return os.environ.get("SELFCARE_DB") or f"sqlite:///{DEFAULT_DB_PATH}"


def _sqlite_path(url: str) -> str | None:
    path = url.split("///", 1)[1] if "///" in url else ""
    return None if not path or path == ":memory:" else path


def _sqlite_engine(url: str, *, writer: bool = True) -> Engine:
    path = _sqlite_path(url)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # A SQLite connection is a file handle, not a server slot: never make a call wait for one (with
    # a thousand calls at once a bounded pool ran dry and callers heard "service unavailable").
    # cached_statements: the batches' statements are rendered for each count of rows (RowsStatement),
    # and sqlite3's 128 prepared statements a connection would not hold them all.
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30, "cached_statements": 512},
                           pool_size=64, max_overflow=-1)
    # Held from a writer's BEGIN until its connection goes back to the pool (after COMMIT or
    # ROLLBACK), so a unit of work holds it only while its transaction is open.
    write_lock = SqliteWriteLock(path) if writer else None

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        # pysqlite's own transaction handling defers BEGIN; take it over so writers serialise
        # on BEGIN IMMEDIATE instead of failing on a lock upgrade half-way through.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    # BEGIN goes straight to the driver: through SQLAlchemy's execute it cost a third of a charge.
    @event.listens_for(engine, "begin")
    def _begin(conn):
        record = conn.connection
        if write_lock is None:
            record.driver_connection.execute("BEGIN")  # readers take no lock in WAL mode
            return
        if not record.info.get("holds_write_lock"):  # a connection may run several transactions per checkout
            write_lock.acquire()
            record.info["holds_write_lock"] = True
        record.driver_connection.execute("BEGIN IMMEDIATE")

    def _release(_dbapi_connection, record, *_):
        if record is not None and record.info.pop("holds_write_lock", False):
            write_lock.release()

    if write_lock is not None:
        event.listen(engine, "checkin", _release)
        event.listen(engine, "invalidate", _release)
    watch_other_statements(engine)
    return engine


# A database host that drops packets would otherwise hold a connection attempt (and a starting
# `selfcare serve`) for the kernel's TCP timeout, minutes; `?connect_timeout=N` in the URL overrides.
PG_CONNECT_TIMEOUT_S = 5


def make_engine(url: str, *, writer: bool = True) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url, writer=writer)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    connect_args = {} if "connect_timeout=" in url else {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    engine = create_engine(url, pool_size=20, max_overflow=40, pool_pre_ping=True, connect_args=connect_args)
    watch_other_statements(engine)
    return engine


def _deadlock_or_serialization_failure(exc: BaseException) -> bool:
    """PostgreSQL gave up one statement to break a cycle with another process's transaction (or could
    not serialise it): the same work, run again in the next batch, normally goes through."""
    state = getattr(exc, "sqlstate", None) or getattr(getattr(exc, "orig", None), "sqlstate", None)
    return state in ("40P01", "40001")


class Core:
    def __init__(self, db_url: str | None = None, clock=None, tariffs: TariffBook | None = None,
                 offers: Offers | None = None, batch_lanes: int = 1):
        self.db_url = db_url or default_db_url()
        self.engine = make_engine(self.db_url)
        self.clock = clock or SystemClock()
        # Loaded (and checked) here, when a process starts: a bad entry stops it with its name.
        self.tariffs = tariffs or load_tariffs()
        self.offers = offers or load_offers()
        # A unit of work owns its transaction; an ORM session joins it in a savepoint (billing.uow).
        self._sessions = sessionmaker(expire_on_commit=False, join_transaction_mode="create_savepoint")
        # SQLite: questions that change nothing must not queue behind writers for the write lock.
        self.read_engine = make_engine(self.db_url, writer=False) if self.db_url.startswith("sqlite") else self.engine
        # Concurrent writes of this process share transactions and commits (billing.group_commit).
        # A batch reads its lines at its start (on PostgreSQL leaving for later the members whose
        # line another process's batch holds), runs without savepoints, and again with them only
        # when one is needed. On PostgreSQL batches run in `batch_lanes` lanes side by side
        # (selfcare.serve.batch_lanes; SQLite has one writer at a time: one lane).
        postgres = self.engine.dialect.name == "postgresql"
        self.group_commit = GroupCommitter(self._batch_uow, retryable=_deadlock_or_serialization_failure,
                                           take_lines=lines.take_free,
                                           elide_savepoints=True,
                                           lanes=batch_lanes if postgres else 1)

    def uow(self, at=None) -> UnitOfWork:
        """A unit of work; `at` backdates it (importing a line's history, loading demo data)."""
        if self.group_commit.running_here():
            # This thread runs a batch and holds its transaction (on SQLite, the write lock): a second
            # writer here would wait for it forever.
            raise RuntimeError("a function run by group commit must use the unit of work it is given")
        return self._batch_uow(at)

    def _batch_uow(self, at=None) -> UnitOfWork:
        clock = FixedClock(at) if at is not None else self.clock
        return UnitOfWork(self.engine, self._sessions, clock, self.tariffs, self.offers)

    def reader(self) -> UnitOfWork:
        """A unit of work for questions only (reports, lookups); its commit changes nothing."""
        return UnitOfWork(self.read_engine, self._sessions, self.clock, self.tariffs, self.offers, writer=False)

    def upgrade_schema(self) -> None:
        from .migrate import upgrade

        upgrade(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()
