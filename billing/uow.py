"""The unit of work: one transaction, the clock and the data books (tariffs, offers), handed to
every service.

Services end with `uow.commit()`. Inside `with uow.atomic():` those commits only flush, and the
block commits once at its end, so several services compose into one transaction (a fee and the
action it pays for, a reply and what it reports). A nested `atomic()` is a savepoint: a domain
error raised inside it undoes that step only.
"""
from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy.orm import Session


class UnitOfWork:
    def __init__(self, session_factory, clock, tariffs, offers):
        self._session_factory = session_factory
        self.clock = clock
        self.tariffs = tariffs
        self.offers = offers
        self.session: Session | None = None
        self._connection = None
        self._depth = 0  # open atomic() blocks

    def connection(self):
        """The transaction's connection, for Core statements on hot paths (the ORM session's
        per-statement bookkeeping costs more than the SQL)."""
        if self._connection is None:
            self._connection = self.session.connection()
        return self._connection

    def __enter__(self) -> "UnitOfWork":
        self.session = self._session_factory()
        return self

    def __exit__(self, *exc) -> None:
        # Anything not committed explicitly is thrown away: a half-done request changes nothing.
        # close() rolls the transaction back without expiring what was read, so results stay usable.
        self._connection = None
        self._depth = 0
        self.session.close()

    @contextmanager
    def atomic(self):
        if self._depth:
            savepoint = self.session.begin_nested()
            self._depth += 1
            try:
                yield self
            except BaseException:
                savepoint.rollback()
                raise
            finally:
                self._depth -= 1
            savepoint.commit()
            return
        self._depth = 1
        try:
            yield self
        finally:
            self._depth = 0
        # Reached only when the block raised nothing: an error leaves the transaction to __exit__.
        self.commit()

    def commit(self) -> None:
        if self._depth:
            self.session.flush()
            return
        self._connection = None
        self.session.commit()

    def rollback(self) -> None:
        if self._depth:
            raise RuntimeError("rollback inside an atomic block: raise a domain error instead")
        self._connection = None
        self.session.rollback()
